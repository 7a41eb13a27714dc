"""C* against the label-noise strength sigma at gamma = 2/3: simulation sweep vs the reduced ODE."""

from __future__ import annotations

import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._io import environment, save_json
from ..figures import save_figure
from ..limit import regime_at
from ..problems import make_problem
from ..sweep import SweepSpec, optimal_C, run_sweep
from ..timescales import predict_optimal_C
from ..transforms import label_noise_batch
from ..valley import descent_geometry


def cstar_spec(problem: str = "toy-valley", preset: str = "quick", seeds: int | None = None) -> SweepSpec:
    """The sweep of a preset: C on a log grid at gamma = 2/3 for sigma in (0.5, 1, 2), one eta; ``seeds``
    overrides the preset's seeds per (C, sigma)."""
    if problem != "toy-valley":
        raise ValueError(f"the C* experiment is implemented for 'toy-valley', got {problem!r}")
    if preset not in ("quick", "paper"):
        raise ValueError(f"preset must be one of 'quick', 'paper', got {preset!r}")
    quick = preset == "quick"
    return SweepSpec(
        problem="toy-valley",
        gammas=(2 / 3,),
        Cs=tuple(np.geomspace(0.3, 3.0, 9 if quick else 15).round(4).tolist()),
        etas=(1.6e-3 if quick else 6.4e-4,),
        sigmas=(0.5, 1.0, 2.0),
        seeds=seeds or (32 if quick else 128),
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        label_noise_mode="one",
        horizon_factor=4.0,
    )


def run_cstar(
    problem: str = "toy-valley", preset: str = "quick", out: str | Path = "flatter-out/cstar", seeds: int | None = None
) -> dict:
    """Sweep C at gamma = 2/3 for several sigma, locate C*(sigma), fit C* ~ sigma^p (predicted p = 2/3)."""
    spec = cstar_spec(problem, preset, seeds)
    out = Path(out) / problem / preset
    start = time.perf_counter()
    sigmas, Cs = spec.sigmas, spec.Cs
    res = run_sweep(spec, out / "sweep", progress=True)
    toy = make_problem("toy-valley")
    # C* ~ sigma^(2/3) is kappa = sigma^2 / (4 B C*^3) held fixed: one damping ratio at C* for every sigma
    curvature = descent_geometry(toy, jnp.array([0.0, 1.0])).curvature
    noisy = int(label_noise_batch(spec.label_noise_mode, spec.batch_sizes[0], toy.num_examples))
    rows = []
    rng = np.random.default_rng(0)
    from tqdm.auto import tqdm

    for sigma in tqdm(sigmas, desc="C* per sigma (the reduced ODE's optimum)", unit="sigma"):
        d = res.sel(variant="sgdm", gamma=2 / 3, eta=spec.etas[0], sigma=sigma, batch_size=None)
        times, cens = d["T_settle"], d["censored_settle"]  # (C, seed)
        c_sim = optimal_C(Cs, times, cens)
        boots = [
            optimal_C(Cs, np.take_along_axis(times, pick, 1), np.take_along_axis(cens, pick, 1))
            for pick in (rng.integers(0, times.shape[1], times.shape) for _ in range(200))
        ]
        c_ode, _, _ = predict_optimal_C(
            toy,
            jnp.array([0.0, 1.0]),
            sigma=sigma,
            observable="abs_y",
            threshold=0.1,
            Cs=np.geomspace(0.2, 5.0, 61),
            s1=200.0,
        )
        med = np.median(np.where(cens, np.inf, times), axis=1) * spec.etas[0] ** (2 / 3)
        horizon = np.max(times, axis=1) * spec.etas[0] ** (2 / 3)
        rows.append(
            {
                "sigma": sigma,
                "C_star_sim": c_sim,
                "C_star_ci": np.percentile(boots, [2.5, 97.5]).tolist(),
                "C_star_ode": c_ode,
                "zeta_at_C_star_sim": regime_at(curvature, sigma=sigma, C=c_sim, batch_size=noisy).zeta
                if np.isfinite(c_sim) and c_sim > 0
                else None,
                "T_eta23_by_C": med.tolist(),
                "censored_median_by_C": (~np.isfinite(med)).tolist(),
                "horizon_eta23_by_C": horizon.tolist(),
            }
        )
    x = np.log(sigmas)
    y = np.log([r["C_star_sim"] for r in rows])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    se = float(np.sqrt(resid @ resid / max(len(x) - 2, 1) / np.sum((x - x.mean()) ** 2)))
    summary = {
        "rows": rows,
        "exponent": float(slope),
        "exponent_se": se,
        "predicted_exponent": 2 / 3,
        "Cs": list(Cs),
        "eta": spec.etas[0],
        "wall_seconds": time.perf_counter() - start,
        "environment": environment(),
    }
    print(f"C* at gamma = 2/3 (toy valley, eta = {spec.etas[0]:g}, {spec.seeds} seeds):")
    for r in rows:
        print(
            f"  sigma={r['sigma']:4.1f}: C*_sim = {r['C_star_sim']:.2f} [{r['C_star_ci'][0]:.2f}, "
            f"{r['C_star_ci'][1]:.2f}]   C*_reduced-ODE = {r['C_star_ode']:.2f}   damping ratio at C*_sim: "
            f"zeta = {r['zeta_at_C_star_sim'] or float('nan'):.3g}"
        )
    print(f"  C* ~ sigma^p: p = {slope:.2f} +- {se:.2f} (predicted 2/3)")
    save_json(out / "summary.json", summary)
    caption = (
        r"toy valley $f = \sqrt{1 + y^2}\,x$ (one example, from $y$ = 1), "
        rf"{spec.seeds} seeds per ($C$, $\sigma$), criterion $|y|$ < {spec.threshold:g} settled, "
        f"C on {len(Cs)} log-spaced points in [{min(Cs):g}, {max(Cs):g}]"
    )
    _plot(out / "cstar.png", Cs, rows, spec.etas[0], (slope, se), caption)
    print(f"wrote {out / 'cstar.png'} and {out / 'summary.json'}")
    return summary


