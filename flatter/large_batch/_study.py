"""One cell of a large-batch study: tune the learning rate on validation data, then train fresh seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._problem import Params, Problem
from .._validation import check_positive_int, check_range
from ._train import TrainingCurves, train_runs

TUNING_SEED_OFFSET = 10_000
"""Tuning runs use seeds ``10000 + i``, the reported runs ``0 .. seeds - 1``: the accuracy a cell reports
comes from runs its learning rate was not chosen on."""


def epochs_to_target(accuracy: Float[ArrayLike, "runs epochs"], target: float) -> Float[np.ndarray, " runs"]:
    """The first epoch (1-based) after which ``accuracy`` is at least ``target``; NaN where it never is
    (censored: the run did not reach the target within its budget; a diverged run's NaN never does).

    Examples:
      >>> import numpy as np
      >>> from flatter.large_batch import epochs_to_target
      >>> print(epochs_to_target(np.array([[0.5, 0.8, 0.9], [0.5, 0.6, 0.7]]), 0.8))
      [ 2. nan]
    """
    check_range("target", target, lower=0.0, upper=1.0)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    reached = np.nan_to_num(accuracy, nan=-np.inf) >= target
    first = np.argmax(reached, axis=-1) + 1.0
    return np.where(reached.any(axis=-1), first, np.nan)


@dataclasses.dataclass(frozen=True)
class CellResult:
    """The outcome of :func:`tune_and_train` for one optimizer and batch size.

    ``grid`` and ``grid_validation`` (mean final validation accuracy over the tuning seeds; NaN where
    every tuning run diverged) show the tuning; ``learning_rate`` is the chosen peak, ``at_edge`` says it
    is the grid's smallest or largest value (widen the grid). ``curves`` are the reported runs (one per
    seed); ``epochs_to_target`` is per seed (NaN: not reached).
    """

    optimizer: str
    batch_size: int
    grid: np.ndarray
    grid_validation: np.ndarray
    grid_diverged: np.ndarray
    learning_rate: float
    at_edge: bool
    curves: TrainingCurves
    epochs_to_target: np.ndarray
    target: float

    @property
    def final_test_accuracy(self) -> np.ndarray:
        """Test accuracy after the last epoch, per seed."""
        return self.curves.test_accuracy[:, -1]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything as named arrays (for a self-describing ``.npz``); :meth:`from_arrays` reads it back."""
        return {
            "optimizer": np.array(self.optimizer),
            "batch_size": np.array(self.batch_size),
            "grid": self.grid,
            "grid_validation": self.grid_validation,
            "grid_diverged": self.grid_diverged,
            "learning_rate": np.array(self.learning_rate),
            "at_edge": np.array(self.at_edge),
            "epochs_to_target": self.epochs_to_target,
            "target": np.array(self.target),
            **{f"curves_{k}": np.asarray(v) for k, v in self.curves._asdict().items()},
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CellResult:
        curves = TrainingCurves(**{k: np.asarray(arrays[f"curves_{k}"]) for k in TrainingCurves._fields})
        return cls(
            optimizer=str(arrays["optimizer"]),
            batch_size=int(arrays["batch_size"]),
            grid=np.asarray(arrays["grid"]),
            grid_validation=np.asarray(arrays["grid_validation"]),
            grid_diverged=np.asarray(arrays["grid_diverged"]),
            learning_rate=float(arrays["learning_rate"]),
            at_edge=bool(arrays["at_edge"]),
            curves=curves,
            epochs_to_target=np.asarray(arrays["epochs_to_target"]),
            target=float(arrays["target"]),
        )


def tune_and_train(
    problem: Problem,
    init: Params | Callable[[Any], Params],
    *,
    optimizer: str,
    batch_size: int,
    epochs: int,
    grid: tuple[float, ...],
    validation: tuple[Array, Array],
    target: float,
    seeds: int = 3,
    tuning_seeds: int = 1,
    **train_kwargs: Any,
) -> CellResult:
    r"""Pick the peak learning rate from ``grid`` by validation accuracy, then train ``seeds`` fresh runs.

    Tuning: every grid value trains ``tuning_seeds`` runs (seeds ``10000 + i``); the value with the
    highest mean validation accuracy after the last epoch wins (diverged runs count as 0). Reported:
    ``seeds`` runs (seeds ``0 .. seeds - 1``) at that value, their test accuracy per epoch and the
    epochs they take to reach ``target`` test accuracy. ``train_kwargs`` go to :func:`train_runs`
    (``warmup_epochs``, ``momentum``, ``weight_decay``, ``trust_coefficient``).
    """
    grid_arr = np.sort(np.asarray(grid, dtype=np.float64))
    if grid_arr.ndim != 1 or grid_arr.size == 0:
        raise ValueError(f"grid must be a non-empty list of learning rates, got {grid!r}")
    seeds = check_positive_int("seeds", seeds)
    tuning_seeds = check_positive_int("tuning_seeds", tuning_seeds)
    lrs = np.repeat(grid_arr, tuning_seeds)
    # The tuning and the reported runs in calls of one size: one compiled program per cell.
    common = dict(
        optimizer=optimizer, batch_size=batch_size, epochs=epochs, validation=validation,
        runs_per_call=min(seeds, lrs.size), **train_kwargs,
    )  # fmt: skip
    tune_seeds = TUNING_SEED_OFFSET + np.tile(np.arange(tuning_seeds), grid_arr.size)
    tuning = train_runs(problem, init, learning_rates=lrs, seeds=tune_seeds, **common)
    final_val = tuning.validation_accuracy[:, -1].reshape(grid_arr.size, tuning_seeds)
    diverged = tuning.diverged.reshape(grid_arr.size, tuning_seeds).sum(axis=1)
    score = np.nan_to_num(final_val, nan=0.0).mean(axis=1)
    best = int(np.argmax(score))
    finite = ~np.isnan(final_val)
    counts = finite.sum(axis=1)
    grid_validation = np.where(counts > 0, np.where(finite, final_val, 0.0).sum(axis=1) / np.maximum(counts, 1), np.nan)
    curves = train_runs(problem, init, learning_rates=np.full(seeds, grid_arr[best]), seeds=np.arange(seeds), **common)
    return CellResult(
        optimizer=optimizer,
        batch_size=int(batch_size),
        grid=grid_arr,
        grid_validation=grid_validation,
        grid_diverged=diverged,
        learning_rate=float(grid_arr[best]),
        at_edge=grid_arr.size > 1 and best in (0, grid_arr.size - 1),
        curves=curves,
        epochs_to_target=epochs_to_target(curves.test_accuracy, target),
        target=float(target),
    )
