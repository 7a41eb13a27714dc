"""Predicting the steps T to reach the flat minimum vs simulating the discrete dynamics to the same horizon.

Toy valley, y0 = 1, |y| < 0.1, 1 - beta = C eta^gamma. The prediction (`flatter.timescales.predict_steps`)
integrates the label-noise flow or the critical reduced ODE; the simulation runs 64 seeds of SGDM with label
noise for 3x the predicted settling time and takes the median settling step. Printed side by side: the
accuracy, the model evaluations (optimizer steps x seeds vs integration steps) and the wall times.

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
    print(
        f"{'gamma':>6} {'eta':>8} {'C':>4} {'sigma':>5} | {'predicted':>9} {'simulated':>9} {'error':>6} | "
        f"{'evals pred':>10} {'evals sim':>10} {'ratio':>6} | {'t pred':>7} {'t sim':>7}"
    )
    for gamma, eta, C, sigma in CASES:
        beta = float(flatter.momentum_rule(eta, C=C, gamma=gamma)) if gamma > 0 else 0.0
        t0 = time.perf_counter()
        pred = timescales.predict_steps(toy, start, eta=eta, beta=beta, sigma=sigma, observable="abs_y", threshold=0.1)
        t_pred = time.perf_counter() - t0
        horizon = int(3 * pred.settle) + 100
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
        evals_sim = seeds * horizon
        err = (pred.settle - simulated) / simulated
        print(
            f"{gamma:6.3f} {eta:8.5f} {C:4.1f} {sigma:5.2f} | "
            f"{pred.settle:9.0f} {simulated:9.0f} {err:+6.1%} | "
            f"{pred.model_evaluations:10d} {evals_sim:10d} {evals_sim / pred.model_evaluations:5.0f}x | "
            f"{t_pred:6.2f}s {t_sim:6.2f}s"
        )


if __name__ == "__main__":
    main()
