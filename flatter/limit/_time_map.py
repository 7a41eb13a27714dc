"""The map between optimizer steps k and the time t of the limit dynamics."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._validation import check_momentum, check_positive


def effective_learning_rate(eta, beta) -> jax.Array:
    r""":math:`\eta_\mathrm{eff} = \eta/(1-\beta)`, the step of heavy ball at a constant gradient."""
    check_positive("eta", eta)
    check_momentum("beta", beta)
    return jnp.asarray(eta) / (1.0 - jnp.asarray(beta))


def steps_to_time(steps, eta, beta) -> jax.Array:
    r"""Limit time of ``steps`` heavy-ball steps: :math:`t = k\,\eta_\mathrm{eff}^2`.

    This is the time of the valley dynamics in the adiabatic regime (docs/theory.md §1.5 (R1)): label-noise
    SGD with momentum moves along Γ like SGD with learning rate :math:`\eta_\mathrm{eff}`, and LWA's
    time :math:`t = \eta^2 k` becomes :math:`t = \eta_\mathrm{eff}^2 k`.

    Examples:
      >>> import flatter
      >>> print(round(float(flatter.limit.steps_to_time(1000, 0.01, 0.9)), 4))  # 1000 * 0.1^2
      10.0
    """
    return jnp.asarray(steps) * effective_learning_rate(eta, beta) ** 2


def time_to_steps(t, eta, beta) -> jax.Array:
    r"""Inverse of :func:`steps_to_time`: :math:`k = t/\eta_\mathrm{eff}^2`."""
    return jnp.asarray(t) / effective_learning_rate(eta, beta) ** 2
