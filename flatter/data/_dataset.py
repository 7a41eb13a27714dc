"""An image classification data set held in memory, with the official train/test split."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import check_positive_int


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Images (N, H, W) or (N, H, W, C) as uint8 and integer labels, for the train and the test split.

    ``classes`` names the labels 0..K-1; ``source`` says where the files were read from (reported
    with results, so a number can be traced to its data).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalized(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 images scaled to [0, 1], then standardized with the *training* mean and std."""
        train = self.train_images.astype(np.float32) / 255.0
        test = self.test_images.astype(np.float32) / 255.0
        mean, std = float(train.mean()), float(train.std())
        return (train - mean) / std, (test - mean) / std


def stratified_subset(labels: np.ndarray, per_class: int, *, seed: int) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn without replacement with ``seed``, sorted.

    Deterministic: the same labels, ``per_class`` and ``seed`` give the same subset on any machine.

    Examples:
      >>> import numpy as np
      >>> from flatter.data import stratified_subset
      >>> labels = np.array([0, 1, 0, 1, 0, 1])
      >>> idx = stratified_subset(labels, 2, seed=0)
      >>> print(len(idx), np.bincount(labels[idx]).tolist())
      4 [2, 2]
    """
    per_class = check_positive_int("per_class", per_class)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if members.size < per_class:
            raise ValueError(f"per_class must be <= {members.size} (the examples of class {c}), got {per_class}")
        picked.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picked))
