"""Predicting the steps T to reach the flat minimum vs simulating the discrete dynamics, across gamma and regimes.

Rows: gamma in {0.5, 0.6, 2/3, 0.75, 0.85} (1 - beta = C eta^gamma) on

- the toy valley (y0 = 1, |y| < 0.1, eta = 1e-4) in three regimes of the along-valley motion at gamma = 2/3:
  creeping (kappa = 0.01, damping ratio zeta = 3.5), critical (kappa = 0.125, zeta = 1) and underdamped
  (kappa = 0.5, zeta = 0.5), kappa = sigma^2 / (4 B C^3) with sigma = 1 and C set by kappa;
- a valley flatter was not tuned on, built as a user would (``tests/helpers.diagonal_network``: f = <u*u - v*v, x>,
  d = 4, n = 2, every label noised so B = n = 2), kappa = 0.1 (zeta = 0.67 at the start), eta = 1e-5, the criterion
  tr∇²L read on the valley below 2.45 (3.97 at the start, 2.28 at the flat end);
- matrix sensing small enough to simulate (d = 10, rank 2, n = 15: p = 20, every label noised so B = 15) at
  eta = 1e-4, creeping (kappa = 0.003) and underdamped (kappa = 0.03), tr∇²L on the valley below 60 (176 at the
  start, 48.7 where the critical flow ends);
- a teacher-student network small enough to simulate (d_in = 4, k = 2, m = 8 tanh units, n = 12: p = 40, B = 12)
  at eta = 1e-3, creeping (kappa = 0.01) and underdamped (kappa = 0.1), tr∇²L on the valley below 1.2 (1.60 at
  the start, where the label-noise flow falls fast; about 1.0 at t ~ 6 and 0.51 at t = 800, still falling), and
  creeping below 1.0 ("slow end": where the flow has slowed to 2.5% of tr per unit t, so an offset of 1.5% in the
  level moves the time by 10%).

The prediction is ``flatter.timescales.predict_grid`` (method "sde": 256 paths of the reduced SDE, all rows of a
problem in one call); the simulation runs 128 seeds of SGDM with label noise (``flatter.simulate``) for 3x the
predicted settling time (at least 4x the predicted first passage; 30x it where the prediction is censored) and
takes the medians of the first-passage and settling steps. Printed per row: both medians, their errors, the
bootstrap half-width (68%) of the error from both medians' sampling, the censored share of the simulated runs,
the observable's 90th percentile over the last quarter of the simulated runs (where it reaches the threshold,
late excursions set the settling time), and the simulation's model evaluations over the prediction's.

    python benchmarks/predict_vs_simulate.py [--paths 256] [--seeds 128] [--only PREFIX] [--gammas G ...]
        [--eta-scale F] [--x64]

``--eta-scale`` multiplies every setting's eta at the same kappa (the same regime at gamma = 2/3): a row whose error
comes from eta not being small yet shrinks with it. ``--x64`` runs both in float64: at eta = 1e-6, gamma = 0.85,
1 - beta ~ 6e-6 is about a hundred float32 roundings below 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import flatter  # noqa: E402
from flatter import timescales  # noqa: E402

GAMMAS = (0.5, 0.6, 2 / 3, 0.75, 0.85)


def toy_problem():
    base = flatter.problems.toy_valley()
    problem = flatter.Problem(
        base.predict, base.inputs, base.targets, observables={"abs_y": lambda p, th: jnp.abs(th[1])}, name="toy"
    )
    return problem, jnp.array([0.0, 1.0])


def diagonal_problem():
    from helpers import diagonal_network  # the suite's user-built valley

    return diagonal_network()


def on_valley(problem):
    """The problem and a start on Gamma: interpolated from its initialization, then projected."""
    start, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
    return problem, flatter.valley.project(problem, start)


def matrix_sensing_problem():
    """Matrix sensing small enough to simulate 128 runs a row: d = 10, rank 2, n = 15 (p = 20), on Gamma."""
    return on_valley(flatter.problems.matrix_sensing(10, 2, 15, key=jax.random.key(0)))


def teacher_student_problem():
    """A teacher-student network small enough to simulate 128 runs a row: d_in = 4, k = 2, m = 8, n = 12 (p = 40)."""
    return on_valley(flatter.problems.teacher_student(d_in=4, k=2, m=8, n=12, key=jax.random.key(0)))


# name, problem factory, noise batch B (label_noise's default noises every label: B = n), eta, kappa, criterion
SETTINGS = (
    ("toy creeping", toy_problem, 1, 1e-4, 0.01, "abs_y", 0.1),
    ("toy critical", toy_problem, 1, 1e-4, 0.125, "abs_y", 0.1),
    ("toy underdamped", toy_problem, 1, 1e-4, 0.5, "abs_y", 0.1),
    ("diagonal network", diagonal_problem, 2, 1e-5, 0.1, "trace_hessian@valley", 2.45),
    ("sensing creeping", matrix_sensing_problem, 15, 1e-4, 0.003, "trace_hessian@valley", 60.0),
    ("sensing underdamp", matrix_sensing_problem, 15, 1e-4, 0.03, "trace_hessian@valley", 60.0),
    ("teacher creeping", teacher_student_problem, 12, 1e-3, 0.01, "trace_hessian@valley", 1.2),
    ("teacher underdamp", teacher_student_problem, 12, 1e-3, 0.1, "trace_hessian@valley", 1.2),
    ("teacher slow end", teacher_student_problem, 12, 1e-3, 0.01, "trace_hessian@valley", 1.0),
)


def simulation(problem, start, eta, beta, sigma, observable, threshold, horizon, record):
    """One run of SGDM with label noise: its first-passage and settling steps, its censoring, its last quarter."""

    def run(key):
        k1, k2 = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(sigma, key=k1), flatter.heavy_ball(eta, beta))
        traj = flatter.simulate(
            problem, tx, start, steps=horizon, key=k2, record_every=record, observables=[observable]
        )
        values = traj.observables[observable]
        first = flatter.first_passage(traj.steps, values, threshold)
        settle = flatter.settling_time(traj.steps, values, threshold)
        return first.time, settle.time, settle.censored, values[-(values.shape[0] // 4) :]

    return run


def error_halfwidth(predicted: np.ndarray, simulated: np.ndarray, rng: np.random.Generator) -> float:
    """Half the 68% bootstrap interval of median(predicted) / median(simulated) - 1 (censored samples count at their
    horizon, infinite ones as infinite)."""
    ratios = [
        np.median(rng.choice(predicted, predicted.size)) / np.median(rng.choice(simulated, simulated.size))
        for _ in range(400)
    ]
    with np.errstate(invalid="ignore"):  # an infinite (censored) median gives no width
        return float(np.diff(np.nanpercentile(ratios, [16, 84]))[0] / 2)


def main(paths: int = 256, seeds: int = 128, only: str | None = None, eta_scale: float = 1.0, gammas=GAMMAS) -> None:
    rng = np.random.default_rng(0)
    gammas = np.asarray(gammas, float)
    settings = [row for row in SETTINGS if only is None or row[0].startswith(only)]
    if eta_scale != 1.0:
        print(f"eta x {eta_scale:g} in every setting, kappa kept: " + ", ".join(
            f"{row[0]} {row[3] * eta_scale:g}" for row in settings))  # fmt: skip
    header = (
        f"{'problem':<17} {'gamma':>5} | {'first pred':>10} {'sim':>8} {'err':>5} {'+-':>4} | {'settle pred':>11} "
        f"{'sim':>8} {'err':>5} {'+-':>4} {'cens':>5} | {'sim q90':>8} | {'sim/pred evals':>14}"
    )
    print(header)
    print("-" * len(header))
    outside, agree_censored, t_pred, t_sim = [], [], 0.0, 0.0
    for name, factory, batch, eta, kappa, observable, threshold in settings:
        eta = eta * eta_scale
        problem, start = factory()
        sigma = 1.0
        C = (sigma**2 / (4 * batch * kappa)) ** (1 / 3)
        betas = 1 - C * eta**gammas
        t0 = time.perf_counter()
        pred = timescales.predict_grid(
            problem, start, eta=eta, beta=betas, sigma=sigma, batch_size=batch, observable=observable,
            threshold=threshold, seeds=paths,
        )  # fmt: skip
        t_pred += time.perf_counter() - t0
        for i, gamma in enumerate(gammas):
            beta = float(betas[i])
            longest = 10 * pred.first[i] if pred.censored[i] else pred.settle[i]
            horizon = int(max(3 * longest, 4 * pred.first[i], 2000))
            record = max(horizon // 2000, 1)
            horizon -= horizon % record

            run = simulation(problem, start, eta, beta, sigma, observable, threshold, horizon, record)
            t0 = time.perf_counter()
            first, settle, censored, tail = (
                np.asarray(v) for v in jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), seeds))
            )
            t_sim += time.perf_counter() - t0
            sim_first, sim_settle = np.median(first), np.median(settle)
            err_first = pred.first[i] / sim_first - 1
            err_settle = pred.settle[i] / sim_settle - 1
            spread_first = error_halfwidth(pred.first_samples[i], first, rng)
            spread_settle = error_halfwidth(pred.settle_samples[i], settle, rng)
            q90_sim = np.percentile(tail, 90)
            evals = seeds * horizon / max(int(pred.point_evaluations[i]), 1)
            print(
                f"{name:<17} {gamma:5.3f} | {pred.first[i]:10.4g} {sim_first:8.4g} {err_first:+5.0%} "
                f"{spread_first:4.0%} | {pred.settle[i]:11.4g} {sim_settle:8.4g} {err_settle:+5.0%} "
                f"{spread_settle:4.0%} {censored.mean():5.2f} | {q90_sim:8.3g} | {evals:13.0f}x"
            )
            both_censored = bool(pred.censored[i]) and censored.mean() > 0.5  # two lower bounds: the same verdict
            for label, err, spread in (("first", err_first, spread_first), ("settle", err_settle, spread_settle)):
                if label == "settle" and both_censored:
                    agree_censored.append(f"{name} gamma={gamma:.3f}")
                elif not abs(err) <= 0.1:
                    outside.append(f"{name} gamma={gamma:.3f} {label} {err:+.0%} (+- {spread:.0%})")
    print(
        f"wall, compile included: prediction {t_pred:.1f} s ({len(settings)} calls), simulation {t_sim:.1f} s "
        f"({len(settings) * len(gammas)} calls)"
    )
    print(f"outside 10%: {len(outside)} of {2 * len(settings) * len(gammas)}" + (": " if outside else ""))
    for line in outside:
        print(f"  {line}")
    if agree_censored:
        print("settling censored in both (neither settles within its horizon): " + ", ".join(agree_censored))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=256, help="reduced-SDE paths per predicted row")
    parser.add_argument("--seeds", type=int, default=128, help="simulated runs per row")
    parser.add_argument("--only", default=None, help="the settings whose name starts with this (default: all)")
    parser.add_argument(
        "--eta-scale", type=float, default=1.0, help="multiply every setting's eta (kappa kept: the same regime)"
    )
    parser.add_argument(
        "--gammas", type=float, nargs="+", default=GAMMAS, help="the exponents of 1 - beta = C eta^gamma"
    )
    parser.add_argument("--x64", action="store_true", help="simulate and predict in float64")
    args = parser.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    main(args.paths, args.seeds, args.only, args.eta_scale, tuple(args.gammas))
