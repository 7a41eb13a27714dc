"""Throughput of flatter's sweep step against a hand-fused JAX step and a batched NumPy step, side by side.

Matrix sensing (d = 20, n = 200, float32), heavy-ball momentum with label noise on every example,
full batch. Each implementation advances R independent runs (eta, beta differ per run) for the same
number of steps; the rates are run-steps per second, timed in interleaved rounds (every round times
each implementation once, in an order rotated from round to round, after one warm-up call that
compiles) and reported as medians, so a load spike hits all of them alike. The ratios are the figures that matter:

1. ``flatter``: ``jax.jit(jax.vmap(run))`` of ``flatter.simulate`` with
   ``optax.chain(flatter.label_noise(sigma), flatter.heavy_ball(eta, beta))`` (what a sweep runs);
2. ``hand-fused JAX``: the step a JAX user would write by hand (kept here as the reference): label
   noise folded into the residual, closed-form gradient :math:`(S + S^T)U = 2SU` with
   :math:`S = \\sum_i r_i A_i / n` (symmetric, as the :math:`A_i` are), one ``lax.scan``;
3. ``NumPy batched``: the same recurrence on (R, d, d) arrays with NumPy's BLAS;
4. ``PyTorch batched``: the same, when torch is installed (it is not a dependency);
5. ``PyTorch in-place``: the same with every product written into a preallocated buffer (``out=``) and the
   updates in place (``mul_``, ``addcmul_``): the fastest PyTorch step we know how to write.

Useful FLOPs per run-step: 2d^3 (UU^T) + 2nd^2 (<A_i, UU^T>) + 2nd^2 (sum_i r_i A_i) + 2d^3 (2SU)
= 352k at d = 20, n = 200. The attainable rate is a large float32 GEMM measured here (``jnp.dot``).

    python benchmarks/sweep_throughput.py [--runs 256 1024] [--rounds 5] [--run-steps 400000] [--host-devices N]

``--host-devices N`` splits the runs of both JAX implementations over N CPU devices (JAX's own
sharding along a ``runs`` mesh axis, as ``flatter.sweep.run_sweep`` does); the default, 1, is one
device, which XLA runs on about one core.

On a GPU: ``python benchmarks/sweep_throughput.py --runs 4096 --run-steps 40000000`` (NumPy is skipped
there with ``--no-numpy``).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import flatter

D, N, SIGMA = 20, 200, 0.5


def useful_flops_per_step(d: int = D, n: int = N) -> int:
    return 2 * d**3 + 2 * n * d * d + 2 * n * d * d + 2 * d**3


def gemm_gflops(size: int, repeats: int = 5) -> float:
    """float32 GEMM rate of ``jnp.dot`` at size^3, the best of a few calls after a warm-up."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, a).block_until_ready()
    best = min(_timed(lambda: f(a, a).block_until_ready()) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hyperparameters(runs: int):
    etas = np.geomspace(1e-3, 1e-2, runs).astype(np.float32)
    betas = (1.0 - etas ** (2 / 3)).astype(np.float32)
    return etas, betas


def flatter_sweep(problem, params0, steps: int):
    def run(eta, beta, key):
        k_noise, k_sim = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(SIGMA, key=k_noise), flatter.heavy_ball(eta, beta))
        traj = flatter.simulate(problem, tx, params0, steps=steps, key=k_sim, record_every=steps, observables=["loss"])
        return traj.observables["loss"][-1]

    return jax.jit(jax.vmap(run))


def hand_fused_sweep(problem, params0, steps: int):
    a = problem.inputs.reshape(N, -1)
    y = problem.targets

    def run(eta, beta, key):
        def step(carry, _):
            u, v, key = carry
            key, sub = jax.random.split(key)
            r = a @ (u @ u.T).reshape(-1) - y - SIGMA * jax.random.normal(sub, (N,), u.dtype)
            s = (r @ a).reshape(D, D) / N  # symmetric, as every A_i is
            v = beta * v + 2.0 * (s @ u)
            return (u - eta * v, v, key), None

        (u, _, _), _ = jax.lax.scan(step, (params0, jnp.zeros_like(params0), key), None, length=steps)
        r = a @ (u @ u.T).reshape(-1) - y
        return 0.5 * jnp.mean(r**2)

    return jax.jit(jax.vmap(run))


def numpy_sweep(problem, params0, steps: int, runs: int):
    a = np.asarray(problem.inputs, np.float32).reshape(N, -1)
    y = np.asarray(problem.targets, np.float32)
    etas, betas = hyperparameters(runs)
    eta, beta = etas[:, None, None], betas[:, None, None]
    rng = np.random.default_rng(0)

    def run():
        u = np.broadcast_to(np.asarray(params0, np.float32), (runs, D, D)).copy()
        v = np.zeros_like(u)
        for _ in range(steps):
            r = (u @ u.transpose(0, 2, 1)).reshape(runs, -1) @ a.T - y
            r -= SIGMA * rng.standard_normal((runs, N), dtype=np.float32)
            s = (r @ a).reshape(runs, D, D) / N
            v = beta * v + 2.0 * (s @ u)
            u = u - eta * v
        return u

    return run


def torch_sweep(problem, params0, steps: int, runs: int):
    try:
        import torch
    except ImportError:
        return None
    a = torch.tensor(np.asarray(problem.inputs, np.float32).reshape(N, -1))
    y = torch.tensor(np.asarray(problem.targets, np.float32))
    etas, betas = hyperparameters(runs)
    eta, beta = torch.tensor(etas)[:, None, None], torch.tensor(betas)[:, None, None]
    gen = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def run():
        u = torch.tensor(np.asarray(params0, np.float32)).expand(runs, D, D).clone()
        v = torch.zeros_like(u)
        for _ in range(steps):
            r = (u @ u.transpose(1, 2)).reshape(runs, -1) @ a.T - y
            r -= SIGMA * torch.randn((runs, N), generator=gen)
            s = (r @ a).reshape(runs, D, D) / N
            v = beta * v + 2.0 * (s @ u)
            u = u - eta * v
        return u

    return run


