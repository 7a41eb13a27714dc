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

from .._criteria import settling_time
from .._full_batch import checkpoint_meta, fit_training_set, load_checkpoint, save_checkpoint
from .._io import environment, save_arrays, save_json
from .._precision import full_precision
from .._problem import Problem
from .._progress import keep_alive
from .._simulate import SAMPLINGS, simulate
from .._validation import check_choice
from ..curvature import hutchinson_observable
from ..figures import network_figure, save_figure
from ..limit import regime_at
from ..sweep import SweepSpec, problem_digest, run_sweep, summarize as summarize_sweep
from ..transforms import heavy_ball, label_flip, label_noise, label_noise_batch
from ..valley import descent_geometry
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
    time (:class:`flatter.Problem`'s ``eval_batch_size``). ``censored_pilot_ok``: a pilot that does not settle
    within ``max_steps`` sizes the horizons from its horizon (a lower bound on :math:`t^*`) instead of stopping
    the run, for presets that test the pipeline rather than measure (whether 16 steps of a tiny ResNet lower
    tr∇²L by half depends on the processor's rounding). ``sampling``: how phase 2 draws its minibatches
    (:func:`flatter.draw_batch`; ``"with_replacement"`` costs O(B) instead of a partial sort of n uniforms).
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
    censored_pilot_ok: bool = False
    sampling: str = "without_replacement"


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
    censored_pilot_ok=True,
)
PRESETS: dict[str, dict[str, NetworkPreset]] = {
    "fashion-mnist": {
        "quick": _FASHION_QUICK,
        # The quick preset's network and phase 1 moved to the critical damping ratio and run at the protocol's size
        # (docs/theory.md §1.7: 5 gammas with 2/3, 4 etas over a decade, 8 seeds). The quick preset sits at
        # zeta = 3.5 (kappa = 3.1e-4, lambda = 64.8 at its fitted point). C = 0.433 makes kappa = sigma^2/(4BC^3)
        # = 3.9e-3 and zeta = 1/(2 sqrt(kappa lambda)) = 1.0 at the same point; of the levers, C raises the
        # transverse noise floor (eta sigma^2/(B(1 - beta)), ~1/C) least for the kappa it buys (~1/C^3): a batch of
        # 16 instead (zeta 0.99) diverged in 19 of 160 runs and met the criterion in 16 steps at eta = 0.2.
        "critical": dataclasses.replace(
            _FASHION_QUICK,
            C=0.433,
            gammas=(1 / 2, 3 / 5, 2 / 3, 3 / 4, 5 / 6),
            etas=(0.02, 0.05, 0.1, 0.2),
            seeds=8,
        ),
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


def _config_record(config: NetworkPreset) -> dict:
    """The preset as stored beside its results; fields added later are left out at their defaults (so the
    pilots and summaries of earlier runs still match)."""
    record = dataclasses.asdict(config)
    if record["sampling"] == "without_replacement":
        del record["sampling"]
    return json.loads(json.dumps(record))  # as read back from a file (lists, not tuples), so the two compare equal


def preset(dataset: str, name: str, **overrides) -> NetworkPreset:
    """A preset by dataset and name, with fields replaced by ``overrides`` (e.g. ``width=64``)."""
    config = pick_preset(PRESETS, dataset, name, overrides)
    check_choice("sampling", config.sampling, SAMPLINGS)  # before phase 1, not after it
    return config


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


def phase1(problem: Problem, params, config: NetworkPreset, path: Path, source: str, progress: bool = False):
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
        "data_digest": problem_digest(problem),  # other --data with the same settings is another phase 1
    }
    # The settings are compared before the parameters are read: another width has leaves of other shapes.
    if path.exists() and checkpoint_meta(path).get("settings") == settings:
        return load_checkpoint(path, params)
    start = time.perf_counter()
    fitted, info = fit_training_set(
        problem,
        params,
        learning_rate=config.phase1_learning_rate,
        momentum=config.phase1_momentum,
        batch_size=config.phase1_batch_size,
        tol=config.phase1_tol,
        max_steps=config.phase1_max_steps,
        progress=progress,
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


def pilot_flow_time(
    problem: Problem, params, config: NetworkPreset, threshold: float, path: Path, progress: bool = False
) -> dict:
    """The time :math:`t^* = \\eta_\\mathrm{eff}^2 T` one SGDM run takes to settle tr∇²L below ``threshold``.

    One run at gamma = 2/3, the largest eta, seed 0, doubling its length until the criterion settles
    (at most ``max_steps``); its result sizes every horizon of the sweep (``SweepSpec.flow_time``)
    and is kept in ``path``, so a rerun resumes with the same sweep.
    """
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("threshold") == threshold and stored.get("config") == _config_record(config):
            return stored
    eta = max(config.etas)
    beta = 1.0 - config.C * eta ** (2 / 3)
    tx = optax.chain(_noise(config, jax.random.key(1), problem.targets.shape[-1]), heavy_ball(eta, beta))
    steps = min(config.records * 16, config.max_steps)
    while True:
        if progress:
            print(f"pilot: {steps} steps of SGDM at eta={eta:g}, gamma=2/3 ...", flush=True)
        traj = simulate(
            problem,
            tx,
            params,
            steps=steps,
            key=jax.random.key(2),
            record_every=steps // config.records,
            batch_size=config.batch_size,
            sampling=config.sampling,
            observables=["trace"],
            progress=progress,
        )
        settle = settling_time(traj.steps, traj.observables["trace"], threshold, diverged=traj.diverged)
        if not bool(settle.censored) or steps >= config.max_steps:
            break
        steps *= 2
    if bool(traj.diverged):
        raise ValueError(f"the pilot run diverged at eta={eta}: lower the largest eta of the preset")
    if bool(settle.censored) and not config.censored_pilot_ok:
        raise ValueError(
            f"tr∇²L did not settle below {config.threshold} x its phase-1 value in {steps} steps at eta={eta}: "
            "raise max_steps or the threshold"
        )
    eta_eff = eta / (1 - beta)
    result = {
        "flow_time": float(settle.time) * eta_eff**2,
        "steps": float(settle.time),
        "censored": bool(settle.censored),
        "eta": eta,
        "beta": beta,
        "threshold": threshold,
        "config": _config_record(config),
    }
    save_json(path, result)
    return result


def network_regime(problem: Problem, params, config: NetworkPreset, settings: dict, path: Path, progress: bool = False):
    r"""Where the fitted network sits on the regime map (:func:`flatter.limit.regime_at`'s Regime as a dict), or None
    where the reduced theory does not apply (flip noise or the cross-entropy loss).

    :math:`\kappa = \sigma^2/(4BC^3)` with :math:`B` the minibatch's noisy labels
    (:func:`flatter.transforms.label_noise_batch`) and :math:`\lambda`, the curvature of tr∇²L along the valley in
    the drift's direction, from the phase-1 point without a Jacobian (:func:`flatter.valley.descent_geometry`: one
    LSMR solve, minutes on MLP-6). :math:`\lambda` is the fitted point's own and is kept in ``path`` with the
    phase-1 settings it was computed for: a rerun, or another preset on the same phase 1, reads it.
    """
    if config.loss != "squared" or config.noise != "gaussian":
        return None
    key = json.loads(json.dumps(settings))  # as read back from the file
    stored = json.loads(path.read_text()) if path.exists() else {}
    if stored.get("phase1") != key:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=1, desc="regime: curvature of tr∇²L along the valley (matrix-free)", unit="solve")
        start = time.perf_counter()
        with keep_alive(bar):
            geometry = descent_geometry(problem, params)
        if bar is not None:
            bar.update(1)
            bar.close()
        stored = {**geometry._asdict(), "seconds": time.perf_counter() - start, "phase1": key}
        save_json(path, stored)
    noisy = int(label_noise_batch("minibatch", config.batch_size, problem.num_examples))
    found = regime_at(stored["curvature"], sigma=config.noise_scale, C=config.C, batch_size=noisy)
    return {
        "kappa": found.kappa,
        "curvature": found.curvature,
        "zeta": found.zeta,
        "side": found.side,
        "noise_batch": noisy,
        "text": str(found),
        "seconds": stored["seconds"],
    }


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
        sampling=config.sampling,
    )


def summarize(results, config: NetworkPreset, phase1_meta: dict, pilot: dict):
    """The scaling summary of the three criteria (tr∇²L settling and first passage, the accuracy plateau) and a
    JSON record of it with what phase 2 did to tr∇²L and to test accuracy."""
    plateau = results.plateau_times("test_accuracy", ACCURACY_TOLERANCE)
    with_plateau = results.with_criterion("accuracy_plateau", *plateau)
    summary = summarize_sweep(with_plateau, problem=config.dataset, criteria=("settle", "first", "accuracy_plateau"))
    trace_curves = results.data["curve_trace"]
    acc_curves = results.data["curve_test_accuracy"]
    finite = ~results.data["diverged"]
    record = {
        **summary.to_json(),
        "dataset": config.dataset,
        "config": _config_record(config),
        "phase1": phase1_meta,
        "pilot": {k: v for k, v in pilot.items() if k != "config"},
        "threshold": results.spec.threshold,
        "trace_start": float(trace_curves[..., 0].flat[0]),
        "trace_end_median": float(np.median(trace_curves[..., -1][finite])),
        "test_accuracy_start": float(acc_curves[..., 0].flat[0]),
        "test_accuracy_end_median": float(np.median(acc_curves[..., -1][finite])),
        "test_accuracy_end_range": [float(acc_curves[..., -1][finite].min()), float(acc_curves[..., -1][finite].max())],
        "censored": {c: int(with_plateau.data[f"censored_{c}"].sum()) for c in with_plateau.criteria},
        "runs": int(results.data["diverged"].size),
    }
    return with_plateau, summary, record


def print_summary(summary, record: dict) -> None:
    print(
        f"\n{record['dataset']}: after phase 1 tr∇²L = {record['trace_start']:.4g}, test accuracy "
        f"{record['test_accuracy_start']:.4f}; after phase 2 (median over runs) tr∇²L = "
        f"{record['trace_end_median']:.4g}, test accuracy {record['test_accuracy_end_median']:.4f} "
        f"(range {record['test_accuracy_end_range'][0]:.4f}-{record['test_accuracy_end_range'][1]:.4f})"
    )
    print(
        f"T: tr∇²L settles below {record['config']['threshold']:.3g} x its phase-1 value (settle) / test accuracy "
        "within 0.5 pt of its plateau (accuracy_plateau)"
    )
    print(summary.table(columns=("settle", "accuracy_plateau")))
    print(f"censored runs: {record['censored']} of {record['runs']}; diverged (masked): {summary.diverged}")


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
        params, meta = phase1(problem, params, config, out / "phase1.npz", source, progress=progress)
        threshold = config.threshold * meta["observables"]["trace"]
        print(
            f"phase 1: {meta['steps']} full-batch steps ({meta['seconds']:.1f} s), train accuracy "
            f"{meta['observables']['accuracy']:.4f}, test accuracy {meta['observables']['test_accuracy']:.4f}, "
            f"tr∇²L {meta['observables']['trace']:.4g}",
            flush=True,
        )
        found = network_regime(problem, params, config, meta["settings"], out / "regime.json", progress=progress)
        if found is None:
            print("regime: not placed (the reduced theory's kappa is for Gaussian label noise on the squared loss)")
        else:
            print(f"regime at gamma = 2/3: {found['text']} ({found['seconds']:.0f} s)", flush=True)
        pilot = pilot_flow_time(problem, params, config, threshold, out / "pilot.json", progress=progress)
        settles = "does not settle within" if pilot.get("censored") else "settles in"
        print(f"pilot: tr∇²L {settles} {pilot['steps']:.0f} steps at eta={pilot['eta']:g}", flush=True)
    spec = spec_for(problem, config, threshold, pilot["flow_time"])
    results = run_sweep(spec, out / "sweep", problem=problem, params0=params, progress=progress, verbose=verbose)
    results, summary, record = summarize(results, config, meta, pilot)
    record["regime"] = found
    record.update(wall_seconds=time.perf_counter() - start, environment=environment(), sweep=str(out / "sweep"))
    print_summary(summary, record)
    save_json(out / "summary.json", record)
    save_arrays(
        out / "curves.npz",
        description=np.array(
            "per-run curves on the grid (variant, gamma, C, eta, sigma, batch_size, seed, record); the steps of "
            "record j are j * horizon / records"
        ),
        horizon=results.data["horizon"],
        **{k: v for k, v in results.data.items() if k.startswith("curve_")},
    )
    title = (
        f"{dataset} ({results.spec.problem}, {problem.num_examples} training images, width {config.width}, "
        f"{config.seeds} seeds): phase 1 to a fitted training set, then label-noise SGDM, "
        r"$1-\beta = C\eta^\gamma$"
    )
    if found is not None:
        title += (
            "\n"
            rf"regime at $\gamma$ = 2/3: the damping ratio $\zeta$ = {found['zeta']:.3g} ({found['side']}, critical 1) "
            rf"from $\kappa = \sigma^2/(4BC^3)$ = {found['kappa']:.3g}, $\lambda$ = {found['curvature']:.3g}"
        )
    fig = network_figure(
        results, summary, trace_start=record["trace_start"], accuracy_start=record["test_accuracy_start"], title=title
    )
    save_figure(fig, out / f"{dataset}.png", dpi=120)
    print(f"\nwrote {out / f'{dataset}.png'}, {out / 'summary.json'} ({record['wall_seconds']:.0f} s)")
    return record
