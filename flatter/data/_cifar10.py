"""CIFAR-10 from the official "python version" (``cifar-10-python.tar.gz`` or its extracted folder)."""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ._dataset import ImageDataset

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
HOW_TO_GET = (
    f"download {ARCHIVE} (the 'CIFAR-10 python version') from https://www.cs.toronto.edu/~kriz/cifar.html and "
    "pass the archive, its extracted cifar-10-batches-py folder, or a folder holding either (--data PATH)"
)


class _BatchUnpickler(pickle.Unpickler):
    """The batches are pickled dicts of bytes, lists and NumPy arrays: nothing else may be loaded."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a CIFAR-10 batch may not contain {module}.{name}")


def _read_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        raw_images, raw_labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(
            f"{where} is not a CIFAR-10 python batch ({type(err).__name__}: {err}); {HOW_TO_GET}"
        ) from None
    # The official format: uint8 pixels (a cast would wrap other values) and integer labels 0..9.
    if raw_images.dtype != np.uint8:
        raise ValueError(f"{where}: CIFAR-10 pixels are uint8, got dtype {raw_images.dtype}; {HOW_TO_GET}")
    if not np.issubdtype(raw_labels.dtype, np.integer) or raw_labels.ndim != 1:
        raise ValueError(
            f"{where}: CIFAR-10 labels are a list of integers, got dtype {raw_labels.dtype} and shape "
            f"{raw_labels.shape}; {HOW_TO_GET}"
        )
    if raw_labels.size and (raw_labels.min() < 0 or raw_labels.max() >= len(CLASSES)):
        raise ValueError(
            f"{where}: CIFAR-10 labels must be in [0, {len(CLASSES) - 1}], got values from {raw_labels.min()} to "
            f"{raw_labels.max()}; {HOW_TO_GET}"
        )
    images, labels = raw_images, raw_labels.astype(np.int32)
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{where}: expected data of shape (N, 3072) with N labels, got {images.shape}")
    # Each row is 1024 red, 1024 green, 1024 blue values, row-major: (N, 3, 32, 32) -> NHWC.
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _locate(path: Path) -> Path:
    if path.is_file():
        return path
    for candidate in (path / FOLDER, path / ARCHIVE, path):
        if candidate.is_file() or (candidate.is_dir() and (candidate / TEST_BATCH).is_file()):
            return candidate
    raise FileNotFoundError(f"CIFAR-10: expected {ARCHIVE} or {FOLDER}/ (with {TEST_BATCH}) at {path}; {HOW_TO_GET}")


def load_cifar10(path: str | Path) -> ImageDataset:
    """The official CIFAR-10 split (50,000 training and 10,000 test images, 32 x 32 x 3, 10 classes).

    ``path`` is the archive ``cifar-10-python.tar.gz``, its extracted ``cifar-10-batches-py``
    folder, or a folder holding either. The batches are read with an unpickler that accepts only the
    dicts, lists and NumPy arrays they are made of. No package ships the images and nothing is
    downloaded: a missing or malformed file is an error saying which file was expected where.
    """
    where = _locate(Path(path))
    if where.is_file():
        try:
            archive = tarfile.open(where, "r:*")
        except (tarfile.TarError, OSError) as err:
            raise ValueError(
                f"{where} is truncated or corrupted, or not a {ARCHIVE} ({type(err).__name__}: {err}); {HOW_TO_GET}"
            ) from None
        try:
            with archive:
                members: dict[str, tarfile.TarInfo] = {}
                for m in archive.getmembers():
                    name = Path(m.name).name
                    if not m.isfile() or name not in (*TRAIN_BATCHES, TEST_BATCH):
                        continue
                    if name in members:  # which copy is the real one is not for a loader to guess
                        raise ValueError(
                            f"{where} holds {name} twice ({members[name].name} and {m.name}); {HOW_TO_GET}"
                        )
                    members[name] = m

                def read(name):
                    if name not in members:
                        raise FileNotFoundError(f"CIFAR-10: {where} holds no {FOLDER}/{name}; {HOW_TO_GET}")
                    return _read_batch(archive.extractfile(members[name]).read(), f"{where}:{name}")

                train = [read(name) for name in TRAIN_BATCHES]
                test = read(TEST_BATCH)
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise ValueError(f"{where} is truncated or corrupted ({type(err).__name__}: {err}); {HOW_TO_GET}") from None
    else:

        def read(name):
            file = where / name
            if not file.is_file():
                raise FileNotFoundError(f"CIFAR-10: expected {file}; {HOW_TO_GET}")
            return _read_batch(file.read_bytes(), str(file))

        train = [read(name) for name in TRAIN_BATCHES]
        test = read(TEST_BATCH)
    return ImageDataset(
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        test[0],
        test[1],
        CLASSES,
        f"CIFAR-10 python batches at {where}",
    )
