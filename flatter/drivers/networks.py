"""The two real-data experiments: MLP-6 on Fashion-MNIST and ResNet-18 on CIFAR-10, in two phases.

Phase 1 fits the training set by full-batch gradient descent (gradients accumulated over minibatches)
and saves a checkpoint; phase 2 is a sweep of label-noise SGDM, 1 - beta = C eta^gamma, over a gamma
grid, an eta grid and seeds, through :func:`flatter.sweep.run_sweep` (resumable, sharded, diverged
runs masked). Two convergence times per run (docs/theory.md §1.7): the settling time of tr∇²L (Hutchinson,
a few fixed probes on a fixed subset of the training set) below ``threshold`` times its phase-1
value, and the time the smoothed test accuracy settles within 0.5 pt of its final plateau.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._criteria import plateau_time, settling_time
from .._full_batch import fit_training_set, load_checkpoint, save_checkpoint
from .._io import environment, save_arrays, save_json
from .._precision import full_precision
from .._problem import Problem
from .._simulate import simulate
from ..curvature import hutchinson_observable
from ..figures import draw_lower_bounds, grid_ticks
from ..sweep import UNDETERMINED_SE, SweepSpec, is_determined, optimal_gamma, power_law, run_sweep
from ..timescales import alpha as alpha_theory
from ..transforms import heavy_ball, label_flip, label_noise
from ._presets import load_dataset, pick_preset

ACCURACY_TOLERANCE = 0.005
"""The accuracy criterion's band: within 0.5 pt of the final plateau (docs/theory.md §1.7)."""


@dataclasses.dataclass(frozen=True)
class NetworkPreset:
    """One real-data experiment: data, model, phase 1 and the phase-2 grid.

    ``train_per_class`` / ``test_per_class``: a stratified, seeded subset (``None``: the whole split).
    ``loss="squared"`` on one-hot targets with Gaussian label noise of scale ``noise_scale`` is the
    setting where the theory applies directly; ``loss="cross_entropy"`` with ``noise="flip"`` flips
    each label to another class with probability ``noise_scale`` (Damian et al.: 0.2, batch 256).
    ``threshold``: the tr∇²L criterion, relative to its value after phase 1. ``trace_probes`` Rademacher
    probes on ``trace_examples`` training examples estimate tr∇²L at each of ``records`` records.
    ``eval_batch_size``: losses and accuracies over a whole split are computed this many examples at a
    time (:class:`flatter.Problem`'s ``eval_batch_size``).
    """

    dataset: str
    model: str
    width: int
    depth: int
    train_per_class: int | None
    test_per_class: int | None
    loss: str
    noise: str
    noise_scale: float
    batch_size: int
    gammas: tuple[float, ...]
    etas: tuple[float, ...]
    C: float
    seeds: int
    threshold: float
    records: int
    horizon_factor: float
    max_steps: int
    phase1_learning_rate: float
    phase1_momentum: float
    phase1_batch_size: int | None
    phase1_max_steps: int
    phase1_tol: float
    trace_probes: int
    trace_examples: int
    seed: int = 0
    eval_batch_size: int = 1000


