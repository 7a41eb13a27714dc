"""What the real-data drivers share: picking a preset by dataset and name, and loading the data set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


def pick_preset(presets: dict[str, dict[str, Any]], dataset: str, name: str, overrides: dict) -> Any:
    """``presets[dataset][name]`` with fields replaced by ``overrides``; unknown names are errors that list
    the allowed ones."""
    if dataset not in presets:
        raise ValueError(f"dataset must be one of {list(presets)}, got {dataset!r}")
    if name not in presets[dataset]:
        raise ValueError(f"preset must be one of {list(presets[dataset])} for {dataset}, got {name!r}")
    base = presets[dataset][name]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(base)}
    if unknown:
        raise ValueError(f"unknown preset fields {sorted(unknown)}")
    return dataclasses.replace(base, **overrides)


def load_dataset(dataset: str, data_dir: str | Path | None):
    """Fashion-MNIST (Debian's files by default) or CIFAR-10 (``data_dir`` required) as an ImageDataset."""
    from ..data import load_cifar10, load_fashion_mnist

    if dataset == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if data_dir is None:
        raise ValueError(
            "--data is required for cifar10: the official 'CIFAR-10 python version' archive "
            "cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html), its folder "
            "cifar-10-batches-py/, or a folder holding either"
        )
    return load_cifar10(data_dir)
