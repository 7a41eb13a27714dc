"""Run a sweep: vmapped chunks under one compiled function per step count, sharded, resumable."""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._criteria import first_passage, settling_time
from .._heavy_ball import heavy_ball
from .._interpolate import interpolate
from .._io import environment, save_arrays, save_json
from .._label_noise import label_noise
from .._simulate import simulate
from ..limit._dynamics import label_noise_flow
from ..limit._integrate import integrate
from ..problems import make_problem
from ..timescales import settle_estimate
from ..valley._tangent import riemannian_gradient_trace
from ._grid import SweepSpec
from ._results import FIELDS, SweepResults


def prepare(spec: SweepSpec):
    """The problem and the start point of phase 2 (after phase 1 when ``spec.phase1``)."""
    problem = make_problem(spec.problem, **spec.problem_kwargs)
    key = jax.random.key(spec.seed)
    params0 = problem.init_params(key)
    if spec.phase1:
        params0, _ = interpolate(problem, params0)
    return problem, params0


def resolved_threshold(problem, params0, spec: SweepSpec) -> float:
    """``spec.threshold``, times the observable's starting value when ``spec.relative_threshold``."""
    if not spec.relative_threshold:
        return spec.threshold
    return spec.threshold * float(problem.observe(params0, [spec.observable])[spec.observable])


def _flow_reference(problem, params0, spec: SweepSpec, threshold: float) -> dict[str, float]:
    """Flow time t*, travelled distance and |grad tr| at sigma^2/B = 1 (everything else rescales)."""
    flow = label_noise_flow(problem, sigma=2.0, batch_size=1)  # sigma^2/(4B) = 1
    horizon = 1e-3
    for _ in range(16):
        sol = integrate(
            problem, flow, params0, t1=horizon, dt=horizon / 400, save_every=4, observables=[spec.observable]
        )
        settle = settling_time(sol.ts, sol.observables[spec.observable], threshold, below=spec.below)
        if not bool(settle.censored):
            break
        horizon *= 4
    flat0 = ravel_pytree(params0)[0]
    flat1 = ravel_pytree(sol.params)[0]
    grad = riemannian_gradient_trace(problem, params0)
    # Flow time at sigma^2/(4B) = 1; a general (sigma, B) multiplies it by 4B/sigma^2.
    return {
        "flow_time": float(settle.time),
        "distance": float(jnp.linalg.norm(flat1 - flat0)),
        "grad_norm": float(jnp.linalg.norm(grad)),
        "flow_censored": bool(settle.censored),
    }


def _label_noise_batch(spec: SweepSpec, batch_size: np.ndarray, n: int) -> np.ndarray:
    if spec.label_noise_mode == "one":
        return np.ones_like(batch_size)
    return np.where(batch_size < 0, n, batch_size)


def horizons(spec: SweepSpec, points: dict, reference: dict, n: int) -> np.ndarray:
    """Steps per run: ``horizon_factor`` x the predicted settling steps, as records x 2^j."""
    b_noise = _label_noise_batch(spec, points["batch_size"], n)
    sigma = np.where(points["sigma"] > 0, points["sigma"], 1.0)
    t_star = reference["flow_time"] * 4.0 * b_noise / sigma**2
    pred = settle_estimate(
        flow_time=t_star,
        distance=reference["distance"],
        grad_norm=reference["grad_norm"],
        eta=points["step_eta"],
        beta=points["step_beta"],
        sigma=sigma,
        batch_size=b_noise,
    )
    # Baselines without momentum at the same eta take the horizon their own prediction gives; the variant
    # without label noise has no drift along the valley and gets the horizon of its SGDM twin.
    want = np.clip(spec.horizon_factor * pred, spec.min_steps, spec.max_steps)
    power = np.ceil(np.log2(np.maximum(want / spec.records, 1.0)))
    return (spec.records * 2**power).astype(np.int64)


def _run_fn(problem, params0, spec: SweepSpec, threshold: float, variant: str, batch_size: int, steps: int):
    record_every = steps // spec.records
    nesterov = variant == "nesterov"
    noisy = variant != "sgdm-no-label-noise"
    batch = None if batch_size < 0 else int(batch_size)
    mode = spec.label_noise_mode if batch is None else "minibatch"

    def run(eta, beta, sigma, key_data):
        key = jax.random.wrap_key_data(key_data)
        k_noise, k_sim = jax.random.split(key)
        tx = heavy_ball(eta, beta, nesterov=nesterov)
        if noisy:
            tx = optax.chain(label_noise(sigma, key=k_noise, mode=mode), tx)
        traj = simulate(
            problem,
            tx,
            params0,
            steps=steps,
            key=k_sim,
            record_every=record_every,
            batch_size=batch,
            observables=[spec.observable],
        )
        values = traj.observables[spec.observable]
        first = first_passage(traj.steps, values, threshold, below=spec.below)
        settle = settling_time(traj.steps, values, threshold, below=spec.below)
        return {
            "T_first": first.time,
            "T_settle": settle.time,
            "censored_first": first.censored | traj.diverged,
            "censored_settle": settle.censored | traj.diverged,
            "diverged": traj.diverged,
            "final_value": values[-1],
        }

    return jax.vmap(run)


def _mesh() -> Mesh:
    # Auto axes: the compiler propagates the runs sharding; every run is independent, so nothing is communicated.
    return jax.make_mesh((jax.device_count(),), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))


