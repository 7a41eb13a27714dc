"""Projection onto the valley Gamma = {theta : r(theta) = 0} by minimum-norm Gauss-Newton steps."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float, Int

from .._precision import full_precision
from .._problem import Params, Problem
from .._validation import check_choice, check_positive
from ._flat import FlatProblem, flatten


class ValleyError(RuntimeError):
    """A valley computation failed: the point is not near the valley or a solve did not converge."""


GAUSS_NEWTON_SOLVERS = ("cholesky", "lstsq", "gram", "lsmr")
r"""How :func:`gauss_newton_step` solves for the minimum-norm step :math:`J^+r`: ``"cholesky"``
(:func:`refined_gram_solve`: Cholesky on :math:`JJ^\top` refined against :math:`J` itself, exact to rounding
while :math:`\mathrm{cond}(J)^2\epsilon \ll 1`; the dense default), ``"lstsq"`` (dense least squares on the
:math:`N\times p` Jacobian through its SVD: any condition number, 15x slower at :math:`N \ll p`), ``"gram"``
(:func:`gram_solve`: Cholesky on :math:`JJ^\top` with a ridge, unrefined: for sizing and short paths) or
``"lsmr"`` (lineax's LSMR with JVPs and VJPs only: no matrix is formed)."""


DENSE_PROJECTION_LIMIT = 4_000_000
"""The most Jacobian entries (outputs x parameters) a Gauss-Newton step forms when its solver is chosen by size
(:func:`choose_solver`); above it the step is matrix-free (lineax's LSMR: JVPs and VJPs only, memory O(N + p))."""

DENSE_MEMORY_LIMIT = 2 * 1024**3
"""The most bytes of a dense Jacobian a step asked for by name (``"cholesky"``, ``"lstsq"`` or ``"gram"``) may
take; past it the call is refused with the matrix-free option named (a network's N x p Jacobian is tens of GB)."""


def choose_solver(num_outputs: int, num_params: int, matrix_free: bool | None = None) -> str:
    """The Gauss-Newton solver for a Jacobian of ``num_outputs x num_params``: ``"lsmr"`` (matrix-free) when
    ``matrix_free`` is true, dense (:func:`dense_solver`) when it is false; by default dense up to
    :data:`DENSE_PROJECTION_LIMIT` entries and ``"lsmr"`` above.

    Examples:
      >>> import flatter
      >>> flatter.valley.choose_solver(100, 400), flatter.valley.choose_solver(5000, 167_818)  # MLP-6, 500 images
      ('cholesky', 'lsmr')
    """
    if matrix_free is None:
        matrix_free = num_outputs * num_params > DENSE_PROJECTION_LIMIT
    return "lsmr" if matrix_free else dense_solver(num_outputs, num_params)


def dense_solver(num_outputs: int, num_params: int) -> str:
    r"""The dense solver for a Jacobian of ``num_outputs x num_params``: ``"cholesky"`` (:func:`refined_gram_solve`,
    exact to rounding on a valley's full-rank Jacobian) when it is wide, as an overparametrized valley's is;
    ``"lstsq"`` (the SVD) when it is tall, where :math:`JJ^\top` is singular by its shape and a residual off the
    range of :math:`J` would leave the refined solve with a spurious component."""
    return "cholesky" if num_outputs <= num_params else "lstsq"


def check_dense_jacobian(num_outputs: int, num_params: int, itemsize: int, what: str) -> None:
    """Refuse a dense ``num_outputs x num_params`` Jacobian above :data:`DENSE_MEMORY_LIMIT`, naming the
    matrix-free option, instead of an out-of-memory error from inside XLA."""
    size = num_outputs * num_params * itemsize
    if size > DENSE_MEMORY_LIMIT:
        raise ValueError(
            f"{what} would form a dense {num_outputs} x {num_params} Jacobian ({size / 1024**3:.1f} GiB > "
            f"{DENSE_MEMORY_LIMIT / 1024**3:.0f} GiB): use solver='lsmr' (matrix-free: JVPs and VJPs only), or "
            "leave the solver to be chosen by size"
        )


def gram_solve(jac: Float[Array, "N p"], rhs: Float[Array, " N"]) -> Float[Array, " N"]:
    r""":math:`(JJ^\top + \epsilon I)^{-1}` rhs by Cholesky on the :math:`N\times N` Gram matrix.

    About 4x cheaper per call than the SVD behind ``pinv``/``lstsq`` (measured on the quick matrix-sensing
    preset, N = 100, p = 400); the ridge :math:`\epsilon = 10^{-6}\,\mathrm{tr}(JJ^\top)/N` keeps it finite
    where :math:`J` loses rank, and squares the condition number: for sizing and short paths, not for
    interpolating to machine precision.
    """
    gram = jac @ jac.T
    ridge = 1e-6 * jnp.trace(gram) / gram.shape[0]
    factor = jax.scipy.linalg.cho_factor(gram + ridge * jnp.eye(gram.shape[0], dtype=gram.dtype))
    return jax.scipy.linalg.cho_solve(factor, rhs)


GRAM_REFINEMENTS = 3
"""Steps of iterative refinement in :func:`refined_gram_solve` (each two products with :math:`J` and two
triangular solves, a few % of the factorization)."""


def refined_gram_solve(jac: Float[Array, "N p"], rhs: Float[Array, " N"]) -> Float[Array, " N"]:
    r"""The solution :math:`y` of :math:`JJ^\top y = \mathrm{rhs}`, so that :math:`J^\top y` is the minimum-norm
    solution of :math:`J\delta = \mathrm{rhs}` (the Gauss-Newton step, the normal part of a vector).

    Cholesky on the Gram matrix :math:`JJ^\top` (with a ridge of :math:`\epsilon\,\mathrm{tr}(JJ^\top)`, the
    dtype's resolution, so a rank-deficient :math:`J` stays finite), then :data:`GRAM_REFINEMENTS` steps of
    iterative refinement :math:`y \leftarrow y + (JJ^\top)^{-1}(\mathrm{rhs} - J(J^\top y))` with the residual
    taken through :math:`J` itself, not the rounded Gram matrix: each step divides the error by about
    :math:`1/(\mathrm{cond}(J)^2\epsilon)`, so the result is as accurate as least squares through the SVD while
    :math:`\mathrm{cond}(J)^2\epsilon \ll 1` (:math:`\mathrm{cond}(J) \lesssim 10^6` in float64). On a
    200 x 2,986 float64 network Jacobian it takes 5 ms against 80 ms for ``jnp.linalg.lstsq`` (2 cores).

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> jac = jnp.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
      >>> delta = jac.T @ flatter.valley.refined_gram_solve(jac, jnp.array([1.0, 1.0]))
      >>> print(delta, jnp.linalg.pinv(jac) @ jnp.array([1.0, 1.0]))  # the minimum-norm solution, as pinv's
      [0.5 0.5 0.5] [0.5 0.5 0.5]
    """
    gram = jac @ jac.T
    ridge = jnp.finfo(gram.dtype).eps * jnp.trace(gram)
    factor = jax.scipy.linalg.cho_factor(gram + ridge * jnp.eye(gram.shape[0], dtype=gram.dtype))
    y = jax.scipy.linalg.cho_solve(factor, rhs)
    for _ in range(GRAM_REFINEMENTS):
        y = y + jax.scipy.linalg.cho_solve(factor, rhs - jac @ (jac.T @ y))
    return y


def dense_minimum_norm(jac: Float[Array, "N p"], rhs: Float[Array, " N"], solver: str) -> Float[Array, " p"]:
    r"""The minimum-norm solution :math:`J^+\mathrm{rhs}` of :math:`J\delta = \mathrm{rhs}` from the dense Jacobian,
    by ``solver``: ``"cholesky"`` (:math:`J^\top y`, :func:`refined_gram_solve`), ``"gram"`` (:func:`gram_solve`)
    or ``"lstsq"`` (the SVD). The Gauss-Newton step is :math:`J^+r`; the tangent projection :math:`v - J^+Jv`."""
    if solver == "lstsq":
        return jnp.linalg.lstsq(jac, rhs)[0]
    return jac.T @ _gram_coefficients(jac, rhs, solver)


def _gram_coefficients(jac: Float[Array, "N p"], rhs: Float[Array, " N"], solver: str) -> Float[Array, " N"]:
    r""":math:`(JJ^\top)^{-1}` rhs by ``solver``'s Cholesky: ``"gram"`` (:func:`gram_solve`) or ``"cholesky"``
    (:func:`refined_gram_solve`)."""
    return (gram_solve if solver == "gram" else refined_gram_solve)(jac, rhs)


def _dense_jacobian(flat_problem: FlatProblem, theta: Float[Array, " p"], solver: str, caller: str) -> Array:
    """The dense Jacobian a solve by ``solver`` (one of :data:`GAUSS_NEWTON_SOLVERS` but LSMR) works on, refused
    above :data:`DENSE_MEMORY_LIMIT` in ``caller``'s name."""
    if solver not in GAUSS_NEWTON_SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(map(repr, GAUSS_NEWTON_SOLVERS))}, got {solver!r}")
    outputs = jax.eval_shape(flat_problem.residual, theta).size
    check_dense_jacobian(outputs, theta.size, theta.dtype.itemsize, f"{caller}(solver={solver!r})")
    return flat_problem.jacobian(theta)


