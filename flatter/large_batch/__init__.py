"""Large-batch training studies: MSGD, SNGM, LARS and Adam at a fixed epoch budget, tuned per batch size."""

from ._optimizers import LABELS as LABELS, OPTIMIZERS as OPTIMIZERS, large_batch_optimizer as large_batch_optimizer
from ._study import (
    CellResult as CellResult,
    epochs_to_target as epochs_to_target,
    tune_and_train as tune_and_train,
)
from ._summary import format_summary as format_summary, mean_sd as mean_sd, summarize_cells as summarize_cells
from ._train import TrainingCurves as TrainingCurves, train_runs as train_runs

__all__ = [
    "LABELS",
    "OPTIMIZERS",
    "large_batch_optimizer",
    "CellResult",
    "epochs_to_target",
    "tune_and_train",
    "format_summary",
    "mean_sd",
    "summarize_cells",
    "TrainingCurves",
    "train_runs",
]
