"""Checks of user-supplied hyperparameters that fail early with a message naming the parameter.

Hyperparameters may be Python numbers, NumPy arrays or JAX arrays. Concrete values are checked
elementwise and raise at once. Traced values (inside ``jit``/``vmap``) cannot raise, so the
transforms pass them through :func:`nan_outside`: a value outside its range becomes NaN, the update
becomes NaN, and :func:`flatter.simulate` flags the run as diverged (a sweep counts it, a fit drops
it) instead of running it silently. Sweep drivers validate their grids before tracing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def is_concrete(value: Any) -> bool:
    """Whether ``value`` can be read on the host (not a tracer)."""
    return not isinstance(value, jax.core.Tracer)


def _as_host(name: str, value: Any) -> np.ndarray | None:
    if callable(value) or not is_concrete(value):
        return None
    if isinstance(value, str | bytes) or value is None or isinstance(value, bool):
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}") from err


def check_range(
    name: str,
    value: Any,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
) -> None:
    """Raise ``ValueError`` unless every element of ``value`` lies in the stated interval.

    The message names ``name`` and the allowed range, e.g. ``momentum must be in [0, 1), got 1.0``.
    Non-finite values always fail.
    """
    host = _as_host(name, value)
    if host is None:
        return
    ok = np.isfinite(host)
    if lower is not None:
        ok &= host >= lower if lower_inclusive else host > lower
    if upper is not None:
        ok &= host <= upper if upper_inclusive else host < upper
    if not np.all(ok):
        bad = host[~ok] if host.ndim else host
        shown = np.asarray(bad).reshape(-1)[:3].tolist()
        allowed = describe_range(lower, upper, lower_inclusive, upper_inclusive)
        raise ValueError(f"{name} must be {allowed}, got {_fmt(shown)}")


def describe_range(lower: float | None, upper: float | None, lower_inclusive: bool, upper_inclusive: bool) -> str:
    if lower is not None and upper is not None:
        left = "[" if lower_inclusive else "("
        right = "]" if upper_inclusive else ")"
        return f"in {left}{lower:g}, {upper:g}{right}"
    if lower is not None:
        return f"{'>=' if lower_inclusive else '>'} {lower:g}"
    if upper is not None:
        return f"{'<=' if upper_inclusive else '<'} {upper:g}"
    return "finite"


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values) if len(values) != 1 else f"{values[0]:g}"


def check_positive(name: str, value: Any) -> None:
    """``value > 0`` elementwise (schedules are accepted unchecked)."""
    check_range(name, value, lower=0.0, lower_inclusive=False)


def check_momentum(name: str, value: Any) -> None:
    """``0 <= value < 1`` elementwise."""
    check_range(name, value, lower=0.0, upper=1.0, upper_inclusive=False)


def check_scalars(**values: Any) -> None:
    """Each hyperparameter is one number (or a schedule): a vector would be applied per coordinate of the
    parameters by broadcasting, silently. A sweep vmaps over the values instead."""
    for name, value in values.items():
        if not callable(value) and np.ndim(value) > 0:
            raise ValueError(
                f"{name} must be a scalar (or a schedule), got shape {np.shape(value)}: to sweep it, jax.vmap over "
                "the values (a vector here would scale each coordinate of the parameters)"
            )


def check_finite(name: str, value: Any) -> None:
    """Every entry of a concrete array is finite (data with NaN/inf would pass as a "divergence" later)."""
    if not is_concrete(value):
        return
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        where = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(
            f"{name} must be finite: {bad} of {array.size} entries are NaN or inf (the first at index {where})"
        )


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_schedule_or_positive(name: str, value: Any) -> None:
    """Learning rates may be a positive number/array or a schedule ``step -> value``."""
    if isinstance(value, Callable):
        return
    check_positive(name, value)


def as_hyperparameter(value: Any) -> Any:
    """A numeric hyperparameter as a JAX array (schedules and arrays pass through).

    Held as an array, a value is an input of the compiled program rather than a literal in it, so
    optimizers that differ only in their numbers share one compile (see ``flatter.simulate``).
    Python numbers stay weakly typed, so dtype promotion is as with the number itself.
    """
    if callable(value) or isinstance(value, jax.Array):
        return value
    import jax.numpy as jnp

    return jnp.asarray(value)


def nan_outside(
    value: Any,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
) -> Any:
    """``value`` where it lies in the interval, NaN elsewhere (for traced values that cannot raise).

    Concrete values are returned unchanged (they were checked by :func:`check_range`); so are
    schedules, which :func:`guard_schedule` wraps instead.
    """
    if callable(value) or is_concrete(value):
        return value
    return _nan_where_outside(value, lower, upper, lower_inclusive, upper_inclusive)


def _nan_where_outside(value, lower, upper, lower_inclusive, upper_inclusive):
    import jax.numpy as jnp

    value = jnp.asarray(value)
    ok = jnp.isfinite(value)
    if lower is not None:
        ok &= value >= lower if lower_inclusive else value > lower
    if upper is not None:
        ok &= value <= upper if upper_inclusive else value < upper
    return jnp.where(ok, value, jnp.nan)


def guard_schedule(
    schedule: Callable,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_inclusive: bool = True,
    upper_inclusive: bool = True,
) -> Callable:
    """A schedule whose values outside the interval are NaN (its values are never known in advance)."""

    def guarded(count):
        return _nan_where_outside(schedule(count), lower, upper, lower_inclusive, upper_inclusive)

    return guarded


def check_key(name: str, key: Any) -> None:
    """Raise ``TypeError`` unless ``key`` is a JAX PRNG key (typed, or legacy uint32 key data)."""
    import jax.numpy as jnp

    if isinstance(key, jax.Array | jax.core.Tracer):
        typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        if typed or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,)):
            if key.shape != (() if typed else (2,)):
                raise ValueError(
                    f"{name} must be a single PRNG key, got a batch of shape {key.shape[: key.ndim - (not typed)]} "
                    "(split it outside and vmap over the keys instead)"
                )
            return
    raise TypeError(f"{name} must be a JAX PRNG key such as jax.random.key(0), got {key!r}")
