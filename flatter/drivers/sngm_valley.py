"""SNGM near the valley: alpha(gamma) and gamma* of label-noise SNGM next to heavy ball, and its limit flow.

The sweeps are the scaling experiment's (the same problems, gamma and eta grids, C, sigma and seeds)
with the variants ``sgdm`` and ``sngm``. Besides the exponents, the absolute times are checked against
the two limit flows: in the adiabatic regime heavy ball settles at :math:`T\\eta_\\mathrm{eff}^2 \\to t^*`
of the label-noise flow (:func:`flatter.limit.label_noise_flow`), SNGM at :math:`s^*` of
:func:`flatter.limit.sngm_flow` (a flow of log tr∇²L, independent of sigma and B).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from .._criteria import settling_time
from .._io import environment, save_json
from .._precision import full_precision
from ..figures import save_figure
from ..limit import Regime, integrate, label_noise_flow, sngm_flow
from ..sweep import SweepResults, optimal_gamma, power_law, prepare, resolved_threshold, run_sweep, spec_regime
from ..timescales import alpha as alpha_theory
from ..transforms import label_noise_batch
from .scaling import presets as scaling_presets

VARIANTS = ("sgdm", "sngm")
FLOW_STEPS = 4000
"""Euler steps of each limit flow (its time step is the horizon over this)."""


PROBLEMS = ("toy-valley", "matrix-sensing", "matrix-sensing-all")
"""``matrix-sensing-all``: matrix sensing with fresh noise on all n labels every step (sigma scaled by sqrt(n),
the same heavy-ball flow), where the gradient norm concentrates; ``matrix-sensing`` has one noisy label per step
(the scaling experiment's setting), where it does not."""


def specs(problem: str, preset: str):
    """The scaling experiment's sweeps of ``problem`` with the variants heavy ball and SNGM."""
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {PROBLEMS}, got {problem!r}")
    if problem == "matrix-sensing-all":
        base = scaling_presets("matrix-sensing", preset)
        n = base[0].problem_kwargs["n"]
        return [
            dataclasses.replace(s, variants=VARIANTS, label_noise_mode="all", sigmas=(s.sigmas[0] * n**0.5,))
            for s in base
        ]
    return [dataclasses.replace(s, variants=VARIANTS) for s in scaling_presets(problem, preset)]


def limit_specs(problem: str, preset: str):
    """Sweeps at gamma = 1/2 and smaller eta (down to 6.25e-5) for matrix sensing, where SNGM approaches its
    limit slowly (corrections O(eta_eff)): they only add to the comparison with the limit flows."""
    if not problem.startswith("matrix-sensing"):
        return []
    base = specs(problem, preset)[-1]
    return [dataclasses.replace(base, gammas=(0.5,), etas=(2.5e-4, 1.25e-4, 6.25e-5), max_steps=2**18)]


def flow_times(spec, reference: dict, problem=None) -> dict:
    """The settling times of the two limit flows from the sweep's start, by the sweep's own criterion.

    ``sgdm``: the label-noise flow at the spec's sigma and noise batch; ``sngm``: :func:`sngm_flow`.
    Each is integrated by projected Euler (:data:`FLOW_STEPS` steps) over 1.5 times the time the sweep's
    flow reference (``reference``, at sigma^2/4B = 1) implies (for SNGM an upper bound: tr∇²L only falls
    along the path), the horizon growing fourfold until the criterion settles inside it.
    """
    problem, params0 = prepare(spec, problem)
    threshold = resolved_threshold(problem, params0, spec)
    b = int(label_noise_batch(spec.label_noise_mode, spec.batch_sizes[0], problem.num_examples))
    sigma = spec.sigmas[0]
    trace0 = float(problem.gauss_newton_trace(params0))
    guesses = {"sgdm": reference["flow_time"] * 4 * b / sigma**2, "sngm": reference["flow_time"] * 4 * trace0}
    dynamics = {"sgdm": label_noise_flow(problem, sigma=sigma, batch_size=b), "sngm": sngm_flow(problem)}
    out = {}
    for name, dyn in dynamics.items():
        horizon, out[name] = 1.5 * guesses[name], float("nan")
        for _ in range(6):
            sol = integrate(problem, dyn, params0, t1=horizon, dt=horizon / FLOW_STEPS, save_every=FLOW_STEPS // 400,
                            observables=[spec.observable])  # fmt: skip
            values = np.asarray(sol.observables[spec.observable])
            settle = settling_time(np.arange(values.size), values, threshold, below=spec.below)
            if not bool(settle.censored):
                out[name] = float(settle.time) * horizon / (values.size - 1)
                break
            horizon *= 4.0
    return out


def _fits(results: SweepResults, variant: str):
    spec = results.spec
    rows = {}
    for g in spec.gammas:
        d = results.sel(variant=variant, gamma=g, C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0])
        rows[g] = (power_law(spec.etas, d["T_settle"], d["censored_settle"]), d)
    return rows


