"""Progress inside long compiled calls: ticks from the program to the host, and bars kept alive through a compile."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax

KEEP_ALIVE_SECONDS = 2.0
"""How often :func:`keep_alive` redraws a bar whose count has not moved (its elapsed time keeps ticking)."""


LISTENERS: list[Callable[[], Any]] = []
"""What :func:`tick` calls on the host: the progress bars of the calls in progress (see :func:`listening`)."""


def tick(index: Any = None) -> None:
    """Call every listener (on XLA's thread when a compiled program calls back through :func:`tick_in_program`)."""
    for listener in list(LISTENERS):
        listener()


def tick_in_program(index) -> None:
    """Inside a jitted program: call :func:`tick` on the host as execution passes here. ``index`` should be the same
    for every vmapped run (a loop counter), so the host hears once per pass and device, not once per run."""
    jax.debug.callback(tick, index)


@contextlib.contextmanager
def listening(listener: Callable[[], Any] | None) -> Iterator[None]:
    """``listener`` hears every :func:`tick` while the body runs (None: nothing)."""
    if listener is None:
        yield
        return
    LISTENERS.append(listener)
    try:
        yield
    finally:
        LISTENERS.remove(listener)


@contextlib.contextmanager
def keep_alive(bar: Any, every: float = KEEP_ALIVE_SECONDS) -> Iterator[None]:
    """Redraw ``bar`` (a tqdm bar, or None for nothing) every ``every`` seconds while the body runs.

    A compiled call reports nothing until it returns (or until its next host callback); XLA compiling a network's
    program, or one long chunk, would leave the terminal silent for tens of seconds. The redraw shows the elapsed
    time, so the wait is visibly alive; the count still moves only with real progress.
    """
    if bar is None or getattr(bar, "disable", False):
        yield
        return
    done = threading.Event()

    def redraw() -> None:
        while not done.wait(every):
            bar.refresh()

    thread = threading.Thread(target=redraw, name="flatter-keep-alive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
