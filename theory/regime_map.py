# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # When is γ* = 2/3? A regime map from the reduced SDE
#
# Label-noise SGD with heavy-ball momentum, 1 − β = C η^γ, on the toy valley f(x, y) = √(1 + y²) x
# (docs/theory.md §6), from y = 1 to |y| < 0.1 (settling). At γ = 2/3 every η cancels from the reduced
# dynamics along the valley (docs/theory.md §6.6):
#
#     y'' + y' = −κ u(s) ∂_y tr∇²L = −2κ u(s) y,    κ = σ²/(4BC³),    s = (1 − β) k,
#
# a damped oscillator whose damping ratio is ζ = 1/(2√(κλ)), λ = 2 the curvature of tr∇²L along the valley
# (`flatter.limit.damping_ratio`): the motion along the valley overshoots (ζ < 1, κ > 1/8) or creeps (ζ > 1).
# ζ is the map's axis: `flatter.limit.regime` reads λ off any problem's valley, so a user's problem lands on
# the same axis (`flatter scaling` prints it). The penalty above 2/3 that makes γ* = 2/3 needs the overshoot:
# settling then waits ~1/(1 − β) ∝ η^{−γ}. Where the motion creeps, T ≈ a η^{−γ} + b η^{2γ−2} and
# γ* = 2/3 + ln(a/2b)/(3 ln η) + … drifts towards 2/3 only logarithmically in η.
#
# `flatter.timescales.predict_grid` integrates the reduced SDE (fluctuating transverse temperature, the
# label noise's own kick along the valley) for a whole (κ, η, γ) grid in one compiled call; γ*(κ, η) is
# the vertex of log T over γ, as for the simulations. A few simulated points are overlaid.
# Set `FLATTER_QUICK=1` for the quick version that CI runs.

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

matplotlib.use("Agg")
import matplotlib.patheffects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import flatter  # noqa: E402
import flatter.figures  # noqa: E402
from flatter import timescales  # noqa: E402

QUICK = os.environ.get("FLATTER_QUICK") == "1"
OUT = Path(os.environ.get("FLATTER_OUT", "flatter-out/theory"))
DELTA = 0.1
base = flatter.problems.toy_valley()
toy = flatter.Problem(base.predict, base.inputs, base.targets, observables={"abs_y": lambda p, th: jnp.abs(th[1])})
start = jnp.array([0.0, 1.0])

gammas = np.linspace(0.5, 0.85, 6 if QUICK else 8)
kappas = np.geomspace(0.02, 4.0, 4 if QUICK else 9)  # sigma = 2 sqrt(kappa) at C = 1
etas = np.geomspace(1e-2, 1e-4, 3) if QUICK else np.geomspace(1e-2, 1e-5, 7)
seeds = 24 if QUICK else 48
curvature = flatter.valley.descent_geometry(toy, start).curvature  # 2: tr = 1 + y^2
zetas = np.array([flatter.limit.damping_ratio(k, curvature) for k in kappas])

# %% [markdown]
# ## The predicted map
# One call over the whole grid: T[κ, η, γ] with its paths, then γ* per (κ, η) with a bootstrap band.

# %%
K, E, G = np.meshgrid(kappas, etas, gammas, indexing="ij")
grid = timescales.predict_grid(
    toy, start, eta=E, beta=1 - E**G, sigma=2 * np.sqrt(K), observable="abs_y", threshold=DELTA, seeds=seeds
)
samples = grid.settle_samples.reshape(K.shape + (seeds,))
gamma_star = np.full(K.shape[:2], np.nan)
gamma_band = np.full(K.shape[:2] + (2,), np.nan)
for i in range(len(kappas)):
    t = samples[i].transpose(1, 0, 2)  # (gamma, eta, path)
    censored = ~np.isfinite(t)
    opt = flatter.sweep.optimal_gamma(gammas, etas, np.where(censored, 0.0, t), censored, n_boot=200)
    gamma_star[i], gamma_band[i] = opt.per_eta, opt.per_eta_ci
print(f"predicted grid: {grid.settle.size} points, {grid.model_evaluations} force evaluations")
for i, k in enumerate(kappas):
    row = ", ".join(f"{e:.0e}: {g:.3f}" for e, g in zip(etas, gamma_star[i], strict=True))
    print(f"kappa = {k:.3g} (zeta = {zetas[i]:.2f}): gamma*(eta) = {row}")

# %% [markdown]
# ## Simulated points
# Label-noise SGDM on the toy itself (64 seeds per point in the full version), the median settling
# step, and the same vertex estimator.


# %%
def simulated_gamma_star(kappa, eta, n_seeds):
    sigma = 2 * np.sqrt(kappa)
    pred = timescales.predict_grid(
        toy, start, eta=eta, beta=1 - eta**gammas, sigma=sigma, observable="abs_y", threshold=DELTA, seeds=16
    )
    times, censored = [], []
    for g, t_pred in zip(gammas, pred.settle, strict=True):
        beta = 1 - eta**g
        horizon = int(min(3 * t_pred, 2e5)) + 100
        horizon -= horizon % 10

        def run(key, beta=beta, horizon=horizon):
            k1, k2 = jax.random.split(key)
            tx = optax.chain(flatter.label_noise(sigma, key=k1), flatter.heavy_ball(eta, beta))
            traj = flatter.simulate(toy, tx, start, steps=horizon, key=k2, record_every=10, observables=["abs_y"])
            return flatter.settling_time(traj.steps, traj.observables["abs_y"], DELTA, diverged=traj.diverged)

        out = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), n_seeds))
        times.append(np.asarray(out.time))
        censored.append(np.asarray(out.censored))
    opt = flatter.sweep.optimal_gamma(gammas, [eta], np.array(times)[:, None], np.array(censored)[:, None])
    return opt.per_eta[0], opt.per_eta_ci[0]