def _plot(path, Cs, rows, eta, fit, caption: str = ""):
    """T(C) per sigma (censored medians as lower bounds) and C*(sigma) against the 2/3 law."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures import add_caption, draw_lower_bounds, grid_ticks, plain_log_ticks

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    Cs = np.asarray(Cs)
    for r, color in zip(rows, ("C0", "C1", "C2"), strict=False):
        med = np.asarray(r["T_eta23_by_C"], float)
        axes[0].plot(Cs, med, "o-", color=color, label=rf"$\sigma$={r['sigma']}, $C^*$ = {r['C_star_sim']:.2f}")
        cens = np.asarray(r["censored_median_by_C"], bool)
        if cens.any():  # the median did not settle within the horizon: at least this
            bound = np.asarray(r["horizon_eta23_by_C"], float)[cens]
            draw_lower_bounds(axes[0], Cs[cens], bound, color)
        axes[0].axvline(r["C_star_sim"], color=color, ls=":")
    axes[0].plot([], [], "o", mfc="none", color="k", label="censored median: lower bound")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="C",
        ylabel=r"median $T_\mathrm{settle}\,\eta^{2/3}$",
        title=rf"$\gamma = 2/3$, $\eta$ = {eta:g} (dotted: $C^*$)",
    )
    grid_ticks(axes[0], Cs)
    plain_log_ticks(axes[0].yaxis)
    axes[0].legend(fontsize=8)
    s = np.array([r["sigma"] for r in rows])
    c = np.array([r["C_star_sim"] for r in rows])
    ci = np.array([r["C_star_ci"] for r in rows]).T
    axes[1].errorbar(s, c, yerr=[c - ci[0], ci[1] - c], fmt="o", label="simulation (95% bootstrap CI)")
    axes[1].plot(s, [r["C_star_ode"] for r in rows], "s", mfc="none", label="reduced ODE")
    axes[1].plot(s, c[1] * (s / s[1]) ** (2 / 3), "k--", lw=1, label=r"$\propto\sigma^{2/3}$")
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel=r"$\sigma$",
        ylabel=r"$C^*$",
        title=rf"optimal prefactor: $C^*\propto\sigma^{{{fit[0]:.2f}\pm{fit[1]:.2f}}}$ (theory 2/3)",
    )
    grid_ticks(axes[1], s)
    plain_log_ticks(axes[1].yaxis)  # C* spans less than a decade
    axes[1].legend()
    if caption:
        add_caption(fig, caption)
    save_figure(fig, path, dpi=130)
