"""Run a sweep: vmapped chunks under one compiled function per step count, sharded, resumable."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from .._criteria import first_passage, settling_time
from .._devices import count_compiles, place_runs, runs_sharding
from .._interpolate import interpolate
from .._io import environment
from .._precision import full_precision
from .._progress import keep_alive, listening
from .._simulate import loops_are_slow, simulate, simulate_records
from .._validation import check_positive_int
from ..problems import make_problem
from ..timescales import settle_estimate
from ..transforms._heavy_ball import heavy_ball
from ..transforms._label_flip import label_flip
from ..transforms._label_noise import label_noise, label_noise_batch
from ..transforms._sngm import sngm
from ._grid import SweepSpec, problem_digest, start_digest
from ._lock import folder_lock
from ._reference import flow_reference
from ._results import SweepResults
from ._store import (
    SweepInterrupted,
    assemble,
    chunk_files,
    claim_folder,
    done_runs,
    fields_of,
    record_spec,
    write_chunk,
    write_plan,
)


def prepare(spec: SweepSpec, problem=None, params0=None):
    """The problem and the start point of phase 2 (after phase 1 when ``spec.phase1``).

    A registered problem is built from ``spec``; a user's problem (``SweepSpec.for_problem``) must be
    passed as ``problem`` (its data digest is checked) with ``params0`` or an ``init_params``.
    """
    problem, params0 = resolve_start(spec, problem, params0)
    if spec.phase1:
        params0, _ = interpolate(problem, params0)
    return problem, params0


def resolve_start(spec: SweepSpec, problem=None, params0=None):
    """The problem and the start point before phase 1, checked against ``spec`` (see :func:`prepare`)."""
    if spec.problem_digest is None:
        if problem is not None:
            raise ValueError(
                f"spec names the registered problem {spec.problem!r}; build the spec with SweepSpec.for_problem "
                "to sweep your own problem"
            )
        problem = make_problem(spec.problem, **spec.problem_kwargs)
    else:
        if problem is None:
            raise ValueError(
                f"spec is for a user's problem ({spec.problem!r}, digest {spec.problem_digest}): pass it as problem="
            )
        if problem_digest(problem) != spec.problem_digest:
            raise ValueError(
                f"problem does not match the spec: its digest is {problem_digest(problem)}, the spec was built for "
                f"{spec.problem_digest} (other data, name or observables)"
            )
    if params0 is None:
        params0 = problem.init_params(jax.random.key(spec.seed))
    problem.check_params(params0)
    if spec.noise == "flip" and problem.loss_kind != "cross_entropy":
        raise ValueError(
            f"noise='flip' flips the labels of a classifier: it needs loss='cross_entropy', problem {problem.name!r} "
            f"has loss={problem.loss_kind!r} (use noise='gaussian')"
        )
    if spec.flow_time is None and problem.loss_kind != "squared":
        raise ValueError(
            "the flow reference that sizes the horizons needs a squared loss: give the spec a flow_time "
            "(the time eta_eff^2 * steps the criterion takes, e.g. from a pilot run)"
        )
    return problem, params0


def resolved_threshold(problem, params0, spec: SweepSpec) -> float:
    """``spec.threshold``, times the observable's starting value when ``spec.relative_threshold``."""
    if not spec.relative_threshold:
        return spec.threshold
    return spec.threshold * float(problem.observe(params0, [spec.observable])[spec.observable])


