"""Projection onto the valley Gamma = {theta : r(theta) = 0} by minimum-norm Gauss-Newton steps."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from .._precision import full_precision
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
        return _gn_step(flat_problem, theta, matrix_free), None

    return jax.lax.scan(step, theta, None, length=iterations)[0]


def _gn_step(flat_problem: FlatProblem, theta, matrix_free: bool):
    r = flat_problem.residual(theta)
    if matrix_free:
        op = lx.JacobianLinearOperator(lambda t, _: flat_problem.residual(t), theta)
        delta = lx.linear_solve(op, r, lx.LSMR(rtol=1e-12, atol=1e-12), throw=False).value
    else:
        delta = jnp.linalg.lstsq(jax.jacfwd(flat_problem.residual)(theta), r)[0]
    return theta - delta


def project(
    problem: Problem,
    params: Params,
    *,
    tol: float | None = None,
    max_steps: int = 50,
    method: str = "dense",
    max_loss: float | None = 1.0,
) -> Params:
    r"""The point of :math:`\Gamma` reached from ``params`` by minimum-norm Gauss-Newton.

    Iterates :math:`\theta \leftarrow \theta - J^+ r(\theta)` with the minimum-norm least-squares
    step, dense (``method="dense"``) or matrix-free with lineax's LSMR (``"matrix_free"``, JVPs and
    VJPs only), until :math:`\|r\| \le` ``tol`` (default: 100 ulp of the dtype times
    :math:`\sqrt{N}` times the scale of the targets). Each step moves orthogonally to the current
    level set, so the limit is, to first order in the distance, the orthogonal projection
    :math:`\Phi(\theta)` of :math:`\theta` onto :math:`\Gamma`.

    Raises :class:`ValleyError` when the starting loss exceeds ``max_loss`` (not near
    :math:`\Gamma`; ``None`` disables the check) or the residual is still above ``tol`` after
    ``max_steps``.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()
      >>> print(flatter.valley.project(problem, jnp.array([0.3, 1.0])))
      [0. 1.]
    """
    check_choice("method", method, ("dense", "matrix_free"))
    problem.check_params(params)
    theta0, fp = flatten(problem, params)
    if tol is None:
        scale = max(1.0, float(jnp.max(jnp.abs(problem.targets))))
        tol = 1000 * float(jnp.finfo(theta0.dtype).eps) * scale * float(jnp.sqrt(fp.residual(theta0).size))
    check_positive("tol", tol)
    if max_loss is not None:
        start = float(fp.loss(theta0))
        if not start <= max_loss:
            raise ValleyError(
                f"project: the point is not near the valley (loss {start:.3e} > max_loss={max_loss:g}); "
                "run flatter.interpolate first or raise max_loss"
            )
    with full_precision():
        theta, steps = _project_loop(fp.residual, fp.num_examples, theta0, tol, max_steps, method == "matrix_free")
    final = float(jnp.linalg.norm(fp.residual(theta)))
    if not final <= tol:
        raise ValleyError(
            f"project: Gauss-Newton did not converge (residual norm {final:.3e} > tol={tol:.1e} after "
            f"{int(steps)} steps); raise max_steps, loosen tol or check that the point is near the valley"
        )
    return fp.unravel(theta)


@partial(jax.jit, static_argnums=(0, 1, 4, 5))
def _project_loop(residual, num_examples, theta0, tol, max_steps, matrix_free):
    fp = FlatProblem(residual, None, num_examples)

    def cond(carry):
        theta, it = carry
        return (jnp.linalg.norm(residual(theta)) > tol) & (it < max_steps)

    def body(carry):
        theta, it = carry
        return _gn_step(fp, theta, matrix_free), it + 1

    return jax.lax.while_loop(cond, body, (theta0, jnp.asarray(0)))
