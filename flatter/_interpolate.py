"""Phase 1 of the two-phase protocol: bring a Problem to interpolation (onto the valley)."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._precision import full_precision
from ._problem import Params, Problem
from ._validation import check_choice, check_positive, check_positive_int
from .valley._flat import flatten
from .valley._projection import GAUSS_NEWTON_SOLVERS, check_dense_jacobian, choose_solver, gauss_newton_delta


class InterpolationError(RuntimeError):
    """Phase 1 did not bring the loss below the requested tolerance."""


class InterpolationInfo(NamedTuple):
    r"""What :func:`interpolate` did: the final loss and residual norm :math:`\|r\|`, its steps, whether
    ``loss <= tol``, the Gauss-Newton solver and the iterations its solves took in all (LSMR's; 0 for a dense
    solve or gradient descent)."""

    loss: float
    steps: int
    converged: bool
    residual_norm: float = float("nan")
    solver: str = "cholesky"
    solver_iterations: int = 0


@partial(jax.jit, static_argnames=("method", "max_steps", "solver"))
def _run(problem: Problem, params0, tol, learning_rate, *, method: str, max_steps: int, solver: str):
    flat0, fp = flatten(problem, params0)
    unravel = fp.unravel

    def loss(flat):
        r = fp.residual(flat)
        return 0.5 * jnp.sum(r**2) / problem.num_examples

    def step(flat):
        if method == "gauss_newton":
            delta, iterations = gauss_newton_delta(fp, flat, solver)
            return flat - delta, iterations
        return flat - learning_rate * jax.grad(loss)(flat), jnp.asarray(0, jnp.int32)

    def cond(carry):
        flat, it, _ = carry
        return (loss(flat) > tol) & (it < max_steps)

    def body(carry):
        flat, it, total = carry
        flat, iterations = step(flat)
        return flat, it + 1, total + iterations

    flat, steps, total = jax.lax.while_loop(cond, body, (flat0, jnp.asarray(0), jnp.asarray(0, jnp.int32)))
    return unravel(flat), loss(flat), steps, jnp.linalg.norm(fp.residual(flat)), total


def interpolate(
    problem: Problem,
    params0: Params,
    *,
    tol: float = 1e-8,
    method: str = "gauss_newton",
    max_steps: int | None = None,
    learning_rate: float | None = None,
    raise_on_failure: bool = True,
    solver: str | None = None,
) -> tuple[Params, InterpolationInfo]:
    r"""Drive the training loss below ``tol`` from ``params0`` (phase 1 of the two-phase protocol).

    - ``method="gauss_newton"`` (default): :math:`\theta \leftarrow \theta - J^+ r(\theta)` with the
      minimum-norm least-squares solution :math:`J^+ r`, by ``solver`` (:data:`flatter.valley.GAUSS_NEWTON_SOLVERS`;
      ``None``: by the Jacobian's size, :func:`flatter.valley.choose_solver`: dense up to
      :data:`flatter.valley.DENSE_PROJECTION_LIMIT` entries,
      lineax's LSMR with JVPs and VJPs above, so a network's :math:`N\times p` Jacobian is never formed). It
      converges quadratically near the valley (linearly with an iterative solve that stops short) and lands
      close to the point of the valley nearest ``params0``. A dense solver asked for by name above
      :data:`flatter.valley.DENSE_MEMORY_LIMIT` is refused, naming ``"lsmr"``.
    - ``method="gd"``: full-batch gradient descent
      :math:`\theta \leftarrow \theta - \eta\nabla L(\theta)` with ``learning_rate`` :math:`\eta`.

    Returns ``(params, InterpolationInfo)``; raises :class:`InterpolationError` (naming the final
    loss, the tolerance and the steps) if the loss is still above ``tol`` after ``max_steps``,
    unless ``raise_on_failure=False``.

    Examples:
      >>> import jax, flatter
      >>> problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
      >>> params, info = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
      >>> print(info.converged, info.loss < 1e-8)
      True True
    """
    check_choice("method", method, ("gauss_newton", "gd"))
    check_positive("tol", tol)
    problem.check_params(params0)
    if method == "gd":
        if learning_rate is None:
            raise ValueError("interpolate(method='gd') needs learning_rate > 0")
        check_positive("learning_rate", learning_rate)
    max_steps = check_positive_int(
        "max_steps", max_steps if max_steps is not None else (50 if method == "gauss_newton" else 100_000)
    )
    num_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params0))
    if method == "gauss_newton":
        if solver is None:
            solver = choose_solver(problem.targets.size, num_params)
        check_choice("solver", solver, GAUSS_NEWTON_SOLVERS)
        if solver != "lsmr":
            itemsize = jnp.result_type(*jax.tree_util.tree_leaves(params0)).itemsize
            check_dense_jacobian(problem.targets.size, num_params, itemsize, f"interpolate(solver={solver!r})")
    else:
        solver = "none"
    with full_precision():  # TF32 products on a GPU cannot reach a loss of 1e-8
        params, loss, steps, residual_norm, iterations = _run(
            problem,
            params0,
            tol,
            0.0 if learning_rate is None else learning_rate,
            method=method,
            max_steps=max_steps,
            solver=solver,
        )
    info = InterpolationInfo(
        loss=float(loss),
        steps=int(steps),
        converged=bool(loss <= tol),
        residual_norm=float(residual_norm),
        solver=solver,
        solver_iterations=int(iterations),
    )
    if raise_on_failure and not info.converged:
        raise InterpolationError(
            f"interpolate({method}) stopped at loss {info.loss:.3e} > tol={tol:g} after "
            f"{info.steps} steps; raise max_steps, loosen tol or check that the problem can interpolate"
        )
    return params, info
