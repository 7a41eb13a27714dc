# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The discrete trajectory and its limit on the valley
#
# SGD with momentum and label noise (σ), seed-averaged, against the label-noise limit flow
# dθ/dt = −(σ²/4B) ∇_Γ tr∇²L on the time axis t = η_eff² k, η_eff = η/(1−β), from the same point of
# the valley, on the same jitted model (`flatter.compare`). As η → 0 at fixed β the discrepancy
# vanishes; its order is fitted on a log-log plot. Set `FLATTER_QUICK=1` for the quick version.

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import flatter  # noqa: E402
import flatter.figures  # noqa: E402

QUICK = os.environ.get("FLATTER_QUICK") == "1"
OUT = Path(os.environ.get("FLATTER_OUT", "flatter-out/theory"))
OUT.mkdir(parents=True, exist_ok=True)

toy = flatter.problems.toy_valley()
sensing = flatter.problems.matrix_sensing(10, 1, 20, key=jax.random.key(0))
sensing_start, _ = flatter.interpolate(sensing, sensing.init_params(jax.random.key(1)))
print(
    "matrix sensing after phase 1:",
    {k: round(float(v), 3) for k, v in sensing.observe(sensing_start).items()},
)

MS = r"matrix sensing, tr $\nabla^2 L$"
cases = {
    "toy valley, y": dict(
        problem=toy,
        params0=jnp.array([0.0, 1.0]),
        observable="y",
        t1=2.0,
        seeds=64 if QUICK else 256,
        batch_size=None,
        records=20,
    ),
    MS: dict(
        problem=sensing,
        params0=sensing_start,
        observable="trace_hessian",
        t1=0.1,
        seeds=16 if QUICK else 64,
        batch_size=1,
        records=10,
    ),
}
etas_by_case = {"toy valley, y": [0.04, 0.02, 0.01], MS: [0.01, 0.005, 0.0025]}
if not QUICK:
    etas_by_case = {k: v + [v[-1] / 2] for k, v in etas_by_case.items()}

# %%
results = {}
for name, case in cases.items():
    for beta in (0.0, 0.9):
        etas = [e * (1 - beta) for e in etas_by_case[name]]  # the same eta_eff for both betas
        comps = flatter.compare_step_sizes(  # one limit path for the step sizes whose records fall together
            case["problem"],
            case["params0"],
            etas=etas,
            beta=beta,
            sigma=1.0,
            t1=case["t1"],
            key=jax.random.key(0),
            seeds=case["seeds"],
            batch_size=case["batch_size"],
            records=case["records"],
            observable=case["observable"],
        )
        errs = [c.max_discrepancy for c in comps]
        order = np.polyfit(np.log(etas), np.log(errs), 1)[0]
        results[(name, beta)] = (etas, comps, errs, order)
        print(
            f"{name}, beta={beta}: eta={np.round(etas, 5).tolist()} max|discrete - limit|="
            f"{np.round(errs, 4).tolist()}  fitted order {order:.2f}"
        )

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
for row, name in enumerate(cases):
    etas, comps, errs, order = results[(name, 0.9)]
    for c, color in zip(comps, ("C0", "C1", "C2", "C3"), strict=False):
        flatter.plot_comparison(c, axes[row, 0], color=color, label=rf"$\eta$={c.eta:g}, $\beta$=0.9")
    axes[row, 0].set_title(f"{name}: discrete vs limit", fontsize=11)
    axes[row, 0].plot([], [], "k--", label="limit")  # the band is the discrete mean ± 2 s.e.
    axes[row, 0].legend(fontsize=7)
    for beta, marker in ((0.0, "o"), (0.9, "s")):
        etas, _, errs, order = results[(name, beta)]
        eff = np.array(etas) / (1 - beta)
        axes[row, 1].loglog(eff, errs, marker + "-", label=rf"$\beta$={beta}: order {order:.2f}")
    axes[row, 1].set(
        xlabel=r"$\eta_\mathrm{eff} = \eta/(1-\beta)$",
        ylabel="max |discrete mean − limit|",
        title=f"{name}: error vs step size",
    )
    axes[row, 1].title.set_fontsize(11)
    for axis in (axes[row, 1].xaxis, axes[row, 1].yaxis):  # short log ranges: 0.004, 0.006, not 4x10^-3
        flatter.figures.plain_log_ticks(axis)
    axes[row, 1].legend(fontsize=8)
flatter.figures.add_caption(
    fig,
    "bands: discrete mean ± 2 s.e. over seeds; label noise σ = 1; toy valley from y = 1, full batch, "
    f"{cases['toy valley, y']['seeds']} seeds;\nmatrix sensing d = 10, r = 1, n = 20 from its Gauss-Newton fit, "
    f"B = 1, {cases[MS]['seeds']} seeds",
    height=0.05,
)
flatter.figures.save_figure(fig, OUT / "limit_vs_discrete.png", dpi=130)
print("wrote", OUT / "limit_vs_discrete.png")
