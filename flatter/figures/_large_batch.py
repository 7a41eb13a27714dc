"""The figure of ``flatter large-batch``: accuracy, epochs to target and the tuned learning rate against B."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..large_batch import LABELS, OPTIMIZERS, CellResult
from ._axes import agg_pyplot


def large_batch_figure(
    cells: Mapping[tuple[str, int], CellResult],
    summary: dict,
    *,
    epochs: int,
    target_accuracy: float,
    caption: str = "",
):
    """Three panels against the batch size per optimizer: final test accuracy (the summary's mean ± s.d., the
    seeds as dots), epochs to ``target_accuracy`` (triangles: no seed reached it within ``epochs``), and the tuned
    peak learning rate (squares: at its grid's edge). ``summary`` is :func:`flatter.large_batch.summarize_cells`'s.
    Returns the matplotlib figure."""
    plt = agg_pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    colors = dict(zip(OPTIMIZERS, ("C0", "C3", "C2", "C7"), strict=True))
    rows = {(r["optimizer"], r["batch_size"]): r for r in summary["rows"]}  # the table's means, s.d. and epochs
    optimizers = list(dict.fromkeys(name for name, _ in cells))
    for i, name in enumerate(optimizers):
        c = colors[name]
        batches = np.array(sorted(b for o, b in cells if o == name))
        acc = np.array([cells[name, b].final_test_accuracy for b in batches])  # (batches, seeds)
        mean = np.array([rows[name, b]["test_accuracy_mean"] for b in batches])
        sd = np.array([rows[name, b]["test_accuracy_sd"] for b in batches])
        axes[0].errorbar(batches, mean, yerr=sd, color=c, marker="o", capsize=3, label=LABELS[name])
        axes[0].plot(np.repeat(batches, acc.shape[1]), acc.reshape(-1), ".", color=c, alpha=0.3, ms=4)
        reached = np.isfinite(np.array([cells[name, b].epochs_to_target for b in batches]))
        e_mean = np.array([rows[name, b]["epochs_to_target_mean"] for b in batches])
        axes[1].plot(batches, e_mean, "o-", color=c, label=LABELS[name])
        never = ~reached.any(axis=1)
        top = np.full(never.sum(), epochs + 0.3 * (i + 1))  # staggered, so that no optimizer hides another
        axes[1].plot(batches[never], top, "^", color=c, mfc="none", ms=9)
        lr = np.array([cells[name, b].learning_rate for b in batches])
        edge = np.array([cells[name, b].at_edge for b in batches])
        axes[2].plot(batches, lr, "o-", color=c, label=LABELS[name])
        axes[2].plot(batches[edge], lr[edge], "s", color=c, mfc="none", ms=11)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size B")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy (mean ± s.d.; dots: seeds)")
    axes[0].set_title(f"{epochs} epochs at every B (same gradient evaluations)")
    axes[0].legend()
    axes[1].axhline(epochs, color="k", lw=0.8, ls=":")
    axes[1].set_ylabel(f"epochs to {target_accuracy:.0%} test accuracy")
    axes[1].set_title("epochs to target (triangles: no seed reached it)")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("tuned peak learning rate")
    axes[2].set_title("tuned on validation (squares: grid edge)")
    if caption:
        fig.suptitle(caption, fontsize=10)
    fig.tight_layout()
    return fig
