"""The tangent space of the valley: projector, trace of the Hessian and its Riemannian gradient."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float, Scalar

from .._problem import Params, Problem
from ._flat import FlatProblem, flatten
from ._projection import choose_solver, dense_minimum_norm, lsmr_minimum_norm


def dense_tangent_projector(flat_problem: FlatProblem, theta: Float[Array, " p"]) -> Float[Array, "p p"]:
    r""":math:`P = I - J^\top (JJ^\top)^+ J = I - J^+J` as a dense :math:`p\times p` matrix."""
    jac = flat_problem.jacobian(theta)
    return jnp.eye(theta.shape[0], dtype=theta.dtype) - jnp.linalg.pinv(jac) @ jac


def matrix_free_tangent_projector(
    flat_problem: FlatProblem, theta: Float[Array, " p"], *, rtol: float = 1e-10, max_steps: int = 1000
) -> Callable[[Float[Array, " p"]], Float[Array, " p"]]:
    r""":math:`v \mapsto v - J^\top w` with :math:`(JJ^\top)w = Jv` solved by CG, from JVPs and VJPs.

    Never forms a :math:`p\times p` matrix: one linearization of :math:`r` at :math:`\theta`, and
    per application one JVP plus one VJP per CG iteration on the :math:`N\times N` Gram operator.
    Assumes :math:`J` has full row rank (true near a regular valley).
    """
    _, jvp = jax.linearize(flat_problem.residual, theta)
    vjp = jax.linear_transpose(jvp, theta)
    out = jax.eval_shape(flat_problem.residual, theta)
    gram = lx.FunctionLinearOperator(
        lambda w: jvp(vjp(w)[0]),
        jax.ShapeDtypeStruct(out.shape, out.dtype),
        tags=(lx.symmetric_tag, lx.positive_semidefinite_tag),
    )
    solver = lx.CG(rtol=rtol, atol=rtol, max_steps=max_steps)

    def apply(v):
        w = lx.linear_solve(gram, jvp(v), solver).value
        return v - vjp(w)[0]

    return apply


def tangent_projector(
    problem: Problem, params: Params, *, matrix_free: bool | None = None
) -> Callable[[Float[Array, " p"]], Float[Array, " p"]]:
    r"""The orthogonal projector onto :math:`T_\theta\Gamma` as a function on flat vectors.

    .. math::

        P = I - J^\top (J J^\top)^{-1} J, \qquad J = \partial_\theta r(\theta) \in \mathbb{R}^{N\times p}

    Dense on the Jacobian when it is small (refined Cholesky on :math:`JJ^\top`,
    :func:`flatter.valley.refined_gram_solve`; :func:`flatter.valley.choose_solver`, or ``matrix_free=False``),
    otherwise matrix-free (LSMR from JVPs and VJPs); never a :math:`p\times p` matrix.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> P = flatter.valley.tangent_projector(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]))
      >>> print(P(jnp.array([1.0, 1.0])))  # the valley x = 0 runs along y
      [0. 1.]
    """
    theta, fp = flatten(problem, params)
    return flat_tangent_projector(fp, theta, matrix_free)


def lsmr_tangent_projector(
    flat_problem: FlatProblem, theta: Float[Array, " p"]
) -> Callable[[Float[Array, " p"]], Float[Array, " p"]]:
    r""":math:`v \mapsto v - J^+(Jv)`, the minimum-norm solution of :math:`J\delta = Jv` by lineax's LSMR.

    Matrix-free like :func:`matrix_free_tangent_projector` (one JVP and one VJP per iteration), but LSMR works
    with the condition number of :math:`J`, not of :math:`JJ^\top`: at a network's fitted point, where
    :math:`JJ^\top/n` spans many decades, CG on the Gram operator stalls where LSMR does not.
    """

    def apply(v):
        normal, _ = lsmr_minimum_norm(flat_problem.residual, theta, jax.jvp(flat_problem.residual, (theta,), (v,))[1])
        return v - normal

    return apply


PROJECTOR_SOLVERS = ("cholesky", "lstsq", "pinv", "gram", "cg", "lsmr")
r"""How :func:`flat_tangent_projector` applies :math:`P = I - J^\top(JJ^\top)^{-1}J`: ``"cholesky"``
(:math:`v - J^\top y`, :math:`y` from :func:`flatter.valley.refined_gram_solve`: exact to rounding while
:math:`\mathrm{cond}(J)^2\epsilon \ll 1`, the dense default), ``"lstsq"`` (:math:`v -
J^+(Jv)` by dense least squares on the :math:`N\times p` Jacobian, no :math:`p\times p` matrix), ``"pinv"`` (the
dense :math:`p\times p` matrix :math:`I - J^+J`), ``"gram"`` (:math:`v - J^\top w`, :math:`w` by Cholesky on
:math:`JJ^\top`, :func:`flatter.valley.gram_solve`; the Jacobian but no :math:`p\times p` matrix), ``"cg"``
(:func:`matrix_free_tangent_projector`: JVPs and VJPs only) or ``"lsmr"`` (:func:`lsmr_tangent_projector`:
JVPs and VJPs only, for ill-conditioned Jacobians)."""


def flat_tangent_projector(
    flat_problem: FlatProblem,
    theta: Float[Array, " p"],
    matrix_free: bool | None = None,
    *,
    solver: str | None = None,
) -> Callable[[Float[Array, " p"]], Float[Array, " p"]]:
    r""":func:`tangent_projector` on flat coordinates: ``solver`` from :data:`PROJECTOR_SOLVERS`, or by
    ``matrix_free`` (``"lsmr"`` when true, :func:`flatter.valley.dense_solver` when false; by default by the
    Jacobian's size as the Gauss-Newton steps choose, :func:`flatter.valley.choose_solver`). ``"cg"`` is never
    chosen for you: at a network's fitted point :math:`JJ^\top` spans many decades and CG on it stalls where LSMR
    converges."""
    if solver is None:
        solver = choose_solver(jax.eval_shape(flat_problem.residual, theta).size, theta.shape[0], matrix_free)
    if solver == "cg":
        return matrix_free_tangent_projector(flat_problem, theta)
    if solver == "lsmr":
        return lsmr_tangent_projector(flat_problem, theta)
    if solver in ("cholesky", "gram", "lstsq"):
        jac = flat_problem.jacobian(theta)
        return lambda v: v - dense_minimum_norm(jac, jac @ v, solver)
    if solver != "pinv":
        raise ValueError(f"solver must be one of {', '.join(map(repr, PROJECTOR_SOLVERS))}, got {solver!r}")
    mat = dense_tangent_projector(flat_problem, theta)
    return lambda v: mat @ v


def gauss_newton_trace_flat(flat_problem: FlatProblem, theta: Float[Array, " p"]) -> Scalar:
    r""":math:`\mathrm{tr}(J^\top J)/n` on flat parameters (equals :math:`\mathrm{tr}\nabla^2L` on Γ)."""
    jac = flat_problem.jacobian(theta)
    return jnp.sum(jac**2) / flat_problem.num_examples


def trace_hessian(problem: Problem, params: Params) -> Scalar:
    r"""Trace of the Hessian on Γ, :math:`\|J\|_F^2/n` (the problem's closed form if it has one)."""
    return problem.gauss_newton_trace(params)


def riemannian_gradient_trace(problem: Problem, params: Params, *, matrix_free: bool | None = None):
    r""":math:`\nabla_\Gamma \mathrm{tr}\nabla^2 L = P\,\nabla_\theta\, \mathrm{tr}(J^\top J)/n` on Γ.

    On :math:`\Gamma` the Hessian is :math:`J^\top J/n + \frac1n\sum_a r_a\nabla^2 f_a` and the
    gradient of the second term is :math:`\frac1n\sum_a \nabla f_a\,\mathrm{tr}\nabla^2 f_a`, a normal
    vector; projecting the gradient of the Gauss-Newton trace therefore gives the exact Riemannian
    gradient. Returned as a flat vector.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> g = flatter.valley.riemannian_gradient_trace(flatter.problems.toy_valley(), jnp.array([0.0, 0.5]))
      >>> print(g)  # h = 1 + y^2: dh/dy = 2y
      [0. 1.]
    """
    theta, fp = flatten(problem, params)
    return riemannian_gradient_trace_flat(problem, fp, theta, matrix_free)


def riemannian_gradient_trace_flat(
    problem: Problem, flat_problem: FlatProblem, theta, matrix_free=None, *, solver: str | None = None
):
    """:func:`riemannian_gradient_trace` on flat coordinates (what the limit dynamics evaluate); ``matrix_free``
    and ``solver`` choose the projector as in :func:`flat_tangent_projector`."""
    grad = gauss_newton_trace_gradient_flat(problem, flat_problem, theta)
    return flat_tangent_projector(flat_problem, theta, matrix_free, solver=solver)(grad)


def gauss_newton_trace_gradient_flat(problem: Problem, flat_problem: FlatProblem, theta: Float[Array, " p"]):
    r""":math:`\nabla_\theta\,\mathrm{tr}(J^\top J)/n = \nabla_\theta \frac1n\sum_i \|J_i\|_F^2`, exactly.

    By the problem's closed form for the trace where it has one, or by differentiating the whole Jacobian up to
    :data:`flatter.valley.DENSE_PROJECTION_LIMIT` entries. Above, over chunks of examples
    (:meth:`flatter.Problem.example_chunks`): the Jacobian :math:`J_i` of a chunk's outputs
    (:data:`flatter.valley.TRACE_CHUNK_ENTRIES` entries at most) and the gradient of its squared norm, summed in a
    scan, so memory is a chunk's, not the :math:`N\times p` Jacobian's (a network's tens of GB).
    Assumes, as a trace over examples does, that each example's outputs depend on that example alone.
    """
    outputs = jax.eval_shape(flat_problem.residual, theta).size
    closed_form = problem.trace_hessian_fn is not None or problem.loss_kind != "squared"
    if closed_form or choose_solver(outputs, theta.size) != "lsmr":
        return jax.grad(lambda t: problem.gauss_newton_trace(flat_problem.unravel(t)))(theta)
    inputs, weights = problem.example_chunks(theta.size)  # the padding examples have weight 0

    def chunk_gradient(total, chunk):
        return total + jax.grad(lambda t: problem.squared_jacobian(flat_problem.unravel(t), *chunk))(theta), None

    total, _ = jax.lax.scan(chunk_gradient, jnp.zeros_like(theta), (inputs, weights))
    return total / problem.num_examples
