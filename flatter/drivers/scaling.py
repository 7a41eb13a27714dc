"""The 2/3 scaling experiment: sweeps over (gamma, eta) per preset, fits of alpha(gamma), gamma*, figure."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import numpy as np

from .._io import environment, save_json
from ..sweep import SweepResults, SweepSpec, optimal_gamma, power_law, predict_spec, run_sweep
from ..timescales import alpha as alpha_theory

GAMMAS_LOW = (0.0, 0.25)
GAMMAS_HIGH = (0.5, 0.6, 2 / 3, 0.75, 0.85)


def presets(problem: str, preset: str) -> list[SweepSpec]:
    """The sweeps of a preset. ``quick`` is sized for 2 CPU cores in minutes; ``paper`` is the full grid.

    Every preset has the baselines of THEORY §5 (label-noise SGD at the same eta and at eta_eff);
    ``paper`` adds Nesterov momentum and, where the problem allows minibatches, SGD noise without
    label noise. gamma <= 0.25 needs larger learning rates (T ~ eta^-2 + 2 gamma), so it is a separate
    sweep with its own eta grid, as in THEORY §6.7.
    """
    quick = preset == "quick"
    if preset not in ("quick", "paper"):
        raise ValueError(f"preset must be one of 'quick', 'paper', got {preset!r}")
    if problem == "toy-valley":
        common = dict(
            problem="toy-valley",
            observable="abs_y",
            threshold=0.1,
            phase1=False,
            label_noise_mode="one",
            seeds=32 if quick else 128,
        )
        variants = ("sgdm", "sgd-eta-eff") if quick else ("sgdm", "nesterov", "sgd-eta-eff")
        return [
            SweepSpec(gammas=GAMMAS_LOW, etas=(0.1, 0.05, 0.025, 0.0125), variants=variants, **common),
            SweepSpec(
                gammas=GAMMAS_HIGH,
                etas=(0.01, 0.004, 0.0016, 0.00064),
                variants=variants + ("sgd-same-eta",),
                max_steps=2**16 if quick else 2**20,
                **common,
            ),
        ]
    if problem == "matrix-sensing":
        common = dict(
            problem="matrix-sensing",
            problem_kwargs={"d": 20, "r": 2, "n": 100},
            observable="recovery_error",
            threshold=0.2,
            # sigma^2/(4 C^3) ~ 0.006: the along-valley oscillation at gamma = 2/3 is underdamped, as on the toy
            sigmas=(0.032,),
            Cs=(0.35,),
            label_noise_mode="one",
            seeds=8 if quick else 32,
            horizon_factor=2.0 if quick else 3.0,
        )
        variants = (
            ("sgdm", "sgd-eta-eff", "sgd-same-eta") if quick else ("sgdm", "nesterov", "sgd-eta-eff", "sgd-same-eta")
        )
        specs = [
            SweepSpec(
                gammas=GAMMAS_HIGH,
                etas=(0.008, 0.004, 0.002, 0.001, 0.0005),
                variants=variants,
                max_steps=2**15 if quick else 2**20,
                **common,
            )
        ]
        if not quick:
            specs.append(SweepSpec(gammas=GAMMAS_LOW, etas=(0.008, 0.004, 0.002, 0.001), variants=("sgdm",), **common))
        return specs
    if problem == "teacher-student":
        # Criterion: tr Hess L down to 60% of its value at the phase-1 interpolator (the flow keeps lowering it
        # slowly, with no sharp end point; the test loss follows it).
        common = dict(
            problem="teacher-student",
            problem_kwargs={"d_in": 8, "k": 2, "m": 20, "n": 60},
            observable="trace_hessian",
            threshold=0.6,
            relative_threshold=True,
            sigmas=(0.1,),
            Cs=(0.5,),
            label_noise_mode="one",
            seeds=8 if quick else 32,
            horizon_factor=2.0 if quick else 3.0,
        )
        return [
            SweepSpec(
                gammas=GAMMAS_HIGH,
                etas=(0.008, 0.004, 0.002, 0.001, 0.0005),
                variants=("sgdm", "sgd-eta-eff"),
                max_steps=2**16 if quick else 2**20,
                **common,
            )
        ]
    raise ValueError(f"unknown problem name {problem!r}; choose one of toy-valley, matrix-sensing, teacher-student")


def _fits(results: SweepResults, variant: str, criterion: str):
    spec = results.spec
    rows = {}
    for g in spec.gammas:
        d = results.sel(variant=variant, gamma=g, C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0])
        rows[g] = power_law(spec.etas, d[f"T_{criterion}"], d[f"censored_{criterion}"])
    return rows


def summarize(all_results: list[SweepResults]) -> dict:
    """alpha per (variant, gamma, criterion) with errors, gamma* with its interval, censoring counts."""
    summary: dict = {"alpha": {}, "gamma_star": None, "censored": {}}
    high = None
    for res in all_results:
        for variant in res.spec.variants:
            for criterion in ("settle", "first"):
                for g, fit in _fits(res, variant, criterion).items():
                    summary["alpha"][f"{variant}|{g:.4f}|{criterion}"] = {
                        "variant": variant,
                        "gamma": g,
                        "criterion": criterion,
                        **fit.summary(),
                        "etas": list(res.spec.etas),
                    }
            sel = res.sel(variant=variant)
            summary["censored"][variant] = summary["censored"].get(variant, 0) + int(sel["censored_settle"].sum())
            summary.setdefault("diverged", {})
            summary["diverged"][variant] = summary["diverged"].get(variant, 0) + int(sel["diverged"].sum())
        if set(GAMMAS_HIGH) <= set(res.spec.gammas):
            high = res
    if high is not None:
        spec = high.spec
        times = np.stack(
            [
                high.sel(variant="sgdm", gamma=g, C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0])[
                    "T_settle"
                ]
                for g in spec.gammas
            ]
        )
        cens = np.stack(
            [
                high.sel(variant="sgdm", gamma=g, C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0])[
                    "censored_settle"
                ]
                for g in spec.gammas
            ]
        )
        opt = optimal_gamma(spec.gammas, spec.etas, times, cens)
        summary["kappa_two_thirds"] = _kappa_two_thirds(spec)
        summary["gamma_star"] = opt.summary(spec.etas)
    return summary


def _kappa_two_thirds(spec: SweepSpec) -> float | None:
    """The along-valley coupling sigma^2/(4 B C^3) that sets the dynamics at gamma = 2/3 (THEORY §6.6).

    At gamma = 2/3 every eta cancels from the reduced dynamics, so this number (with the valley's own
    curvature) decides whether the motion along the valley is underdamped, which the settling penalty
    above 2/3 needs. B is the number of noisy labels per step (1 for label-noise mode "one").
    """
    from ..sweep._grid import _problem_facts

    if spec.problem_digest is not None:  # a user's problem: n is not known from the spec alone
        if spec.label_noise_mode != "one" or spec.batch_sizes[0] is not None:
            return None
        return float(spec.sigmas[0] ** 2 / (4 * spec.Cs[0] ** 3))
    n = _problem_facts(spec.problem, json.dumps(spec.problem_kwargs, sort_keys=True))[1]
    batch = spec.batch_sizes[0]
    b = 1 if spec.label_noise_mode == "one" and batch is None else (n if batch is None else batch)
    return float(spec.sigmas[0] ** 2 / (4 * b * spec.Cs[0] ** 3))


def print_summary(summary: dict, problem: str) -> None:
    print(f"\nalpha in T ~ eta^-alpha, {problem} (settling / first passage; +- linearized s.e., [95% bootstrap CI])")
    print(f"{'variant':<14} {'gamma':>6} {'predicted':>9}  {'alpha_settle':>26}  {'alpha_first':>14}")
    by_key = summary["alpha"]
    for key, row in by_key.items():
        if row["criterion"] != "settle":
            continue
        first = by_key[key.replace("|settle", "|first")]
        pred = float(alpha_theory(row["gamma"])) if row["variant"] in ("sgdm", "nesterov") else float("nan")
        if row["variant"] == "sgd-same-eta":
            pred = 2.0
        ci = row["ci"]
        settle = f"{row['alpha']:.2f} +- {row['se']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
        dropped = f"  ({row['dropped_etas']} eta censored)" if row["dropped_etas"] else ""
        if np.isfinite(row["alpha"]) and not determined(row):
            dropped += f"  undetermined (s.e. > {UNDETERMINED_SE})"
        print(
            f"{row['variant']:<14} {row['gamma']:6.3f} {pred:9.2f}  {settle:>26}  "
            f"{first['alpha']:6.2f} +- {first['se']:.2f}{dropped}"
        )
    gs = summary["gamma_star"]
    if gs is not None:
        print(
            f"\ngamma* = argmin_gamma T_settle at the smallest eta = {gs['eta']:g} (parabolic vertex, SGDM): "
            f"{gs['gamma']:.3f}  95% bootstrap CI [{gs['ci'][0]:.3f}, {gs['ci'][1]:.3f}]"
        )
        per = ", ".join(
            f"{e:g}: {g:.3f} [{lo:.2f}, {hi:.2f}]"
            for e, g, (lo, hi) in zip(gs["etas"], gs["per_eta"], gs["per_eta_ci"], strict=True)
        )
        print(f"gamma*(eta): {per}")
        print(f"vertex of alpha_settle(gamma): {gs['alpha_vertex']:.3f}")
        if summary.get("kappa_two_thirds") is not None:
            print(
                f"along-valley coupling at gamma = 2/3: sigma^2/(4 B C^3) = {summary['kappa_two_thirds']:.3g} "
                "(eta cancels there; gamma* -> 2/3 only as eta -> 0, with finite-eta corrections)"
            )
    pred = summary.get("predicted")
    if pred is not None:
        per = ", ".join(
            f"{e:g}: {g:.3f} [{lo:.2f}, {hi:.2f}]"
            for e, g, (lo, hi) in zip(pred["etas"], pred["per_eta"], pred["per_eta_ci"], strict=True)
        )
        print(f"predicted gamma*(eta) (reduced SDE, {pred['model_evaluations']} force evaluations): {per}")
        print(f"regime: {regime_text(pred)}")
    print(f"censored runs (settling not reached within the horizon): {summary['censored']}")
    print(f"  of which diverged (non-finite parameters, masked): {summary.get('diverged', {})}")


def regime_text(pred: dict) -> str:
    """Which side of the regime map a run is on, from its predicted overshoot at gamma = 2/3 (theory/regime_map.py)."""
    kappa, overshoot = pred["kappa_two_thirds"], pred["overshoot_two_thirds"]
    if overshoot is not None and np.isfinite(overshoot) and overshoot > 1.05:
        return (
            f"underdamped along the valley at gamma = 2/3 (kappa = {kappa:.3g}; predicted T_settle/T_first = "
            f"{overshoot:.2f}): the overshoot that penalizes gamma > 2/3 is there"
        )
    return (
        f"overdamped along the valley at gamma = 2/3 (kappa = {kappa:.3g}; predicted T_settle/T_first = "
        f"{overshoot:.2f}): no overshoot, so no penalty above 2/3 from the valley dynamics; gamma* -> 2/3 only "
        "logarithmically in eta"
    )


UNDETERMINED_SE = 0.15
"""An exponent whose standard error exceeds this is *undetermined*: no fit line is drawn through it,
its point is drawn hollow and grey with its whole interval, and the summary says so."""


def determined(row: dict) -> bool:
    """Whether a fitted exponent means something: finite, with a standard error <= UNDETERMINED_SE."""
    return bool(np.isfinite(row["alpha"]) and np.isfinite(row["se"]) and row["se"] <= UNDETERMINED_SE)


def draw_lower_bounds(ax, x, bound, color, **kwargs) -> None:
    """Censored values as lower bounds: hollow markers at ``bound`` with an upward arrow."""
    ax.errorbar(x, bound, yerr=0.35 * bound, lolims=True, fmt="o", mfc="none", color=color, ms=5, capsize=0, **kwargs)


def grid_ticks(ax, values) -> None:
    """Ticks at a log axis's grid values only, labelled where they cannot collide (no minor labels)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks, labels, last = sorted(values), [], None
    for e in ticks:  # a label only where it cannot collide with the previous one (a factor 1.5 apart)
        labels.append(f"{e:.3g}" if last is None or e / last >= 1.5 else "")
        last = e if labels[-1] else last
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels(labels, fontsize=7, rotation=30)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_gamma_star(ax, measured: dict | None, pred: dict) -> None:
    """gamma*(eta): measured (points, 95% bootstrap CI) beside the reduced SDE's prediction (line, band)."""
    etas = np.array(pred["etas"])
    band = np.array(pred["per_eta_ci"])
    ax.fill_between(etas, band[:, 0], band[:, 1], color="C2", alpha=0.25, lw=0)
    ax.plot(etas, pred["per_eta"], "s-", color="C2", ms=4, label="predicted (reduced SDE)")
    if measured is not None:
        m = np.array(measured["per_eta"])
        ci = np.array(measured["per_eta_ci"])
        ax.errorbar(
            measured["etas"], m, yerr=[m - ci[:, 0], ci[:, 1] - m], fmt="o", color="C1", capsize=2, label="measured"
        )
    gammas = pred["gammas"]
    ax.axhline(2 / 3, color="k", ls="--", lw=0.8, label="2/3 (the $\\eta\to0$ theory)")
    for edge in (min(gammas), max(gammas)):
        ax.axhline(edge, color="0.7", lw=0.6)
    ax.text(
        0.02,
        0.02,
        textwrap.fill("grey lines: the gamma grid's edges (a gamma* there is a bound). " + regime_text(pred), 75),
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
    ax.legend(fontsize=7, loc="center right")


def plot(all_results: list[SweepResults], summary: dict, path: Path, problem: str) -> None:
    """The paper's figure: T_settle against eta per gamma (fits where determined), and alpha(gamma).

    Censored medians are drawn as lower bounds (hollow markers with an upward arrow), undetermined
    fits are not drawn as lines, and every series left out of the left panel is named, with its
    censored and diverged counts, in a note under the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = summary.get("predicted")
    fig, axes = plt.subplots(1, 3 if pred else 2, figsize=(17.5 if pred else 12, 4.8), constrained_layout=True)
    gammas_all = sorted({g for res in all_results for g in res.spec.gammas})
    palette = plt.cm.tab10(np.arange(10))
    color_of = {g: palette[i % 10] for i, g in enumerate(gammas_all)}
    omitted: dict[str, np.ndarray] = {}  # variant -> [runs, censored, diverged]
    all_etas: set[float] = set()
    for res in all_results:
        spec = res.spec
        etas = np.array(spec.etas)
        all_etas.update(spec.etas)
        coords = dict(C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0])
        for variant in spec.variants:
            drawn = variant == "sgdm" or (variant == "sgd-same-eta" and spec.gammas)
            if not drawn:
                sel = res.sel(variant=variant)
                counts = [sel["censored_settle"].size, sel["censored_settle"].sum(), sel["diverged"].sum()]
                omitted[variant] = omitted.get(variant, 0) + np.array(counts)
                continue
            for g in spec.gammas if variant == "sgdm" else spec.gammas[:1]:
                d = res.sel(variant=variant, gamma=g, **coords)
                t, c = d["T_settle"], d["censored_settle"]
                med = np.median(np.where(c, np.inf, t), axis=-1)
                lo, hi = np.percentile(t, 25, axis=-1), np.percentile(t, 75, axis=-1)
                color = color_of[g] if variant == "sgdm" else (0.4, 0.4, 0.4, 1.0)
                label = rf"$\gamma$={g:.2f}" if variant == "sgdm" else "SGD, same $\\eta$"
                known = np.isfinite(med)
                if known.any():
                    axes[0].errorbar(
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
                        axes[0], etas[~known], bound, color, label=label + " (censored: ≥ horizon)" if label else None
                    )
                fit = summary["alpha"].get(f"{variant}|{g:.4f}|settle")
                if fit and determined(fit):
                    used = np.array(fit.get("medians", [np.nan] * len(etas)), float)
                    span = etas[np.isfinite(used)] if np.isfinite(used).any() else etas
                    grid = np.geomspace(span.min(), span.max(), 20)
                    axes[0].plot(grid, fit["prefactor"] * grid ** -fit["alpha"], color=color, lw=1)
    axes[0].plot([], [], "o", mfc="none", color="k", label="censored median: lower bound")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel=r"$\eta$",
        ylabel=r"$T_\mathrm{settle}$ (steps; median, IQR)",
        title=rf"{problem}: steps to settle, $1-\beta = C\eta^\gamma$ (lines: determined fits)",
    )
    grid_ticks(axes[0], all_etas)
    low, high = axes[0].get_ylim()
    axes[0].set_ylim(low / 6, high)  # room for the legend under the data
    axes[0].legend(fontsize=7, ncol=3, loc="lower left")

    grid = np.linspace(0, 0.9, 91)
    axes[1].plot(grid, alpha_theory(grid), "k-", lw=1, label="theory, settling ($\\eta\\to 0$)")
    axes[1].plot(grid, alpha_theory(grid, "first"), "k:", lw=1, label="theory, first passage")
    lows = [0.0]
    highs = [2.3]
    for variant, marker, color in (("sgdm", "o", "C0"), ("nesterov", "^", "C2"), ("sgd-eta-eff", "s", "C3")):
        for criterion, filled in (("settle", True), ("first", False)):
            rows = [r for r in summary["alpha"].values() if r["variant"] == variant and r["criterion"] == criterion]
            good = [r for r in rows if determined(r)]
            bad = [r for r in rows if not determined(r) and np.isfinite(r["alpha"])]
            shift = 0.0 if filled else 0.006
            if good:
                g = np.array([r["gamma"] for r in good]) + shift
                a = np.array([r["alpha"] for r in good])
                err = np.abs(np.array([[r["alpha"] - r["ci"][0], r["ci"][1] - r["alpha"]] for r in good]).T)
                axes[1].errorbar(
                    g,
                    a,
                    yerr=err,
                    fmt=marker,
                    color=color,
                    mfc=color if filled else "none",
                    capsize=2,
                    label=f"{variant}, {'settling' if filled else 'first passage'}",
                )
                lows.append(float(np.min(a - err[0])))
            for r in bad:  # drawn, hollow and grey, with the whole interval: a value that is not a measurement
                lo, hi = min(r["ci"][0], r["alpha"] - r["se"]), max(r["ci"][1], r["alpha"] + r["se"])
                axes[1].errorbar(
                    [r["gamma"] + shift],
                    [r["alpha"]],
                    yerr=[[r["alpha"] - lo], [hi - r["alpha"]]],
                    fmt=marker,
                    color="0.6",
                    mfc="none",
                    capsize=2,
                )
                axes[1].annotate(
                    f"undetermined\n(s.e. {r['se']:.2f})",
                    (r["gamma"] + shift, r["alpha"]),
                    fontsize=6,
                    color="0.4",
                    xytext=(4, -12),
                    textcoords="offset points",
                )
                lows.append(lo)
                highs.append(hi)
    gs = summary["gamma_star"]
    kappa = summary.get("kappa_two_thirds")
    if gs is not None:
        lo, hi = gs["ci"]
        axes[1].axvspan(min(lo, gs["gamma"] - 0.004), max(hi, gs["gamma"] + 0.004), color="C1", alpha=0.3, lw=0)
        axes[1].axvline(gs["gamma"], color="C1", lw=1.5)
        text = rf"measured $\gamma^*$ = {gs['gamma']:.3f} [{lo:.3f}, {hi:.3f}]" + "\n" + rf"at $\eta$ = {gs['eta']:g}"
        if kappa is not None:
            text += "\n" + rf"$\sigma^2/(4BC^3)$ = {kappa:.3g}"
        axes[1].text(
            gs["gamma"] + 0.01, 0.97, text, transform=axes[1].get_xaxis_transform(), fontsize=7, va="top", color="C1"
        )
    axes[1].axvline(2 / 3, color="k", lw=0.6, ls="--")
    axes[1].set(
        xlabel=r"$\gamma$",
        ylabel=r"$\alpha$ in $T\propto\eta^{-\alpha}$ (95% bootstrap CI)",
        title=r"exponent $\alpha(\gamma)$; theory's $\gamma^*$ = 2/3 is its $\eta\to 0$ limit",
        ylim=(min(lows) - 0.05, max(highs) + 0.05),
    )
    axes[1].legend(fontsize=7, loc="lower left")
    if pred:
        plot_gamma_star(axes[2], gs, pred)
    if omitted:
        notes = [
            f"{v} ({n} runs, {c} censored, {d} diverged; its exponents are on the right)"
            for v, (n, c, d) in omitted.items()
        ]
        fig.text(0.01, 0.005, "not drawn on the left: " + "; ".join(notes), fontsize=7, color="0.3")
        fig.get_layout_engine().set(h_pad=0.25)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def run_scaling(
    problem: str,
    preset: str = "quick",
    out: str | Path = "flatter-out/scaling",
    progress: bool = True,
    verbose: bool = False,
    predict: bool = True,
) -> dict:
    """Run (or resume) the preset's sweeps, print the alpha table and gamma*, write the figure and data.

    With ``predict`` the SGDM grid is also predicted by the reduced SDE (:func:`flatter.sweep.predict_spec`):
    the summary, the printout and the figure show the predicted gamma*(eta) beside the measured one and say
    which regime the run is in.
    """
    out = Path(out) / problem / preset
    start = time.perf_counter()
    results = []
    for i, spec in enumerate(presets(problem, preset)):
        res = run_sweep(spec, out / f"sweep-{i}", progress=progress, verbose=verbose)
        results.append(res)
    summary = summarize(results)
    high = next((r for r in results if set(GAMMAS_HIGH) <= set(r.spec.gammas)), None)
    if high is not None and predict:
        # The reduced-SDE prediction of the same grid (issue: which regime is this run in, and what gamma* it implies)
        summary["predicted"] = predict_spec(high.spec, seeds=8, extra_decades=0).summary()
    summary.update(
        problem=problem,
        preset=preset,
        wall_seconds=time.perf_counter() - start,
        environment=environment(),
        sweeps=[str(out / f"sweep-{i}") for i in range(len(results))],
    )
    print_summary(summary, problem)
    save_json(out / "summary.json", summary)
    plot(results, summary, out / "scaling.png", problem)
    print(
        f"\nwrote {out / 'scaling.png'} and {out / 'summary.json'} ({summary['wall_seconds']:.0f} s; the sweeps'"
        f" per-run data: flatter.sweep.load('{out / 'sweep-0'}'))"
    )
    return summary
