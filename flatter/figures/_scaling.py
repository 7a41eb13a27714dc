r"""The scaling figure of ``flatter scaling``, panel by panel, for any sweep's results and summary.

Each panel is a function of the results (or the :class:`~flatter.sweep.ScalingSummary`) and an ``ax``, so a
notebook draws the CLI's figure of its own sweep, or one panel of it beside its own::

    summary = flatter.sweep.summarize(results)
    flatter.figures.scaling_figure(results, summary).savefig("scaling.png")
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np

from ..sweep import ScalingSummary, SweepResults, gamma_text, interval_text
from ._axes import agg_pyplot, draw_lower_bounds, grid_ticks


def _as_list(results: SweepResults | Sequence[SweepResults]) -> list[SweepResults]:
    return [results] if isinstance(results, SweepResults) else list(results)


def settling_times(
    ax, results: SweepResults | Sequence[SweepResults], summary: ScalingSummary, *, title: str | None = None
) -> dict:
    r"""Median :math:`T_\mathrm{settle}` (IQR) against :math:`\eta` per :math:`\gamma` for SGDM and SGD at the same
    :math:`\eta`, with the fit line where the exponent is determined and censored medians as lower bounds.

    Returns the variants left out, ``{variant: [runs, censored, diverged]}``, for the figure's note.
    """
    plt = agg_pyplot()
    all_results = _as_list(results)
    gammas_all = sorted({g for res in all_results for g in res.spec.gammas})
    palette = plt.cm.tab10(np.arange(10))
    color_of = {g: palette[i % 10] for i, g in enumerate(gammas_all)}
    omitted: dict[str, np.ndarray] = {}
    all_etas: set[float] = set()
    for res in all_results:
        spec = res.spec
        etas = np.array(spec.etas)
        all_etas.update(spec.etas)
        for variant in spec.variants:
            if variant not in ("sgdm", "sgd-same-eta"):
                sel = res.sel(variant=variant)
                counts = [sel["censored_settle"].size, sel["censored_settle"].sum(), sel["diverged"].sum()]
                omitted[variant] = omitted.get(variant, 0) + np.array(counts)
                continue
            for g in spec.gammas if variant == "sgdm" else spec.gammas[:1]:
                t, c = res.times(variant, g, "settle")
                med = np.median(np.where(c, np.inf, t), axis=-1)
                lo, hi = np.percentile(t, 25, axis=-1), np.percentile(t, 75, axis=-1)
                color = color_of[g] if variant == "sgdm" else (0.4, 0.4, 0.4, 1.0)
                label = rf"$\gamma$ = {g:.2f}" if variant == "sgdm" else r"SGD, same $\eta$"
                known = np.isfinite(med)
                if known.any():
                    ax.errorbar(
                        etas[known],
                        med[known],
                        yerr=[
                            med[known] - np.minimum(lo[known], med[known]),
                            np.maximum(hi[known], med[known]) - med[known],
                        ],
                        fmt="o" if variant == "sgdm" else "x",
                        color=color,
                        label=label,
                        ms=4,
                        capsize=2,
                    )
                    label = None
                if (~known).any():  # censored median: the horizon is a lower bound
                    bound = np.max(t, axis=-1)[~known]
                    draw_lower_bounds(
                        ax, etas[~known], bound, color, label=label + " (censored: ≥ horizon)" if label else None
                    )
                row = summary.row(variant, g, "settle")
                if row.determined:
                    used = np.asarray(row.fit.medians, float)
                    span = etas[np.isfinite(used)] if np.isfinite(used).any() else etas
                    grid = np.geomspace(span.min(), span.max(), 20)
                    ax.plot(grid, row.fit.prefactor * grid**-row.alpha, color=color, lw=1)
    ax.plot([], [], "o", mfc="none", color="k", label="censored median: lower bound")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"$\eta$",
        ylabel=r"$T_\mathrm{settle}$ (steps; median, IQR)",
        title=title or rf"{summary.problem}: steps to settle, $1-\beta = C\eta^\gamma$ (lines: determined fits)",
    )
    grid_ticks(ax, all_etas)
    low, high = ax.get_ylim()
    ax.set_ylim(low / 6, high)  # room for the legend under the data
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    return omitted


CRITERION_LABELS = {"settle": "settling", "first": "first passage"}


def exponents(
    ax, summary: ScalingSummary, criteria: tuple[str, str] = ("settle", "first"), *, title: str | None = None
) -> None:
    r""":math:`\alpha(\gamma)` with 95% bootstrap intervals against the :math:`\eta\to0` theory, and the measured
    :math:`\gamma^*`; undetermined exponents hollow and grey with their whole interval. ``criteria``: the two
    convergence times drawn (filled, then hollow), e.g. ``("settle", "accuracy_plateau")``."""
    from ..timescales import alpha as alpha_theory

    grid = np.linspace(0, 0.9, 91)
    ax.plot(grid, alpha_theory(grid), "k-", lw=1, label=r"theory, settling ($\eta\to 0$)")
    ax.plot(grid, alpha_theory(grid, "first"), "k:", lw=1, label="theory, first passage")
    lows, highs = [0.0], [2.3]
    for variant, marker, color in (("sgdm", "o", "C0"), ("nesterov", "^", "C2"), ("sgd-eta-eff", "s", "C3")):
        for criterion, filled in zip(criteria, (True, False), strict=True):
            rows = [r for r in summary.rows if r.variant == variant and r.criterion == criterion]
            good = [r for r in rows if r.determined]
            bad = [r for r in rows if not r.determined and np.isfinite(r.alpha)]
            shift = 0.0 if filled else 0.006
            if good:
                g = np.array([r.gamma for r in good]) + shift
                a = np.array([r.alpha for r in good])
                err = np.abs(np.array([[r.alpha - r.fit.ci[0], r.fit.ci[1] - r.alpha] for r in good]).T)
                ax.errorbar(
                    g,
                    a,
                    yerr=err,
                    fmt=marker,
                    color=color,
                    mfc=color if filled else "none",
                    capsize=2,
                    label=f"{variant}, {CRITERION_LABELS.get(criterion, criterion.replace('_', ' '))}",
                )
                lows.append(float(np.min(a - err[0])))
            for r in bad:  # hollow and grey, with the whole interval: a value that is not a measurement
                lo, hi = min(r.fit.ci[0], r.alpha - r.se), max(r.fit.ci[1], r.alpha + r.se)
                ax.errorbar(
                    [r.gamma + shift],
                    [r.alpha],
                    yerr=[[r.alpha - lo], [hi - r.alpha]],
                    fmt=marker,
                    color="0.6",
                    mfc="none",
                    capsize=2,
                )
                ax.annotate(
                    f"undetermined\n(s.e. {r.se:.2f})",
                    (r.gamma + shift, r.alpha),
                    fontsize=6,
                    color="0.4",
                    xytext=(4, -12),
                    textcoords="offset points",
                )
                lows.append(lo)
                highs.append(hi)
    gs = summary.gamma_star
    if gs is not None:
        lo, hi = gs.fit.ci
        ax.axvspan(min(lo, gs.gamma - 0.004), max(hi, gs.gamma + 0.004), color="C1", alpha=0.3, lw=0)
        ax.axvline(gs.gamma, color="C1", lw=1.5)
        # A gamma* or an interval end on the grid's edge is a bound: printed as one (>=, <=).
        value = gamma_text(gs.gamma, gs.gammas)
        value = value if value[0] in "<>" else f"= {value}"
        shown = f"{value} {interval_text(lo, hi, gs.gammas, 3)}".replace(">=", "≥").replace("<=", "≤")
        text = rf"measured $\gamma^*$ {shown}" + "\n" + rf"at $\eta$ = {gs.eta:g}"
        if summary.kappa is not None:
            text += "\n" + rf"$\kappa = \sigma^2/(4BC^3)$ = {summary.kappa:.3g}"
        right = gs.gamma > 0.6  # the label on the side with room, inside the axes
        ax.text(
            gs.gamma + (-0.01 if right else 0.01),
            0.97,
            text,
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            va="top",
            ha="right" if right else "left",
            color="C1",
        )
    ax.axvline(2 / 3, color="k", lw=0.6, ls="--")
    ax.set(
        xlabel=r"$\gamma$",
        ylabel=r"$\alpha$ in $T\propto\eta^{-\alpha}$ (95% bootstrap CI)",
        title=title or r"exponent $\alpha(\gamma)$; theory's $\gamma^*$ = 2/3 is its $\eta\to 0$ limit",
        ylim=(min(lows) - 0.05, max(highs) + 0.05),
    )
    ax.legend(fontsize=7, loc="lower left")


def gamma_star(ax, summary: ScalingSummary) -> None:
    r""":math:`\gamma^*(\eta)`: measured (points, 95% bootstrap CI) beside the reduced SDE's prediction (line, band).

    Needs ``summary.predicted`` (``summarize(..., predicted=predict_spec(spec))``).
    """
    pred = summary.predicted
    if pred is None:
        raise ValueError("summary.predicted is None: summarize(results, predicted=flatter.sweep.predict_spec(spec))")
    etas = np.asarray(pred.etas)
    band = np.asarray(pred.gamma_star_ci)
    gammas = pred.gammas
    # One prediction per eta, one bar each: a band filled between the etas would invent values in between.
    ax.vlines(etas, band[:, 0], band[:, 1], color="C2", alpha=0.3, lw=9, label="predicted 95% band")
    # A band's end on the grid's edge is open: the bootstrap's vertices reached the edge, so it lies beyond.
    for end, edge, marker in ((1, max(gammas), "^"), (0, min(gammas), "v")):
        open_end = np.isclose(band[:, end], edge)
        if open_end.any():
            ax.plot(
                etas[open_end], band[open_end, end], marker, color="C2", alpha=0.6, ms=9, ls="none",
                label=f"predicted band open past the grid's edge ({marker})",
            )  # fmt: skip
    predicted = np.asarray(pred.gamma_star, float)
    # A gamma* on the grid's edge is a bound (the vertex lies beyond it): drawn as a caret, not joined to the values.
    edge_p = _at_edge(predicted, gammas)
    ax.plot(etas, np.where(edge_p, np.nan, predicted), "s-", color="C2", ms=4, label="predicted (reduced SDE)")
    _bounds(ax, etas, predicted, edge_p, gammas, "C2", r"predicted, a bound ($\geq$ / $\leq$ the grid's edge)")
    measured = summary.gamma_star
    if measured is not None:
        m = np.asarray(measured.fit.per_eta, float)
        ci = np.asarray(measured.fit.per_eta_ci)
        edge_m = _at_edge(m, gammas)
        inside = ~edge_m
        e = np.asarray(measured.etas)
        ax.errorbar(
            e[inside], m[inside], yerr=[(m - ci[:, 0])[inside], (ci[:, 1] - m)[inside]], fmt="o", color="C1",
            capsize=2, label="measured (95% bootstrap CI)",
        )  # fmt: skip
        _bounds(ax, e, m, edge_m, gammas, "C1", r"measured, a bound ($\geq$ / $\leq$ the grid's edge)")
    ax.axhline(2 / 3, color="k", ls="--", lw=0.8, label=r"2/3 (the $\eta\to0$ theory)")
    for edge in (min(gammas), max(gammas)):
        ax.axhline(edge, color="0.7", lw=0.6)
    ax.text(
        0.02,
        0.02,
        textwrap.fill("grey lines: the gamma grid's edges (a gamma* there is a bound). " + summary.regime, 44),
        transform=ax.transAxes,
        fontsize=6,
        color="0.3",
        va="bottom",
        wrap=True,
    )
    ax.set(
        xscale="log",
        xlabel=r"$\eta$",
        ylabel=r"$\gamma^*(\eta)$, vertex of $\log T_\mathrm{settle}$ over $\gamma$",
        title=r"$\gamma^*(\eta)$: measured vs predicted",
        ylim=(min(gammas) - 0.03, max(gammas) + 0.03),
    )
    grid_ticks(ax, etas)
    ax.legend(fontsize=7, loc="lower right")  # below the gamma* values and the 2/3 line: no point hidden


def _at_edge(values: np.ndarray, gammas) -> np.ndarray:
    """Which gamma* sit on the gamma grid's edge (so they are bounds, not values)."""
    values = np.asarray(values, float)
    lo, hi = min(gammas), max(gammas)
    return np.isfinite(values) & ((np.abs(values - hi) < 1e-6) | (np.abs(values - lo) < 1e-6))


