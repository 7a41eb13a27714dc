"""The valley of a network, matrix-free: interpolation and projection of flatter's MLP-6 on Fashion-MNIST images.

    python benchmarks/network_valley.py [--examples 500] [--width 128] [--activation relu|tanh] [--data DIR]
        [--compare-etas 0.002 0.001 0.0005]

Builds the MLP (depth 6; ReLU as in the paper, or tanh: a loss three times differentiable, as the limit assumes) as
a user would (``Problem.from_flax``, one-hot targets, squared loss) on the first ``--examples`` training images,
then times, each in a fresh process so that its peak memory is its own:

- ``interpolate`` from the initialization: minimum-norm Gauss-Newton with the solver chosen by size (LSMR with JVPs
  and VJPs: the N x p Jacobian is never formed), to a loss of 1e-8;
- ``valley.project`` from that point moved by 1e-3 in every coordinate;
- ``valley.riemannian_gradient_trace`` at that point (the gradient of tr(J^T J)/n over chunks of examples, projected
  on the tangent space by LSMR);
- ``limit.integrate`` of the label-noise flow dθ/dt = -(σ²/4B) ∇_Γ tr∇²L (σ = 1, every label noised: B = n) from that
  point, ``--flow-steps`` projected Euler steps of dt = 0.1, tr∇²L read at the start and end (exactly, by chunks of
  examples): the drift, its LSMR projection and one LSMR Gauss-Newton retraction per step;
- ``compare_step_sizes`` from that point: SGDM with label noise (σ = 1 on every label, β = 0.9, ``--seeds`` runs)
  at η_eff = 0.02, 0.01, 0.005 (``--compare-etas``) against one label-noise flow path (projected Heun, 1 step a
  record refined once, to 2) up to t = 0.2, tr∇²L read exactly at 2 records, on the valley (2 LSMR Gauss-Newton
  steps from each run's iterate: Φ(θ), what the limit theorem is about) and at the iterate itself; the
  discrepancies and their fitted orders, for each reading.

Prints per operation its wall time (compile included), what it reports (steps, LSMR iterations, loss, residual)
and its process's peak resident memory; and what a dense solve would have needed (the size of the N x p
Jacobian), which flatter refuses above ``flatter.valley.DENSE_MEMORY_LIMIT``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMPARE_ETAS = (0.002, 0.001, 0.0005)  # at beta = 0.9: eta_eff = 0.02, 0.01, 0.005 (500 to 8,000 steps to t = 0.2)


ACTIVATIONS = ("relu", "tanh")  # flatter's MLP-6 as in the paper, and with a smooth loss (the limit's assumption)


def build(examples: int, width: int, data: str | None, activation: str = "relu"):
    import jax
    from flax import nnx

    import flatter
    from flatter.data import load_fashion_mnist

    dataset = load_fashion_mnist(data)
    train, _ = dataset.normalized()
    x = jax.numpy.asarray(train[:examples].reshape(examples, -1))
    y = jax.nn.one_hot(dataset.train_labels[:examples], dataset.num_classes)
    module = flatter.models.MLP(
        x.shape[1], dataset.num_classes, width=width, depth=6, activation=getattr(jax.nn, activation), rngs=nnx.Rngs(0)
    )
    return flatter.Problem.from_flax(module, x, y, name=f"fashion-mnist-mlp6-{width}-{activation}")


def operation(
    name: str,
    examples: int,
    width: int,
    data: str | None,
    fitted_path: str,
    flow_steps: int = 5,
    seeds: int = 4,
    activation: str = "relu",
    compare_etas: tuple[float, ...] = COMPARE_ETAS,
) -> dict:
    """One operation in this process (the fitted point read from, or for interpolate written to, fitted_path)."""
    import jax
    import numpy as np
    from jax.flatten_util import ravel_pytree

    import flatter

    problem, params = build(examples, width, data, activation)
    flat, unravel = ravel_pytree(params)
    record = {"parameters": int(flat.size), "outputs": int(problem.targets.size)}
    start = time.perf_counter()
    if name == "interpolate":
        fitted, info = flatter.interpolate(problem, params)
        record.update(seconds=time.perf_counter() - start, **info._asdict())
        np.save(fitted_path, np.asarray(ravel_pytree(fitted)[0]))
    elif name == "label_noise_flow":
        fitted = unravel(jax.numpy.asarray(np.load(fitted_path)))
        flow = flatter.limit.label_noise_flow(problem, sigma=1.0, batch_size=problem.num_examples)
        steps = int(flow_steps)
        solution = flatter.limit.integrate(
            problem, flow, fitted, t1=0.1 * steps, dt=0.1, save_every=steps, observables=["trace_hessian"],
            projection_iterations=1,
        )  # fmt: skip
        trace = np.asarray(solution.observables["trace_hessian"])
        seconds = time.perf_counter() - start
        record.update(
            seconds=seconds, steps=steps, trace_start=float(trace[0]), trace_end=float(trace[-1]),
            residual_norm=float(np.max(np.asarray(solution.residual_norm))),
        )  # fmt: skip
    elif name == "compare":
        fitted = unravel(jax.numpy.asarray(np.load(fitted_path)))
        comps = flatter.compare_step_sizes(
            problem, fitted, etas=compare_etas, beta=0.9, sigma=1.0, t1=0.2, key=jax.random.key(0), seeds=seeds,
            records=2, limit_substeps=1, max_limit_substeps=2, observable="trace_hessian@valley",
            also=["trace_hessian"],
        )  # fmt: skip
        record.update(seconds=time.perf_counter() - start, seeds=seeds, diverged=[c.diverged for c in comps])
        for reading, of_reading in (
            ("on the valley", comps),
            ("at the iterate", [c.also["trace_hessian"] for c in comps]),
        ):
            fit = flatter.discrepancy_order(of_reading)
            record[reading] = dict(
                eta_eff=fit.eta_eff.tolist(), discrepancy=fit.discrepancy.tolist(), stderr=fit.stderr.tolist(),
                order=fit.order, interval=list(fit.interval), limit=np.asarray(of_reading[0].limit).tolist(),
                limit_error=float(np.max(np.asarray(of_reading[0].limit_error))),
                discrete_mean=[np.asarray(c.discrete_mean).tolist() for c in of_reading],
            )  # fmt: skip
    elif name == "project":
        moved = unravel(jax.numpy.asarray(np.load(fitted_path)) + 1e-3)
        projected = flatter.valley.project(problem, moved, tol=1e-3 * float(jax.numpy.sqrt(problem.targets.size)))
        record.update(seconds=time.perf_counter() - start, loss=float(problem.loss(projected)))
    else:
        gradient = flatter.valley.riemannian_gradient_trace(problem, unravel(jax.numpy.asarray(np.load(fitted_path))))
        record.update(seconds=time.perf_counter() - start, norm=float(jax.numpy.linalg.norm(gradient)))
    record["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: Debian's package)")
    parser.add_argument("--flow-steps", type=int, default=5, help="projected Euler steps of the label-noise flow")
    parser.add_argument("--seeds", type=int, default=4, help="discrete runs per step size in the comparison")
    parser.add_argument(
        "--compare-etas", type=float, nargs="+", default=COMPARE_ETAS, help="the step sizes compare runs at beta = 0.9"
    )
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="the MLP's nonlinearity")
    parser.add_argument("--operation", default=None, help=argparse.SUPPRESS)  # the child process's one operation
    parser.add_argument("--fitted", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.operation:
        record = operation(
            args.operation, args.examples, args.width, args.data, args.fitted, args.flow_steps, args.seeds,
            args.activation, tuple(args.compare_etas),
        )  # fmt: skip
        print(json.dumps(record))
        return
    with tempfile.TemporaryDirectory() as folder:
        fitted = str(Path(folder) / "fitted.npy")
        for name in ("interpolate", "project", "riemannian_gradient_trace", "label_noise_flow", "compare"):
            options = {
                "--operation": name, "--examples": args.examples, "--width": args.width, "--fitted": fitted,
                "--flow-steps": args.flow_steps, "--seeds": args.seeds, "--activation": args.activation,
            }  # fmt: skip
            command = [sys.executable, __file__, *(str(x) for pair in options.items() for x in pair)]
            command += ["--compare-etas", *map(str, args.compare_etas)] + (["--data", args.data] if args.data else [])
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            print(describe(name, json.loads(done.stdout.strip().splitlines()[-1]), args), flush=True)


def describe(name: str, record: dict, args) -> str:
    memory = f"peak memory {record['peak_rss_gib']:.2f} GiB"
    if name == "interpolate":
        dense = record["outputs"] * record["parameters"] * 4 / 1024**3
        return (
            f"MLP-6 width {args.width}, {args.activation} ({record['parameters']:,} parameters) on {args.examples} "
            f"Fashion-MNIST images, one-hot squared loss: N = {record['outputs']:,} outputs; a dense N x p Jacobian "
            f"would be {dense:.1f} GiB in float32\ninterpolate from the initialization: {record['seconds']:.0f} s, "
            f"{record['steps']} Gauss-Newton steps ({record['solver']}, {record['solver_iterations']:,} iterations in "
            f"all), loss {record['loss']:.2e}, residual norm {record['residual_norm']:.2e}, converged "
            f"{record['converged']}; {memory}"
        )
    if name == "project":
        return f"project from the fitted point moved by 1e-3 per coordinate: {record['seconds']:.0f} s, loss " + (
            f"{record['loss']:.2e}; {memory}"
        )
    if name == "label_noise_flow":
        return (
            f"label-noise flow from the fitted point (sigma = 1, B = n), {record['steps']} projected Euler steps of "
            f"dt = 0.1: {record['seconds']:.0f} s in all ({record['seconds'] / record['steps']:.0f} s a step, "
            f"compile and the two exact traces included), tr∇²L {record['trace_start']:.5g} -> "
            f"{record['trace_end']:.5g}, largest residual norm {record['residual_norm']:.1e}; {memory}"
        )
    if name == "compare":
        lines = [
            f"compare_step_sizes from the fitted point (sigma = 1, B = n, beta = 0.9, {record['seeds']} seeds, "
            f"t1 = 0.2): {record['seconds']:.0f} s in all; diverged runs {record['diverged']}; {memory}"
        ]
        for reading, why in (("on the valley", "Φ(θ), the limit theorem's reading"), ("at the iterate", "θ itself")):
            fit = record[reading]
            path = " -> ".join(f"{v:.5g}" for v in fit["limit"])
            gaps = ", ".join(f"{d:.3g} ± {s:.2g}" for d, s in zip(fit["discrepancy"], fit["stderr"], strict=True))
            lo, hi = fit["interval"]
            signed = ", ".join(f"{mean[-1] - fit['limit'][-1]:+.3g}" for mean in fit["discrete_mean"])
            lines.append(
                f"  tr∇²L read {reading} ({why}): limit {path} (its own error {fit['limit_error']:.2g}); "
                f"max |discrete mean - limit| at eta_eff = {', '.join(f'{e:g}' for e in fit['eta_eff'])}: {gaps}; "
                f"order {fit['order']:.2f} [{lo:.2f}, {hi:.2f}]; discrete mean - limit at t1: {signed} (the sign: "
                f"which runs ahead)"
            )
        return "\n".join(lines)
    return (
        f"riemannian_gradient_trace at the fitted point (tr(J^T J)/n's gradient over chunks of examples, projected "
        f"by LSMR): {record['seconds']:.0f} s, norm {record['norm']:.4g}; {memory}"
    )


if __name__ == "__main__":
    main()
