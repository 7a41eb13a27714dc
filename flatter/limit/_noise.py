"""Noise models: the gradient-noise covariance Sigma(theta) of one step, as a factor F with Sigma = F F^T."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validation import check_positive_int, check_range
from ..valley._flat import FlatProblem

NoiseFactor = Callable[[FlatProblem, Float[Array, " p"]], Float[Array, "p m"]]


def label_noise_covariance(sigma: float, batch_size: int = 1) -> NoiseFactor:
    r"""Label noise :math:`\Sigma = (\sigma^2/B)\,J^\top J/n`, i.e. :math:`F = \sigma J^\top/\sqrt{Bn}`.

    ``batch_size`` is :math:`B` for minibatch label noise, :math:`n` for mode ``"all"`` and 1 for
    mode ``"one"`` (see :func:`flatter.label_noise`). On Γ this is :math:`(\sigma^2/B)\nabla^2L`.
    """
    check_range("sigma", sigma, lower=0.0)
    batch_size = check_positive_int("batch_size", batch_size)

    def factor(fp: FlatProblem, theta):
        jac = fp.jacobian(theta)
        return sigma * jac.T / jnp.sqrt(batch_size * fp.num_examples)

    return factor


def isotropic_noise(scale: float) -> NoiseFactor:
    r"""Isotropic Gaussian gradient noise :math:`\Sigma = s^2 I`."""
    check_range("scale", scale, lower=0.0)

    def factor(fp: FlatProblem, theta):
        return scale * jnp.eye(theta.shape[0], dtype=theta.dtype)

    return factor


def minibatch_noise(batch_size: int) -> NoiseFactor:
    r"""Minibatch sampling noise of a Problem (without replacement, :math:`B` of :math:`n`).

    .. math::

        \Sigma = \frac{n - B}{B(n - 1)}\,\frac1n\sum_a (g_a - \bar g)(g_a - \bar g)^\top, \qquad
        g_a = r_a\nabla f_a

    It vanishes on Γ (every :math:`r_a = 0`): at interpolation, SGD without label noise has no
    noise to drive it along the valley.
    """
    batch_size = check_positive_int("batch_size", batch_size)

    def factor(fp: FlatProblem, theta):
        n = fp.num_examples
        if batch_size > n:
            raise ValueError(f"batch_size must be in [1, n={n}], got {batch_size}")
        jac = fp.jacobian(theta)
        r = fp.residual(theta)
        per_example = (r[:, None] * jac).reshape(n, -1, theta.shape[0]).sum(1)  # (n, p)
        centered = per_example - per_example.mean(0)
        weight = (n - batch_size) / (batch_size * max(n - 1, 1) * n)
        return jnp.sqrt(weight) * centered.T

    return factor