def _collapse_rows(res: SweepResults, fits: dict, variant: str, flows: dict) -> list[dict]:
    """T eta_eff^2 (median over the seeds that settled) at every eta, for the gammas below 2/3."""
    spec, rows = res.spec, []
    for g, (_, d) in fits.items():
        if g >= 2 / 3:
            continue
        for i, eta in enumerate(spec.etas):
            t = np.asarray(d["T_settle"][i], float)
            ok = ~np.asarray(d["censored_settle"][i]) & np.isfinite(t)
            eta_eff = eta / (spec.Cs[0] * eta**g)
            rows.append(
                {
                    "variant": variant, "gamma": g, "eta": eta, "eta_eff": eta_eff,
                    "T_eta_eff2_median": float(np.median(t[ok]) * eta_eff**2) if ok.any() else None,
                    "censored": int((~ok).sum()), "flow_time": flows[variant],
                }
            )  # fmt: skip
    return rows


def summarize(all_results: list[SweepResults], flows: dict, limit_results: list[SweepResults] = ()) -> dict:
    """alpha(gamma) per variant with errors and the prediction; gamma* per variant; T eta_eff^2 against the
    limit flows' times at every (gamma, eta) below 2/3 (``limit_results``: sweeps at smaller eta that only
    add to this comparison)."""
    alpha_rows, collapse, gamma_star = [], [], {}
    for res in limit_results:
        for variant in VARIANTS:
            collapse += _collapse_rows(res, _fits(res, variant), variant, flows)
    for res in all_results:
        spec = res.spec
        for variant in VARIANTS:
            fits = _fits(res, variant)
            collapse += _collapse_rows(res, fits, variant, flows)
            for g, (fit, _) in fits.items():
                alpha_rows.append(
                    {"variant": variant, "gamma": g, "predicted": float(alpha_theory(g)), **fit.summary()}
                )
            if len(spec.gammas) >= 3:
                times = np.stack([fits[g][1]["T_settle"] for g in spec.gammas])
                cens = np.stack([fits[g][1]["censored_settle"] for g in spec.gammas])
                gamma_star[variant] = optimal_gamma(spec.gammas, spec.etas, times, cens).summary(spec.etas)
    # SNGM's step has length eta_eff whatever sigma is, so its corrections to the limit are O(eta_eff), not
    # O(sigma^2 eta_eff): a straight line in eta_eff extrapolates T eta_eff^2 / flow time to eta_eff -> 0.
    extrapolated = []
    for variant in VARIANTS:
        for g in sorted({r["gamma"] for r in collapse if r["variant"] == variant}):
            rows = [r for r in collapse if r["variant"] == variant and r["gamma"] == g and r["T_eta_eff2_median"]]
            if len(rows) >= 3:
                a = np.array([r["eta_eff"] for r in rows])
                ratio = np.array([r["T_eta_eff2_median"] / r["flow_time"] for r in rows])
                slope, intercept = np.polyfit(a, ratio, 1)
                extrapolated.append(
                    {
                        "variant": variant,
                        "gamma": g,
                        "ratio_at_zero_eta_eff": float(intercept),
                        "slope": float(slope),
                        "eta_eff": a.tolist(),
                        "ratio": ratio.tolist(),
                    }
                )
    return {"alpha": alpha_rows, "gamma_star": gamma_star, "collapse": collapse, "flow_times": flows,
            "extrapolated": extrapolated}  # fmt: skip


def print_summary(summary: dict, problem: str) -> None:
    print(f"\n{problem}: alpha in T ~ eta^-alpha (settling; +- s.e., [95% CI]), heavy ball vs SNGM")
    if "regime" in summary:
        print(f"regime at gamma = 2/3 (heavy ball): {Regime(**summary['regime'])}")
    print(f"{'gamma':>6} {'predicted':>9}  {'SGDM':>26}  {'SNGM':>26}")
    rows = {(r["variant"], round(r["gamma"], 4)): r for r in summary["alpha"]}
    for g in sorted({round(r["gamma"], 4) for r in summary["alpha"]}):
        cells = []
        for v in VARIANTS:
            r = rows[v, g]
            cells.append(f"{r['alpha']:.2f} +- {r['se']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]")
        print(f"{g:6.3f} {rows['sgdm', g]['predicted']:9.2f}  {cells[0]:>26}  {cells[1]:>26}")
    for v, gs in summary["gamma_star"].items():
        print(f"gamma* ({v}): {gs['gamma']:.3f} [{gs['ci'][0]:.3f}, {gs['ci'][1]:.3f}] (predicted 2/3)")
    f = summary["flow_times"]
    print(f"limit flows: t* = {f['sgdm']:.4g} (label-noise flow), s* = {f['sngm']:.4g} (SNGM's log-trace flow)")
    print("T eta_eff^2 (median over seeds) against the flow time, gamma < 2/3:")
    for r in sorted(summary["collapse"], key=lambda r: (r["variant"], r["gamma"], -r["eta"])):
        value = "censored" if r["T_eta_eff2_median"] is None else f"{r['T_eta_eff2_median']:.4g}"
        ratio = "" if r["T_eta_eff2_median"] is None else f"  ratio {r['T_eta_eff2_median'] / r['flow_time']:.2f}"
        print(f"  {r['variant']:5s} gamma={r['gamma']:.3f} eta={r['eta']:<8g} {value:>9s}{ratio}")
    print("the ratio extrapolated linearly in eta_eff to eta_eff -> 0 (1 if the limit flow is right):")
    for r in summary["extrapolated"]:
        print(f"  {r['variant']:5s} gamma={r['gamma']:.3f}: {r['ratio_at_zero_eta_eff']:.2f} (slope {r['slope']:.2f})")