def _put(x: np.ndarray, sharding: NamedSharding):
    # Every process holds the whole (deterministic) grid; each device takes its slice of the runs axis.
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    chunk_size: int = 256,
    progress: bool = True,
    max_chunks: int | None = None,
    shard: bool = True,
) -> SweepResults | None:
    """Run (or resume) ``spec`` into the folder ``out``; returns the results once every chunk is done.

    Runs are grouped by (variant, batch size, horizon) and cut into chunks of ``chunk_size`` runs
    (padded to a multiple of the device count). Each chunk is one call of a jitted, vmapped function
    (compiled once per step count), its inputs sharded over all devices along a ``runs`` mesh axis
    (``shard=False`` keeps them on one device). A finished chunk is written atomically to
    ``out/chunks/``; a rerun of the same spec skips the chunks that are there, so an interrupted sweep
    resumes without losing finished runs (``max_chunks`` stops early on purpose). Run ``i`` uses the
    key ``fold_in(key(spec.seed), i)`` whatever the chunking or sharding, so results do not depend on
    either. Only process 0 writes (multi-host under ``jax.distributed``).
    """
    out = Path(out)
    chunk_dir = out / "chunks"
    writer = jax.process_index() == 0
    spec_file = out / "spec.json"
    if spec_file.exists():
        import json

        old = json.loads(spec_file.read_text())
        if old.get("digest") != spec.digest:
            raise ValueError(
                f"{out} holds results of a different sweep (digest {old.get('digest')} != "
                f"{spec.digest}); choose another --out or remove it"
            )
    elif writer:
        save_json(spec_file, {"digest": spec.digest, "spec": spec.to_json()})

    start = time.perf_counter()
    problem, params0 = prepare(spec)
    points = spec.points()
    threshold = resolved_threshold(problem, params0, spec)
    reference = _flow_reference(problem, params0, spec, threshold)
    steps = horizons(spec, points, reference, problem.num_examples)
    n_dev = jax.device_count() if shard else 1
    sharding = NamedSharding(_mesh(), PartitionSpec("runs")) if shard and n_dev > 1 else None
    base_key = jax.random.key(spec.seed + 1)
    key_data = np.asarray(
        jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(base_key, i))(jnp.asarray(points["run"])))
    )

    # Runs that are the same computation (a baseline without momentum repeated along gamma and C) are
    # computed once and their results copied.
    signature = {}
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
    unique = np.flatnonzero(representative == np.arange(len(representative)))
    groups: dict[tuple, list[int]] = {}
    for i in unique:
        groups.setdefault((str(points["variant"][i]), int(points["batch_size"][i]), int(steps[i])), []).append(i)
    chunks = []
    for (variant, batch, h), members in sorted(groups.items(), key=lambda kv: kv[0][2]):
        for c in range(math.ceil(len(members) / chunk_size)):
            chunks.append(
                (
                    f"{variant}-b{batch}-h{h}-c{c}",
                    variant,
                    batch,
                    h,
                    members[c * chunk_size : (c + 1) * chunk_size],
                )
            )

    done = {p.stem for p in chunk_dir.glob("*.npz")} if chunk_dir.exists() else set()
    todo = [c for c in chunks if c[0] not in done]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=sum(len(c[4]) * c[3] for c in chunks),
            unit="run-step",
            unit_scale=True,
            desc=f"sweep {spec.problem}",
            initial=sum(len(c[4]) * c[3] for c in chunks if c[0] in done),
        )
    compiled: dict[tuple, object] = {}
    ran = 0
    for name, variant, batch, h, members in todo:
        if max_chunks is not None and ran >= max_chunks:
            break
        idx = np.array(members)
        pad = (-len(idx)) % n_dev
        padded = np.concatenate([idx, np.repeat(idx[-1:], pad)])
        fn = compiled.get((variant, batch, h))
        if fn is None:
            fn = compiled[(variant, batch, h)] = jax.jit(_run_fn(problem, params0, spec, threshold, variant, batch, h))
        args = [points["step_eta"][padded], points["step_beta"][padded], points["sigma"][padded]]
        args = [np.asarray(a, dtype=jnp.result_type(float)) for a in args] + [key_data[padded]]
        if sharding is not None:
            args = [_put(a, sharding) for a in args]
        result = jax.device_get(fn(*args))
        result = {k: np.asarray(v)[: len(idx)] for k, v in result.items()}
        if writer:
            save_arrays(chunk_dir / f"{name}.npz", run=idx, horizon=steps[idx], **result)
        ran += 1
        if bar is not None:
            bar.update(len(idx) * h)
    if bar is not None:
        bar.close()

    done = {p.stem for p in chunk_dir.glob("*.npz")} if chunk_dir.exists() else set()
    if any(c[0] not in done for c in chunks):
        return None
    data = {
        k: np.zeros(
            len(points["run"]),
            dtype=float
            if k in ("T_first", "T_settle", "final_value")
            else (bool if k.startswith(("censored", "diverged")) else np.int64),
        )
        for k in FIELDS
    }
    for c in chunks:
        with np.load(chunk_dir / f"{c[0]}.npz") as f:
            for k in FIELDS:
                data[k][f["run"]] = f[k]
    data = {k: v[representative] for k, v in data.items()}
    data = {k: v.reshape(spec.shape) for k, v in data.items()}
    meta = {
        "environment": environment(),
        "reference": reference,
        "wall_seconds_last_run": time.perf_counter() - start,
        "chunks": len(chunks),
    }
    results = SweepResults(spec, data, meta)
    if writer:
        results.save(out)
    return results
