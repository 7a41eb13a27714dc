"""Checks of user-supplied hyperparameters that fail early with a message naming the parameter.

Hyperparameters may be Python numbers, NumPy arrays or JAX arrays. Concrete values are checked
elementwise; traced values (inside ``jit``/``vmap``) cannot be inspected and are passed through, so
a sweep that builds its optimizer inside a vmapped function compiles once. Sweep drivers validate
their grids before tracing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def is_concrete(value: Any) -> bool:
    """Whether ``value`` can be read on the host (not a tracer)."""
    return not isinstance(value, jax.core.Tracer)


def _as_host(value: Any) -> np.ndarray | None:
    if callable(value) or not is_concrete(value):
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"expected a number or an array of numbers, got {value!r}") from err


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
    host = _as_host(value)
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
