"""`flatter demo`: label-noise SGDM with the 2/3 rule against plain SGD on matrix sensing."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._criteria import first_passage
from .._interpolate import interpolate
from .._io import environment, save_arrays, save_json
from .._simulate import simulate
from ..figures import add_caption, save_figure
from ..limit import regime
from ..problems import matrix_sensing
from ..transforms._heavy_ball import heavy_ball
from ..transforms._label_noise import label_noise, label_noise_batch
from ..transforms._momentum_rule import momentum_rule


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Matrix sensing d x d, rank r, n measurements; SGDM-LN with 1 - beta = C eta^gamma."""

    d: int = 20
    r: int = 2
    n: int = 100
    eta: float = 0.01
    C: float = 1.0
    gamma: float = 2 / 3
    sigma: float = 0.5
    seeds: int = 4
    steps: int = 100_000
    record_every: int = 100
    threshold: float = 0.2
    seed: int = 0

    def __post_init__(self):
        # Checked before any work, and named as the command line names it (record_every is not an option there).
        if self.steps % self.record_every:
            raise ValueError(
                f"--steps must be a multiple of {self.record_every} (the demo records every {self.record_every} "
                f"steps), got {self.steps}"
            )


def headline(rule: dict, fair: dict, same_eta: dict, horizon: int) -> str:
    """The demo's comparison against the fair baseline, SGD at the same effective step eta_eff = eta/(1-beta),
    saying which is faster; SGD at the same eta (a smaller effective step) follows as the weaker baseline."""

    def steps(res) -> tuple[float, str]:
        med = res["steps_to_recovery_median"]
        return (float(horizon), ">= ") if med is None else (float(med), "")

    (t_rule, b_rule), (t_fair, b_fair), (t_same, b_same) = steps(rule), steps(fair), steps(same_eta)
    if b_rule and b_fair:
        versus = "neither the 2/3 rule nor SGD at eta_eff recovers X* within the horizon"
    elif t_rule <= t_fair:
        versus = f"the 2/3 rule recovers X* {b_fair}{t_fair / t_rule:.1f}x faster than SGD at eta_eff"
    else:
        versus = f"SGD at eta_eff recovers X* {b_rule}{t_rule / t_fair:.1f}x faster than the 2/3 rule"
    weaker = "" if b_rule else f"; against SGD at the same eta: {b_same}{t_same / t_rule:.0f}x faster"
    return f"headline (fair baseline: SGD-LN at the same eta_eff = eta/(1-beta)): {versus}{weaker}"


def run_demo(config: DemoConfig = DemoConfig(), out: str | Path = "flatter-out/demo") -> dict:
    """Run the demo, print the headline table, write ``demo.png``, ``demo.npz`` and ``demo.json``."""
    out = Path(out)
    start = time.perf_counter()
    key = jax.random.key(config.seed)
    k_problem, k_init, k_runs = jax.random.split(key, 3)
    problem = matrix_sensing(config.d, config.r, config.n, key=k_problem)
    params0, info = interpolate(problem, problem.init_params(k_init))
    beta = float(momentum_rule(config.eta, C=config.C, gamma=config.gamma))
    eta_eff = config.eta / (1 - beta)
    variants = {
        f"SGDM-LN, 1-beta = {config.C:g} eta^{config.gamma:.3g}": (config.eta, beta),
        "SGD-LN, same eta": (config.eta, 0.0),
        "SGD-LN, eta_eff = eta/(1-beta)": (eta_eff, 0.0),
    }
    observables = ("recovery_error", "trace_hessian", "loss")
    print(
        f"matrix sensing d={config.d} r={config.r} n={config.n}; phase 1 (Gauss-Newton): loss "
        f"{info.loss:.1e} in {info.steps} steps, recovery error "
        f"{float(problem.observe(params0)['recovery_error']):.3f}"
    )
    # label_noise's default mode noises every label of the full batch: B = n
    found = regime(problem, params0, sigma=config.sigma, C=config.C,
                   batch_size=int(label_noise_batch("minibatch", None, problem.num_examples)))  # fmt: skip
    print(f"regime at gamma = 2/3 with C = {config.C:g}: {found}")

    def run(eta, beta, k):
        k_noise, k_sim = jax.random.split(k)
        tx = optax.chain(label_noise(config.sigma, key=k_noise), heavy_ball(eta, beta))
        return simulate(
            problem,
            tx,
            params0,
            steps=config.steps,
            key=k_sim,
            record_every=config.record_every,
            observables=observables,
        )

    sweep = jax.jit(jax.vmap(run, in_axes=(None, None, 0)))
    keys = jax.random.split(k_runs, config.seeds)
    results, traces = {}, {}
    from tqdm.auto import tqdm

    # One compiled run per optimizer (tens of seconds each on 2 cores): a bar, so the wait is not silent.
    for name, (eta, b) in tqdm(variants.items(), desc=f"demo ({config.seeds} seeds x {config.steps:,} steps)",
                               unit="optimizer"):  # fmt: skip
        traj = sweep(jnp.asarray(eta), jnp.asarray(b), keys)
        t = first_passage(traj.steps[0], traj.observables["recovery_error"], config.threshold, diverged=traj.diverged)
        reached = ~np.asarray(t.censored)
        results[name] = {
            "eta": eta,
            "beta": b,
            "eta_eff": eta / (1 - b),
            "steps_to_recovery_median": float(np.median(t.time)) if reached.all() else None,
            "steps_to_recovery": np.asarray(t.time).tolist(),
            "censored": (~reached).tolist(),
            "diverged": np.asarray(traj.diverged).tolist(),
            "final_recovery_error": float(np.mean(traj.observables["recovery_error"][:, -1])),
            "final_trace_hessian": float(np.mean(traj.observables["trace_hessian"][:, -1])),
        }
        traces[name] = {k: np.asarray(v) for k, v in traj.observables.items()}
        steps = np.asarray(traj.steps[0])
    elapsed = time.perf_counter() - start

    print(f"\nsteps until recovery error <= {config.threshold} (first passage, {config.seeds} seeds):")
    print(
        f"{'optimizer':<34} {'eta':>8} {'beta':>7} {'eta_eff':>8} {'steps (median)':>16} "
        f"{'final rec. err':>14} {'final tr H':>10}"
    )
    for name, res in results.items():
        med = res["steps_to_recovery_median"]
        n_cens = sum(res["censored"])
        shown = f"{med:,.0f}" if med is not None else f"> {config.steps:,} ({n_cens} cens.)"
        print(
            f"{name:<34} {res['eta']:>8.4f} {res['beta']:>7.4f} {res['eta_eff']:>8.4f} {shown:>16} "
            f"{res['final_recovery_error']:>14.3f} {res['final_trace_hessian']:>10.1f}"
        )
    rule, same_eta, fair = results.values()
    print("\n" + headline(rule, fair, same_eta, config.steps))

    out.mkdir(parents=True, exist_ok=True)
    save_arrays(
        out / "demo.npz",
        steps=steps,
        variants=np.array(list(results)),
        **{f"{obs}": np.stack([traces[v][obs] for v in results]) for obs in observables},
    )
    save_json(
        out / "demo.json",
        {
            "description": "flatter demo: label-noise SGDM (2/3 rule) vs SGD on matrix sensing; arrays in "
            "demo.npz have shape (variant, seed, record) against `steps`.",
            "config": dataclasses.asdict(config),
            "results": results,
            "regime": found._asdict(),
            "wall_seconds": elapsed,
            "environment": environment(),
        },
    )
    _plot(out / "demo.png", steps, traces, config)
    print(f"\nwrote {out / 'demo.png'}, demo.npz, demo.json  ({elapsed:.0f} s)")
    return results