def torch_inplace_sweep(problem, params0, steps: int, runs: int):
    """The PyTorch step a speed-minded user writes: every product into a preallocated buffer (``out=``), in place."""
    try:
        import torch
    except ImportError:
        return None
    a = torch.tensor(np.asarray(problem.inputs, np.float32).reshape(N, -1))
    a_t = a.T.contiguous()
    y = torch.tensor(np.asarray(problem.targets, np.float32))
    etas, betas = hyperparameters(runs)
    eta, beta = torch.tensor(etas)[:, None, None], torch.tensor(betas)[:, None, None]
    gen = torch.Generator().manual_seed(0)
    uu = torch.empty((runs, D, D))
    r = torch.empty((runs, N))
    noise = torch.empty((runs, N))
    s = torch.empty((runs, D * D))
    su = torch.empty((runs, D, D))

    @torch.no_grad()
    def run():
        u = torch.tensor(np.asarray(params0, np.float32)).expand(runs, D, D).clone()
        v = torch.zeros_like(u)
        for _ in range(steps):
            torch.bmm(u, u.transpose(1, 2), out=uu)
            torch.mm(uu.view(runs, -1), a_t, out=r)
            r.sub_(y)
            torch.randn((runs, N), generator=gen, out=noise)
            r.add_(noise, alpha=-SIGMA)
            torch.mm(r, a, out=s)
            torch.bmm(s.view(runs, D, D), u, out=su)
            v.mul_(beta).add_(su, alpha=2.0 / N)  # s / N folded into the axpy
            u.addcmul_(eta, v, value=-1.0)
        return u

    return run


def measure(runs: int, run_steps: int, rounds: int, with_numpy: bool) -> dict[str, float]:
    problem = flatter.problems.matrix_sensing(D, 2, N, key=jax.random.key(0))
    params0 = problem.init_params(jax.random.key(1)) * 0.3
    steps = max(1, run_steps // runs)
    etas, betas = hyperparameters(runs)
    keys = jax.random.split(jax.random.key(0), runs)
    jit_args = (jnp.asarray(etas), jnp.asarray(betas), keys)
    if jax.device_count() > 1:
        mesh = jax.make_mesh((jax.device_count(),), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))
        jit_args = jax.device_put(jit_args, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs")))
    impls = {
        "flatter": (flatter_sweep(problem, params0, steps), steps),
        "hand-fused JAX": (hand_fused_sweep(problem, params0, steps), steps),
    }
    # NumPy/torch loops dispatch per step from Python: a tenth of the steps gives the same rate.
    host_steps = max(1, steps // 10)
    if with_numpy:
        impls["NumPy batched"] = (numpy_sweep(problem, params0, host_steps, runs), host_steps)
        torch_run = torch_sweep(problem, params0, host_steps, runs)
        if torch_run is not None:
            impls["PyTorch batched"] = (torch_run, host_steps)
            impls["PyTorch in-place"] = (torch_inplace_sweep(problem, params0, host_steps, runs), host_steps)

    def call(name):
        fn, _ = impls[name]
        if name in ("flatter", "hand-fused JAX"):
            return fn(*jit_args).block_until_ready()
        return fn()

    for name in impls:  # compile and warm up
        call(name)
    times: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    for r in range(rounds):
        # Rotate the order every round: whoever runs right after the NumPy loop finds colder caches.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_timed(lambda name=name: call(name)))
    return {name: runs * impls[name][1] / float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--run-steps", type=int, default=400_000, help="runs x steps per timed call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gemm", type=int, default=2048, help="size of the GEMM that measures attainable FLOP/s")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy (and PyTorch) loops")
    parser.add_argument("--host-devices", type=int, default=1, help="CPU devices to shard the runs over")
    args = parser.parse_args()
    if args.host_devices > 1:
        jax.config.update("jax_num_cpu_devices", args.host_devices)
    # flatter's drivers multiply float32 at full precision (TF32 is too coarse for its science, see
    # flatter/_precision.py); every implementation and the GEMM roofline here run at that same precision.
    jax.config.update("jax_default_matmul_precision", "highest")
    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.device_kind} x{jax.device_count()} ({device.platform}), float32, "
        "matmul precision 'highest'"
    )
    flops = useful_flops_per_step()
    peak = gemm_gflops(args.gemm)
    print(f"attainable: {args.gemm}^3 float32 GEMM (jnp.dot) {peak:,.1f} GFLOP/s")
    print(f"matrix sensing d={D} n={N}, heavy ball + label noise, full batch; {flops / 1e3:.0f}k useful FLOP/run-step")
    print(f"median of {args.rounds} interleaved rounds, {args.run_steps:,} run-steps per timed call\n")
    header = f"{'runs':>5}  {'implementation':<16} {'run-steps/s':>12} {'GFLOP/s':>8} {'of GEMM':>8} {'vs hand':>8}"
    print(header)
    print("-" * len(header))
    for runs in args.runs:
        rates = measure(runs, args.run_steps, args.rounds, with_numpy=not args.no_numpy)
        ref = rates["hand-fused JAX"]
        for name, rate in rates.items():
            gf = rate * flops / 1e9
            print(f"{runs:>5}  {name:<16} {rate:>12,.0f} {gf:>8.1f} {100 * gf / peak:>7.0f}% {rate / ref:>7.2f}x")
        print()


if __name__ == "__main__":
    main()
