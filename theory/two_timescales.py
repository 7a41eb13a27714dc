# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Two timescales and the V-shaped exponent α(γ)
#
# Label-noise SGD with heavy-ball momentum, 1 − β = C η^γ, on the toy valley
# f(x, y) = √(1 + y²) x (docs/theory.md §6). Two times set how long it takes to reach the flat point
# y = 0 from y = 1:
#
# - τ1, the relaxation of the transverse fluctuations, read off the spectral radius of the heavy-ball
#   iteration: ∝ η^{γ−1} (overdamped, γ < 1/2) or 1/(1−β) ∝ η^{−γ} (underdamped);
# - τ2, the drift time along the valley, 4B(1−β)²/(η²ε²|∇_Γ tr∇²L|) ∝ η^{2γ−2}.
#
# They meet at γ = 2/3, where the steps to settle scale as η^{−2/3}, the fastest. The predictor of
# `flatter.timescales` computes them from the valley's geometry, and `predict_steps` integrates the
# limit dynamics (flow or critical reduced ODE) to give T; a small simulation checks it.
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
import matplotlib.pyplot as plt  # noqa: E402

import flatter  # noqa: E402
import flatter.figures  # noqa: E402
from flatter import timescales  # noqa: E402

QUICK = os.environ.get("FLATTER_QUICK") == "1"
OUT = Path(os.environ.get("FLATTER_OUT", "flatter-out/theory"))
OUT.mkdir(parents=True, exist_ok=True)

base = flatter.problems.toy_valley()
toy = flatter.Problem(
    base.predict,
    base.inputs,
    base.targets,
    observables={"abs_y": lambda p, th: jnp.abs(th[1])},
    name="toy-valley",
)
start = jnp.array([0.0, 1.0])
SIGMA, C, DELTA = 1.0, 1.0, 0.1

# %% [markdown]
# ## τ1 and τ2 from the predictor

# %%
geometry = timescales.measure_geometry(toy, start)
etas = np.geomspace(1e-4, 1e-1, 7 if QUICK else 13)
gammas_tau = (0.25, 0.5, 2 / 3, 0.85)
taus = {}
for g in gammas_tau:
    rows = []
    for eta in etas:
        beta = float(flatter.momentum_rule(eta, C=C, gamma=g))
        ts = timescales.predict_timescales(geometry, eta=eta, beta=beta, sigma=SIGMA, distance=1.0)
        rows.append((ts.tau1, ts.tau2))
    taus[g] = np.array(rows)
    print(
        f"gamma={g:.3f}: tau1 slope {np.polyfit(np.log(etas), np.log(taus[g][:, 0]), 1)[0]:+.2f}, "
        f"tau2 slope {np.polyfit(np.log(etas), np.log(taus[g][:, 1]), 1)[0]:+.2f}"
    )

# %% [markdown]
# ## Steps to settle: predictor vs simulation

# %%
gammas = np.array([0.0, 0.25, 0.5, 0.6, 2 / 3, 0.75, 0.85])
pred_etas = np.geomspace(6.4e-4, 1e-2, 4)
alpha_pred = []
for g in gammas:
    Ts = []
    for eta in pred_etas:
        beta = float(flatter.momentum_rule(eta, C=C, gamma=g)) if g > 0 else 0.0
        Ts.append(
            timescales.predict_steps(
                toy, start, eta=eta, beta=beta, sigma=SIGMA, observable="abs_y", threshold=DELTA
            ).settle
        )
    alpha_pred.append(-np.polyfit(np.log(pred_etas), np.log(Ts), 1)[0])
alpha_pred = np.array(alpha_pred)
print("predicted alpha:", dict(zip(np.round(gammas, 3).tolist(), np.round(alpha_pred, 2).tolist(), strict=True)))


