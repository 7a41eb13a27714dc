"""SNGM: stochastic normalized gradient descent with momentum (Zhao, Shi, Xie, Li)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._validation import (
    as_hyperparameter,
    check_momentum,
    check_range,
    check_scalars,
    check_schedule_or_positive,
    guard_schedule,
    nan_outside,
)


class SNGMState(NamedTuple):
    """State of :func:`sngm`: step count and the buffer :math:`u` of normalized gradients."""

    count: jax.Array
    momentum_buffer: optax.Params


def sngm(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float | jax.Array,
    *,
    weight_decay: float | jax.Array = 0.0,
) -> optax.GradientTransformation:
    r"""Stochastic normalized gradient descent with momentum.

    With (minibatch) gradient :math:`g_k`, weight decay :math:`\lambda` and :math:`u_0 = 0`:

    .. math::

        \tilde g_k = g_k + \lambda\theta_k, \qquad
        u_{k+1} = \beta u_k + \frac{\tilde g_k}{\|\tilde g_k\|}, \qquad
        \theta_{k+1} = \theta_k - \eta_k u_{k+1}

    where :math:`\|\cdot\|` is the *global* Euclidean norm over all leaves (not per layer) and
    :math:`\tilde g/\|\tilde g\|` is taken as :math:`0` when :math:`\tilde g = 0`. Consequences that
    the tests check: :math:`\|u_k\| \le (1-\beta^k)/(1-\beta)`, every step satisfies
    :math:`\|\theta_{k+1}-\theta_k\| \le \eta/(1-\beta)`, and the iterates are invariant to scaling
    the loss by any :math:`c > 0` (when :math:`\lambda = 0`).

    Args:
      learning_rate: :math:`\eta > 0`, or a schedule with values >= 0 (a warm-up may start at 0).
      momentum: :math:`0 \le \beta < 1`.
      weight_decay: :math:`\lambda \ge 0`, added to the gradient *before* normalization (needs
        ``params`` in ``update``).

    Examples:
      >>> import jax.numpy as jnp, optax, flatter
      >>> tx = flatter.sngm(0.1, 0.9)
      >>> params = jnp.array([0.0, 0.0]); state = tx.init(params)
      >>> updates, state = tx.update(jnp.array([3.0, 4.0]), state)
      >>> print(optax.apply_updates(params, updates))  # -0.1 * (3, 4)/5
      [-0.06 -0.08]
    """
    check_schedule_or_positive("learning_rate", learning_rate)
    check_momentum("momentum", momentum)
    check_range("weight_decay", weight_decay, lower=0.0)
    check_scalars(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)
    decay_on = not (isinstance(weight_decay, int | float) and weight_decay == 0.0)
    # Traced values cannot raise: outside their range they become NaN (a diverged run in simulate).
    momentum = nan_outside(momentum, lower=0.0, upper=1.0, upper_inclusive=False)
    weight_decay = nan_outside(weight_decay, lower=0.0)
    if callable(learning_rate):
        learning_rate = guard_schedule(learning_rate, lower=0.0)  # a warm-up may start at 0
    else:
        learning_rate = nan_outside(learning_rate, lower=0.0, lower_inclusive=False)
    learning_rate, momentum, weight_decay = map(as_hyperparameter, (learning_rate, momentum, weight_decay))

    def init_fn(params: optax.Params) -> SNGMState:
        return SNGMState(count=jnp.zeros([], jnp.int32), momentum_buffer=jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        if decay_on:
            if params is None:
                raise ValueError("sngm with weight_decay > 0 needs params in update(updates, state, params)")
            updates = jax.tree.map(lambda g, p: g + weight_decay * p, updates, params)
        sq_norm = sum(jnp.sum(g**2) for g in jax.tree.leaves(updates))
        # Safe at g = 0: the normalized gradient is 0 there, and neither it nor its derivative is NaN.
        nonzero = sq_norm > 0
        inv_norm = jnp.where(nonzero, jax.lax.rsqrt(jnp.where(nonzero, sq_norm, 1.0)), 0.0)
        buffer = jax.tree.map(
            lambda g, u: (momentum * u + g * inv_norm).astype(u.dtype), updates, state.momentum_buffer
        )
        eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
        new_updates = jax.tree.map(lambda u: (-eta * u).astype(u.dtype), buffer)
        return new_updates, SNGMState(count=optax.safe_increment(state.count), momentum_buffer=buffer)

    return optax.GradientTransformation(init_fn, update_fn)
