r"""The figure of ``flatter fashion-mnist`` / ``flatter cifar10``: what phase 2 does to a network's curves, the
steps to settle against :math:`\eta` and the exponents of both criteria."""

from __future__ import annotations

import numpy as np

from ..sweep import ScalingSummary, SweepResults
from ._axes import agg_pyplot
from ._scaling import exponents, settling_times


def curves(ax, results: SweepResults, curve: str, *, eta_index: int | None = None, variant: str = "sgdm") -> None:
    """A recorded curve (``curve_<name>``) against the phase-2 step per gamma at one eta (the middle one by
    default): the median over seeds and its range, on a symlog axis that keeps step 0 (the end of phase 1)."""
    plt = agg_pyplot()
    spec = results.spec
    eta_index = len(spec.etas) // 2 if eta_index is None else eta_index
    eta = spec.etas[eta_index]
    first_record = None
    for i, g in enumerate(spec.gammas):
        d = results.sel(variant=variant, gamma=g, eta=eta)
        color = plt.cm.viridis(i / max(len(spec.gammas) - 1, 1))
        horizon = int(np.max(d["horizon"]))
        steps = np.arange(spec.records + 1) * (horizon // spec.records)
        first_record = steps[1] if first_record is None else min(first_record, steps[1])
        values = d[f"curve_{curve}"].reshape(-1, spec.records + 1)  # (seeds, records + 1)
        ax.plot(steps, np.nanmedian(values, axis=0), color=color, label=rf"$\gamma$ = {g:.2f}")
        ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.2)
    ax.set_xscale("symlog", linthresh=max(int(first_record or 1), 1))
    ax.set_xlim(0, None)
    ax.set_xlabel("phase-2 step")


def network_figure(
    results: SweepResults,
    summary: ScalingSummary,
    *,
    trace_start: float,
    accuracy_start: float,
    title: str = "",
):
    r"""Four panels: tr :math:`\nabla^2L` and test accuracy against the step per :math:`\gamma` (the sweep must
    record the curves ``trace`` and ``test_accuracy``), :math:`T_\mathrm{settle}` against :math:`\eta` with the
    fits, and :math:`\alpha(\gamma)` for the trace's settling and the accuracy plateau (``summary`` from
    ``summarize(results.with_criterion("accuracy_plateau", *results.plateau_times()), criteria=("settle",
    "first", "accuracy_plateau"))``). Returns the matplotlib figure."""
    plt = agg_pyplot()
    spec = results.spec
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4), constrained_layout=True)
    eta = spec.etas[len(spec.etas) // 2]
    curves(axes[0], results, "trace")
    axes[0].axhline(trace_start, color="k", lw=0.6, ls=":", label="after phase 1")
    axes[0].axhline(spec.threshold, color="r", lw=0.8, ls="--", label="criterion")
    axes[0].set(
        ylabel=r"tr$\nabla^2 L$ (Hutchinson; median, range over seeds)",
        title=rf"label-noise SGDM lowers tr$\nabla^2L$ ($\eta$ = {eta:g})",
    )
    curves(axes[1], results, "test_accuracy")
    axes[1].axhline(accuracy_start, color="k", lw=0.6, ls=":", label="after phase 1")
    axes[1].set(ylabel="test accuracy", title="test accuracy")
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    settling_times(axes[2], results, summary, title=r"tr$\nabla^2L$: steps to settle (lines: determined fits)")
    exponents(axes[3], summary, criteria=("settle", "accuracy_plateau"), title=r"exponent $\alpha(\gamma)$")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
