"""Heavy ball on one normal mode of curvature h: its spectral radius and what the reduced dynamics need."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float


def spectral_radius(eta, beta, h) -> Float[Array, ...]:
    r"""Spectral radius of the heavy-ball iteration on a quadratic of curvature :math:`h`.

    The roots of :math:`z^2 - (1+\beta-\eta h)z + \beta = 0`: :math:`\rho = \sqrt\beta` when they are
    complex (underdamped), else the larger modulus of the two real roots.

    Examples:
      >>> import flatter
      >>> print(round(float(flatter.timescales.spectral_radius(0.1, 0.81, 1.0)), 6))  # complex roots: sqrt(beta)
      0.9
    """
    a = 1.0 + beta - eta * h
    disc = a * a - 4.0 * beta
    real = 0.5 * (jnp.abs(a) + jnp.sqrt(jnp.maximum(disc, 0.0)))
    return jnp.where(disc < 0, jnp.sqrt(beta), real)


class ModeParameters(NamedTuple):
    r"""Per normal mode :math:`i`: what the reduced SDE needs of the transverse heavy-ball dynamics.

    ``weight`` :math:`c_i = 2(1+\beta)/(2(1+\beta)-\eta h_i)` (the exact stationary variance over its
    :math:`\eta\to0` value, docs/theory.md §6.2); ``rate`` :math:`r_i = -2\ln\rho_i/(1-\beta)`, the variance
    relaxation rate in :math:`s = (1-\beta)k` (1 for an underdamped mode); ``dof`` 2 for an underdamped
    mode (energy in two quadratures: exponentially distributed) and 1 for an overdamped one (:math:`x^2`
    of a Gaussian: :math:`\chi^2_1`).
    """

    weight: Float[Array, " r"]
    rate: Float[Array, " r"]
    dof: Float[Array, " r"]


def mode_parameters(eta, beta, h) -> ModeParameters:
    """:class:`ModeParameters` of heavy ball with step ``eta`` and momentum ``beta`` on curvatures ``h``."""
    h = jnp.asarray(h)
    a = 1.0 - beta
    weight = 2.0 * (1.0 + beta) / (2.0 * (1.0 + beta) - eta * h)
    rate = -2.0 * jnp.log(spectral_radius(eta, beta, jnp.maximum(h, 0.0))) / a
    dof = jnp.where((1.0 - jnp.sqrt(beta)) ** 2 < eta * h, 2.0, 1.0)
    return ModeParameters(weight, rate, dof)
