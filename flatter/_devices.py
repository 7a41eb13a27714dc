"""Where many independent runs live: a 1-D ``runs`` mesh over every device, arrays placed on it, compile counts.

The sweeps and the large-batch study both vmap a batch of runs and shard its leading axis over all devices;
nothing is communicated between runs, so the compiler only has to propagate that one sharding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
"""JAX's monitoring event for one XLA backend compile (what :func:`count_compiles` counts)."""


def runs_sharding(shard: bool = True) -> NamedSharding | None:
    """The sharding of a leading ``runs`` axis over all devices (None for one device or ``shard=False``).

    The mesh's axis is of the automatic type: the compiler propagates the sharding through the vmapped program.
    """
    if not shard or jax.device_count() == 1:
        return None
    mesh = jax.make_mesh((jax.device_count(),), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))
    return NamedSharding(mesh, PartitionSpec("runs"))


def place_runs(x: np.ndarray, sharding: NamedSharding | None):
    """``x`` (runs first) on the devices of ``sharding``, each device its slice of the runs (as is without one).

    Every process holds the whole, deterministic array, so each device's slice is cut locally
    (``jax.make_array_from_callback``): the same code runs on one host and on many.
    """
    if sharding is None:
        return x
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def padded_run_count(runs: int, devices: int) -> int:
    """The smallest multiple of ``devices`` that holds ``runs`` runs (the extra runs repeat the last one)."""
    return -(-runs // devices) * devices


class CompileCount:
    """The number of XLA compiles seen since the :func:`count_compiles` block began (``int(count)``)."""

    def __init__(self) -> None:
        self.value = 0

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"CompileCount({self.value})"


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileCount]:
    """Count XLA backend compiles inside the block, through ``jax.monitoring`` (every compile; a program read
    from JAX's persistent compilation cache is not one).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flatter._devices import count_compiles
      >>> x = jnp.ones(7)
      >>> with count_compiles() as count:
      ...     _ = jax.jit(lambda x: x * 3.0 + 1.0)(x)
      >>> print(int(count))
      1
    """
    count = CompileCount()

    def listener(event: str, *args, **kwargs) -> None:
        if event == COMPILE_EVENT:
            count.value += 1

    def hits(event: str, *args, **kwargs) -> None:
        if event == CACHE_HIT_EVENT:  # read from the persistent cache: timed like a compile, but not one
            count.value -= 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    jax.monitoring.register_event_listener(hits)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        jax.monitoring.unregister_event_listener(hits)
