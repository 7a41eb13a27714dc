"""Fashion-MNIST from its official IDX files (Debian's ``dataset-fashion-mnist`` or any folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._dataset import ImageDataset
from ._idx import read_idx

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the official files."""

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HOW_TO_GET = (
    "install Debian's package (apt-get install dataset-fashion-mnist, which puts the official files in "
    f"{DEBIAN_FOLDER}) or download the four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist "
    "and pass their folder (--data DIR)"
)


def load_fashion_mnist(folder: str | Path | None = None) -> ImageDataset:
    """The official Fashion-MNIST split (60,000 training and 10,000 test images, 28 x 28, 10 classes).

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte`` (each gzipped or not) from ``folder``, by default
    :data:`DEBIAN_FOLDER`. Nothing is downloaded: a missing or malformed file is an error that says
    which file was expected where and how to get it.
    """
    folder = Path(folder) if folder is not None else DEBIAN_FOLDER
    if folder.is_file():
        raise NotADirectoryError(f"Fashion-MNIST: {folder} is a file; pass the folder that holds the four IDX files")
    arrays = {}
    for key, name in FILES.items():
        candidates = [folder / f"{name}.gz", folder / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"Fashion-MNIST: expected {name}.gz (or {name}) in {folder}; {HOW_TO_GET}")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"Fashion-MNIST in {folder}: the {split} images {images.shape} and labels {labels.shape} do not match"
            )
        # The official files: uint8 images of 28 x 28 and uint8 labels (a cast would truncate float labels).
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise ValueError(
                f"Fashion-MNIST in {folder}: the {split} images and labels are uint8 IDX files, got {images.dtype} "
                f"and {labels.dtype}; {HOW_TO_GET}"
            )
        if images.shape[1:] != (28, 28):
            raise ValueError(
                f"Fashion-MNIST in {folder}: the {split} images are 28 x 28, got {images.shape[1:]}; {HOW_TO_GET}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
            raise ValueError(f"Fashion-MNIST in {folder}: {split} labels outside 0..{len(CLASSES) - 1}")
    return ImageDataset(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int32),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int32),
        CLASSES,
        f"Fashion-MNIST IDX files in {folder}",
    )
