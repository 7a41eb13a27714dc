"""The top of the Hessian spectrum (sharpness) by Lanczos, via matfree."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray
from matfree import decomp

from .._problem import Params, Problem
from .._validation import check_key, check_positive_int
from ._matvec import curvature_matvec


def lanczos_ritz_values(
    matvec: Callable[[Float[Array, " p"]], Float[Array, " p"]], start: Float[Array, " p"], num_matvecs: int
) -> Float[Array, " k"]:
    r"""The Ritz values (ascending) of ``num_matvecs`` Lanczos steps on the symmetric operator ``matvec``.

    ``matfree.decomp.tridiag_sym`` with full reorthogonalisation from ``start`` (normalised here): the
    eigenvalues of the :math:`k\times k` tridiagonal matrix, whose extreme ones converge first to the operator's.
    flatter's one Lanczos (:func:`sharpness`, :func:`flatter.valley.hessian_spectrum`).
    """
    start = start / jnp.linalg.norm(start)
    tri = decomp.tridiag_sym(num_matvecs)(lambda v: matvec(v), start).J_small
    return jnp.linalg.eigvalsh(jnp.asarray(tri))


def sharpness(
    problem: Problem,
    params: Params,
    *,
    key: PRNGKeyArray,
    num_matvecs: int = 30,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> Float[Array, ""]:
    r"""The largest eigenvalue of :math:`\nabla^2 L` (or :math:`J^\top J/n`): ``num_matvecs`` Lanczos steps.

    ``matfree.decomp.tridiag_sym`` with full reorthogonalisation from a random unit start vector;
    the largest Ritz value of the tridiagonal matrix. Lanczos converges to the extreme eigenvalues
    first, so a few tens of products suffice for the top one; never forms the Hessian.

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> X = jnp.diag(jnp.array([1.0, 2.0, 3.0])); y = jnp.zeros(3)
      >>> problem = flatter.Problem(lambda w, x: x @ w, X, y)  # Hessian diag(1, 4, 9) / 3
      >>> top = flatter.curvature.sharpness(problem, jnp.ones(3), key=jax.random.key(0), num_matvecs=3)
      >>> print(round(float(top), 4))
      3.0
    """
    check_key("key", key)
    matvecs = check_positive_int("num_matvecs", num_matvecs)
    matvec, theta = curvature_matvec(problem, params, kind=kind, batch_size=batch_size)
    matvecs = min(matvecs, theta.size)
    start = jax.random.normal(key, theta.shape, theta.dtype)
    return jnp.max(lanczos_ritz_values(matvec, start, matvecs))
