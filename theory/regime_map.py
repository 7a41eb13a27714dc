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
# sigma = 2 sqrt(kappa) at C = 1. Quick mode stops at kappa = 1: the kappa = 4 column alone takes ~40 s (its ring
# needs the fine noise step, NOISE_STEP, over long horizons), the other three together well under a second.
kappas = np.geomspace(0.02, 1.0, 4) if QUICK else np.geomspace(0.02, 4.0, 9)
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


def vertex_of_paths(times, etas):
    """gamma* per eta with its bootstrap band, from reduced-SDE paths' settling steps ``times[gamma, eta, path]``
    (inf where a path is censored), by the estimator the simulations get."""
    censored = ~np.isfinite(times)
    return flatter.sweep.optimal_gamma(gammas, etas, np.where(censored, 0.0, times), censored, n_boot=200)


samples = grid.settle_samples.reshape(K.shape + (seeds,))
gamma_star = np.full(K.shape[:2], np.nan)
gamma_band = np.full(K.shape[:2] + (2,), np.nan)
for i in range(len(kappas)):
    opt = vertex_of_paths(samples[i].transpose(1, 0, 2), etas)  # (gamma, eta, path)
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
def simulated_gamma_star(problem, point, observable, threshold, eta, C, sigma, n_seeds, batch_size=1):
    """gamma* (the vertex of log median T_settle over gammas) of label-noise SGDM, 1 - beta = C eta^gamma, with its
    bootstrap interval and each gamma's censored share; horizons 3x the reduced SDE's prediction."""
    betas = 1 - C * eta**gammas
    pred = timescales.predict_grid(
        problem, point, eta=eta, beta=betas, sigma=sigma, batch_size=batch_size, observable=observable,
        threshold=threshold, seeds=16,
    )  # fmt: skip
    times, censored = [], []
    for beta, t_pred in zip(betas, pred.settle, strict=True):
        horizon = int(min(max(3 * t_pred, 2000), 2e5))
        record = max(horizon // 2000, 1)
        horizon -= horizon % record

        def run(key, beta=beta, horizon=horizon, record=record):
            k1, k2 = jax.random.split(key)
            tx = optax.chain(flatter.label_noise(sigma, key=k1), flatter.heavy_ball(eta, beta))
            traj = flatter.simulate(
                problem, tx, point, steps=horizon, key=k2, record_every=record, observables=[observable]
            )
            return flatter.settling_time(traj.steps, traj.observables[observable], threshold, diverged=traj.diverged)

        out = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), n_seeds))
        times.append(np.asarray(out.time))
        censored.append(np.asarray(out.censored))
    times, censored = np.array(times), np.array(censored)
    opt = flatter.sweep.optimal_gamma(gammas, [eta], times[:, None], censored[:, None])
    return opt.per_eta[0], opt.per_eta_ci[0], censored.mean(axis=1)


def predicted_gamma_star(problem, point, observable, threshold, eta, C, sigma, batch_size=1, paths=48):
    """gamma* of the reduced SDE's settling times at one eta, with its bootstrap band."""
    pred = timescales.predict_grid(
        problem, point, eta=eta, beta=1 - C * eta**gammas, sigma=sigma, batch_size=batch_size,
        observable=observable, threshold=threshold, seeds=paths,
    )  # fmt: skip
    opt = vertex_of_paths(pred.settle_samples[:, None], [eta])
    return opt.per_eta[0], opt.per_eta_ci[0]


sim_points = (
    [(0.06, 4e-3), (1.0, 4e-3)] if QUICK else [(0.03, 4e-3), (0.12, 4e-3), (0.5, 4e-3), (2.0, 4e-3), (0.5, 1e-3)]
)
simulated = []
for k, e in sim_points:
    g, band, _ = simulated_gamma_star(toy, start, "abs_y", DELTA, e, 1.0, 2 * np.sqrt(k), 32 if QUICK else 64)
    simulated.append((k, e, g, *band, flatter.limit.damping_ratio(k, curvature)))
    print(f"simulated kappa = {k:g}, eta = {e:g}: gamma* = {g:.3f} [{band[0]:.3f}, {band[1]:.3f}]")

# %% [markdown]
# ## A valley the map was not drawn on
# A diagonal linear network f(θ; x) = ⟨u⊙u − v⊙v, x⟩ (d = 4, n = 2), built as a user would: its valley
# bends, and its curvature along the valley is far from uniform. ζ is read off it exactly as off the toy
# (λ from `flatter.valley.descent_geometry` at its start on Γ), every label is noised (B = n = 2), σ = 1 and C
# set by κ = σ²/(4BC³) = 1/(4ζ²λ). The criterion is tr∇²L read on the valley below 2.45 (3.97 at the start,
# 2.28 at the flat end). If ζ is the regime number, its simulated γ* sits where the toy's map puts that ζ.
# The reduced SDE on this valley itself is printed beside it.

# %%
diagonal_inputs = jnp.array([[1.0, 0.5, 0.2, 0.1], [0.3, 1.0, 0.7, 0.4]])