def gauss_newton_step(
    flat_problem: FlatProblem, theta: Float[Array, " p"], *, solver: str = "cholesky"
) -> Float[Array, " p"]:
    r"""One minimum-norm Gauss-Newton step :math:`\theta \leftarrow \theta - J^+ r(\theta)`, the one in flatter.

    :math:`J^+r` is the least-squares solution of :math:`J\delta = r` with the smallest norm
    (:math:`J^\top(JJ^\top)^{-1}r` when :math:`J` has full row rank, as on an overparametrized valley), so the
    step is orthogonal to the level set. ``solver`` is one of :data:`GAUSS_NEWTON_SOLVERS`.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> theta, fp = flatter.valley.flatten(flatter.problems.toy_valley(), jnp.array([0.3, 1.0]))
      >>> step = flatter.valley.gauss_newton_step(fp, theta)  # moves along J = grad f, so y moves too
      >>> print(f"{float(step[0]):.4f} {float(step[1]):.3f}")  # loss 0.09 -> 4e-5: quadratic convergence
      0.0066 0.956
    """
    return theta - gauss_newton_delta(flat_problem, theta, solver)[0]


def _lsmr_for(dtype) -> tuple[jnp.dtype, lx.LSMR]:
    """The dtype LSMR's vectors take and the solver, for a model in ``dtype``: lineax's LSMR mixes a float64 scalar
    into its state when x64 is on, so a float32 model (a flax network's default) is solved in float64 vectors
    around its own float32 evaluations; the tolerance is a tenth of the model's own resolution, past which a
    float32 model's JVPs are rounding (on MLP-6 a tolerance of 1e-12 took twice the iterations of 1e-8 for the
    same projection error, 4e-5)."""
    tol = max(1e-12, float(jnp.finfo(dtype).eps) / 10)
    return jnp.promote_types(dtype, jnp.result_type(float)), lx.LSMR(rtol=tol, atol=tol)


