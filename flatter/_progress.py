"""Progress bars that stay alive through one long compiled call (a compile, a chunk of a sweep)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

KEEP_ALIVE_SECONDS = 2.0
"""How often :func:`keep_alive` redraws a bar whose count has not moved (its elapsed time keeps ticking)."""


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
