"""Where a sweep sits on the regime map: its damping ratio at gamma = 2/3 from its own phase-1 point."""

from __future__ import annotations

from .._problem import Params, Problem
from ..limit._regime import Regime, regime
from ..transforms import label_noise_batch
from ._grid import SweepSpec
from ._run import prepare


def spec_regime(spec: SweepSpec, problem: Problem | None = None, params0: Params | None = None) -> Regime:
    r""":func:`flatter.limit.regime` of a sweep: :math:`\zeta = 1/(2\sqrt{\kappa\lambda})` at :math:`1-\beta =
    C\eta^{2/3}` with the spec's first ``C`` and ``sigma``, :math:`B` its first batch size's noisy labels
    (:func:`flatter.transforms.label_noise_batch`), :math:`\lambda` read at the point phase 2 starts from
    (:func:`prepare`; a user's problem is passed as for :func:`run_sweep`). No sweep is run.

    Examples:
      >>> import flatter
      >>> spec = flatter.sweep.SweepSpec(problem="toy-valley", gammas=(2 / 3,), etas=(1e-3,), Cs=(1.0,),
      ...     sigmas=(1.0,), seeds=2, max_steps=1000, observable="abs_y", threshold=0.1)
      >>> print(f"{flatter.sweep.spec_regime(spec).zeta:.3f}")  # the toy: kappa = 1/4, lambda = 2
      0.707
    """
    problem, params0 = prepare(spec, problem, params0)
    noisy = int(label_noise_batch(spec.label_noise_mode, spec.batch_sizes[0], problem.num_examples))
    return regime(problem, params0, sigma=spec.sigmas[0], C=spec.Cs[0], batch_size=noisy)
