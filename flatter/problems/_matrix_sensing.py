"""Overparametrized matrix sensing (docs/theory.md §1.7)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .._problem import Problem
from .._validation import check_positive_int, check_range


def matrix_sensing(
    d: int = 20,
    r: int = 2,
    n: int = 200,
    *,
    key: PRNGKeyArray | None = None,
    n_test: int = 200,
    init_scale: float = 1.0,
) -> Problem:
    r"""Recover a rank-:math:`r` PSD matrix from :math:`n` symmetric Gaussian measurements.

    Ground truth :math:`X^* = U^*U^{*\top}` with :math:`U^* \in \mathbb{R}^{d\times r}`, entries
    :math:`N(0, 1/d)`. Measurements :math:`A_i = (G_i + G_i^\top)/2` with i.i.d. :math:`N(0,1)`
    entries of :math:`G_i`, labels :math:`y_i = \langle A_i, X^*\rangle`. The model is
    :math:`f_i(U) = \langle A_i, UU^\top\rangle` with a full :math:`U \in \mathbb{R}^{d\times d}`, so
    the :math:`d^2 > n` parameters make the zero-loss set a manifold. On it

    .. math::

        \mathrm{tr}\nabla^2 L = \frac1n\sum_i \|\nabla f_i\|^2 = 4\,\mathrm{tr}(U^\top M U), \qquad
        M = \frac1n\sum_i A_i^2 \approx \tfrac{d+1}{2} I,

    so label noise, which descends :math:`\mathrm{tr}\nabla^2L`, drives :math:`\|U\|_F^2 =
    \mathrm{tr}\,X` (the nuclear norm) down, i.e. towards low rank and recovery of :math:`X^*`.

    Observables (besides loss, test_loss, trace_hessian): ``recovery_error``
    :math:`\|UU^\top - X^*\|_F/\|X^*\|_F` and ``effective_rank``, the participation ratio
    :math:`(\sum_j\lambda_j)^2/\sum_j\lambda_j^2` of the eigenvalues of :math:`UU^\top`, and
    ``excess_singular_mass`` :math:`\sum_{k>r}s_k(U)/\sum_k s_k(U^*)`, the singular values that a rank-
    :math:`r` solution does not have (linear in them, like :math:`|y|` on the toy valley).
    ``init_params(key)`` draws :math:`U` with entries :math:`N(0, s^2/d)`, ``s = init_scale``.

    Examples:
      >>> import jax, flatter
      >>> problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
      >>> U = problem.extras["U_star"]
      >>> theta = jax.numpy.concatenate([U, jax.numpy.zeros((6, 5))], axis=1)
      >>> print(float(problem.loss(theta)) < 1e-10, float(problem.observe(theta)["recovery_error"]))
      True 0.0
    """
    d = check_positive_int("d", d)
    r = check_positive_int("r", r)
    n = check_positive_int("n", n)
    n_test = check_positive_int("n_test", n_test)
    check_range("init_scale", init_scale, lower=0.0, lower_inclusive=False)
    if r > d:
        raise ValueError(f"r must be <= d, got r={r} and d={d}")
    if n >= d * d:
        raise ValueError(
            f"n must be below the d*d = {d * d} parameters (overparametrized, so that the zero-loss set is a "
            f"valley), got n={n} with d={d}"
        )
    if key is None:
        key = jax.random.key(0)
    u_star, x_star, a_train, y_train, a_test, y_test, m_matrix = _draw(key, d, r, n, n_test)

    def predict(u: Float[Array, "d d"], a: Float[Array, "m d d"]) -> Float[Array, " m"]:
        # As one (d^2,) @ (d^2, m) product: under vmap over runs it becomes a GEMM with runs as its rows.
        gram = u @ u.T
        return gram.reshape(-1) @ a.reshape(a.shape[0], -1).T

    def pullback(u: Float[Array, "d d"], a: Float[Array, "m d d"], c: Float[Array, " m"]) -> Float[Array, "d d"]:
        # d<c, f>/dU = (S + S^T) U = 2 S U with S = sum_i c_i A_i symmetric (the A_i are): one GEMM over the
        # examples and one d x d product, no transpose.
        s = (c @ a.reshape(a.shape[0], -1)).reshape(a.shape[1:])
        return 2.0 * (s @ u)

    def trace_hessian(problem: Problem, u) -> Scalar:
        return 4.0 * jnp.sum(u * (problem.extras["M"] @ u))

    def recovery_error(problem: Problem, u) -> Scalar:
        xs = problem.extras["X_star"]
        return jnp.linalg.norm(u @ u.T - xs) / jnp.linalg.norm(xs)

    def effective_rank(problem: Problem, u) -> Scalar:
        lam = jnp.linalg.svd(u, compute_uv=False) ** 2
        return jnp.sum(lam) ** 2 / jnp.maximum(jnp.sum(lam**2), jnp.finfo(lam.dtype).tiny)

    def excess_singular_mass(problem: Problem, u) -> Scalar:
        # Linear in the singular values that must vanish (like |y| on the toy valley), so an overshoot
        # through zero is as visible to a settling criterion as it is on the toy.
        s = jnp.linalg.svd(u, compute_uv=False)
        return jnp.sum(s[r:]) / jnp.sum(jnp.linalg.svd(problem.extras["U_star"], compute_uv=False))

    def init_params(k):
        return init_scale * jax.random.normal(k, (d, d)) / jnp.sqrt(d)

    return Problem(
        predict,
        a_train,
        y_train,
        test_inputs=a_test,
        test_targets=y_test,
        observables={
            "recovery_error": recovery_error,
            "effective_rank": effective_rank,
            "excess_singular_mass": excess_singular_mass,
        },
        extras={"X_star": x_star, "U_star": u_star, "M": m_matrix},
        trace_hessian=trace_hessian,
        pullback=pullback,
        init_params=init_params,
        name="matrix-sensing",
    )


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw(key: PRNGKeyArray, d: int, r: int, n: int, n_test: int):
    """Ground truth, measurements and labels in one compiled call (eagerly, each op would compile alone)."""
    k_truth, k_train, k_test = jax.random.split(key, 3)
    u_star = jax.random.normal(k_truth, (d, r)) / jnp.sqrt(d)
    x_star = u_star @ u_star.T

    def measurements(k, m):
        g = jax.random.normal(k, (m, d, d))
        return 0.5 * (g + jnp.swapaxes(g, 1, 2))

    a_train, a_test = measurements(k_train, n), measurements(k_test, n_test)
    y_train = jnp.einsum("nij,ij->n", a_train, x_star)
    y_test = jnp.einsum("nij,ij->n", a_test, x_star)
    m_matrix = jnp.einsum("nij,njk->ik", a_train, a_train) / n
    return u_star, x_star, a_train, y_train, a_test, y_test, m_matrix
