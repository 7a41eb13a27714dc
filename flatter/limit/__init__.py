"""The limit dynamics of SGDM with label noise along the valley, and integrators that stay on it."""

from ._critical import (
    coupling_at_two_thirds as coupling_at_two_thirds,
    critical_flow as critical_flow,
    critical_kappa as critical_kappa,
)
from ._dynamics import (
    LimitDynamics as LimitDynamics,
    label_noise_flow as label_noise_flow,
    limit_sde as limit_sde,
    second_derivative_of_gradient as second_derivative_of_gradient,
)
from ._integrate import (
    LimitSolution as LimitSolution,
    ProjectedSolver as ProjectedSolver,
    integrate as integrate,
)
from ._modes import ModeParameters as ModeParameters, mode_parameters as mode_parameters
from ._noise import (
    isotropic_noise as isotropic_noise,
    label_noise_covariance as label_noise_covariance,
    minibatch_noise as minibatch_noise,
)
from ._reduced_sde import ReducedSolution as ReducedSolution, reduced_sde as reduced_sde
from ._regime import Regime as Regime, damping_ratio as damping_ratio, regime as regime, regime_at as regime_at
from ._sngm_flow import sngm_flow as sngm_flow
from ._time_map import (
    effective_learning_rate as effective_learning_rate,
    steps_to_time as steps_to_time,
    time_to_steps as time_to_steps,
)

__all__ = [
    "coupling_at_two_thirds",
    "critical_flow",
    "critical_kappa",
    "LimitDynamics",
    "label_noise_flow",
    "limit_sde",
    "second_derivative_of_gradient",
    "LimitSolution",
    "ProjectedSolver",
    "integrate",
    "ModeParameters",
    "mode_parameters",
    "isotropic_noise",
    "label_noise_covariance",
    "minibatch_noise",
    "ReducedSolution",
    "reduced_sde",
    "Regime",
    "damping_ratio",
    "regime",
    "regime_at",
    "sngm_flow",
    "effective_learning_rate",
    "steps_to_time",
    "time_to_steps",
]
