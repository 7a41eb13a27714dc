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
import sys
import tempfile
import time
from pathlib import Path

import jax
import optax

import flatter
from flatter import full_batch_gradient
from flatter.drivers.networks import build_problem, preset


def synthetic_cifar(folder: Path) -> Path:
    """CIFAR-10 of the official sizes (50,000 + 10,000 random images), as the official archive extracts.

    The extracted ``cifar-10-batches-py/`` folder rather than the ``.tar.gz``: gzipping 180 MB of random
    bytes costs more time than the steps being measured, and the loader reads both forms.
    """
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / "cifar-10-batches-py"
    path.mkdir()
    for name, n in [(f"data_batch_{i}", 10000) for i in range(1, 6)] + [("test_batch", 10000)]:
        batch = {
            b"labels": (np.arange(n) % 10).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"batch_label": b"synthetic",
            b"filenames": [b"x.png"] * n,
        }
        (path / name).write_bytes(pickle.dumps(batch, protocol=2))
    return path


def timed(label: str, fn, *args, repeat: int = 1):
    """Seconds per call after a first call that compiles (its time is printed: it is most of a short run)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeat):
        out = jax.block_until_ready(fn(*args))
    seconds = (time.perf_counter() - start) / repeat
    print(f"{label}: first call (compile) {first:.1f} s, then {seconds:.4f} s per call", file=sys.stderr, flush=True)
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("fashion-mnist", "cifar10"))
    parser.add_argument("preset")
    parser.add_argument("--data", default=None)
    parser.add_argument("--synthetic", action="store_true", help="cifar10: random images of the official sizes")
    parser.add_argument("--steps", type=int, default=50, help="phase-2 steps timed")
    parser.add_argument("--phase1-steps", type=int, default=5, help="full-batch steps timed")
    parser.add_argument("--width", type=int, default=None, help="override the preset's width")
    args = parser.parse_args()
    config = preset(args.dataset, args.preset, **({} if args.width is None else {"width": args.width}))
    data = args.data
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            data = synthetic_cifar(Path(tmp))
        start = time.perf_counter()
        problem, params, source = build_problem(config, data)
        load_seconds = time.perf_counter() - start
        print(f"data: {load_seconds:.1f} s", file=sys.stderr, flush=True)
    n_params = sum(x.size for x in jax.tree.leaves(params))

    @jax.jit
    def phase1_block(p):
        for _ in range(args.phase1_steps):  # unrolled: no loop around the convolutions (flatter.loops_are_slow)
            g = full_batch_gradient(problem, p, config.phase1_batch_size)
            p = jax.tree.map(lambda a, b: a - config.phase1_learning_rate * b, p, g)
        return p

    phase1_seconds, _ = timed("phase 1", phase1_block, params)
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

    phase2_seconds, _ = timed("phase 2", phase2, params)
    # Where phase 2's time goes: the same steps one jitted call each (no loop, no records), the minibatch
    # draw alone (B of n without replacement), and the recorded loss over the training set.
    step = jax.jit(flatter.make_step(problem, tx, config.batch_size))
    keys = jax.random.split(jax.random.key(2), args.steps)

    def stepwise(p):
        state = tx.init(p)
        for k in keys:
            p, state = step(p, state, k)
        return p

    stepwise_seconds, _ = timed("phase 2, one jitted step per call", stepwise, params)
    draw = jax.jit(lambda k: flatter.draw_batch(k, problem.num_examples, config.batch_size))
    draw_seconds, _ = timed("minibatch draw", draw, keys[0], repeat=20)
    loss_seconds, _ = timed("loss record", jax.jit(problem.loss), params)
    trace = jax.jit(lambda p: dict(problem.observables)["trace"](problem, p))
    trace_seconds, value = timed("trace", trace, params)
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
                "phase2_stepwise_steps_per_second": round(args.steps / stepwise_seconds, 1),
                "minibatch_draw_ms": round(1e3 * draw_seconds, 2),
                "loss_record_seconds": round(loss_seconds, 3),
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