def _bounds(ax, etas, values, edge, gammas, color: str, label: str) -> None:
    """Carets at the grid's edge: up for gamma* >= the largest gamma, down for <= the smallest."""
    if not edge.any():
        return
    up = edge & (np.asarray(values) > np.mean([min(gammas), max(gammas)]))
    first = True
    for mask, marker in ((up, "^"), (edge & ~up, "v")):
        if mask.any():
            ax.plot(
                np.asarray(etas)[mask], np.asarray(values)[mask], marker, color=color, mfc="none", ms=7, ls="none",
                label=label if first else None,
            )  # fmt: skip
            first = False


def scaling_figure(results: SweepResults | Sequence[SweepResults], summary: ScalingSummary):
    r"""The paper's figure: :math:`T_\mathrm{settle}` against :math:`\eta` per :math:`\gamma`, :math:`\alpha(\gamma)`,
    and :math:`\gamma^*(\eta)` against the prediction when the summary has one. Returns the matplotlib figure.

    Series left out of the left panel (baselines other than SGD at the same eta) are named, with their censored
    and diverged counts, in a note under the figure.
    """
    plt = agg_pyplot()
    pred = summary.predicted
    fig, axes = plt.subplots(1, 3 if pred else 2, figsize=(17.5 if pred else 12, 4.8), constrained_layout=True)
    omitted = settling_times(axes[0], results, summary)
    exponents(axes[1], summary)
    if pred is not None:
        gamma_star(axes[2], summary)
    lines = [caption(results)]
    if omitted:
        notes = [
            f"{v} ({n} runs, {c} censored, {d} diverged; its exponents are in the middle panel)"
            for v, (n, c, d) in omitted.items()
        ]
        lines.append("not drawn on the left: " + "; ".join(notes))
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="0.3", va="bottom")
    fig.get_layout_engine().set(h_pad=0.12 * len(lines) + 0.05)
    return fig


def caption(results: SweepResults | Sequence[SweepResults]) -> str:
    """One line with the sizes behind a scaling figure: the problem and its size, sigma, C, B, seeds, the criterion."""
    specs = [r.spec for r in ([results] if isinstance(results, SweepResults) else results)]
    spec = specs[0]
    size = ", ".join(f"{k}={v}" for k, v in sorted(spec.problem_kwargs.items()) if not isinstance(v, dict | list))

    def values(name):
        return "/".join(
            f"{v:g}" if isinstance(v, float | int) else str(v)
            for v in sorted({x for s in specs for x in getattr(s, name)}, key=str)
        )

    batch = "/".join(sorted({"n" if b is None else str(b) for s in specs for b in s.batch_sizes}))
    criterion = f"{spec.observable} {'<' if spec.below else '>'} {spec.threshold:g}" + (
        " x its start" if spec.relative_threshold else ""
    )
    return (
        f"{spec.problem}{f' ({size})' if size else ''}: σ = {values('sigmas')}, C = {values('Cs')}, B = {batch}, "
        f"{'/'.join(str(s.seeds) for s in specs)} seeds per point, criterion {criterion}; "
        r"$1-\beta = C\eta^\gamma$"
    )
