r"""The curvature of :math:`\mathrm{tr}\nabla^2L` along the valley, in the direction the label-noise drift starts."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._precision import full_precision
from .._problem import Params, Problem
from .._structural_jit import structural_jit
from ._flat import flatten
from ._projection import choose_solver, normal_coefficients
from ._tangent import gauss_newton_trace_gradient_flat


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


def descent_geometry(problem: Problem, params: Params, *, matrix_free: bool | None = None) -> DescentGeometry:
    r""":class:`DescentGeometry` at ``params`` (a point of :math:`\Gamma`), exactly and without a Jacobian.

    With :math:`f = \mathrm{tr}(J^\top J)/n` (equal to :math:`\mathrm{tr}\nabla^2L` on :math:`\Gamma`, so the same
    function on the valley), a geodesic :math:`c(\epsilon)` of :math:`\Gamma` through :math:`\theta` in direction
    :math:`v` keeps :math:`r(c) = 0`, so :math:`J c'' = -D^2r[v, v]`, and its acceleration is normal:
    :math:`c'' = -J^+D^2r[v, v]`. Hence

    .. math::

        \lambda = \frac{d^2}{d\epsilon^2} f(c(\epsilon))\Big|_0
        = \nabla^2 f[v, v] - \big\langle \nabla f,\; J^+ D^2r[v, v]\big\rangle,

    the Euclidean second derivative plus the normal gradient against the valley's second fundamental form.
    :math:`\nabla^2 f[v, v]` is a JVP of :func:`flatter.valley.gauss_newton_trace_gradient_flat` (chunked over
    examples on a network) and :math:`D^2r[v, v]` a JVP of a JVP of the residuals. One least-squares solve
    serves both the direction and the correction: with :math:`J^\top a` the normal part of :math:`\nabla f`
    (:func:`flatter.valley.normal_coefficients`), :math:`\nabla_\Gamma f = \nabla f - J^\top a` and
    :math:`\langle\nabla f, J^+w\rangle = \langle a, w\rangle`. The solve is dense on a small Jacobian or LSMR
    from JVPs and VJPs (:func:`flatter.valley.choose_solver`; ``matrix_free`` forces either), so memory is
    :math:`O(N + p)` on a network. No finite difference: exact to the solve's tolerance in float32 as in
    float64.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> g = flatter.valley.descent_geometry(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]))
      >>> print(f"{g.trace:.3f} {g.gradient_norm:.3f} {g.curvature:.3f}")  # tr = 1 + y^2 at y = 1
      2.000 2.000 2.000
    """
    with full_precision():
        theta, fp = flatten(problem, params)
        solver = choose_solver(jax.eval_shape(fp.residual, theta).size, theta.size, matrix_free)

        def geometry(theta):
            def gradient(t):  # the Euclidean gradient of f = tr(J^T J)/n
                return gauss_newton_trace_gradient_flat(problem, fp, t)

            euclidean = gradient(theta)
            # One solve: the normal part J^T a of grad f gives the tangent part, and <grad f, J^+ w> = <a, w>.
            a, _ = normal_coefficients(fp, theta, euclidean, solver, "descent_geometry")
            tangent = euclidean - jax.vjp(fp.residual, theta)[1](a)[0]
            norm = jnp.linalg.norm(tangent)
            v = -tangent / jnp.where(norm > 0, norm, 1.0)
            hessian_vv = jnp.vdot(jax.jvp(gradient, (theta,), (v,))[1], v)
            second = jax.jvp(lambda t: jax.jvp(fp.residual, (t,), (v,))[1], (theta,), (v,))[1]  # D^2 r[v, v]
            curvature = hessian_vv - jnp.vdot(a, second)
            return problem.gauss_newton_trace(fp.unravel(theta)), norm, jnp.where(norm > 0, curvature, 0.0)

        # One program per model and size (structural_jit): a second point, or a problem rebuilt, compiles nothing.
        trace, norm, curvature = (float(x) for x in structural_jit(geometry, theta))
    return DescentGeometry(trace, norm, curvature)
