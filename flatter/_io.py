"""Self-describing, atomically written results: JSON metadata beside NumPy arrays."""

from __future__ import annotations

import io
import json
import os
import pickle
import platform
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np

UNREADABLE_FILE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    ValueError,  # json.JSONDecodeError and UnicodeDecodeError among them
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    pickle.UnpicklingError,
    tarfile.TarError,
)
"""What reading a truncated, corrupted or foreign file can raise (NumPy archives, JSON, pickles, tar and gzip):
every reader maps these to an error that names the file and what to do."""


def environment() -> dict[str, Any]:
    """Versions and device, recorded with every result (PRNG streams can change across JAX versions)."""
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    devices = jax.devices()
    return {
        "packages": {n: version(n) for n in ("flatter", "jax", "jaxlib", "optax", "diffrax", "numpy")},
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in devices],
        "device_count": len(devices),
        "x64": bool(jax.config.jax_enable_x64),
    }


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for collaborators too
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def save_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def save_arrays(path: str | os.PathLike, **arrays: Any) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())
