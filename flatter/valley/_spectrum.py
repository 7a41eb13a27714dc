"""The Hessian spectrum on the valley: dense for small problems, Lanczos for large ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._problem import Params, Problem
from .._validation import check_positive_int
from ._flat import flatten


def _gauss_newton_matvec(fp, theta):
    _, jvp = jax.linearize(fp.residual, theta)
    vjp = jax.linear_transpose(jvp, theta)
    return lambda v: vjp(jvp(v))[0] / fp.num_examples


def lanczos_eigenvalues(matvec, dim: int, k: int, key, dtype) -> Float[Array, " k"]:
    r"""The eigenvalues of the :math:`k\times k` Lanczos tridiagonal (full reorthogonalization).

    Its extreme eigenvalues converge first to those of the symmetric operator ``matvec``.
    """
    v0 = jax.random.normal(key, (dim,), dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    basis = jnp.zeros((k + 1, dim), dtype).at[0].set(v0)

    def body(j, carry):
        basis, alphas, betas = carry
        w = matvec(basis[j])
        alpha = w @ basis[j]
        # Full reorthogonalization against every previous vector (k is small).
        mask = (jnp.arange(k + 1) <= j)[:, None]
        w = w - (basis * mask).T @ ((basis * mask) @ w)
        w = w - (basis * mask).T @ ((basis * mask) @ w)
        beta = jnp.linalg.norm(w)
        # Krylov space exhausted (operator of rank < k): stop by continuing with the zero vector,
        # which appends exact zeros (the operator's null directions) instead of amplified round-off.
        scale = jnp.maximum(jnp.max(jnp.abs(alphas)), jnp.abs(alpha))
        live = beta > 1e-8 * scale
        beta = jnp.where(live, beta, 0.0)
        basis = basis.at[j + 1].set(jnp.where(live, w / jnp.where(live, beta, 1.0), 0.0))
        return basis, alphas.at[j].set(alpha), betas.at[j].set(beta)

    _, alphas, betas = jax.lax.fori_loop(0, k, body, (basis, jnp.zeros(k, dtype), jnp.zeros(k, dtype)))
    tri = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    return jnp.linalg.eigvalsh(tri)


def hessian_spectrum(
    problem: Problem, params: Params, *, k: int | None = None, method: str | None = None, key=None
) -> Float[Array, " m"]:
    r"""Eigenvalues of :math:`\nabla^2 L = J^\top J/n` at a point of Γ, in decreasing order.

    - ``method="dense"`` (default for :math:`N \le 4096`): the nonzero spectrum of
      :math:`J^\top J/n` equals that of the :math:`N\times N` matrix :math:`JJ^\top/n`; returns its
      ``k`` largest (all :math:`N` by default; the rest of the :math:`p` eigenvalues are 0, the
      tangent directions).
    - ``method="lanczos"``: ``k`` Lanczos steps (default 32) on Gauss-Newton-vector products (JVP then
      VJP); returns the ``k`` Ritz values, whose largest converge first.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> spec = flatter.valley.hessian_spectrum(flatter.problems.toy_valley(), jnp.array([0.0, 2.0]))
      >>> print(spec)  # one normal direction, curvature h(2) = 5
      [5.]
    """
    theta, fp = flatten(problem, params)
    n_out = int(jax.eval_shape(fp.residual, theta).shape[0])
    if method is None:
        method = "dense" if n_out <= 4096 else "lanczos"
    if method == "dense":
        jac = jax.jacfwd(fp.residual)(theta)
        eig = jnp.linalg.eigvalsh(jac @ jac.T / fp.num_examples)[::-1]
        return eig if k is None else eig[: check_positive_int("k", k)]
    if method != "lanczos":
        raise ValueError(f"method must be one of 'dense', 'lanczos', got {method!r}")
    k = check_positive_int("k", 32 if k is None else k)
    key = jax.random.key(0) if key is None else key
    ritz = lanczos_eigenvalues(_gauss_newton_matvec(fp, theta), theta.shape[0], k, key, theta.dtype)
    return ritz[::-1]