def diagonal_predict(theta, x):
    u, v = theta[:4], theta[4:]
    return x @ (u * u - v * v)


diagonal = flatter.Problem(diagonal_predict, diagonal_inputs, jnp.array([1.0, 0.6]), name="diagonal-network")
diagonal_start, _ = flatter.interpolate(diagonal, jnp.concatenate([jnp.full(4, 0.8), jnp.full(4, 0.3)]))
diagonal_start = flatter.valley.project(diagonal, diagonal_start)
diagonal_curvature = float(flatter.valley.descent_geometry(diagonal, diagonal_start).curvature)
FLAT_TRACE, NOISY_LABELS = 2.45, 2
# on the map's zeta range, beside (not on) the toy's simulated points
transfer_points = [(1.0, 1e-3)] if QUICK else [(2.5, 1e-3), (1.0, 1e-3), (0.4, 1e-3), (1.0, 1e-4), (0.4, 1e-4)]
transfer = []
print(f"diagonal network: lambda = {diagonal_curvature:.3g} (the toy's: {float(curvature):.3g})")
for z, e in transfer_points:
    k = 1 / (4 * z**2 * diagonal_curvature)
    C = (1 / (4 * NOISY_LABELS * k)) ** (1 / 3)
    g, band, share = simulated_gamma_star(
        diagonal, diagonal_start, "trace_hessian@valley", FLAT_TRACE, e, C, 1.0, 24 if QUICK else 64, NOISY_LABELS
    )
    g_own, own = predicted_gamma_star(
        diagonal, diagonal_start, "trace_hessian@valley", FLAT_TRACE, e, C, 1.0, NOISY_LABELS
    )
    toy_kappa = 1 / (4 * z**2 * float(curvature))  # the toy at the same zeta: its map's gamma* there
    g_toy, toy_band = predicted_gamma_star(toy, start, "abs_y", DELTA, e, 1.0, 2 * np.sqrt(toy_kappa))
    inside = toy_band[0] <= band[1] and band[0] <= toy_band[1]
    transfer.append((z, e, k, g, *band, g_toy, *toy_band, g_own, *own))
    print(
        f"  zeta = {z:g}, eta = {e:g} (kappa = {k:.3g}): simulated gamma* = {g:.3f} [{band[0]:.3f}, {band[1]:.3f}]; "
        f"the toy's map {g_toy:.3f} [{toy_band[0]:.3f}, {toy_band[1]:.3f}] ({'overlaps' if inside else 'apart'}); "
        f"reduced SDE on this valley {g_own:.3f} [{own[0]:.3f}, {own[1]:.3f}]; censored share by gamma "
        + " ".join(f"{c:.2f}" for c in share)
    )

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
for z, e, _k, g, *_ in transfer:
    axes[0].scatter([z], [e], c=[g], norm=norm, cmap="viridis", s=140, marker="D", edgecolors="m", linewidths=1.5)
    right = z > 0.5 * zetas.max()  # a label at the map's right edge goes to the left of its point
    axes[0].annotate(
        f"diag {g:.2f}", (z, e), xytext=(-8 if right else 8, -12), textcoords="offset points", color="w", fontsize=9,
        ha="right" if right else "left", path_effects=outline,
    )  # fmt: skip
fig.colorbar(mesh, ax=axes[0], label=r"predicted $\gamma^*$ (white squares: $|\gamma^*-2/3| \leq 0.05$)")
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel=r"damping ratio $\zeta = 1/(2\sqrt{\kappa\lambda})$ at $\gamma = 2/3$, $\kappa = \sigma^2/(4BC^3)$",
    ylabel=r"$\eta$",
    title=r"predicted $\gamma^*$ (toy); simulated: toy $\circ$, diagonal net $\diamond$",
)
# zeta spans a decade and a half: labelled major ticks only (the minor ones' labels would run into each other)
axes[0].xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.2, 0.5, 1.0, 2.0]))
axes[0].xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
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
    f"{seeds} reduced-SDE paths per point; diamonds: a diagonal linear network (d = 4, n = 2, B = 2), simulated",
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
    diagonal_network=np.array(transfer),
    diagonal_network_columns=np.array(
        [
            "zeta",
            "eta",
            "kappa",
            "gamma_star",
            "ci_low",
            "ci_high",
            "toy_map",
            "toy_low",
            "toy_high",
            "own",
            "own_low",
            "own_high",
        ]
    ),  # fmt: skip
    diagonal_network_curvature=diagonal_curvature,
    description=np.array(
        "toy valley h = 1 + y^2, y0 = 1, settling |y| < 0.1, C = 1, sigma = 2 sqrt(kappa), B = 1, zeta = "
        "1/(2 sqrt(kappa lambda)) with lambda the curvature of tr along the valley; gamma* is the "
        "vertex of log median T over gammas; predicted by flatter.timescales.predict_grid (reduced SDE)"
    ),
)
print(f"wrote {OUT / 'regime_map.png'} and {OUT / 'regime_map.npz'}")