def lsmr_minimum_norm(
    fn: Callable[[Float[Array, " p"]], Float[Array, " N"]], theta: Float[Array, " p"], rhs: Float[Array, " N"]
) -> tuple[Float[Array, " p"], Int[Array, ""]]:
    r"""The minimum-norm solution :math:`\delta = J^+\,\mathrm{rhs}` of :math:`J\delta = \mathrm{rhs}`,
    :math:`J = \partial fn(\theta)`, by lineax's LSMR from JVPs and VJPs (no matrix is formed), and its
    iteration count."""
    wide, lsmr = _lsmr_for(theta.dtype)
    op = lx.JacobianLinearOperator(lambda t, _: fn(t.astype(theta.dtype)).astype(wide), theta.astype(wide))
    solution = lx.linear_solve(op, rhs.astype(wide), lsmr, throw=False)
    return solution.value.astype(theta.dtype), jnp.asarray(solution.stats["num_steps"], jnp.int32)


def normal_coefficients(
    flat_problem: FlatProblem,
    theta: Float[Array, " p"],
    vector: Float[Array, " p"],
    solver: str,
    caller: str,
) -> tuple[Float[Array, " N"], Int[Array, ""]]:
    r"""The coefficients :math:`a = (JJ^\top)^{-1}J\,\mathrm{vector}` of the normal part :math:`J^\top a` of
    ``vector`` (so ``vector`` :math:`- J^\top a` is its tangent part), and the iterations the solve took (0 when
    dense).

    :math:`a` is the least-squares solution of :math:`J^\top a = \mathrm{vector}`: by LSMR on the operator
    :math:`a \mapsto J^\top a` (VJPs and JVPs only) for ``solver="lsmr"``, else dense on the Jacobian
    (:func:`refined_gram_solve`, :func:`gram_solve` or least squares on :math:`J^\top`; refused above
    :data:`DENSE_MEMORY_LIMIT` in ``caller``'s name). One solve gives both the tangent part and, through
    :math:`\langle a, w\rangle = \langle \mathrm{vector}, J^+w\rangle`, the vector against any :math:`J^+w`.
    """
    out = jax.eval_shape(flat_problem.residual, theta)
    if solver == "lsmr":
        wide, lsmr = _lsmr_for(theta.dtype)
        _, vjp = jax.vjp(flat_problem.residual, theta)
        op = lx.FunctionLinearOperator(
            lambda a: vjp(a.astype(out.dtype))[0].astype(wide), jax.ShapeDtypeStruct(out.shape, wide)
        )
        solution = lx.linear_solve(op, vector.astype(wide), lsmr, throw=False)
        return solution.value.astype(out.dtype), jnp.asarray(solution.stats["num_steps"], jnp.int32)
    jac = _dense_jacobian(flat_problem, theta, solver, caller)
    if solver == "lstsq":
        coefficients = jnp.linalg.lstsq(jac.T, vector)[0]
    else:
        coefficients = _gram_coefficients(jac, jac @ vector, solver)
    return coefficients.astype(out.dtype), jnp.asarray(0, jnp.int32)


