"""The limit SDE on the valley: flatter's scan path vs diffrax vs a hand-written scan Euler.

Same dynamics (the general-noise limit SDE of `flatter.limit.limit_sde` with isotropic noise, on a
matrix-sensing valley, projected back onto the valley after every step), same step size, 32
Brownian paths vmapped; each timed after compilation, side by side in one run.

    python benchmarks/limit_integrators.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from _timing import best_time

import flatter
from flatter import limit, valley


def compare(label, problem, params, t1, dt, paths):
    sde = limit.limit_sde(problem, limit.isotropic_noise(0.05), eta=0.01, beta=0.9)
    n = int(round(t1 / dt))
    keys = jax.random.split(jax.random.key(0), paths)
    theta0, fp = valley.flatten(problem, params)
    m = theta0.shape[0]

    def flatter_scan(k):
        return limit.integrate(
            problem, sde, params, t1=t1, dt=dt, key=k, save_every=n, observables=["trace_hessian"]
        ).observables["trace_hessian"][-1]

    def flatter_diffrax(k):
        return limit.integrate(
            problem,
            sde,
            params,
            t1=t1,
            dt=dt,
            key=k,
            save_every=n,
            observables=["trace_hessian"],
            method="diffrax",
        ).observables["trace_hessian"][-1]

    def hand_written(k):
        xi = jax.random.normal(k, (n, m)) * jnp.sqrt(dt)

        def step(theta, dw):
            theta = theta + sde.drift(fp, theta) * dt + sde.diffusion(fp, theta) @ dw
            return valley.gauss_newton_steps(fp, theta, 2), None

        theta, _ = jax.lax.scan(step, theta0, xi)
        return problem.gauss_newton_trace(fp.unravel(theta))

    timings = {}
    for name, fn in [
        ("hand-written scan Euler", hand_written),
        ("flatter scan path", flatter_scan),
        ("flatter diffrax path", flatter_diffrax),
    ]:
        f = jax.jit(jax.vmap(fn))
        timings[name] = best_time(lambda f=f: jax.block_until_ready(f(keys)))
    print(f"limit SDE, {label}, {paths} paths x {n} steps, projected Euler-Maruyama")
    base = timings["hand-written scan Euler"]
    for name, t in timings.items():
        print(f"  {name:<26} {t * 1e3:9.1f} ms   {t / base:5.2f} x hand-written")
    ratio = timings["flatter diffrax path"] / timings["flatter scan path"]
    print(f"  diffrax / flatter scan:    {ratio:.2f} x")


def main():
    jax.config.update("jax_enable_x64", True)
    toy = flatter.problems.toy_valley()
    compare("toy valley (p=2)", toy, jnp.array([0.0, 1.0]), t1=1.0, dt=0.0005, paths=256)
    problem = flatter.problems.matrix_sensing(6, 1, 12, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)), tol=1e-14)
    compare("matrix sensing d=6 (p=36)", problem, params, t1=0.5, dt=0.005, paths=32)


if __name__ == "__main__":
    main()