sim_points = (
    [(0.06, 4e-3), (1.0, 4e-3)] if QUICK else [(0.03, 4e-3), (0.12, 4e-3), (0.5, 4e-3), (2.0, 4e-3), (0.5, 1e-3)]
)
simulated = []
for k, e in sim_points:
    g, band = simulated_gamma_star(k, e, 32 if QUICK else 64)
    i, j = int(np.argmin(np.abs(np.log(kappas / k)))), int(np.argmin(np.abs(np.log(etas / e))))
    simulated.append((k, e, g, *band, flatter.limit.damping_ratio(k, curvature)))
    print(f"simulated kappa = {k:g}, eta = {e:g}: gamma* = {g:.3f} [{band[0]:.3f}, {band[1]:.3f}]")

# %% [markdown]
# ## The figure and its data
# Left: γ* over (ζ, η), the cells within 0.05 of 2/3 marked, the critical damping ζ = 1 dashed,
# simulated points as circles coloured on the same scale. Right: γ*(η) per κ with the bootstrap band.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
norm = matplotlib.colors.Normalize(0.5, 0.85)
mesh = axes[0].pcolormesh(zetas, etas, gamma_star.T, norm=norm, cmap="viridis", shading="nearest")
# The cells within 0.05 of 2/3 marked cell by cell: a contour through a few grid points would draw corners that
# are the interpolation's, not the predictor's.
near = np.abs(gamma_star - 2 / 3) <= 0.05
K2, E2 = np.meshgrid(zetas, etas, indexing="ij")
axes[0].scatter(K2[near], E2[near], marker="s", s=260, facecolors="none", edgecolors="w", linewidths=1.5)
outline = [matplotlib.patheffects.withStroke(linewidth=2.5, foreground="k")]  # white on any colour of the map
axes[0].axvline(1.0, color="w", ls="--", lw=1.2)
axes[0].text(1.05, etas.min() * 1.5, "ζ = 1 (κ = 1/8)", color="w", fontsize=9, path_effects=outline)
for _k, e, g, _lo, _hi, z in simulated:
    axes[0].scatter([z], [e], c=[g], norm=norm, cmap="viridis", s=120, edgecolors="r", linewidths=1.5)
    axes[0].annotate(
        f"sim {g:.2f}", (z, e), xytext=(8, 6), textcoords="offset points", color="w", fontsize=9, path_effects=outline
    )
fig.colorbar(mesh, ax=axes[0], label=r"predicted $\gamma^*$ (white squares: $|\gamma^*-2/3| \leq 0.05$)")
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel=r"damping ratio $\zeta = 1/(2\sqrt{\kappa\lambda})$ at $\gamma = 2/3$, $\kappa = \sigma^2/(4BC^3)$",
    ylabel=r"$\eta$",
    title=r"toy valley: $\gamma^*$ from the reduced SDE (circles: simulated)",
)
colors = plt.cm.plasma(np.linspace(0, 0.85, len(kappas)))
for i in range(len(kappas)):
    axes[1].plot(etas, gamma_star[i], "o-", color=colors[i], ms=3, label=rf"$\zeta$ = {zetas[i]:.2g}")
    axes[1].fill_between(etas, gamma_band[i, :, 0], gamma_band[i, :, 1], color=colors[i], alpha=0.2, lw=0)
axes[1].axhline(2 / 3, color="k", ls="--", lw=0.8)
axes[1].set(
    xscale="log", xlabel=r"$\eta$", ylabel=r"predicted $\gamma^*(\eta)$ (95% bootstrap band)", title=r"$\gamma^*(\eta)$"
)
axes[1].legend(fontsize=7, ncol=2)
flatter.figures.add_caption(
    fig,
    rf"toy valley from $y$ = 1, C = 1, full batch; $\gamma$ on {len(gammas)} points in "
    rf"[{gammas[0]:g}, {gammas[-1]:g}], {len(kappas)} $\kappa$ x {len(etas)} $\eta$; "
    f"{seeds} reduced-SDE paths per point",
)
flatter.figures.save_figure(fig, OUT / "regime_map.png", dpi=130)
np.savez(
    OUT / "regime_map.npz",
    kappas=kappas,
    zetas=zetas,
    curvature=curvature,
    etas=etas,
    gammas=gammas,
    gamma_star=gamma_star,
    gamma_star_band=gamma_band,
    predicted_settle=grid.settle.reshape(K.shape),
    simulated=np.array(simulated),
    simulated_columns=np.array(["kappa", "eta", "gamma_star", "ci_low", "ci_high", "zeta"]),
    description=np.array(
        "toy valley h = 1 + y^2, y0 = 1, settling |y| < 0.1, C = 1, sigma = 2 sqrt(kappa), B = 1, zeta = "
        "1/(2 sqrt(kappa lambda)) with lambda the curvature of tr along the valley; gamma* is the "
        "vertex of log median T over gammas; predicted by flatter.timescales.predict_grid (reduced SDE)"
    ),
)
print(f"wrote {OUT / 'regime_map.png'} and {OUT / 'regime_map.npz'}")
