"""flatter's MLP-6 sweep step against the loops a user would write instead: plain JAX + optax, and PyTorch.

    python benchmarks/mlp_peers.py [--runs 8] [--steps 100] [--rounds 5] [--width 128] [--n 2000] [--batch 200]

The Fashion-MNIST quick preset's phase 2 (MLP-6 of width 128 on n = 2000 images of 28 x 28, squared loss on
one-hot targets, Gaussian label noise sigma = 0.5 on each minibatch label, batch B = 200, heavy ball with
eta = 0.07, beta = 1 - eta^(2/3)), on random inputs of those sizes (the speed does not depend on the pixels).
Each implementation advances R independent runs (vmapped in JAX, batched ``bmm`` in PyTorch) by the same
number of steps; rates are run-steps per second, medians of interleaved rounds (the order rotates from round to
round) after a warm-up call, and the ratios are against the plain JAX + optax loop, measured in the same run:

1. ``flatter (without replacement)``: ``jax.jit(jax.vmap(run))`` of ``flatter.simulate`` with
   ``optax.chain(flatter.label_noise(sigma, mode="minibatch"), flatter.heavy_ball(eta, beta))`` and the
   default minibatch draw, a uniform B-subset (the B largest of n uniforms, ``jax.lax.top_k``);
2. ``flatter (with replacement)``: the same with ``sampling="with_replacement"`` (B uniform indices);
3. ``plain JAX + optax``: the loop of a JAX user, ``optax.sgd(eta, momentum=beta)`` on ``jax.grad`` of the
   noised minibatch loss, one permutation of n per epoch sliced into batches (PyTorch DataLoader's order),
   nested ``lax.scan`` over epochs and batches;
4. ``PyTorch batched``: the same loop in PyTorch (when installed; not a dependency): weights stacked over the
   runs, ``torch.bmm``, autograd, in-place momentum updates, one ``argsort`` of uniforms per epoch.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import flatter
from flatter.models import MLP

SIGMA, ETA, DEPTH, CLASSES = 0.5, 0.07, 6, 10
BETA = 1.0 - ETA ** (2 / 3)


def data(n: int):
    x = jax.random.normal(jax.random.key(0), (n, 28, 28), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(n) % CLASSES, CLASSES)
    return x, y


def flatter_runs(problem, params, steps: int, batch: int, sampling: str):
    def run(key):
        k_noise, k_sim = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(SIGMA, key=k_noise, mode="minibatch"), flatter.heavy_ball(ETA, BETA))
        traj = flatter.simulate(
            problem, tx, params, steps=steps, key=k_sim, batch_size=batch, sampling=sampling,
            record_every=steps, observables=["loss"],
        )  # fmt: skip
        return traj.observables["loss"][-1]

    return jax.jit(jax.vmap(run))


def plain_runs(problem, params, steps: int, batch: int):
    x, y = problem.inputs, problem.targets
    n = x.shape[0]
    per_epoch = n // batch
    tx = optax.sgd(ETA, momentum=BETA)

    def noised_loss(p, xb, yb, key):
        f = problem.predict(p, xb)
        return 0.5 * jnp.mean(jnp.sum((f - yb - SIGMA * jax.random.normal(key, yb.shape)) ** 2, -1))

    def run(key):
        def step(carry, k):
            p, state, order, i = carry
            idx = jax.lax.dynamic_slice(order, (i * batch,), (batch,))
            g = jax.grad(noised_loss)(p, x[idx], y[idx], k)
            updates, state = tx.update(g, state, p)
            return (optax.apply_updates(p, updates), state, order, i + 1), None

        def epoch(carry, k):
            k_order, k_steps = jax.random.split(k)
            order = jax.random.permutation(k_order, n)
            (p, state, _, _), _ = jax.lax.scan(step, (*carry, order, 0), jax.random.split(k_steps, per_epoch))
            return (p, state), None

        (p, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jax.random.split(key, steps // per_epoch))
        return problem.loss(p)

    return jax.jit(jax.vmap(run))


def torch_runs(params, x, y, steps: int, batch: int, runs: int):
    try:
        import torch
    except ImportError:
        return None
    # flax's Linear layers (kernel (in, out), bias (out,)), stacked over the runs.
    layers = sorted(params["layers"].items())
    weights = [torch.tensor(np.asarray(v["kernel"])).expand(runs, -1, -1).clone() for _, v in layers]
    biases = [torch.tensor(np.asarray(v["bias"])).expand(runs, -1).clone()[:, None, :] for _, v in layers]
    tensors = [t.requires_grad_() for pair in zip(weights, biases, strict=True) for t in pair]
    velocity = [torch.zeros_like(t) for t in tensors]
    xt = torch.tensor(np.asarray(x)).reshape(x.shape[0], -1)
    yt = torch.tensor(np.asarray(y))
    n = xt.shape[0]
    per_epoch = n // batch
    gen = torch.Generator().manual_seed(0)

    def run():
        for s in range(steps):
            if s % per_epoch == 0:
                order = torch.rand((runs, n), generator=gen).argsort(dim=1)
            idx = order[:, (s % per_epoch) * batch : (s % per_epoch + 1) * batch]
            h = xt[idx]
            for i in range(0, len(tensors), 2):
                h = torch.baddbmm(tensors[i + 1], h, tensors[i])
                if i + 2 < len(tensors):
                    h = torch.relu(h)
            noise = SIGMA * torch.randn(h.shape, generator=gen)
            loss = 0.5 * ((h - yt[idx] - noise) ** 2).sum(-1).mean(-1).sum()  # runs independent: sum over them
            grads = torch.autograd.grad(loss, tensors)
            with torch.no_grad():
                for t, v, g in zip(tensors, velocity, grads, strict=True):
                    v.mul_(BETA).add_(g)
                    t.sub_(ETA * v)
        return tensors[0]

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed call (a multiple of n / batch)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    if args.n % args.batch or args.steps % (args.n // args.batch):
        parser.error("--n must be a multiple of --batch and --steps a multiple of n / batch (whole epochs)")
    x, y = data(args.n)
    module = MLP(28 * 28, CLASSES, width=args.width, depth=DEPTH, rngs=nnx.Rngs(0))
    problem, params = flatter.Problem.from_flax(module, x, y, loss="squared", name="mlp6")
    keys = jax.random.split(jax.random.key(1), args.runs)
    impls = {
        "plain JAX + optax": plain_runs(problem, params, args.steps, args.batch),
        "flatter (without replacement)": flatter_runs(problem, params, args.steps, args.batch, "without_replacement"),
        "flatter (with replacement)": flatter_runs(problem, params, args.steps, args.batch, "with_replacement"),
    }
    calls = {name: (lambda fn=fn: fn(keys).block_until_ready()) for name, fn in impls.items()}
    torch_run = torch_runs(params, x, y, args.steps, args.batch, args.runs)
    if torch_run is not None:
        import torch

        calls["PyTorch batched"] = torch_run
        torch_note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    else:
        torch_note = "torch not installed"
    for call in calls.values():  # compile and warm up
        call()
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    device = jax.devices()[0]
    p = sum(v.size for v in jax.tree.leaves(params))
    print(f"jax {jax.__version__} on {device.device_kind} x{jax.device_count()} ({device.platform}); {torch_note}")
    print(
        f"MLP-{DEPTH} width {args.width} ({p:,} parameters), n={args.n}, B={args.batch}, {args.runs} runs x "
        f"{args.steps} steps per call, median of {args.rounds} interleaved rounds\n"
    )
    rates = {name: args.runs * args.steps / float(np.median(t)) for name, t in times.items()}
    ref = rates["plain JAX + optax"]
    header = f"{'implementation':<30} {'run-steps/s':>12} {'vs plain JAX':>13}"
    print(header)
    print("-" * len(header))
    for name, rate in rates.items():
        print(f"{name:<30} {rate:>12,.0f} {rate / ref:>12.2f}x")


if __name__ == "__main__":
    main()