# 2 CPU cores, well under 15 minutes: 2000 training images, a narrower MLP-6, four gammas, four etas.
_FASHION_QUICK = NetworkPreset(
    dataset="fashion-mnist",
    model="mlp",
    width=128,
    depth=6,
    train_per_class=200,
    test_per_class=100,
    loss="squared",
    noise="gaussian",
    noise_scale=0.5,
    batch_size=200,
    gammas=(1 / 3, 1 / 2, 2 / 3, 5 / 6),
    etas=(0.04, 0.07, 0.12, 0.2),
    C=1.0,
    seeds=3,
    threshold=0.5,
    records=32,
    horizon_factor=3.0,
    max_steps=2**16,
    phase1_learning_rate=0.2,
    phase1_momentum=0.9,
    phase1_batch_size=None,
    phase1_max_steps=20_000,
    phase1_tol=1e-4,
    trace_probes=4,
    trace_examples=500,
)
# ResNet-18 end to end on 50 images on CPU (minutes): the pipeline, not the science.
_CIFAR_SMOKE = NetworkPreset(
    dataset="cifar10",
    model="resnet18",
    width=64,
    depth=18,
    train_per_class=5,
    test_per_class=5,
    loss="cross_entropy",
    noise="flip",
    noise_scale=0.2,
    batch_size=16,
    gammas=(1 / 2, 2 / 3),
    etas=(0.05, 0.1, 0.2),
    C=1.0,
    seeds=1,
    threshold=0.5,
    records=4,
    horizon_factor=1.0,
    max_steps=16,
    phase1_learning_rate=0.05,
    phase1_momentum=0.9,
    phase1_batch_size=None,
    phase1_max_steps=400,
    phase1_tol=1e-8,
    trace_probes=1,
    trace_examples=16,
)
PRESETS: dict[str, dict[str, NetworkPreset]] = {
    "fashion-mnist": {
        "quick": _FASHION_QUICK,
        # A GPU: the paper's width, 10k training images (the protocol's upper end), the full test set, 8 seeds.
        "paper": dataclasses.replace(
            _FASHION_QUICK,
            width=512,
            train_per_class=1000,
            test_per_class=None,
            batch_size=250,
            gammas=(0.0, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 5 / 6),
            etas=(0.01, 0.02, 0.04, 0.07, 0.12),
            seeds=8,
            records=64,
            max_steps=2**20,
            phase1_learning_rate=0.1,
            phase1_batch_size=1000,
            phase1_max_steps=100_000,
            phase1_tol=1e-5,
            trace_probes=8,
            trace_examples=2000,
        ),
    },
    "cifar10": {
        "smoke": _CIFAR_SMOKE,
        # Damian et al.'s setting on one GPU: the full training set, p = 0.2, batch 256, the gamma grid of §1.7.
        "paper": dataclasses.replace(
            _CIFAR_SMOKE,
            train_per_class=None,
            test_per_class=None,
            batch_size=256,
            gammas=(0.0, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 5 / 6),
            etas=(0.01, 0.02, 0.05, 0.1),
            seeds=4,
            records=64,
            horizon_factor=3.0,
            max_steps=2**18,
            phase1_batch_size=500,
            phase1_max_steps=20_000,
            trace_probes=4,
            trace_examples=1024,
        ),
    },
}


def preset(dataset: str, name: str, **overrides) -> NetworkPreset:
    """A preset by dataset and name, with fields replaced by ``overrides`` (e.g. ``width=64``)."""
    return pick_preset(PRESETS, dataset, name, overrides)


def _subset(images, labels, per_class, seed):
    from ..data import stratified_subset

    if per_class is None:
        return images, labels
    idx = stratified_subset(labels, per_class, seed=seed)
    return images[idx], labels[idx]


def build_problem(config: NetworkPreset, data_dir: str | Path | None = None) -> tuple[Problem, object, str]:
    """The Problem (training subset, test subset, one-hot targets, a ``trace`` observable) and its init."""
    from flax import nnx

    from ..models import MLP, ResNet18

    data = load_dataset(config.dataset, data_dir)
    train, test = data.normalized()
    x, y = _subset(train, data.train_labels, config.train_per_class, config.seed)
    xt, yt = _subset(test, data.test_labels, config.test_per_class, config.seed)
    if config.dataset == "fashion-mnist":  # (N, 28, 28): the MLP flattens; a channel axis for a CNN
        x, xt = x[..., None], xt[..., None]
    k = data.num_classes
    rngs = nnx.Rngs(config.seed)
    if config.model == "mlp":
        module = MLP(int(np.prod(x.shape[1:])), k, width=config.width, depth=config.depth, rngs=rngs)
    else:
        module = ResNet18(k, in_channels=x.shape[-1], width=config.width, rngs=rngs)
    trace = hutchinson_observable(config.trace_probes, kind="hessian", examples=config.trace_examples)
    problem, params = Problem.from_flax(
        module,
        jnp.asarray(x),
        jax.nn.one_hot(y, k),
        test_inputs=jnp.asarray(xt),
        test_targets=jax.nn.one_hot(yt, k),
        loss=config.loss,
        observables={"trace": trace},
        name=f"{config.dataset}-{config.model}{config.width}",
        eval_batch_size=config.eval_batch_size,
    )
    return problem, params, data.source


