r"""The regime number: the damping ratio of the along-valley motion at :math:`\gamma = 2/3`."""

from __future__ import annotations

import math
from typing import NamedTuple

from .._problem import Params, Problem
from .._validation import check_positive, check_positive_int, check_range
from ..valley._descent_curvature import descent_geometry
from ._critical import coupling_at_two_thirds


class Regime(NamedTuple):
    r"""Where a problem sits on the regime map at :math:`1-\beta = C\eta^{2/3}`.

    ``kappa``: :math:`\kappa = \sigma^2/(4BC^3)` (:func:`coupling_at_two_thirds`); ``curvature``:
    :math:`\lambda = \mathrm{Hess}_\Gamma\mathrm{tr}\nabla^2L(v, v)` at the start along the drift's direction
    (:func:`flatter.valley.descent_geometry`); ``zeta``: the damping ratio :math:`\zeta = 1/(2\sqrt{\kappa\lambda})`
    (:func:`damping_ratio`), critical at :math:`\zeta = 1`.
    """

    kappa: float
    curvature: float
    zeta: float

    @property
    def side(self) -> str:
        """``"underdamped"`` (zeta < 1: the motion overshoots the flat point) or ``"overdamped"``."""
        return "underdamped" if self.zeta < 1.0 else "overdamped"

    def __str__(self) -> str:
        return (
            f"damping ratio zeta = {self.zeta:.3g} ({self.side}; critical zeta = 1) from kappa = {self.kappa:.3g} and "
            f"the curvature of tr along the valley lambda = {self.curvature:.3g}"
        )


def damping_ratio(kappa, curvature) -> float:
    r"""The damping ratio :math:`\zeta = 1/(2\sqrt{\kappa\lambda})` of the critical reduced ODE, linearized.

    At :math:`\gamma = 2/3` the motion along :math:`\Gamma` in :math:`s = (1-\beta)k` is
    :math:`\theta'' = -\theta' - \kappa u\,\nabla_\Gamma\mathrm{tr}\nabla^2L` (:func:`critical_flow`, THEORY
    §6.6); with :math:`u \to 1` and :math:`\mathrm{tr}` of curvature :math:`\lambda` along the direction of
    motion it is the oscillator :math:`x'' + x' + \kappa\lambda x = 0`, underdamped (it overshoots) for
    :math:`\zeta < 1`. On the toy valley (:math:`\mathrm{tr} = 1 + y^2`, :math:`\lambda = 2`) the critical
    :math:`\zeta = 1` is :math:`\kappa = 1/8`. :math:`\lambda \le 0` (no restoring force at the start):
    :math:`\zeta = \infty`.

    Examples:
      >>> import flatter
      >>> print(flatter.limit.damping_ratio(kappa=0.125, curvature=2.0), flatter.limit.damping_ratio(0.5, -1.0))
      1.0 inf
    """
    check_positive("kappa", kappa)
    if not curvature > 0:
        return math.inf
    return 0.5 / math.sqrt(kappa * curvature)


def regime(problem: Problem, params: Params, *, sigma: float, C: float, batch_size: int = 1) -> Regime:
    r"""The :class:`Regime` of SGDM-LN at :math:`1-\beta = C\eta^{2/3}` from ``params`` (a point of :math:`\Gamma`).

    ``batch_size`` is the :math:`B` of the label noise (:func:`flatter.transforms.label_noise_batch`). The number
    comes from the problem's own geometry, so a user's problem lands on the same axis as the toy's.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> found = flatter.limit.regime(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]), sigma=1.0, C=1.0)
      >>> print(f"{found.zeta:.3f} {found.side} {found.kappa} {found.curvature:.3f}")
      0.707 underdamped 0.25 2.000
    """
    _checked_coupling(sigma, C, batch_size)  # bad input answered before the geometry's solve
    return regime_at(descent_geometry(problem, params).curvature, sigma=sigma, C=C, batch_size=batch_size)


def regime_at(curvature: float, *, sigma: float, C: float, batch_size: int = 1) -> Regime:
    r"""The :class:`Regime` of SGDM-LN at :math:`1-\beta = C\eta^{2/3}` on a valley whose curvature of tr along the
    drift's direction is ``curvature`` (:func:`regime` computes it; a stored one, of a network say, is reused).

    Examples:
      >>> import flatter
      >>> print(f"{flatter.limit.regime_at(2.0, sigma=1.0, C=1.0).zeta:.3f}")  # the toy: kappa = 1/4, lambda = 2
      0.707
    """
    kappa = _checked_coupling(sigma, C, batch_size)
    return Regime(kappa, float(curvature), damping_ratio(kappa, curvature))


def _checked_coupling(sigma, C, batch_size) -> float:
    """:func:`coupling_at_two_thirds` after checking its inputs (a clear error names the bad one)."""
    check_range("sigma", sigma, lower=0.0)
    check_positive("C", C)
    return float(coupling_at_two_thirds(sigma, C, check_positive_int("batch_size", batch_size)))