def horizons(spec: SweepSpec, points: dict, reference: dict, n: int) -> np.ndarray:
    """Steps per run: ``horizon_factor`` x the predicted settling steps, as records x 2^j.

    With ``spec.flow_time`` (``reference["given"]``) the prediction is
    :math:`t^*/\\eta_\\mathrm{eff}^2 + 5/(1-\\beta)` at the spec's own noise; otherwise
    :func:`flatter.timescales.settle_estimate` from the flow reference, rescaled to each run's noise.
    """
    a = 1.0 - points["step_beta"]
    if reference.get("given"):
        pred = reference["flow_time"] * (a / points["step_eta"]) ** 2 + 5.0 / a
    else:
        b_noise = label_noise_batch(spec.label_noise_mode, points["batch_size"], n)
        sigma = np.where(points["sigma"] > 0, points["sigma"], 1.0)
        t_star = reference["flow_time"] * 4.0 * b_noise / sigma**2
        # SNGM near the valley is SGDM at eta / |g|, with |g|^2 = sigma^2 tr∇²L / B the label-noise gradient's.
        norm = np.sqrt(sigma**2 * reference.get("trace_hessian", 1.0) / b_noise)
        pred = settle_estimate(
            flow_time=t_star,
            distance=reference["distance"],
            grad_norm=reference["grad_norm"],
            eta=np.where(points["variant"] == "sngm", points["step_eta"] / norm, points["step_eta"]),
            beta=points["step_beta"],
            sigma=sigma,
            batch_size=b_noise,
        )
    if not np.all(np.isfinite(pred)):  # a NaN cast to int would be a huge negative horizon
        raise ValueError(
            "the predicted horizons are not finite: the flow reference "
            f"{ {k: v for k, v in reference.items() if k != 'given'} } has NaN/inf (check the problem's data and "
            "start point, or give SweepSpec(flow_time=...))"
        )
    # Baselines without momentum at the same eta take the horizon their own prediction gives; the variant
    # without label noise has no drift along the valley and gets the horizon of its SGDM twin.
    want = np.clip(spec.horizon_factor * pred, spec.min_steps, spec.max_steps)
    power = np.ceil(np.log2(np.maximum(want / spec.records, 1.0)))
    return (spec.records * 2**power).astype(np.int64)


def _structure(variant: str) -> tuple[str, bool]:
    """(momentum: heavy-ball, nesterov or sngm; label noise): all a variant changes in the compiled program
    (eta, beta are inputs)."""
    return {"nesterov": "nesterov", "sngm": "sngm"}.get(variant, "heavy-ball"), variant != "sgdm-no-label-noise"


def _optimizer(problem, spec: SweepSpec, momentum: str, noisy: bool, eta, beta, sigma, k_noise, batch):
    mode = spec.label_noise_mode if batch is None else "minibatch"
    tx = sngm(eta, beta) if momentum == "sngm" else heavy_ball(eta, beta, nesterov=momentum == "nesterov")
    if noisy and spec.noise == "flip":
        return optax.chain(label_flip(sigma, key=k_noise, num_classes=problem.targets.shape[-1]), tx)
    if noisy:
        return optax.chain(label_noise(sigma, key=k_noise, mode=mode), tx)
    return tx


def _outcome(spec: SweepSpec, threshold: float, steps, observables, diverged) -> dict:
    """A run's stored fields from its records: the two criteria, the final value and the curves."""
    values = observables[spec.observable]
    first = first_passage(steps, values, threshold, below=spec.below, diverged=diverged)
    settle = settling_time(steps, values, threshold, below=spec.below, diverged=diverged)
    return {
        "T_first": first.time,
        "T_settle": settle.time,
        "censored_first": first.censored,
        "censored_settle": settle.censored,
        "diverged": diverged,
        "final_value": values[-1],
        **{f"curve_{name}": observables[name] for name in spec.curves},
    }