def plot(all_results: list[SweepResults], summary: dict, path: Path, problem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    colors = {"sgdm": "C0", "sngm": "C3"}
    grid = np.linspace(0, 0.9, 200)
    axes[0].plot(grid, alpha_theory(grid), "k--", lw=1, label=r"predicted (both): $\max(2-2\gamma, \gamma)$")
    for v, offset in (("sgdm", -0.006), ("sngm", 0.006)):
        rows = [r for r in summary["alpha"] if r["variant"] == v]
        g = np.array([r["gamma"] for r in rows]) + offset
        axes[0].errorbar(g, [r["alpha"] for r in rows], yerr=[r["se"] for r in rows], fmt="o", color=colors[v],
                         capsize=3, label={"sgdm": "SGDM-LN", "sngm": "SNGM-LN"}[v])  # fmt: skip
    axes[0].axvline(2 / 3, color="k", lw=0.6, ls=":")
    axes[0].set_xlabel(r"$\gamma$ in $1-\beta = C\eta^\gamma$")
    axes[0].set_ylabel(r"$\alpha$ in $T \propto \eta^{-\alpha}$")
    axes[0].set_title(r"exponents ($\pm$ s.e.)")
    axes[0].legend(fontsize=8)
    for res in all_results:
        spec = res.spec
        for g in spec.gammas:  # the data only: the fits are summarize's
            d = res.sel(variant="sngm", gamma=g, C=spec.Cs[0], sigma=spec.sigmas[0], batch_size=spec.batch_sizes[0])
            med = [np.median(np.asarray(t)[~np.asarray(c)]) if (~np.asarray(c)).any() else np.nan
                   for t, c in zip(d["T_settle"], d["censored_settle"], strict=True)]  # fmt: skip
            axes[1].loglog(spec.etas, med, "o-", label=rf"$\gamma$={g:.2f}")
    axes[1].set_xlabel(r"$\eta$")
    axes[1].set_ylabel("SNGM settling steps T (median)")
    axes[1].set_title("SNGM-LN: T against eta per gamma")
    axes[1].legend(fontsize=7, ncol=2)
    markers = {}
    for r in summary["extrapolated"]:
        v, g = r["variant"], r["gamma"]
        marker = markers.setdefault(g, "osd^v"[len(markers) % 5])
        x = np.array(r["eta_eff"])
        axes[2].plot(x, r["ratio"], marker, color=colors[v], alpha=0.8, label=f"{v.upper()} " + rf"$\gamma$={g:.2f}")
        line = np.linspace(0, x.max(), 20)
        axes[2].plot(line, r["ratio_at_zero_eta_eff"] + r["slope"] * line, "-", color=colors[v], lw=0.7, alpha=0.6)
    axes[2].axhline(1.0, color="k", lw=0.8, ls=":")
    axes[2].set_xlim(left=0)
    axes[2].set_xlabel(r"$\eta_\mathrm{eff} = \eta/(1-\beta)$")
    axes[2].set_ylabel(r"$T\,\eta_\mathrm{eff}^2$ / flow time (SGDM: $t^*$, SNGM: $s^*$)")
    axes[2].set_title("times against the limit flows (lines: fits in $\\eta_{eff}$)")
    axes[2].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{problem}: label-noise SNGM vs heavy ball, the same sweeps", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def run_sngm_valley(problem: str, preset: str, out: str | Path, *, progress: bool = True) -> dict:
    """Sweeps (resumable), fits, flow times, the table and the figure under ``out/problem/preset``."""
    out = Path(out) / problem / preset
    start = time.perf_counter()
    all_specs = specs(problem, preset)
    with full_precision():
        results = [run_sweep(s, out / f"sweep-{s.digest}", progress=progress) for s in all_specs]
        deeper = [run_sweep(s, out / f"sweep-{s.digest}", progress=progress) for s in limit_specs(problem, preset)]
        flows = flow_times(all_specs[-1], results[-1].meta["reference"])
        found = spec_regime(all_specs[-1])  # heavy ball's place on the regime map, at the sweeps' phase-1 point
    summary = summarize(results, flows, deeper)
    summary["regime"] = found._asdict()
    summary.update(
        problem=problem,
        preset=preset,
        wall_seconds=time.perf_counter() - start,
        environment=environment(),
        specs=[s.to_json() for s in all_specs + limit_specs(problem, preset)],
    )
    print_summary(summary, problem)
    save_json(out / "summary.json", summary)
    plot(results, summary, out / "sngm_valley.png", problem)
    print(f"\nwrote {out / 'sngm_valley.png'}, {out / 'summary.json'} ({summary['wall_seconds']:.0f} s)")
    jax.clear_caches()
    return summary
