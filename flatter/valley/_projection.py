"""Projection onto the valley Gamma = {theta : r(theta) = 0} by minimum-norm Gauss-Newton steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Float

from .._problem import Params, Problem
from .._validation import check_choice, check_positive
from ._flat import FlatProblem, flatten


class ValleyError(RuntimeError):
    """A valley computation failed: the point is not near the valley or a solve did not converge."""


def gauss_newton_steps(
    flat_problem: FlatProblem, theta: Float[Array, " p"], iterations: int, *, matrix_free: bool = False
) -> Float[Array, " p"]:
    r"""A fixed number of minimum-norm Gauss-Newton steps :math:`\theta \leftarrow \theta - J^+ r`.

    Jit- and vmap-friendly (no data-dependent loop): the integrators call it after every step to
    return to :math:`\Gamma`. Dense: least squares on the :math:`N\times p` Jacobian; matrix-free:
    LSMR with JVPs/VJPs only.
    """

    def step(theta, _):
        r = flat_problem.residual(theta)
        if matrix_free:
            op = lx.JacobianLinearOperator(lambda t, _: flat_problem.residual(t), theta)
            delta = lx.linear_solve(op, r, lx.LSMR(rtol=1e-12, atol=1e-12), throw=False).value
        else:
            delta = jnp.linalg.lstsq(jax.jacfwd(flat_problem.residual)(theta), r)[0]
        return theta - delta, None

    return jax.lax.scan(step, theta, None, length=iterations)[0]


def project(
    problem: Problem,
    params: Params,
    *,
    tol: float = 1e-10,
    max_steps: int = 50,
    method: str = "dense",
    max_loss: float | None = 1.0,
) -> Params:
    r"""The point of :math:`\Gamma` reached from ``params`` by minimum-norm Gauss-Newton.

    Solves :math:`\min_\theta \|r(\theta)\|^2` with ``optimistix.GaussNewton`` whose linear solves
    return the minimum-norm (pseudoinverse) step, dense SVD (``method="dense"``) or matrix-free LSMR
    (``"matrix_free"``). Each step moves orthogonally to the current level set, so the limit is,
    to first order in the distance, the orthogonal projection :math:`\Phi(\theta)` of
    :math:`\theta` onto :math:`\Gamma`.

    Raises :class:`ValleyError` when the starting loss exceeds ``max_loss`` (not near
    :math:`\Gamma`; ``None`` disables the check) or the final residual norm exceeds ``tol``.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()
      >>> print(flatter.valley.project(problem, jnp.array([0.3, 1.0])))
      [0. 1.]
    """
    check_choice("method", method, ("dense", "matrix_free"))
    check_positive("tol", tol)
    theta0, fp = flatten(problem, params)
    if max_loss is not None:
        start = float(fp.loss(theta0))
        if not start <= max_loss:
            raise ValleyError(
                f"project: the point is not near the valley (loss {start:.3e} > max_loss={max_loss:g}); "
                "run flatter.interpolate first or raise max_loss"
            )
    linear_solver = lx.SVD() if method == "dense" else lx.LSMR(rtol=tol * 1e-2, atol=tol * 1e-2)
    solver = optx.GaussNewton(rtol=0.0, atol=tol, linear_solver=linear_solver)
    sol = optx.least_squares(lambda t, _: fp.residual(t), solver, theta0, max_steps=max_steps, throw=False)
    final = float(jnp.linalg.norm(fp.residual(sol.value)))
    if not final <= tol * max(1.0, float(jnp.sqrt(fp.num_examples))):
        raise ValleyError(
            f"project: Gauss-Newton did not converge (residual norm {final:.3e} > tol={tol:g} after "
            f"{int(sol.stats['num_steps'])} steps, {sol.result}); raise max_steps or check the point"
        )
    return fp.unravel(sol.value)