def phase1(problem: Problem, params, config: NetworkPreset, path: Path, source: str):
    """Fit the training set (or read the checkpoint a previous run of the same settings wrote)."""
    settings = {
        "dataset": config.dataset,
        "model": config.model,
        "width": config.width,
        "depth": config.depth,
        "train_per_class": config.train_per_class,
        "loss": config.loss,
        "learning_rate": config.phase1_learning_rate,
        "momentum": config.phase1_momentum,
        "tol": config.phase1_tol,
        "seed": config.seed,
    }
    if path.exists():
        loaded, meta = load_checkpoint(path, params)
        if meta.get("settings") == settings:
            return loaded, meta
    start = time.perf_counter()
    fitted, info = fit_training_set(
        problem,
        params,
        learning_rate=config.phase1_learning_rate,
        momentum=config.phase1_momentum,
        batch_size=config.phase1_batch_size,
        tol=config.phase1_tol,
        max_steps=config.phase1_max_steps,
    )
    if not info.converged:
        raise ValueError(
            f"phase 1 did not fit the training set in {info.steps} steps (loss {info.loss:.3g}, accuracy "
            f"{info.accuracy:.3f}): raise phase1_max_steps or the learning rate"
        )
    with full_precision():
        names = ("loss", "accuracy", "test_loss", "test_accuracy", "trace")  # not the dense trace_hessian
        observed = {k: float(v) for k, v in problem.observe(fitted, names).items()}
    meta = {
        "settings": settings,
        "steps": info.steps,
        "seconds": time.perf_counter() - start,
        "data": source,
        "observables": observed,
    }
    save_checkpoint(path, fitted, **meta)
    return fitted, meta


def _noise(config: NetworkPreset, key, num_classes: int):
    if config.noise == "flip":
        return label_flip(config.noise_scale, key=key, num_classes=num_classes)
    return label_noise(config.noise_scale, key=key, mode="minibatch")


def pilot_flow_time(problem: Problem, params, config: NetworkPreset, threshold: float, path: Path) -> dict:
    """The time :math:`t^* = \\eta_\\mathrm{eff}^2 T` one SGDM run takes to settle tr∇²L below ``threshold``.

    One run at gamma = 2/3, the largest eta, seed 0, doubling its length until the criterion settles
    (at most ``max_steps``); its result sizes every horizon of the sweep (``SweepSpec.flow_time``)
    and is kept in ``path``, so a rerun resumes with the same sweep.
    """
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("threshold") == threshold and stored.get("config") == dataclasses.asdict(config):
            return stored
    eta = max(config.etas)
    beta = 1.0 - config.C * eta ** (2 / 3)
    tx = optax.chain(_noise(config, jax.random.key(1), problem.targets.shape[-1]), heavy_ball(eta, beta))
    steps = min(config.records * 16, config.max_steps)
    while True:
        traj = simulate(
            problem,
            tx,
            params,
            steps=steps,
            key=jax.random.key(2),
            record_every=steps // config.records,
            batch_size=config.batch_size,
            observables=["trace"],
        )
        settle = settling_time(traj.steps, traj.observables["trace"], threshold, diverged=traj.diverged)
        if not bool(settle.censored) or steps >= config.max_steps:
            break
        steps *= 2
    if bool(traj.diverged):
        raise ValueError(f"the pilot run diverged at eta={eta}: lower the largest eta of the preset")
    if bool(settle.censored):
        raise ValueError(
            f"tr∇²L did not settle below {config.threshold} x its phase-1 value in {steps} steps at eta={eta}: "
            "raise max_steps or the threshold"
        )
    eta_eff = eta / (1 - beta)
    result = {
        "flow_time": float(settle.time) * eta_eff**2,
        "steps": float(settle.time),
        "eta": eta,
        "beta": beta,
        "threshold": threshold,
        "config": dataclasses.asdict(config),
    }
    save_json(path, result)
    return result


def spec_for(problem: Problem, config: NetworkPreset, threshold: float, flow_time: float) -> SweepSpec:
    return SweepSpec.for_problem(
        problem,
        variants=("sgdm",),
        gammas=config.gammas,
        Cs=(config.C,),
        etas=config.etas,
        sigmas=(config.noise_scale,),
        batch_sizes=(config.batch_size,),
        noise=config.noise,
        seeds=config.seeds,
        observable="trace",
        threshold=threshold,
        horizon_factor=config.horizon_factor,
        min_steps=config.records,
        max_steps=config.max_steps,
        records=config.records,
        phase1=False,
        seed=config.seed,
        flow_time=flow_time,
        curves=("trace", "test_accuracy", "loss"),
    )