def gauss_newton_delta(
    flat_problem: FlatProblem, theta: Float[Array, " p"], solver: str
) -> tuple[Float[Array, " p"], Int[Array, ""]]:
    r"""The minimum-norm step :math:`J^+r(\theta)` of :func:`gauss_newton_step` and the iterations its solve took
    (LSMR's; 0 for a dense solve)."""
    r = flat_problem.residual(theta)
    if solver == "lsmr":
        return lsmr_minimum_norm(flat_problem.residual, theta, r)
    delta = dense_minimum_norm(_dense_jacobian(flat_problem, theta, solver, "gauss_newton_step"), r, solver)
    return delta.astype(theta.dtype), jnp.asarray(0, jnp.int32)  # float64 targets do not widen the parameters


def gauss_newton_steps(
    flat_problem: FlatProblem,
    theta: Float[Array, " p"],
    iterations: int,
    *,
    matrix_free: bool | None = None,
    solver: str | None = None,
) -> Float[Array, " p"]:
    r"""A fixed number of :func:`gauss_newton_step` (``solver``; ``"lsmr"`` with ``matrix_free``,
    :func:`dense_solver` without, and by the Jacobian's size, :func:`choose_solver`, when neither is given).

    Jit- and vmap-friendly (no data-dependent loop): the integrators call it after every step to
    return to :math:`\Gamma`.
    """
    if solver is None:
        solver = choose_solver(jax.eval_shape(flat_problem.residual, theta).size, theta.size, matrix_free)

    def step(theta, _):
        return gauss_newton_step(flat_problem, theta, solver=solver), None

    return jax.lax.scan(step, theta, None, length=iterations)[0]


def project(
    problem: Problem,
    params: Params,
    *,
    tol: float | None = None,
    max_steps: int = 50,
    method: str = "auto",
    max_loss: float | None = 1.0,
) -> Params:
    r"""The point of :math:`\Gamma` reached from ``params`` by minimum-norm Gauss-Newton.

    Iterates :math:`\theta \leftarrow \theta - J^+ r(\theta)` with the minimum-norm least-squares
    step, dense (``method="dense"``) or matrix-free with lineax's LSMR (``"matrix_free"``, JVPs and
    VJPs only; ``"auto"``, the default, by the Jacobian's size: :func:`choose_solver`), until
    :math:`\|r\| \le` ``tol`` (default: 100 ulp of the dtype times :math:`\sqrt{N}` times the scale of
    the targets). Each step moves orthogonally to the current
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
    check_choice("method", method, ("auto", "dense", "matrix_free"))
    problem.check_params(params)
    theta0, fp = flatten(problem, params)
    if method == "auto":
        method = "matrix_free" if choose_solver(problem.targets.size, theta0.size) == "lsmr" else "dense"
    if method == "dense":
        check_dense_jacobian(problem.targets.size, theta0.size, theta0.dtype.itemsize, "project(method='dense')")
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
    solver = choose_solver(jax.eval_shape(residual, theta0).size, theta0.size, matrix_free)

    def cond(carry):
        theta, it = carry
        return (jnp.linalg.norm(residual(theta)) > tol) & (it < max_steps)

    def body(carry):
        theta, it = carry
        return gauss_newton_step(fp, theta, solver=solver), it + 1

    return jax.lax.while_loop(cond, body, (theta0, jnp.asarray(0)))
