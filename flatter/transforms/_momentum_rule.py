"""The momentum scaling rule 1 - beta = C * eta**gamma, and heavy ball that follows it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._validation import (
    as_hyperparameter,
    check_range,
    check_scalars,
    check_schedule_or_positive,
    is_concrete,
    nan_outside,
)


def momentum_rule(learning_rate: float | jax.Array, *, C: float | jax.Array, gamma: float | jax.Array) -> jax.Array:
    r"""Momentum from the scaling rule :math:`1 - \beta = C \eta^\gamma`.

    .. math::

        \beta = 1 - C\,\eta^{\gamma}

    ``gamma = 0, C = 1`` gives plain SGD (:math:`\beta = 0`); ``gamma = 2/3`` is the rule of Cowsik,
    Can and Glorioso under which the transverse relaxation time :math:`\tau_1 \propto \eta^{-\gamma}`
    and the drift time along the valley :math:`\tau_2 \propto \eta^{2\gamma - 2}` meet.

    Args:
      learning_rate: :math:`\eta > 0` (number or array; arrays broadcast with ``C`` and ``gamma``).
      C: prefactor :math:`C > 0`.
      gamma: exponent :math:`\gamma \ge 0`.

    Returns:
      :math:`\beta` as a JAX array. Raises ``ValueError`` when concrete inputs give
      :math:`\beta \notin [0, 1)`; traced inputs that do return NaN (a run built on it is then
      flagged as diverged by :func:`flatter.simulate`).

    Examples:
      >>> import flatter
      >>> print(round(float(flatter.momentum_rule(0.001, C=1.0, gamma=2 / 3)), 6))
      0.99
    """
    check_range("learning_rate", learning_rate, lower=0.0, lower_inclusive=False)
    check_range("C", C, lower=0.0, lower_inclusive=False)
    check_range("gamma", gamma, lower=0.0)
    eta = jnp.asarray(learning_rate)
    beta = 1.0 - jnp.asarray(C, dtype=eta.dtype) * eta ** jnp.asarray(gamma, dtype=eta.dtype)
    if all(is_concrete(v) for v in (learning_rate, C, gamma)):
        check_range(
            "momentum_rule result beta = 1 - C*eta**gamma (choose C*eta**gamma in (0, 1])",
            beta,
            lower=0.0,
            upper=1.0,
            upper_inclusive=False,
        )
        return beta
    # Traced: a beta outside [0, 1) (or a traced eta <= 0, C <= 0, gamma < 0) is NaN, never silently used.
    ok = (eta > 0) & (jnp.asarray(C) > 0) & (jnp.asarray(gamma) >= 0)
    return jnp.where(ok, nan_outside(beta, lower=0.0, upper=1.0, upper_inclusive=False), jnp.nan)


class ScaledHeavyBallState(NamedTuple):
    """State of :func:`scaled_heavy_ball`: step count and the momentum buffer :math:`v`."""

    count: jax.Array
    trace: optax.Params


def scaled_heavy_ball(
    learning_rate: optax.ScalarOrSchedule,
    *,
    C: float | jax.Array,
    gamma: float | jax.Array,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r"""Heavy ball whose momentum follows the learning rate through :math:`1-\beta = C\eta^\gamma`.

    At step :math:`k` with :math:`\eta_k` = ``learning_rate(k)`` (or the constant):

    .. math::

        \beta_k = 1 - C \eta_k^{\gamma}, \qquad v_{k+1} = \beta_k v_k + g_k, \qquad
        \theta_{k+1} = \theta_k - \eta_k v_{k+1}

    (Nesterov: :math:`\theta_{k+1} = \theta_k - \eta_k (g_k + \beta_k v_{k+1})`). For a constant
    learning rate this is :func:`heavy_ball` with ``momentum = momentum_rule(eta, C=C,
    gamma=gamma)``; under a decaying schedule :math:`\beta_k \to 1` as :math:`\eta_k \to 0`, so the
    rule holds at every step. A step whose :math:`\eta_k \le 0` or whose :math:`\beta_k \notin [0, 1)`
    (schedule values cannot be checked in advance) makes the update NaN, so :func:`flatter.simulate`
    flags the run as diverged.

    Examples:
      >>> import jax.numpy as jnp, optax, flatter
      >>> tx = flatter.scaled_heavy_ball(optax.constant_schedule(0.25), C=1.0, gamma=0.5)
      >>> params = jnp.array([0.0]); state = tx.init(params)
      >>> for _ in range(2):  # beta = 1 - 0.25**0.5 = 0.5
      ...     updates, state = tx.update(jnp.array([1.0]), state)
      ...     params = optax.apply_updates(params, updates)
      >>> print(params)  # -0.25*1 - 0.25*1.5
      [-0.625]
    """
    check_schedule_or_positive("learning_rate", learning_rate)
    check_range("C", C, lower=0.0, lower_inclusive=False)
    check_range("gamma", gamma, lower=0.0)
    check_scalars(learning_rate=learning_rate, C=C, gamma=gamma)
    if not callable(learning_rate):
        momentum_rule(learning_rate, C=C, gamma=gamma)  # validates the resulting beta
    learning_rate, C, gamma = map(as_hyperparameter, (learning_rate, C, gamma))

    def init_fn(params: optax.Params) -> ScaledHeavyBallState:
        return ScaledHeavyBallState(count=jnp.zeros([], jnp.int32), trace=jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
        eta = jnp.asarray(eta)
        # A schedule's values are never known in advance: beta outside [0, 1) (or eta <= 0) is NaN, so the run
        # is flagged as diverged rather than silently clipped.
        beta = 1.0 - C * eta**gamma
        beta = jnp.where((eta > 0) & (beta >= 0) & (beta < 1), beta, jnp.nan)
        new_trace = jax.tree.map(lambda g, v: (g + beta * v).astype(v.dtype), updates, state.trace)
        direction = jax.tree.map(lambda g, v: g + beta * v, updates, new_trace) if nesterov else new_trace
        updates = jax.tree.map(lambda d: (-eta * d).astype(d.dtype), direction)
        return updates, ScaledHeavyBallState(count=optax.safe_increment(state.count), trace=new_trace)

    return optax.GradientTransformation(init_fn, update_fn)
