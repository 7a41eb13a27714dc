"""flatter: SGD with momentum and label noise near the valley of minimizers, in JAX.

Conventions (see README): heavy ball in the PyTorch/optax form v <- beta v + g, theta <- theta - eta v;
effective learning rate eta_eff = eta / (1 - beta); the momentum rule 1 - beta = C eta**gamma; the loss
L = (1/2n) sum_a |f_a - y_a|^2; label noise y -> y + sigma xi.
"""

import importlib.metadata

from . import limit as limit, problems as problems, sweep as sweep, timescales as timescales, valley as valley
from ._compare import Comparison as Comparison, compare as compare, plot_comparison as plot_comparison
from ._criteria import (
    PassageTime as PassageTime,
    first_passage as first_passage,
    settling_time as settling_time,
)
from ._heavy_ball import heavy_ball as heavy_ball
from ._interpolate import (
    InterpolationError as InterpolationError,
    InterpolationInfo as InterpolationInfo,
    interpolate as interpolate,
)
from ._label_noise import (
    LabelNoiseState as LabelNoiseState,
    label_noise as label_noise,
    label_perturbation as label_perturbation,
)
from ._momentum_rule import (
    ScaledHeavyBallState as ScaledHeavyBallState,
    momentum_rule as momentum_rule,
    scaled_heavy_ball as scaled_heavy_ball,
)
from ._problem import Problem as Problem
from ._simulate import Trajectory as Trajectory, make_step as make_step, simulate as simulate
from ._sngm import SNGMState as SNGMState, sngm as sngm

try:
    __version__ = importlib.metadata.version("flatter")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+local"
