"""The label-noise stationary variance law on the toy valley's transverse direction (docs/theory.md §6.2).

For frozen curvature h (curvature_slope = 0) the transverse coordinate is the AR(2) process
x_{k+1} = (1 + beta - eta h) x_k - beta x_{k-1} + eta eps sqrt(h) xi_k, whose stationary variance is

    Var_x = eta eps^2 (1 + beta) / (B (1 - beta) (2 (1 + beta) - eta h)),    B = 1 here,

independent of h up to the eta h term. Statistical test: 256 seeds x 6000 recorded steps after a
burn-in of 10 relaxation times; the standard error of the estimate is computed from independent
seeds and the tolerance is 4 standard errors plus 1% (fixed seeds, so the test is deterministic).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter

SEEDS, KEEP = 256, 6000


def predicted(eta, beta, h, eps):
    return eta * eps**2 * (1 + beta) / ((1 - beta) * (2 * (1 + beta) - eta * h))


def measure(eta, beta, h, eps, seed=0):
    problem = flatter.problems.toy_valley(h0=h, curvature_slope=0.0)
    tau1 = max(1 / (1 - beta), (1 - beta) / (2 * eta * h))
    burn = int(10 * tau1) + 100

    def run(key):
        k_noise, k_sim = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(eps, key=k_noise), flatter.heavy_ball(eta, beta))
        return flatter.simulate(
            problem, tx, jnp.array([0.0, 0.0]), steps=burn + KEEP, key=k_sim, observables=["x"]
        ).observables["x"][burn + 1 :]

    xs = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(seed), SEEDS))
    per_seed = np.mean(np.asarray(xs) ** 2, axis=1)
    return per_seed.mean(), per_seed.std(ddof=1) / np.sqrt(SEEDS)


@pytest.mark.parametrize(
    "eta,beta,h,eps",
    [(0.1, 0.0, 1.0, 1.0), (0.05, 0.9, 2.0, 0.5), (0.02, 0.95, 4.0, 1.0), (0.5, 0.5, 3.0, 1.0)],
)
def test_stationary_variance_matches_law(eta, beta, h, eps):
    mean, se = measure(eta, beta, h, eps)
    want = predicted(eta, beta, h, eps)
    assert abs(mean - want) < 4 * se + 0.01 * want, (mean, se, want)


def test_variance_does_not_depend_on_curvature():
    """At fixed (eta, beta) an 8x range of curvature changes the variance only through eta h."""
    eta, beta, eps = 0.01, 0.9, 1.0
    results = {h: measure(eta, beta, h, eps, seed=1) for h in (0.5, 1.0, 4.0)}
    values = np.array([m for m, _ in results.values()])
    se = max(s for _, s in results.values())
    assert values.max() - values.min() < 5 * se + 0.01 * values.mean(), results
    # ... while a curvature-blind (isotropic) noise would give Var proportional to 1/h.
    ratio = results[0.5][0] / results[4.0][0]
    assert 0.95 < ratio < 1.05
