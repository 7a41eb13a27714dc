"""What a large-batch study says: per optimizer and batch size the tuned learning rate, the test accuracy and the
epochs to target; per optimizer the drop from the smallest to the largest batch and how far accuracy holds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._optimizers import LABELS
from ._study import CellResult


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (NaN, NaN without any; s.d. 0 for one)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def summarize_cells(cells: Mapping[tuple[str, int], CellResult], *, tolerance: float = 0.01) -> dict:
    """Per optimizer and batch size (the keys of ``cells``, in their order): tuned lr, test accuracy (mean, s.d.,
    per seed), epochs to target; per optimizer, the accuracy drop from the smallest to the largest batch and the
    largest batch whose mean accuracy stays within ``tolerance`` of the optimizer's own at the smallest batch.

    Returns a JSON-ready dict: ``rows`` (one per cell), ``per_optimizer``, ``best_at_largest_batch``,
    ``tolerance``; :func:`format_summary` prints it as ``flatter large-batch`` does.
    """
    optimizers = list(dict.fromkeys(name for name, _ in cells))
    rows, per_optimizer = [], {}
    for name in optimizers:
        batches = sorted(b for o, b in cells if o == name)
        means = []
        for batch in batches:
            cell = cells[name, batch]
            mean, sd = mean_sd(cell.final_test_accuracy)
            reached = np.isfinite(cell.epochs_to_target)
            e_mean, e_sd = mean_sd(cell.epochs_to_target)
            rows.append(
                {
                    "optimizer": name,
                    "batch_size": batch,
                    "learning_rate": cell.learning_rate,
                    "at_grid_edge": cell.at_edge,
                    "grid": cell.grid,
                    "grid_validation_accuracy": cell.grid_validation,
                    "grid_diverged_runs": cell.grid_diverged,
                    "test_accuracy_mean": mean,
                    "test_accuracy_sd": sd,
                    "test_accuracy_per_seed": cell.final_test_accuracy,
                    "diverged_seeds": int(cell.curves.diverged.sum()),
                    "epochs_to_target_mean": e_mean,
                    "epochs_to_target_sd": e_sd,
                    "reached_target": int(reached.sum()),
                }
            )
            means.append(mean)
        means = np.array(means)
        holds = np.nan_to_num(means, nan=-1.0) >= means[0] - tolerance
        largest = batches[int(np.argmin(holds)) - 1] if not holds.all() else batches[-1]
        per_optimizer[name] = {
            "smallest_batch_accuracy": float(means[0]),
            "largest_batch_accuracy": float(means[-1]),
            "drop": float(means[0] - means[-1]),
            "largest_batch_within_tolerance": int(largest) if holds[0] else None,
        }
    best_at_largest = max(optimizers, key=lambda o: np.nan_to_num(per_optimizer[o]["largest_batch_accuracy"]))
    return {
        "tolerance": tolerance,
        "rows": rows,
        "per_optimizer": per_optimizer,
        "best_at_largest_batch": best_at_largest,
    }


def format_summary(summary: dict) -> str:
    """The table ``flatter large-batch`` prints: the grids, every cell, the drop and how far accuracy holds.

    Needs ``dataset``, ``model``, ``train_examples``, ``epochs`` and ``target_accuracy`` beside what
    :func:`summarize_cells` returns (the driver adds them).
    """
    lines = [
        f"{summary['dataset']} {summary['model']}: {summary['train_examples']} training images, "
        f"{summary['epochs']} epochs at every batch size; test accuracy (mean ± s.d. over seeds), epochs to "
        f"{summary['target_accuracy']:.0%} test accuracy (runs that reached it)"
    ]
    grids = {}
    for r in summary["rows"]:
        grids.setdefault(r["optimizer"], r["grid"])
    lines.append("  learning-rate grids (peak values, the same at every batch size):")
    for name, grid in grids.items():
        lines.append(f"    {LABELS[name]:5s} " + " ".join(f"{v:g}" for v in grid))
    lines.append(f"  {'optimizer':9s} {'B':>5s} {'tuned lr':>9s}  {'test accuracy':>16s}  {'epochs to target':>17s}")
    for r in summary["rows"]:
        edge = "*" if r["at_grid_edge"] else " "
        reach = f"{r['epochs_to_target_mean']:.1f} ± {r['epochs_to_target_sd']:.1f}" if r["reached_target"] else "-"
        lines.append(
            f"  {LABELS[r['optimizer']]:9s} {r['batch_size']:5d} {r['learning_rate']:9.3g}{edge} "
            f"{r['test_accuracy_mean']:.4f} ± {r['test_accuracy_sd']:.4f}  {reach:>12s} ({r['reached_target']}/"
            f"{len(r['test_accuracy_per_seed'])})"
        )
    lines.append("  (* the tuned value is at the edge of its grid)")
    rows = summary["rows"]
    smallest, largest = rows[0]["batch_size"], max(r["batch_size"] for r in rows)
    lines += [
        "",
        f"accuracy from B={smallest} to B={largest}, and the largest batch within "
        f"{summary['tolerance']:.0%} of B={smallest}:",
    ]
    for name, p in summary["per_optimizer"].items():
        hold = p["largest_batch_within_tolerance"]
        lines.append(
            f"  {LABELS[name]:5s} {p['smallest_batch_accuracy']:.4f} -> {p['largest_batch_accuracy']:.4f} "
            f"(drop {100 * p['drop']:+.1f} pt), holds to B={hold}"
        )
    lines.append(f"best at B={largest}: {LABELS[summary['best_at_largest_batch']]}")
    return "\n".join(lines)
