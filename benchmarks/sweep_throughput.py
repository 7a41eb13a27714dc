"""Throughput of vmapped SGDM-LN sweeps against the same recurrence run one by one in NumPy.

Measures, side by side in one run:
1. matrix sensing (d = 20, n = 200, full batch, label noise, heavy ball): run-steps per second of a
   256-run `jax.jit(jax.vmap(simulate))` sweep vs a per-run NumPy loop, and the sweep's achieved
   GFLOP/s against this machine's measured float32 matmul GFLOP/s (the roofline);
2. the 2-parameter toy valley: the same comparison.

    python benchmarks/sweep_throughput.py [--runs 256] [--steps 2000]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _timing import best_time

import flatter


def matmul_gflops(size=1024):
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    t = best_time(lambda: f(a).block_until_ready(), repeats=10)
    return 2 * size**3 / t / 1e9


def sweep_rate(problem, params0, runs, steps, sigma=0.5):
    etas = jnp.geomspace(1e-3, 1e-2, runs).astype(jnp.float32)
    betas = flatter.momentum_rule(etas, C=1.0, gamma=2 / 3)
    keys = jax.random.split(jax.random.key(0), runs)

    def run(eta, beta, key):
        k_noise, k_sim = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(sigma, key=k_noise), flatter.heavy_ball(eta, beta))
        traj = flatter.simulate(problem, tx, params0, steps=steps, key=k_sim, record_every=steps, observables=["loss"])
        return traj.observables["loss"]

    sweep = jax.jit(jax.vmap(run))
    t = best_time(lambda: sweep(etas, betas, keys).block_until_ready())
    return runs * steps / t


def numpy_sensing_rate(problem, params0, runs, steps, sigma=0.5):
    a = np.asarray(problem.inputs, np.float32).reshape(problem.num_examples, -1)
    y = np.asarray(problem.targets, np.float32)
    n, d = a.shape[0], params0.shape[0]
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for r in range(runs):
        eta = 1e-3 * 10 ** (r / max(runs - 1, 1))
        beta = 1 - eta ** (2 / 3)
        u, v = np.array(params0, np.float32), np.zeros((d, d), np.float32)
        for _ in range(steps):
            res = a @ (u @ u.T).ravel() - y - sigma * rng.standard_normal(n, dtype=np.float32)
            g = (a.T @ res).reshape(d, d) / n
            v = beta * v + (g + g.T) @ u
            u = u - eta * v
    return runs * steps / (time.perf_counter() - t)


def numpy_toy_rate(runs, steps, sigma=1.0):
    """The per-run NumPy loop: parameters and buffers are NumPy arrays, as in the sensing loop."""
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for r in range(runs):
        eta = 1e-3 * 10 ** (r / max(runs - 1, 1))
        beta = 1 - eta ** (2 / 3)
        theta, v = np.array([0.0, 1.0]), np.zeros(2)
        for _ in range(steps):
            x, y = theta
            sh = np.sqrt(1 + y * y)
            res = sh * x - sigma * rng.standard_normal()
            v = beta * v + res * np.array([sh, x * y / sh])
            theta = theta - eta * v
    return runs * steps / (time.perf_counter() - t)


def python_toy_rate(runs, steps, sigma=1.0):
    """A stronger baseline: the same loop on Python floats (no array overhead), one run at a time."""
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for r in range(runs):
        eta = 1e-3 * 10 ** (r / max(runs - 1, 1))
        beta = 1 - eta ** (2 / 3)
        x, y, vx, vy = 0.0, 1.0, 0.0, 0.0
        for _ in range(steps):
            sh = (1 + y * y) ** 0.5
            res = sh * x - sigma * rng.standard_normal()
            vx, vy = beta * vx + res * sh, beta * vy + res * x * y / sh
            x, y = x - eta * vx, y - eta * vy
    return runs * steps / (time.perf_counter() - t)


def sensing_flops_per_step(d, n):
    # forward UU^T and <A_i, UU^T>, the loss pullback, the label-noise pullback (A^T c and (G+G^T)U)
    return 3 * (2 * n * d * d) + 3 * (2 * d**3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--toy-steps", type=int, default=20000)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} x{jax.device_count()}, float32")

    roof = matmul_gflops()
    problem = flatter.problems.matrix_sensing(20, 2, 200, key=jax.random.key(0))
    params0 = problem.init_params(jax.random.key(1)) * 0.3
    jax_rate = sweep_rate(problem, params0, args.runs, args.steps)
    np_rate = numpy_sensing_rate(problem, params0, runs=4, steps=500)
    flops = sensing_flops_per_step(20, 200)
    achieved = jax_rate * flops / 1e9
    print("\nmatrix sensing d=20 n=200, SGDM + label noise, full batch")
    print(f"  vmapped sweep ({args.runs} runs): {jax_rate:12,.0f} run-steps/s  {achieved:7.1f} GFLOP/s")
    print(f"  per-run NumPy loop:          {np_rate:12,.0f} run-steps/s")
    print(f"  ratio sweep / loop:          {jax_rate / np_rate:12.1f} x")
    print(f"  matmul roofline (1024^3):    {roof:12.1f} GFLOP/s -> sweep at {100 * achieved / roof:.0f}%")

    toy = flatter.problems.toy_valley()
    toy_rate = sweep_rate(toy, toy.init_params(None), args.runs, args.toy_steps, sigma=1.0)
    toy_big = sweep_rate(toy, toy.init_params(None), 16 * args.runs, args.toy_steps // 4, sigma=1.0)
    toy_np = numpy_toy_rate(runs=2, steps=5000)
    toy_py = python_toy_rate(runs=2, steps=5000)
    print("\ntoy valley (2 parameters), SGDM + label noise")
    print(f"  vmapped sweep ({args.runs} runs): {toy_rate:12,.0f} run-steps/s")
    print(f"  vmapped sweep ({16 * args.runs} runs):{toy_big:12,.0f} run-steps/s")
    print(f"  per-run NumPy loop:          {toy_np:12,.0f} run-steps/s")
    print(f"  per-run Python-float loop:   {toy_py:12,.0f} run-steps/s")
    big = f"{16 * args.runs} runs"
    print(f"  ratio sweep / NumPy loop:    {toy_rate / toy_np:12.0f} x ({toy_big / toy_np:.0f} x at {big})")
    print(f"  ratio sweep / Python loop:   {toy_rate / toy_py:12.0f} x ({toy_big / toy_py:.0f} x at {big})")


if __name__ == "__main__":
    main()
