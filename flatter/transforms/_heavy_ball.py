"""Heavy-ball momentum in the PyTorch/optax convention (LR applied after the buffer)."""

from __future__ import annotations

import jax
import optax

from .._validation import (
    as_hyperparameter,
    check_momentum,
    check_scalars,
    check_schedule_or_positive,
    guard_schedule,
    nan_outside,
)


def heavy_ball(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float | jax.Array,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r"""SGD with heavy-ball momentum, identical to ``optax.sgd(learning_rate, momentum, nesterov)``.

    With gradient :math:`g_k`, buffer :math:`v_0 = 0`, learning rate :math:`\eta_k` and momentum
    :math:`\beta`:

    .. math::

        v_{k+1} = \beta v_k + g_k, \qquad \theta_{k+1} = \theta_k - \eta_k v_{k+1}

    and with ``nesterov=True`` :math:`\theta_{k+1} = \theta_k - \eta_k (g_k + \beta v_{k+1})`.

    The learning rate multiplies the buffer *after* accumulation, so for a constant :math:`\eta`
    this is the Sutskever ("π") form :math:`\pi_{k+1} = \beta\pi_k - \eta g_k`,
    :math:`\theta_{k+1} = \theta_k + \pi_{k+1}` with :math:`\pi = -\eta v`, and the EMA form
    :math:`m_{k+1} = \beta m_k + (1-\beta) g_k`, :math:`\theta_{k+1} = \theta_k - \eta' m_{k+1}` with
    :math:`\eta = \eta'(1-\beta)`. The effective learning rate is
    :math:`\eta_\mathrm{eff} = \eta/(1-\beta)`: the step taken at a constant gradient.

    Args:
      learning_rate: :math:`\eta > 0`, a number, a JAX array (so a vmapped sweep compiles once) or a
        schedule ``step -> eta`` with values >= 0 (a warm-up may start at 0).
      momentum: :math:`0 \le \beta < 1`, a number or a JAX array.
      nesterov: use the Nesterov look-ahead form.

    Returns:
      An ``optax.GradientTransformation`` whose state is optax's ``(TraceState, EmptyState)``.

    Concrete values outside these ranges raise ``ValueError``. Traced ones (inside ``jit``/``vmap``),
    and schedule values, cannot raise: they turn the update into NaN, which :func:`flatter.simulate`
    reports as a diverged run.

    Examples:
      >>> import jax.numpy as jnp, optax, flatter
      >>> tx = flatter.heavy_ball(0.1, 0.5)
      >>> params = jnp.array([1.0]); state = tx.init(params)
      >>> for _ in range(2):
      ...     updates, state = tx.update(jnp.array([1.0]), state)
      ...     params = optax.apply_updates(params, updates)
      >>> print(params)  # 1 - 0.1*1 - 0.1*(0.5 + 1)
      [0.75]
    """
    check_schedule_or_positive("learning_rate", learning_rate)
    check_momentum("momentum", momentum)
    check_scalars(learning_rate=learning_rate, momentum=momentum)
    # Traced values cannot raise: outside their range they become NaN, so the run is flagged as diverged.
    momentum = nan_outside(momentum, lower=0.0, upper=1.0, upper_inclusive=False)
    if callable(learning_rate):
        learning_rate = guard_schedule(learning_rate, lower=0.0)  # a warm-up may start at 0
    else:
        learning_rate = nan_outside(learning_rate, lower=0.0, lower_inclusive=False)
    return optax.chain(
        optax.trace(decay=as_hyperparameter(momentum), nesterov=nesterov),
        optax.scale_by_learning_rate(as_hyperparameter(learning_rate)),
    )
