r"""The curvature of :math:`\mathrm{tr}\nabla^2L` along the valley, in the direction the label-noise drift starts."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._precision import full_precision
from .._problem import Params, Problem
from .._validation import check_positive, check_positive_int
from ._flat import flatten
from ._projection import gauss_newton_steps
from ._tangent import riemannian_gradient_trace_flat


class DescentGeometry(NamedTuple):
    r"""The valley's geometry at a point of :math:`\Gamma`, along the drift's direction
    :math:`v = -\nabla_\Gamma\mathrm{tr}/|\nabla_\Gamma\mathrm{tr}|`.

    ``trace``: :math:`\mathrm{tr}\nabla^2L`; ``gradient_norm``: :math:`|\nabla_\Gamma\mathrm{tr}|`;
    ``curvature``: :math:`\lambda = \mathrm{Hess}_\Gamma\mathrm{tr}(v, v)`, the second derivative of
    :math:`\mathrm{tr}` along the valley's geodesic in direction :math:`v` (the Riemannian Hessian: the Euclidean
    one plus the normal gradient against the valley's second fundamental form).
    """

    trace: float
    gradient_norm: float
    curvature: float


def descent_geometry(
    problem: Problem, params: Params, *, step: float | None = None, iterations: int = 3
) -> DescentGeometry:
    r""":class:`DescentGeometry` at ``params`` (a point of :math:`\Gamma`).

    The curvature is the central difference

    .. math::

        \lambda \approx \frac{\mathrm{tr}\,R(\epsilon v) - 2\,\mathrm{tr}\,\theta + \mathrm{tr}\,R(-\epsilon v)}
        {\epsilon^2}, \qquad R(w) = G^{k}(\theta + w),

    with :math:`R` the projection retraction (``iterations`` :math:`= k` Gauss-Newton steps :math:`G`, which
    agrees with the exponential map to second order, so the difference is the Riemannian Hessian up to
    :math:`O(\epsilon^2)`) and :math:`\epsilon` = ``step`` :math:`\times\max(1, |\theta|)`; by default ``step`` is
    the fourth root of the dtype's resolution (``1.2e-4`` in float64, ``0.019`` in float32), where the difference's
    rounding error :math:`u/\epsilon^2` and its truncation error :math:`\epsilon^2` balance. Costs three traces and
    one Riemannian gradient; dense Jacobians (small models).

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> g = flatter.valley.descent_geometry(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]))
      >>> print(f"{g.trace:.3f} {g.gradient_norm:.3f} {g.curvature:.3f}")  # tr = 1 + y^2 at y = 1
      2.000 2.000 2.000
    """
    if step is not None:
        check_positive("step", step)
    iterations = check_positive_int("iterations", iterations)
    with full_precision():
        theta, fp = flatten(problem, params)
        if step is None:
            step = float(jnp.finfo(theta.dtype).eps) ** 0.25

        def trace(t):
            return problem.gauss_newton_trace(fp.unravel(t))

        gradient = riemannian_gradient_trace_flat(problem, fp, theta)
        norm = float(jnp.linalg.norm(gradient))
        if not norm > 0:
            return DescentGeometry(float(trace(theta)), 0.0, 0.0)
        v = -gradient / norm
        eps = step * max(1.0, float(jnp.linalg.norm(theta)))
        # The centre through the same retraction: a start off Gamma by delta would add O(delta / eps^2). The three
        # points in one vmapped call: one program, not one per point.
        shifts = eps * jnp.array([1.0, 0.0, -1.0], theta.dtype)[:, None] * v
        ahead, at, behind = (
            float(t) for t in jax.vmap(lambda w: trace(gauss_newton_steps(fp, w, iterations)))(theta + shifts)
        )
        curvature = (ahead - 2.0 * at + behind) / eps**2
    return DescentGeometry(at, norm, curvature)
