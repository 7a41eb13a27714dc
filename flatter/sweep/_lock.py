"""An exclusive lock on a sweep's results folder for the whole run, so two sweeps never write into one folder."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ._store import SweepStoreError

try:
    import fcntl
except ImportError:  # not POSIX: no OS lock; the digests in every file still refuse foreign results
    fcntl = None

LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on ``out/.lock`` while the block runs; refuse if another process has it.

    The OS drops the lock when its process ends, however it ends, so a sweep killed with ``kill -9`` leaves no
    stale lock: the next run takes it at once. The file keeps the holder's pid for the message.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    if fcntl is None:
        yield
        return
    handle = open(path, "a+")  # noqa: SIM115 (held open for the whole run: closing it releases the lock)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SweepStoreError(
                f"another process is running a sweep into {out} (pid {holder}); wait for it to finish or choose "
                "another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
