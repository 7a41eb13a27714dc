"""The IDX format of (Fashion-)MNIST: a magic number, the dimensions, then the raw array."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``) into a NumPy array.

    Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 = uint8, ...), the
    number of dimensions, each dimension as a big-endian uint32, then the data in C order. A file
    that does not follow it is an error naming the file.

    Examples:
      >>> import gzip, struct, tempfile, pathlib
      >>> from flatter.data import read_idx
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "x-idx1-ubyte.gz"
      >>> _ = path.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 8, 9])))
      >>> print(read_idx(path))
      [7 8 9]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} is not a readable IDX file ({type(err).__name__}: {err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated (its header announces {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path} is truncated or padded: {len(raw) - header} data bytes for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
