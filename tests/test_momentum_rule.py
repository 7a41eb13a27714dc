"""The 1 - beta = C eta**gamma rule and heavy ball that follows it under a schedule."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import run_numpy, run_optax

import flatter


@pytest.mark.parametrize("eta,C,gamma", [(0.01, 1.0, 2 / 3), (0.1, 0.5, 0.5), (0.3, 1.0, 0.0)])
def test_rule_value(eta, C, gamma):
    assert float(flatter.momentum_rule(eta, C=C, gamma=gamma)) == pytest.approx(1 - C * eta**gamma)


def test_rule_broadcasts_over_arrays():
    etas = jnp.array([1e-3, 1e-2, 1e-1])
    np.testing.assert_allclose(
        flatter.momentum_rule(etas, C=1.0, gamma=2 / 3), 1 - np.asarray(etas) ** (2 / 3), rtol=1e-12
    )


def test_scaled_heavy_ball_constant_lr_equals_heavy_ball():
    eta, C, gamma = 0.05, 0.8, 0.5
    beta = float(flatter.momentum_rule(eta, C=C, gamma=gamma))
    np.testing.assert_allclose(
        run_optax(flatter.scaled_heavy_ball(eta, C=C, gamma=gamma)),
        run_numpy(eta, beta),
        rtol=1e-12,
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_scaled_heavy_ball_follows_schedule(nesterov):
    """beta_k = 1 - C eta_k**gamma is recomputed from the scheduled eta_k at every step."""
    C, gamma = 1.0, 2 / 3
    sched = lambda k: 0.1 * jnp.asarray(0.8, jnp.float64) ** k  # noqa: E731
    theta, v, out = np.array([1.0, 2.0]), np.zeros(2), []
    A = np.array([[2.0, 0.3], [0.3, 0.5]])
    B = np.array([1.0, -1.0])
    for k in range(25):
        eta_k = 0.1 * 0.8**k
        beta_k = 1 - C * eta_k**gamma
        g = A @ theta - B
        v = beta_k * v + g
        theta = theta - eta_k * (g + beta_k * v if nesterov else v)
        out.append(theta.copy())
    np.testing.assert_allclose(
        run_optax(flatter.scaled_heavy_ball(sched, C=C, gamma=gamma, nesterov=nesterov)),
        np.array(out),
        rtol=1e-10,
    )
