"""Predicting the steps T to reach the flat minimum vs simulating the discrete dynamics to the same horizon.

Toy valley, y0 = 1, |y| < 0.1, 1 - beta = C eta^gamma. The prediction (`flatter.timescales.predict_grid`,
method "sde": 48 paths of the reduced SDE with fluctuating transverse temperatures, all rows in one compiled
call) beside the reduced ODE (method "ode", the temperatures at their mean, docs/theory.md §6.6); the simulation runs
64 seeds of SGDM with label noise for 3x the predicted settling time and takes the median settling step, one
compiled call per row as a user would. Printed side by side: the errors, the model evaluations (optimizer
steps x seeds vs integration steps x paths) and the wall times, compile included.

    python benchmarks/predict_vs_simulate.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import flatter
from flatter import timescales

CASES = [  # gamma, eta, C, sigma
    (0.0, 0.0125, 1.0, 1.0),
    (0.5, 6.4e-4, 1.0, 1.0),
    (2 / 3, 6.4e-4, 1.0, 0.5),
    (2 / 3, 6.4e-4, 0.5, 0.5),
    (2 / 3, 6.4e-4, 1.0, 1.0),
]


def main(seeds=64):
    base = flatter.problems.toy_valley()
    toy = flatter.Problem(base.predict, base.inputs, base.targets, observables={"abs_y": lambda p, th: jnp.abs(th[1])})
    start = jnp.array([0.0, 1.0])
    gammas, etas, Cs, sigmas = map(np.array, zip(*CASES, strict=True))
    betas = np.where(gammas > 0, 1 - Cs * etas**gammas, 0.0)
    criterion = dict(observable="abs_y", threshold=0.1)
    t0 = time.perf_counter()
    pred = timescales.predict_grid(toy, start, eta=etas, beta=betas, sigma=sigmas, **criterion)
    t_pred = time.perf_counter() - t0
    ode = timescales.predict_grid(toy, start, eta=etas, beta=betas, sigma=sigmas, method="ode", **criterion)
    print(
        f"{'gamma':>6} {'eta':>8} {'C':>4} {'sigma':>5} | {'predicted':>9} {'simulated':>9} {'error':>6} "
        f"{'ODE err':>7} | {'evals pred':>10} {'evals sim':>10} {'ratio':>6} | {'t sim':>6}"
    )
    t_sim_total = 0.0
    for i, (gamma, eta, C, sigma) in enumerate(CASES):
        beta = float(betas[i])
        horizon = int(3 * pred.settle[i]) + 100
        horizon -= horizon % 10

        def run(key, beta=beta, sigma=sigma, eta=eta, horizon=horizon):
            k1, k2 = jax.random.split(key)
            tx = optax.chain(flatter.label_noise(sigma, key=k1), flatter.heavy_ball(eta, beta))
            traj = flatter.simulate(toy, tx, start, steps=horizon, key=k2, record_every=10, observables=["abs_y"])
            return flatter.settling_time(traj.steps, traj.observables["abs_y"], 0.1)

        t0 = time.perf_counter()
        settle = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), seeds))
        simulated = float(np.median(settle.time))
        t_sim = time.perf_counter() - t0
        t_sim_total += t_sim
        evals_sim = seeds * horizon
        evals_pred = int(pred.point_evaluations[i])
        err = (pred.settle[i] - simulated) / simulated
        ode_err = (ode.settle[i] - simulated) / simulated
        print(
            f"{gamma:6.3f} {eta:8.5f} {C:4.1f} {sigma:5.2f} | "
            f"{pred.settle[i]:9.0f} {simulated:9.0f} {err:+6.1%} {ode_err:+7.1%} | "
            f"{evals_pred:10d} {evals_sim:10d} {evals_sim / evals_pred:5.0f}x | {t_sim:5.2f}s"
        )
    print(
        f"wall, compile included: prediction of all {len(CASES)} rows {t_pred:.2f} s (one call, "
        f"{pred.model_evaluations} evaluations, the padding of its point blocks included), "
        f"simulation {t_sim_total:.2f} s ({len(CASES)} calls)"
    )


if __name__ == "__main__":
    main()
