"""Convergence criteria on recorded observables: first passage, settling and plateaus, with censoring."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Real

from ._validation import check_range


class PassageTime(NamedTuple):
    """A convergence time and whether it is censored (the criterion was not met by the horizon).

    A censored run has ``time`` equal to the horizon (the last recorded step): a lower bound, never
    to be averaged as if it had converged.
    """

    time: Float[Array, ...]
    censored: Bool[Array, ...]


def _inside(values, threshold, below):
    return values <= threshold if below else values >= threshold


def _check(steps, values, threshold) -> None:
    """Shapes always (they are static under jit); the threshold when it is a concrete number."""
    steps_shape, values_shape = jnp.shape(steps), jnp.shape(values)
    if len(steps_shape) != 1 or not values_shape or values_shape[-1] != steps_shape[0]:
        raise ValueError(
            f"values must have the records on their last axis, as many as steps: got steps of shape {steps_shape} "
            f"and values of shape {values_shape}"
        )
    if steps_shape[0] == 0:
        raise ValueError("steps must hold at least one record")
    check_range("threshold", threshold)


def first_passage(
    steps: Real[ArrayLike, " R"],
    values: Real[ArrayLike, "... R"],
    threshold: Real[ArrayLike, ""],
    *,
    below: bool = True,
    diverged: Bool[Array, ...] | None = None,
) -> PassageTime:
    r"""The first recorded step at which the observable is inside the band.

    :math:`T_\mathrm{first} = \min\{k_j : v_j \le \delta\}` (or :math:`\ge` with ``below=False``),
    vectorized over leading axes. Non-finite values count as outside. A run marked ``diverged``
    (``Trajectory.diverged``) is censored whatever its records show: a blow-up can swing through the
    band on its way out, which is no convergence.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> steps = jnp.array([0, 10, 20, 30])
      >>> t = flatter.first_passage(steps, jnp.array([1.0, 0.05, 0.5, 0.01]), 0.1)
      >>> print(float(t.time), bool(t.censored))
      10.0 False
    """
    _check(steps, values, threshold)
    inside = _inside(values, threshold, below) & jnp.isfinite(values)
    reached = jnp.any(inside, axis=-1)
    first = jnp.argmax(inside, axis=-1)
    time = jnp.where(reached, steps[first], steps[-1]).astype(float)
    return _censor_diverged(PassageTime(time=time, censored=~reached), steps, diverged)


def settling_time(
    steps: Real[ArrayLike, " R"],
    values: Real[ArrayLike, "... R"],
    threshold: Real[ArrayLike, ""],
    *,
    below: bool = True,
    diverged: Bool[Array, ...] | None = None,
) -> PassageTime:
    r"""The step after which the observable stays inside the band up to the horizon.

    :math:`T_\mathrm{settle} = k_{j^*+1}` with :math:`j^*` the last record outside the band (0 if
    never outside). A run whose last record is outside has not settled: it is censored at the
    horizon. Settling exposes the overshoot along the valley that first passage misses
    (docs/theory.md §6.7). A run marked ``diverged`` is censored, as in :func:`first_passage`.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> steps = jnp.array([0, 10, 20, 30])
      >>> t = flatter.settling_time(steps, jnp.array([1.0, 0.05, 0.5, 0.01]), 0.1)
      >>> print(float(t.time), bool(t.censored))
      30.0 False
    """
    _check(steps, values, threshold)
    inside = _inside(values, threshold, below) & jnp.isfinite(values)
    outside = ~inside
    num = outside.shape[-1]
    last_out = num - 1 - jnp.argmax(outside[..., ::-1], axis=-1)
    any_out = jnp.any(outside, axis=-1)
    settled = inside[..., -1]
    index = jnp.where(any_out, jnp.minimum(last_out + 1, num - 1), 0)
    time = jnp.where(settled, steps[index], steps[-1]).astype(float)
    return _censor_diverged(PassageTime(time=time, censored=~settled), steps, diverged)


def plateau_time(
    steps: Real[ArrayLike, " R"],
    values: Real[ArrayLike, "... R"],
    tolerance: Real[ArrayLike, ""],
    *,
    window: int = 4,
    plateau_fraction: float = 0.25,
    diverged: Bool[Array, ...] | None = None,
) -> PassageTime:
    r"""The step after which the smoothed observable stays within ``tolerance`` of its final plateau.

    The classification criterion of docs/theory.md §1.7 (smoothed test accuracy within 0.5 pt of its final
    plateau: ``tolerance=0.005``). With :math:`\bar v_j` the trailing mean of the last ``window``
    records and the plateau :math:`v_\infty` the mean of the last ``plateau_fraction`` of the raw
    records, :math:`T = ` :func:`settling_time` of :math:`|\bar v_j - v_\infty| \le` ``tolerance``.
    A time that falls inside the records that define the plateau is censored (the plateau was not
    reached before the horizon), and so is a ``diverged`` run.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> steps = jnp.arange(0, 100, 10)
      >>> acc = jnp.array([0.5, 0.7, 0.8, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
      >>> t = flatter.plateau_time(steps, acc, 0.005, window=1)
      >>> print(float(t.time), bool(t.censored))
      40.0 False
    """
    _check(steps, values, tolerance)
    check_range("plateau_fraction", plateau_fraction, lower=0.0, upper=1.0, lower_inclusive=False)
    num = jnp.shape(steps)[0]
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= num:
        raise ValueError(f"window must be an integer in [1, {num}] (the records), got {window!r}")
    values = jnp.asarray(values, float)
    start = num - max(1, int(round(plateau_fraction * num)))
    plateau = jnp.mean(values[..., start:], axis=-1, keepdims=True)
    csum = jnp.cumsum(values, axis=-1)
    shifted = jnp.concatenate([jnp.zeros_like(csum[..., :window]), csum[..., :-window]], axis=-1)
    counts = jnp.minimum(jnp.arange(1, num + 1), window)
    smoothed = (csum - shifted) / counts
    settle = settling_time(steps, jnp.abs(smoothed - plateau), tolerance, diverged=diverged)
    late = settle.time > steps[start]
    return PassageTime(time=settle.time, censored=settle.censored | late)


def _censor_diverged(t: PassageTime, steps, diverged) -> PassageTime:
    if diverged is None:
        return t
    diverged = jnp.asarray(diverged, bool)
    return PassageTime(time=jnp.where(diverged, steps[-1], t.time).astype(float), censored=t.censored | diverged)
