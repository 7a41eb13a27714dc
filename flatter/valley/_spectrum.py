"""The Hessian spectrum on the valley: dense for small problems, Lanczos (matfree) for large ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._problem import Params, Problem
from .._validation import check_positive_int
from ..curvature._lanczos import lanczos_ritz_values
from ..curvature._matvec import curvature_matvec
from ._flat import FlatProblem, flatten


def normal_curvatures_flat(flat_problem: FlatProblem, theta: Float[Array, " p"]) -> Float[Array, " N"]:
    r"""Every eigenvalue of :math:`JJ^\top/n` (descending): the nonzero spectrum of :math:`\nabla^2L = J^\top J/n`
    on Γ, the curvatures of the normal modes, from the dense :math:`N\times N` Gram matrix."""
    jac = flat_problem.jacobian(theta)
    return jnp.linalg.eigvalsh(jac @ jac.T / flat_problem.num_examples)[::-1]


def hessian_spectrum(
    problem: Problem, params: Params, *, k: int | None = None, method: str | None = None, key=None
) -> Float[Array, " m"]:
    r"""Eigenvalues of :math:`\nabla^2 L = J^\top J/n` at a point of Γ, in decreasing order.

    - ``method="dense"`` (default for :math:`N \le 4096`): the nonzero spectrum of
      :math:`J^\top J/n` equals that of the :math:`N\times N` matrix :math:`JJ^\top/n`; returns its
      ``k`` largest (all :math:`N` by default; the rest of the :math:`p` eigenvalues are 0, the
      tangent directions).
    - ``method="lanczos"``: ``k`` Lanczos steps (default 32, :func:`flatter.curvature.lanczos_ritz_values`)
      on Gauss-Newton-vector products (:func:`flatter.curvature.curvature_matvec`, a JVP then a VJP);
      from a start in the row space of :math:`J`; returns the ``min(k, N)`` Ritz values of the normal
      spectrum (the rank is at most :math:`N`), whose largest converge first.

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
        eig = normal_curvatures_flat(fp, theta)
        return eig if k is None else eig[: check_positive_int("k", k)]
    if method != "lanczos":
        raise ValueError(f"method must be one of 'dense', 'lanczos', got {method!r}")
    k = check_positive_int("k", 32 if k is None else k)
    key = jax.random.key(0) if key is None else key
    matvec, _ = curvature_matvec(problem, params, kind="gauss_newton")
    # Start in the row space of J (a random J^T z): the Krylov space then holds only normal directions, at most
    # N of them, so min(k, N) steps never run past its end (a breakdown, where Lanczos adds ghost values).
    _, pullback = jax.vjp(fp.residual, theta)
    start = pullback(jax.random.normal(key, (n_out,), theta.dtype))[0]
    return lanczos_ritz_values(matvec, start, min(k, n_out))[::-1]
