"""The spectral density of the Hessian by stochastic Lanczos quadrature (SLQ), via matfree's Lanczos."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray
from matfree import decomp

from .._problem import Params, Problem
from .._validation import check_key, check_positive, check_positive_int
from ._matvec import curvature_matvec


class SpectralDensity(NamedTuple):
    r"""Gauss quadrature nodes and weights of the spectral measure, one set per probe.

    For a probe :math:`z` and the Lanczos tridiagonal :math:`T = Q\Theta Q^\top` started at
    :math:`z/\|z\|`, the nodes are the Ritz values :math:`\theta_k` and the weights
    :math:`\tau_k = Q_{1k}^2` (they sum to 1): :math:`\sum_k \tau_k g(\theta_k)` approximates
    :math:`z^\top g(H) z/\|z\|^2`, whose average over probes is :math:`\mathrm{tr}\,g(H)/p`.
    """

    nodes: Float[Array, "probes m"]
    weights: Float[Array, "probes m"]

    def density(self, grid: Float[Array, " G"], width: float) -> Float[Array, " G"]:
        """The density on ``grid``, each node smoothed by a Gaussian of standard deviation ``width``."""
        check_positive("width", width)
        diff = (grid[:, None, None] - self.nodes[None]) / width
        kernel = jnp.exp(-0.5 * diff**2) / (width * jnp.sqrt(2 * jnp.pi))
        return jnp.mean(jnp.sum(self.weights[None] * kernel, axis=-1), axis=-1)


def spectral_density(
    problem: Problem,
    params: Params,
    *,
    key: PRNGKeyArray,
    num_probes: int = 8,
    num_matvecs: int = 40,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> SpectralDensity:
    r"""Stochastic Lanczos quadrature of :math:`\nabla^2 L` (or :math:`J^\top J/n`), as in Ghorbani et al. (2019).

    ``num_probes`` Rademacher probes, each with ``num_matvecs`` Lanczos steps (matfree's
    ``tridiag_sym``, full reorthogonalisation) of :func:`curvature_matvec`; never forms the matrix.

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> X = jnp.diag(jnp.array([1.0, 2.0, 3.0])); y = jnp.zeros(3)
      >>> problem = flatter.Problem(lambda w, x: x @ w, X, y)  # Hessian diag(1, 4, 9) / 3
      >>> slq = flatter.curvature.spectral_density(problem, jnp.ones(3), key=jax.random.key(0), num_matvecs=3)
      >>> print(jnp.round(jnp.sort(slq.nodes[0]), 4), round(float(slq.weights[0].sum()), 6))
      [0.3333 1.3333 3.    ] 1.0
    """
    check_key("key", key)
    num_probes = check_positive_int("num_probes", num_probes)
    matvecs = check_positive_int("num_matvecs", num_matvecs)
    matvec, theta = curvature_matvec(problem, params, kind=kind, batch_size=batch_size)
    matvecs = min(matvecs, theta.size)
    tridiag = decomp.tridiag_sym(matvecs)

    def one(k):
        z = jax.random.rademacher(k, theta.shape, theta.dtype)
        small = tridiag(lambda v: matvec(v), z / jnp.linalg.norm(z)).J_small
        nodes, vectors = jnp.linalg.eigh(small)
        return nodes, vectors[0] ** 2

    nodes, weights = jax.lax.map(one, jax.random.split(key, num_probes))
    return SpectralDensity(nodes, weights)