@contextlib.contextmanager
def _records_tick(bar, run_steps: int, records: int, sharding):
    """While a chunk runs, each record it reaches moves ``bar`` by its share of the chunk's ``run_steps`` (a sharded
    chunk calls back once per device and record); whatever is left is added when the chunk ends."""
    if bar is None:
        yield
        return
    calls = records * (1 if sharding is None else jax.device_count())
    moved, lock = [0], threading.Lock()

    def tick() -> None:
        with lock:
            step = min(run_steps // calls, run_steps - moved[0])
            moved[0] += step
        bar.update(step)

    with listening(tick):
        yield
    bar.update(run_steps - moved[0])


def _run_fn(
    problem, params0, spec: SweepSpec, threshold: float, momentum: str, noisy: bool, batch_size: int,
    heartbeat: bool = False,
):  # fmt: skip
    """The vmapped runs of one chunk; the steps between records are an input, so every horizon shares it.
    ``heartbeat``: each record calls back to the host (the progress bar moves inside a long chunk)."""
    batch = None if batch_size < 0 else int(batch_size)

    def run(eta, beta, sigma, key_data, record_every):
        k_noise, k_sim = jax.random.split(jax.random.wrap_key_data(key_data))
        tx = _optimizer(problem, spec, momentum, noisy, eta, beta, sigma, k_noise, batch)
        traj = simulate_records(
            problem,
            tx,
            params0,
            key=k_sim,
            record_every=record_every,
            n_records=spec.records,
            batch_size=batch,
            sampling=spec.sampling,
            observables=list(dict.fromkeys((spec.observable, *spec.curves))),
            heartbeat=heartbeat,
        )
        return _outcome(spec, threshold, traj.steps, traj.observables, traj.diverged)

    return jax.jit(jax.vmap(run, in_axes=(0, 0, 0, 0, None)))


def _host_run_fn(problem, params0, spec: SweepSpec, threshold: float, momentum: str, noisy: bool, batch_size: int):
    """:func:`_run_fn` for models whose steps must be driven from the host (:func:`flatter.loops_are_slow`).

    The same runs (the same keys, steps and records), one after another, each an eager
    :func:`flatter.simulate` (which steps such a model from Python); vmapping runs would turn each
    convolution into a grouped one, slow on XLA:CPU as well.
    """
    batch = None if batch_size < 0 else int(batch_size)
    observables = list(dict.fromkeys((spec.observable, *spec.curves)))
    outcome = jax.jit(
        jax.vmap(lambda steps, obs, diverged: _outcome(spec, threshold, steps, obs, diverged), (None, 0, 0))
    )

    def one_run(eta, beta, sigma, key_data, record_every):
        k_noise, k_sim = jax.random.split(jax.random.wrap_key_data(key_data))
        tx = _optimizer(problem, spec, momentum, noisy, eta, beta, sigma, k_noise, batch)
        return simulate(
            problem,
            tx,
            params0,
            steps=spec.records * record_every,
            key=k_sim,
            record_every=record_every,
            batch_size=batch,
            sampling=spec.sampling,
            observables=observables,
            chunks=1,
        )

    def run(eta, beta, sigma, key_data, record_every):
        # Hyperparameters as JAX scalars: inputs of the compiled step (a NumPy float32 is no optax scalar, and a
        # Python float would be baked into the program, one compile per run).
        hyper = (jnp.asarray(eta), jnp.asarray(beta), jnp.asarray(sigma))
        runs = [one_run(e, b, s, k, int(record_every)) for e, b, s, k in zip(*hyper, key_data, strict=True)]
        stacked = {name: jnp.stack([r.observables[name] for r in runs]) for name in observables}
        return outcome(runs[0].steps, stacked, jnp.stack([r.diverged for r in runs]))

    return run


def chunk_sizes(count: int, chunk_size: int, devices: int = 1, smallest: int = 1) -> list[int]:
    """Split ``count`` runs into chunks of ``devices * 2**j`` runs, from ``smallest`` to ``chunk_size``.

    Each chunk size is a compiled shape, so sizes come from the powers of two (at most
    ``log2(chunk_size) + 1`` compiles per program for the whole sweep), and the count is decomposed in
    binary, so no run is computed in vain but the last chunk's rounding up to ``smallest`` runs per
    device (none by default) and to a multiple of ``devices``.

    Examples:
      >>> from flatter.sweep import chunk_sizes
      >>> chunk_sizes(96, 256, devices=2), chunk_sizes(600, 256), chunk_sizes(3, 256, devices=2)
      ([64, 32], [256, 256, 64, 16, 8], [4])
      >>> chunk_sizes(3, 256), chunk_sizes(3, 256, smallest=8)  # exact, or one compiled shape padded
      ([2, 1], [8])
    """
    unit_min = 1 << max(0, math.ceil(math.log2(max(smallest / devices, 1))))
    unit_max = max(unit_min, 1 << int(math.log2(max(chunk_size // devices, 1))))
    units = math.ceil(count / devices)
    sizes = [unit_max] * (units // unit_max)
    rest = math.ceil((units % unit_max) / unit_min) * unit_min
    bit = unit_max
    while rest:  # rest is a multiple of unit_min <= unit_max: the loop ends by bit = unit_min
        if rest >= bit:
            sizes.append(bit)
            rest -= bit
        bit //= 2
    return [devices * u for u in sizes]


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    chunk_size: int = 256,
    progress: bool = True,
    max_chunks: int | None = None,
    shard: bool = True,
    verbose: bool = False,
    problem=None,
    params0=None,
) -> SweepResults | None:
    """Run (or resume) ``spec`` into the folder ``out``; returns the results once every chunk is done.

    The problem is the registered one ``spec`` names, or a user's own ``problem`` (a
    :class:`flatter.Problem` from a predict function or an nnx module, with ``params0`` unless it has
    ``init_params``) for a spec made by ``SweepSpec.for_problem``. Setup: phase 1, then the
    label-noise flow from the start point (:func:`flow_reference`, a few seconds) that sizes every
    run's horizon. Runs are grouped by (variant, batch size, horizon) and
    cut into chunks of ``chunk_size`` runs (padded to a multiple of the device count). Each chunk is
    one call of a jitted, vmapped function whose inputs include the steps between records, so it is
    compiled once per optimizer structure (plain or Nesterov momentum, with or without label noise)
    and batch size, whatever the horizons; ``verbose`` prints the setup time and the number of
    compiles (also in ``results.meta``). Inputs are sharded over all devices along a ``runs`` mesh
    axis (``shard=False`` keeps them on one device); on CPU, give JAX one device per core
    (``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before JAX starts, as the CLI does).
    A finished chunk is written atomically to ``out/chunks/``; a rerun of the same spec skips the
    chunks that are there, so an interrupted sweep resumes without losing finished runs
    (``max_chunks`` stops early on purpose). Run ``i`` uses the
    key ``fold_in(key(spec.seed), i)`` whatever the chunking or sharding, so results do not depend on
    either (up to the last bits of float observables: XLA's code for another per-device batch width
    may round differently). Only process 0 writes (multi-host under ``jax.distributed``).
    """
    with full_precision():
        return _run_sweep(
            spec,
            out,
            chunk_size=chunk_size,
            progress=progress,
            max_chunks=max_chunks,
            shard=shard,
            verbose=verbose,
            problem=problem,
            params0=params0,
        )


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One compiled call: ``runs`` (indices into the grid) padded to ``size``, of one structure and horizon."""

    name: str
    structure: tuple[str, bool, int]
    horizon: int
    runs: list[int]
    size: int


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep will compute: the problem at its start, every run's hyperparameters, key and horizon, which
    runs stand for which (identical runs are computed once), which are done, and the chunks left to run."""

    spec: SweepSpec
    out: Path
    problem: Any
    params0: Any
    threshold: float
    points: dict[str, np.ndarray]
    reference: dict
    steps: np.ndarray
    key_data: np.ndarray
    representative: np.ndarray
    unique: np.ndarray
    done: np.ndarray
    chunks: list[Chunk]
    setup_seconds: float
    identity: str | None  # start_digest of a user's model and start point (None: a registered problem)


def _check_arguments(spec, chunk_size, max_chunks) -> int:
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"spec must be a flatter.sweep.SweepSpec, got {type(spec).__name__}")
    if max_chunks is not None and (isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 0):
        raise ValueError(f"max_chunks must be None or an integer >= 0, got {max_chunks!r}")
    return check_positive_int("chunk_size", chunk_size)


def _deduplicate(points: dict, steps: np.ndarray) -> np.ndarray:
    """Every run's representative: runs that are the same computation (a baseline without momentum repeated
    along gamma and C) share the first one's index."""
    signature: dict[tuple, int] = {}
    representative = np.empty(len(points["run"]), dtype=np.int64)
    for i in range(len(points["run"])):
        sig = (
            str(points["variant"][i]),
            float(points["step_eta"][i]),
            float(points["step_beta"][i]),
            float(points["sigma"][i]),
            int(points["batch_size"][i]),
            int(points["seed"][i]),
            int(steps[i]),
        )
        representative[i] = signature.setdefault(sig, i)
    return representative


def _chunks(points: dict, steps: np.ndarray, todo: np.ndarray, chunk_size: int, devices: int) -> list[Chunk]:
    """The runs left, grouped by compiled program (optimizer structure and batch size) and horizon, in chunks."""
    # Variants that differ only in (eta, beta) share a compiled program, so they share chunks too.
    groups: dict[tuple, list[int]] = {}
    for i in todo:
        structure = _structure(str(points["variant"][i])) + (int(points["batch_size"][i]),)
        groups.setdefault((structure, int(steps[i])), []).append(int(i))
    chunks = []
    for (structure, h), members in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        momentum, noisy, batch = structure
        label = f"{momentum}{'' if noisy else '-no-label-noise'}-b{batch}-h{h}"
        start_run = 0
        sizes = chunk_sizes(len(members), chunk_size, devices)
        if devices > 1 and jax.process_count() == 1:
            # The runs past a multiple of the device count go unsharded, on one device, instead of padded: no run
            # is computed that was not asked for (with several processes every chunk is sharded and gathered).
            whole = len(members) // devices * devices
            sizes = (chunk_sizes(whole, chunk_size, devices) if whole else []) + (
                chunk_sizes(len(members) - whole, chunk_size, 1) if len(members) > whole else []
            )
        for size in sizes:
            part = members[start_run : start_run + size]
            chunks.append(Chunk(f"{label}-r{part[0]}-n{len(part)}", structure, h, part, size))
            start_run += size
    return chunks


def run_steps(chunks: list[Chunk]) -> tuple[int, int]:
    """(requested, computed) run-steps of ``chunks``: the runs asked for, and those padded to the chunk sizes."""
    return sum(len(c.runs) * c.horizon for c in chunks), sum(c.size * c.horizon for c in chunks)


def plan_sweep(spec, out, *, chunk_size, shard, verbose, problem, params0, progress) -> SweepPlan:
    """Claim the folder, set up the start (phase 1, the flow reference, the horizons) and plan the chunks."""
    out = Path(out)
    problem, params0 = resolve_start(spec, problem, params0)
    # A user's model and start point are part of the folder's identity (a registered problem's are the spec's).
    identity = None if spec.problem_digest is None else start_digest(problem, params0)
    claim_folder(out, spec, start=identity)
    start = time.perf_counter()
    if spec.phase1:
        params0, _ = interpolate(problem, params0)
    points = spec.points()
    threshold = resolved_threshold(problem, params0, spec)
    if spec.flow_time is None:
        reference = flow_reference(
            problem, params0, observable=spec.observable, threshold=threshold, below=spec.below, progress=progress
        ).to_dict()
        if "sngm" in spec.variants:  # sizes SNGM's horizons: its gradient norm on the valley
            reference["trace_hessian"] = float(problem.gauss_newton_trace(params0))
    else:
        reference = {"flow_time": spec.flow_time, "given": True, "steps": 0}
    steps = horizons(spec, points, reference, problem.num_examples)
    setup_seconds = time.perf_counter() - start
    if verbose:
        print(
            f"sweep {spec.problem} [{spec.digest}]: setup {setup_seconds:.1f} s (phase 1 and the flow reference, "
            f"{reference['steps']} flow steps, t* = {reference['flow_time']:.3g}); {len(points['run'])} runs, "
            f"horizons {sorted(set(steps.tolist()))}",
            flush=True,
        )
    base_key = jax.random.key(spec.seed + 1)
    key_data = np.asarray(
        jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(base_key, i))(jnp.asarray(points["run"])))
    )
    representative = _deduplicate(points, steps)
    unique = np.flatnonzero(representative == np.arange(len(representative)))
    if jax.process_index() == 0:
        write_plan(out, spec.digest, representative, steps)
    # What is done is what verified chunks of this spec hold (whatever chunking wrote them). With several
    # processes, process 0's reading is the plan of all of them.
    done = done_runs(out, spec.digest, len(points["run"]), fields_of(spec), start=identity)
    if jax.process_index() == 0:  # recorded once the chunks are known to be this sweep's
        record_spec(out, spec, identity)
    if jax.process_count() > 1:
        done = np.asarray(multihost_utils.broadcast_one_to_all(done))
    devices = jax.device_count() if shard else 1
    chunks = _chunks(points, steps, unique[~done[unique]], chunk_size, devices)
    found = int(done[unique].sum())
    if found and jax.process_index() == 0:  # said even without progress bars: the rerun is not starting over
        print(f"resuming: {found} of {unique.size} runs found in {out}", flush=True)
    return SweepPlan(
        spec, out, problem, params0, threshold, points, reference, steps, key_data, representative, unique, done,
        chunks, setup_seconds, identity,
    )  # fmt: skip


@contextlib.contextmanager
def _interrupt_says_what_is_saved(saved, total: int, out: Path):
    """Ctrl-C becomes :class:`SweepInterrupted`, saying how many runs the folder holds (every finished chunk)."""
    try:
        yield
    except KeyboardInterrupt:
        raise SweepInterrupted(
            f"interrupted: {saved()} of {total} runs saved in {out}; rerun the same sweep to resume"
        ) from None


def execute_plan(plan: SweepPlan, *, max_chunks, shard, progress, verbose) -> tuple[int, int]:
    """Run the plan's chunks (at most ``max_chunks``), writing each as it finishes; ``(chunks run, compiles)``."""
    spec, points, steps = plan.spec, plan.points, plan.steps
    start = time.perf_counter()
    host_loop = loops_are_slow(plan.problem, plan.params0)
    sharding = runs_sharding(shard)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=int(steps[plan.unique].sum()),
            unit="run-step",
            unit_scale=True,
            desc=f"sweep {spec.problem}",
            initial=int(steps[plan.unique[plan.done[plan.unique]]].sum()),
        )
    compiled: dict[tuple, object] = {}
    ran = 0
    saved, total = int(plan.done[plan.unique].sum()), len(plan.unique)
    # keep_alive: a chunk's program compiles before its first record can tick the bar.
    with count_compiles() as compiles, _interrupt_says_what_is_saved(lambda: saved, total, plan.out), keep_alive(bar):
        for chunk in plan.chunks:
            if max_chunks is not None and ran >= max_chunks:
                break
            idx = np.array(chunk.runs)
            padded = np.concatenate([idx, np.repeat(idx[-1:], chunk.size - len(idx))])
            fn = compiled.get(chunk.structure)
            if fn is None:
                args = (plan.problem, plan.params0, spec, plan.threshold, *chunk.structure)
                fn = _host_run_fn(*args) if host_loop else _run_fn(*args, heartbeat=bar is not None)
                compiled[chunk.structure] = fn
            args = [points["step_eta"][padded], points["step_beta"][padded], points["sigma"][padded]]
            args = [np.asarray(a, dtype=jnp.result_type(float)) for a in args] + [plan.key_data[padded]]
            # A remainder chunk smaller than the device count (see _chunks) runs on one device.
            placed = sharding if sharding is not None and chunk.size % jax.device_count() == 0 else None
            # (until the results are on the host: dispatch is asynchronous, the records call back while it runs)
            with _records_tick(bar, len(idx) * chunk.horizon, spec.records, placed):
                result = fn(*[place_runs(a, placed) for a in args], np.int32(chunk.horizon // spec.records))
                if jax.process_count() > 1:  # every process gets the whole chunk (each computed its devices' share)
                    result = multihost_utils.process_allgather(result, tiled=True)
                result = {k: np.asarray(v)[: len(idx)] for k, v in jax.device_get(result).items()}
            if jax.process_index() == 0:
                path = plan.out / "chunks" / f"{spec.digest}-{chunk.name}.npz"  # a foreign sweep's never clashes
                write_chunk(path, spec.digest, idx, start=plan.identity, horizon=steps[idx], **result)
            ran += 1
            saved += len(idx)
    if bar is not None:
        bar.close()
    if verbose:
        shapes = len({(c.structure, c.size) for c in plan.chunks[:ran]})
        requested, computed = run_steps(plan.chunks[:ran])
        print(
            f"sweep {spec.problem}: {ran} chunks in {time.perf_counter() - start:.1f} s, "
            f"{int(compiles)} compile{'s' * (int(compiles) != 1)} (one per optimizer structure, batch size and "
            f"chunk size: {shapes}); {computed:,} run-steps computed for {requested:,} requested "
            f"({computed / max(requested, 1):.2f}x)",
            flush=True,
        )
    return ran, int(compiles)


def collect(plan: SweepPlan, *, compiles: int, started: float) -> SweepResults | None:
    """The results on the grid from the folder's verified chunks once every run is done (saved), else None."""
    if jax.process_count() > 1:  # process 0 has written every chunk before anyone reads them
        multihost_utils.sync_global_devices(f"flatter sweep {plan.spec.digest} chunks written")
    data, finished = assemble(plan.out, plan.spec, plan.representative)
    if not finished.all():
        return None
    meta = {
        "environment": environment(),
        "reference": plan.reference,
        "wall_seconds_last_run": time.perf_counter() - started,
        "setup_seconds_last_run": plan.setup_seconds,
        "compiles_last_run": compiles,
        "chunk_files": len(chunk_files(plan.out)),
    }
    results = SweepResults(plan.spec, data, meta)
    if jax.process_index() == 0:
        results.save(plan.out)
    return results


def _run_sweep(spec, out, *, chunk_size, progress, max_chunks, shard, verbose, problem, params0):
    chunk_size = _check_arguments(spec, chunk_size, max_chunks)
    started = time.perf_counter()
    # Only process 0 writes, so only it locks (the other processes of a multi-host run share its folder).
    lock = folder_lock(Path(out)) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock:
        plan = plan_sweep(
            spec, out, chunk_size=chunk_size, shard=shard, verbose=verbose, problem=problem, params0=params0,
            progress=progress,
        )  # fmt: skip
        _, compiles = execute_plan(plan, max_chunks=max_chunks, shard=shard, progress=progress, verbose=verbose)
        return collect(plan, compiles=compiles, started=started)