def _legend_labels(config: DemoConfig) -> list[str]:
    """The three optimizers as a figure names them (mathtext symbols, the rule's exponent as 2/3 when it is)."""
    exponent = "2/3" if abs(config.gamma - 2 / 3) < 1e-9 else f"{config.gamma:.3g}"
    return [
        rf"SGDM-LN, $1-\beta = {config.C:g}\,\eta^{{{exponent}}}$",
        r"SGD-LN, same $\eta$",
        r"SGD-LN, $\eta_\mathrm{eff} = \eta/(1-\beta)$ (the fair baseline)",
    ]


def _plot(path: Path, steps, traces, config: DemoConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Log steps from the first record on: records are every record_every steps, so a symlog axis would join
    # step 0 to the first record by a straight segment with a kink at linthresh (plotting, not dynamics).
    shown = np.asarray(steps) > 0
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    labels = _legend_labels(config)
    for (tr, label), color in zip(zip(traces.values(), labels, strict=True), ("C0", "C3", "C2"), strict=False):
        for ax, obs in zip(axes, ("recovery_error", "trace_hessian"), strict=True):
            v = tr[obs][:, shown]
            ax.plot(steps[shown], v.mean(0), color=color, label=label)
            ax.fill_between(steps[shown], v.min(0), v.max(0), color=color, alpha=0.2, lw=0)
    for ax in axes:
        ax.set_xscale("log")
    axes[0].axhline(config.threshold, color="k", ls=":", lw=1, label=f"threshold {config.threshold:g}")
    axes[0].set(
        yscale="log",
        xlabel="step k",
        ylabel=r"$\|UU^\top - X^*\|_F / \|X^*\|_F$",
        title="recovery error (mean, min-max over seeds)",
    )
    axes[1].set(
        xlabel="step k",
        ylabel=r"tr $\nabla^2 L$",
        title=r"$\mathrm{tr}\,\nabla^2 L$ (the Gauss-Newton trace)",
    )
    # In the trace panel's empty middle: the recovery-error panel has data in every corner.
    handles, names = axes[0].get_legend_handles_labels()
    axes[1].legend(handles, names, fontsize=8, loc="center right")
    fig.suptitle(
        rf"matrix sensing, label noise $\sigma$ = {config.sigma:g}, $\eta$ = {config.eta:g}: "
        "SGDM with the 2/3 rule against SGD"
    )
    add_caption(
        fig,
        f"d = {config.d}, r = {config.r}, n = {config.n}, full batch, {config.seeds} seeds, "
        f"{config.steps:,} steps recorded every {config.record_every} (from step {config.record_every} on)",
    )
    save_figure(fig, path, dpi=130)