def simulated_settle(eta, gamma, seeds):
    beta = float(flatter.momentum_rule(eta, C=C, gamma=gamma))
    pred = timescales.predict_steps(toy, start, eta=eta, beta=beta, sigma=SIGMA, observable="abs_y", threshold=DELTA)
    horizon = int(3 * pred.settle) + 200
    horizon -= horizon % 10

    def run(key):
        k1, k2 = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(SIGMA, key=k1), flatter.heavy_ball(eta, beta))
        traj = flatter.simulate(toy, tx, start, steps=horizon, key=k2, record_every=10, observables=["abs_y"])
        return flatter.settling_time(traj.steps, traj.observables["abs_y"], DELTA)

    t = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), seeds))
    return np.asarray(t.time), np.asarray(t.censored), pred.settle


# Three etas at least: a power law fitted through two points has no error bar.
sim_gammas = (0.5, 2 / 3, 0.85) if QUICK else (0.25, 0.5, 0.6, 2 / 3, 0.75, 0.85)
sim_etas = (4e-3, 2.5e-3, 1.6e-3) if QUICK else (4e-3, 2.5e-3, 1.6e-3, 1e-3, 6.4e-4)
seeds = 16 if QUICK else 64
alpha_sim = {}
for g in sim_gammas:
    runs = [simulated_settle(eta, g, seeds) for eta in sim_etas]
    # flatter's fit: alpha with a 95% bootstrap interval over seeds; censored medians are left out, not fitted.
    alpha_sim[g] = flatter.sweep.power_law(sim_etas, np.stack([r[0] for r in runs]), np.stack([r[1] for r in runs]))
    print(
        f"gamma={g:.3f}: simulated median T_settle {[round(float(np.median(r[0]))) for r in runs]} vs predicted "
        f"{[round(r[2]) for r in runs]}; alpha_sim={alpha_sim[g].alpha:.2f} "
        f"[{alpha_sim[g].ci[0]:.2f}, {alpha_sim[g].ci[1]:.2f}]"
    )

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
for (g, tt), color in zip(taus.items(), ("C0", "C1", "C2", "C3"), strict=True):
    axes[0].loglog(etas, tt[:, 0], color=color, ls="-", label=rf"$\tau_1$, $\gamma$={g:.2f}")
    axes[0].loglog(etas, tt[:, 1], color=color, ls="--", label=rf"$\tau_2$, $\gamma$={g:.2f}")
axes[0].set(xlabel=r"$\eta$", ylabel="steps", title=r"two timescales ($1-\beta = \eta^\gamma$)")
axes[0].legend(fontsize=7, ncol=2)
grid = np.linspace(0, 0.9, 91)
axes[1].plot(grid, timescales.alpha(grid), "k-", label=r"theory: $2-2\gamma$ below 2/3, $\gamma$ above")
axes[1].plot(gammas, alpha_pred, "s", color="C0", label="predictor (limit ODEs)")
fitted = [g for g, f in alpha_sim.items() if np.isfinite(f.alpha)]  # an undetermined fit is not drawn as a point
values = np.array([alpha_sim[g].alpha for g in fitted])
bars = np.abs(np.array([alpha_sim[g].ci for g in fitted]).T - values)
axes[1].errorbar(fitted, values, yerr=bars, fmt="o", color="C3", capsize=3, label=f"simulation ({seeds} seeds, 95% CI)")
axes[1].axvline(2 / 3, color="gray", ls=":")
axes[1].set(
    xlabel=r"$\gamma$",
    ylabel=r"$\alpha$ in $T_\mathrm{settle}\propto\eta^{-\alpha}$",
    title=r"the V-shaped exponent $\alpha(\gamma)$",
)
axes[1].legend(fontsize=8)
flatter.figures.add_caption(
    fig,
    rf"toy valley $f = \sqrt{{1+y^2}}\,x$ from $y$ = 1, label noise $\sigma$ = {SIGMA:g}, C = {C:g}, full batch; "
    rf"criterion $|y|$ < {DELTA:g} settled; simulated $\eta$ = {', '.join(f'{e:g}' for e in sim_etas)}",
    height=0.05,
)
flatter.figures.save_figure(fig, OUT / "two_timescales.png", dpi=130)
print("wrote", OUT / "two_timescales.png")
