"""The learning-rate schedule of large-batch training: a fixed epoch budget, linear warm-up, cosine decay."""

from __future__ import annotations

from typing import NamedTuple

import optax

from .._validation import check_positive, check_positive_int, check_range


class LargeBatchSchedule(NamedTuple):
    """A schedule and the step counts it was built for (``gradient_evaluations`` = steps x batch size)."""

    schedule: optax.Schedule
    steps: int
    warmup_steps: int
    steps_per_epoch: int
    gradient_evaluations: int


def large_batch_schedule(
    peak_learning_rate: float,
    *,
    batch_size: int,
    train_size: int,
    epochs: int,
    warmup_epochs: float = 1.0,
) -> LargeBatchSchedule:
    r"""Linear warm-up to ``peak_learning_rate`` over ``warmup_epochs``, then cosine decay to 0 at the end.

    Every batch size gets the same budget of ``epochs`` passes over the training set, so the same number
    of gradient evaluations, ``epochs * train_size`` (``batch_size`` must divide ``train_size``): steps
    :math:`K = \text{epochs}\cdot n/B`, warm-up :math:`K_w = \text{warmup\_epochs}\cdot n/B`, and

    .. math::

        \eta_k = \eta_\mathrm{peak}\,\frac{k}{K_w}\ (k < K_w), \qquad
        \eta_k = \frac{\eta_\mathrm{peak}}{2}\Big(1 + \cos\frac{\pi (k - K_w)}{K - K_w}\Big)\ (k \ge K_w).

    Examples:
      >>> import flatter
      >>> s = flatter.transforms.large_batch_schedule(0.4, batch_size=100, train_size=1000, epochs=5)
      >>> s.steps, s.warmup_steps, s.gradient_evaluations, round(float(s.schedule(10)), 3), float(s.schedule(50))
      (50, 10, 5000, 0.4, 0.0)
    """
    check_positive("peak_learning_rate", peak_learning_rate)
    batch_size = check_positive_int("batch_size", batch_size)
    train_size = check_positive_int("train_size", train_size)
    epochs = check_positive_int("epochs", epochs)
    check_range("warmup_epochs", warmup_epochs, lower=0.0, upper=epochs, upper_inclusive=False)
    if train_size % batch_size:
        raise ValueError(
            f"batch_size must divide train_size={train_size} so that every batch size sees the same examples, "
            f"got {batch_size}"
        )
    per_epoch = train_size // batch_size
    steps = epochs * per_epoch
    warmup = int(round(warmup_epochs * per_epoch))
    schedule = optax.warmup_cosine_decay_schedule(0.0, peak_learning_rate, warmup, steps, end_value=0.0)
    return LargeBatchSchedule(schedule, steps, warmup, per_epoch, steps * batch_size)
