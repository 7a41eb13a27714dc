"""First steps of a real-data preset: phase-1 and phase-2 steps per second, the tr∇²L record, peak memory.

    python benchmarks/network_steps.py fashion-mnist paper [--data DIR]
    python benchmarks/network_steps.py cifar10 paper --data DIR      # or --synthetic: random images, official sizes

Builds the preset's Problem at its full size, then times (after a warm-up call that compiles) a block of
full-batch phase-1 steps, a block of phase-2 label-noise SGDM steps at the preset's batch size (one run, as
``simulate`` runs it), and one Hutchinson tr∇²L record. Prints one JSON line with the device, the times and
the device's peak memory (``memory_stats``; absent on CPU). Nothing is fitted: this sizes a full run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import optax

import flatter
from flatter._full_batch import full_batch_gradient
from flatter.drivers.networks import build_problem, preset


def synthetic_cifar(folder: Path) -> Path:
    """A CIFAR-10 archive of the official sizes (50,000 + 10,000 random images) in the official format."""
    import io
    import pickle
    import tarfile

    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, n in [(f"data_batch_{i}", 10000) for i in range(1, 6)] + [("test_batch", 10000)]:
            batch = {
                b"labels": (np.arange(n) % 10).tolist(),
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"batch_label": b"synthetic",
                b"filenames": [b"x.png"] * n,
            }
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def timed(fn, *args, repeat: int = 1):
    out = jax.block_until_ready(fn(*args))  # compile and warm up
    start = time.perf_counter()
    for _ in range(repeat):
        out = jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / repeat, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("fashion-mnist", "cifar10"))
    parser.add_argument("preset")
    parser.add_argument("--data", default=None)
    parser.add_argument("--synthetic", action="store_true", help="cifar10: random images of the official sizes")
    parser.add_argument("--steps", type=int, default=50, help="phase-2 steps timed")
    parser.add_argument("--phase1-steps", type=int, default=5, help="full-batch steps timed")
    args = parser.parse_args()
    config = preset(args.dataset, args.preset)
    data = args.data
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            data = synthetic_cifar(Path(tmp))
        start = time.perf_counter()
        problem, params, source = build_problem(config, data)
        load_seconds = time.perf_counter() - start
    n_params = sum(x.size for x in jax.tree.leaves(params))

    @jax.jit
    def phase1_block(p):
        for _ in range(args.phase1_steps):  # unrolled: no loop around the convolutions (flatter.loops_are_slow)
            g = full_batch_gradient(problem, p, config.phase1_batch_size)
            p = jax.tree.map(lambda a, b: a - config.phase1_learning_rate * b, p, g)
        return p

    phase1_seconds, _ = timed(phase1_block, params)
    eta = config.etas[len(config.etas) // 2]
    beta = 1 - config.C * eta ** (2 / 3)
    noise = (
        flatter.label_flip(config.noise_scale, key=jax.random.key(0), num_classes=problem.targets.shape[-1])
        if config.noise == "flip"
        else flatter.label_noise(config.noise_scale, key=jax.random.key(0), mode="minibatch")
    )
    tx = optax.chain(noise, flatter.heavy_ball(eta, beta))

    def phase2(p):
        return flatter.simulate(
            problem,
            tx,
            p,
            steps=args.steps,
            key=jax.random.key(1),
            batch_size=config.batch_size,
            record_every=args.steps,
            observables=["loss"],  # not every observable: trace_hessian is the dense Jacobian's
        ).params

    phase2_seconds, _ = timed(phase2, params)
    trace = jax.jit(lambda p: dict(problem.observables)["trace"](problem, p))
    trace_seconds, value = timed(trace, params)
    stats = jax.devices()[0].memory_stats() or {}
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "preset": args.preset,
                "device": str(jax.devices()[0].device_kind),
                "backend": jax.default_backend(),
                "jax": jax.__version__,
                "params": int(n_params),
                "train_examples": problem.num_examples,
                "data": "synthetic (random images, official sizes)" if args.synthetic else source,
                "load_seconds": round(load_seconds, 1),
                "phase1_steps_per_second": round(args.phase1_steps / phase1_seconds, 2),
                "phase2_batch_size": config.batch_size,
                "phase2_steps_per_second": round(args.steps / phase2_seconds, 1),
                "trace_record_seconds": round(trace_seconds, 3),
                "trace_probes_examples": [config.trace_probes, config.trace_examples],
                "trace_value": float(value),
                "peak_memory_gib": round(stats["peak_bytes_in_use"] / 2**30, 2)
                if "peak_bytes_in_use" in stats
                else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