def accuracy_times(results) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy-plateau time of every run (grid-shaped), from the recorded test-accuracy curves."""
    acc = results.data["curve_test_accuracy"]
    horizon = results.data["horizon"]
    records = acc.shape[-1] - 1
    times = np.full(horizon.shape, np.nan)
    censored = np.ones(horizon.shape, bool)
    for h in np.unique(horizon):
        if h <= 0:
            continue
        where = horizon == h
        steps = jnp.arange(records + 1) * (int(h) // records)
        t = plateau_time(steps, acc[where], ACCURACY_TOLERANCE, diverged=results.data["diverged"][where])
        times[where], censored[where] = np.asarray(t.time), np.asarray(t.censored)
    return times, censored


def summarize(results, config: NetworkPreset, phase1_meta: dict, pilot: dict) -> dict:
    """alpha(gamma) for both criteria, gamma*, and what phase 2 did to tr∇²L and to test accuracy."""
    spec = results.spec
    acc_t, acc_c = accuracy_times(results)
    criteria = {
        "trace_settle": (results.data["T_settle"], results.data["censored_settle"]),
        "trace_first": (results.data["T_first"], results.data["censored_first"]),
        "accuracy_plateau": (acc_t, acc_c),
    }
    alpha = {}
    for name, (times, censored) in criteria.items():
        for gi, g in enumerate(spec.gammas):
            fit = power_law(spec.etas, times[0, gi, 0, :, 0, 0], censored[0, gi, 0, :, 0, 0])
            alpha[f"{g:.4f}|{name}"] = {
                "gamma": g,
                "criterion": name,
                **fit.summary(),
                "predicted": float(alpha_theory(g)),
            }
    times, censored = criteria["trace_settle"]
    opt = optimal_gamma(spec.gammas, spec.etas, times[0, :, 0, :, 0, 0], censored[0, :, 0, :, 0, 0])
    trace_curves = results.data["curve_trace"]
    acc_curves = results.data["curve_test_accuracy"]
    finite = ~results.data["diverged"]
    start_trace = float(trace_curves[..., 0].flat[0])
    start_acc = float(acc_curves[..., 0].flat[0])
    return {
        "dataset": config.dataset,
        "config": dataclasses.asdict(config),
        "phase1": phase1_meta,
        "pilot": {k: v for k, v in pilot.items() if k != "config"},
        "threshold": spec.threshold,
        "alpha": alpha,
        "gamma_star": opt.summary(spec.etas),
        "trace_start": start_trace,
        "trace_end_median": float(np.median(trace_curves[..., -1][finite])),
        "test_accuracy_start": start_acc,
        "test_accuracy_end_median": float(np.median(acc_curves[..., -1][finite])),
        "test_accuracy_end_range": [float(acc_curves[..., -1][finite].min()), float(acc_curves[..., -1][finite].max())],
        "censored": {name: int(c.sum()) for name, (_, c) in criteria.items()},
        "diverged": int(results.data["diverged"].sum()),
        "runs": int(results.data["diverged"].size),
    }


def print_summary(summary: dict) -> None:
    print(
        f"\n{summary['dataset']}: after phase 1 tr∇²L = {summary['trace_start']:.4g}, test accuracy "
        f"{summary['test_accuracy_start']:.4f}; after phase 2 (median over runs) tr∇²L = "
        f"{summary['trace_end_median']:.4g}, test accuracy {summary['test_accuracy_end_median']:.4f} "
        f"(range {summary['test_accuracy_end_range'][0]:.4f}-{summary['test_accuracy_end_range'][1]:.4f})"
    )
    print(
        f"alpha in T ~ eta^-alpha (+- linearized s.e. [95% bootstrap CI]); T: tr∇²L settles below "
        f"{summary['config']['threshold']:.3g} x its phase-1 value / test accuracy within 0.5 pt of its plateau"
    )
    print(f"{'gamma':>6} {'predicted':>9}  {'alpha (tr∇²L settle)':>28}  {'alpha (accuracy plateau)':>28}")
    for key, row in summary["alpha"].items():
        if row["criterion"] != "trace_settle":
            continue
        acc = summary["alpha"][key.replace("trace_settle", "accuracy_plateau")]

        def fmt(r):
            text = f"{r['alpha']:.2f} +- {r['se']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
            return text + ("*" if np.isfinite(r["alpha"]) and not is_determined(r["alpha"], r["se"]) else "")

        print(f"{row['gamma']:6.3f} {row['predicted']:9.2f}  {fmt(row):>28}  {fmt(acc):>28}")
    gs = summary["gamma_star"]
    print(
        f"gamma* (vertex of log T_settle over gamma at eta = {gs['eta']:g}) = {gs['gamma']:.3f}  "
        f"95% bootstrap CI [{gs['ci'][0]:.3f}, {gs['ci'][1]:.3f}]; vertex of alpha(gamma): {gs['alpha_vertex']:.3f}"
    )
    print(
        f"censored runs: {summary['censored']} of {summary['runs']}; diverged (masked): {summary['diverged']}"
        f"  (* undetermined: s.e. > {UNDETERMINED_SE})"
    )


def plot(results, summary: dict, path: Path) -> None:
    """Four panels: tr∇²L and test accuracy against steps per gamma, T against eta with fits, alpha(gamma)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = results.spec
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4), constrained_layout=True)
    colors = {g: plt.cm.viridis(i / max(len(spec.gammas) - 1, 1)) for i, g in enumerate(spec.gammas)}
    eta_index = len(spec.etas) // 2  # the middle eta: long enough to show the drift, short enough to finish
    eta = spec.etas[eta_index]
    first_record = int(results.data["horizon"][0, :, 0, eta_index].min()) // spec.records
    for g in spec.gammas:
        gi = spec.gammas.index(g)
        horizon = int(results.data["horizon"][0, gi, 0, eta_index, 0, 0, 0])
        steps = np.arange(spec.records + 1) * (horizon // spec.records)
        for ax, name in ((axes[0], "curve_trace"), (axes[1], "curve_test_accuracy")):
            curves = results.data[name][0, gi, 0, eta_index, 0, 0]  # (seeds, records + 1)
            mid = np.nanmedian(curves, axis=0)
            ax.plot(steps, mid, color=colors[g], label=rf"$\gamma$={g:.2f}")
            ax.fill_between(steps, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=colors[g], alpha=0.2)
    start = summary["trace_start"]
    axes[0].axhline(start, color="k", lw=0.6, ls=":", label="after phase 1")
    axes[0].axhline(spec.threshold, color="r", lw=0.8, ls="--", label="criterion")
    for ax in axes[:2]:  # a log axis that keeps step 0 (the end of phase 1)
        ax.set_xscale("symlog", linthresh=max(first_record, 1))
        ax.set_xlim(0, None)
    axes[0].set(
        xlabel="phase-2 step",
        ylabel=r"tr$\nabla^2 L$ (Hutchinson; median, range over seeds)",
        title=rf"label-noise SGDM lowers tr$\nabla^2L$ ($\eta$={eta:g})",
    )
    axes[1].axhline(summary["test_accuracy_start"], color="k", lw=0.6, ls=":", label="after phase 1")
    axes[1].set(xlabel="phase-2 step", ylabel="test accuracy", title="test accuracy")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    etas = np.array(spec.etas)
    for g in spec.gammas:
        gi = spec.gammas.index(g)
        t = results.data["T_settle"][0, gi, 0, :, 0, 0]
        c = results.data["censored_settle"][0, gi, 0, :, 0, 0]
        med = np.median(np.where(c, np.inf, t), axis=-1)
        known = np.isfinite(med)
        if known.any():
            axes[2].plot(etas[known], med[known], "o", color=colors[g], label=rf"$\gamma$={g:.2f}")
        if (~known).any():
            draw_lower_bounds(axes[2], etas[~known], np.max(t, axis=-1)[~known], colors[g])
        fit = summary["alpha"][f"{g:.4f}|trace_settle"]
        if is_determined(fit["alpha"], fit["se"]):
            grid = np.geomspace(etas.min(), etas.max(), 20)
            axes[2].plot(grid, fit["prefactor"] * grid ** -fit["alpha"], color=colors[g], lw=1)
    axes[2].set(
        xscale="log",
        yscale="log",
        xlabel=r"$\eta$",
        ylabel=r"$T_\mathrm{settle}$ of tr$\nabla^2L$ (steps, median)",
        title="steps to settle (hollow: censored lower bound)",
    )
    grid_ticks(axes[2], spec.etas)
    axes[2].legend(fontsize=7)
    gg = np.linspace(0, 0.9, 91)
    axes[3].plot(gg, alpha_theory(gg), "k-", lw=1, label="theory (settling)")
    for criterion, marker, color in (("trace_settle", "o", "C0"), ("accuracy_plateau", "s", "C3")):
        rows = [r for r in summary["alpha"].values() if r["criterion"] == criterion and np.isfinite(r["alpha"])]
        for r in rows:
            ok = is_determined(r["alpha"], r["se"])
            lo, hi = r["ci"]
            lo, hi = (lo, hi) if np.isfinite(lo) else (r["alpha"] - r["se"], r["alpha"] + r["se"])
            axes[3].errorbar(
                [r["gamma"] + (0.008 if criterion != "trace_settle" else 0)],
                [r["alpha"]],
                yerr=[[max(r["alpha"] - lo, 0)], [max(hi - r["alpha"], 0)]],
                fmt=marker,
                color=color if ok else "0.6",
                mfc=color if ok else "none",
                capsize=2,
                label=None,
            )
        axes[3].plot([], [], marker, color=color, label=criterion.replace("_", " "))
    gs = summary["gamma_star"]
    axes[3].axvline(gs["gamma"], color="C1", lw=1.2, label=rf"$\gamma^*$ = {gs['gamma']:.2f}")
    axes[3].axvline(2 / 3, color="k", lw=0.6, ls="--")
    axes[3].set(
        xlabel=r"$\gamma$",
        ylabel=r"$\alpha$ in $T\propto\eta^{-\alpha}$ (95% CI; hollow: undetermined)",
        title=r"exponent $\alpha(\gamma)$",
    )
    axes[3].legend(fontsize=7)
    fig.suptitle(
        f"{summary['dataset']} ({results.spec.problem}): phase 1 to a fitted training set, then label-noise SGDM, "
        r"$1-\beta = C\eta^\gamma$",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_network_experiment(
    dataset: str,
    preset_name: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    progress: bool = True,
    verbose: bool = False,
    **overrides,
) -> dict:
    """Phase 1, the pilot, the phase-2 sweep, the summary and the figure, under ``out/dataset/preset``."""
    config = preset(dataset, preset_name, **overrides)
    out = Path(out) / dataset / preset_name
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with full_precision():
        problem, params, source = build_problem(config, data_dir)
        params, meta = phase1(problem, params, config, out / "phase1.npz", source)
        threshold = config.threshold * meta["observables"]["trace"]
        print(
            f"phase 1: {meta['steps']} full-batch steps ({meta['seconds']:.1f} s), train accuracy "
            f"{meta['observables']['accuracy']:.4f}, test accuracy {meta['observables']['test_accuracy']:.4f}, "
            f"tr∇²L {meta['observables']['trace']:.4g}",
            flush=True,
        )
        pilot = pilot_flow_time(problem, params, config, threshold, out / "pilot.json")
        print(f"pilot: tr∇²L settles in {pilot['steps']:.0f} steps at eta={pilot['eta']:g}", flush=True)
    spec = spec_for(problem, config, threshold, pilot["flow_time"])
    results = run_sweep(spec, out / "sweep", problem=problem, params0=params, progress=progress, verbose=verbose)
    summary = summarize(results, config, meta, pilot)
    summary.update(wall_seconds=time.perf_counter() - start, environment=environment(), sweep=str(out / "sweep"))
    print_summary(summary)
    save_json(out / "summary.json", summary)
    save_arrays(
        out / "curves.npz",
        description=np.array(
            "per-run curves on the grid (variant, gamma, C, eta, sigma, batch_size, seed, record); the steps of "
            "record j are j * horizon / records"
        ),
        horizon=results.data["horizon"],
        **{k: v for k, v in results.data.items() if k.startswith("curve_")},
    )
    plot(results, summary, out / f"{dataset}.png")
    print(f"\nwrote {out / f'{dataset}.png'}, {out / 'summary.json'} ({summary['wall_seconds']:.0f} s)")
    return summary
