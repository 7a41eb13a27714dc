"""The two-parameter toy valley of docs/theory.md §6.1."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar

from .._problem import Problem
from .._validation import check_range


def toy_valley(*, h0: float = 1.0, curvature_slope: float = 1.0, y0: float = 1.0) -> Problem:
    r"""The toy valley :math:`f(x, y) = \sqrt{h(y)}\,x` with target 0 (one example).

    Parameters are :math:`\theta = (x, y)`; :math:`x` is the transverse direction and :math:`y` the
    position along the valley :math:`\Gamma = \{x = 0\}`, where

    .. math::

        L = \tfrac12 h(y)\,x^2, \qquad h(y) = h_0\,(1 + a y^2), \qquad
        \mathrm{tr}\nabla^2 L|_\Gamma = h(y),

    so the flattest point is :math:`y = 0`. With ``curvature_slope`` :math:`a = 0` the transverse
    direction is an exact quadratic of curvature :math:`h_0` (for the stationary-variance law).
    Observables: ``x``, ``y``, ``abs_y`` (distance to the flat point) and ``h`` besides the defaults;
    ``init_params`` returns :math:`(0, y_0)`, a point of :math:`\Gamma`.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()
      >>> theta = jnp.array([0.5, 1.0])
      >>> print(problem.loss(theta), problem.gauss_newton_trace(jnp.array([0.0, 1.0])))
      0.25 2.0
    """
    check_range("h0", h0, lower=0.0, lower_inclusive=False)
    check_range("curvature_slope", curvature_slope, lower=0.0)
    check_range("y0", y0)

    def h(y):
        return h0 * (1.0 + curvature_slope * y**2)

    def predict(theta: Float[Array, 2], inputs: Float[Array, "1 1"]) -> Float[Array, 1]:
        x, y = theta[0], theta[1]
        return jnp.sqrt(h(y)) * x * inputs[:, 0]

    def trace_hessian(problem: Problem, theta) -> Scalar:
        # |grad f|^2 = h + x^2 h'^2 / (4h): equals tr Hess L = h(y) on the valley.
        x, y = theta[0], theta[1]
        dh = 2.0 * h0 * curvature_slope * y
        return h(y) + x**2 * dh**2 / (4.0 * h(y))

    def init_params(key=None):
        del key
        return jnp.array([0.0, y0])

    return Problem(
        predict,
        jnp.ones((1, 1)),
        jnp.zeros((1,)),
        observables={
            "x": lambda problem, theta: theta[0],
            "y": lambda problem, theta: theta[1],
            "abs_y": lambda problem, theta: jnp.abs(theta[1]),
            "h": lambda problem, theta: h(theta[1]),
        },
        trace_hessian=trace_hessian,
        init_params=init_params,
        name="toy-valley",
    )
