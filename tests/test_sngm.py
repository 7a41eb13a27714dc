"""SNGM against a NumPy recurrence, and its invariants (docs/theory.md §3)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter


def quad_grad(params, scale=1.0):
    # A two-leaf pytree so that the global (not per-leaf) norm is exercised.
    return {"a": scale * (3.0 * params["a"] - 1.0), "b": scale * (0.5 * params["b"] + 2.0)}


def run(tx, steps=30, scale=1.0):
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([0.5])}
    state = tx.init(params)
    out = []
    for _ in range(steps):
        updates, state = tx.update(quad_grad(params, scale), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.concatenate([np.asarray(params["a"]), np.asarray(params["b"])]))
    return np.array(out), state


@pytest.mark.parametrize("eta,beta,wd", [(0.1, 0.9, 0.0), (0.05, 0.5, 0.1), (0.2, 0.0, 0.0)])
def test_matches_numpy_recurrence(eta, beta, wd):
    a, b = np.array([1.0, -2.0]), np.array([0.5])
    ua, ub = np.zeros(2), np.zeros(1)
    out = []
    for _ in range(30):
        ga, gb = 3.0 * a - 1.0 + wd * a, 0.5 * b + 2.0 + wd * b
        norm = np.sqrt(np.sum(ga**2) + np.sum(gb**2))
        ua, ub = beta * ua + ga / norm, beta * ub + gb / norm
        a, b = a - eta * ua, b - eta * ub
        out.append(np.concatenate([a, b]))
    got, _ = run(flatter.sngm(eta, beta, weight_decay=wd))
    np.testing.assert_allclose(got, np.array(out), rtol=1e-12, atol=1e-14)


def test_step_bound_and_buffer_bound():
    eta, beta = 0.1, 0.9
    tx = flatter.sngm(eta, beta)
    key = jax.random.key(0)
    params = jnp.zeros(5)
    state = tx.init(params)
    for k in range(1, 200):
        key, sub = jax.random.split(key)
        g = jax.random.normal(sub, (5,)) * 10.0 ** jax.random.uniform(sub, (), minval=-3, maxval=3)
        updates, state = tx.update(g, state)
        new = optax.apply_updates(params, updates)
        assert float(jnp.linalg.norm(new - params)) <= eta / (1 - beta) * (1 + 1e-12)
        assert float(jnp.linalg.norm(state.momentum_buffer)) <= (1 - beta**k) / (1 - beta) + 1e-12
        params = new


@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e4])
def test_invariant_to_loss_scale(scale):
    base, _ = run(flatter.sngm(0.05, 0.9))
    scaled, _ = run(flatter.sngm(0.05, 0.9), scale=scale)
    np.testing.assert_allclose(scaled, base, rtol=1e-10, atol=1e-12)


def test_zero_gradient_is_safe():
    tx = flatter.sngm(0.1, 0.9)
    params = jnp.ones(3)
    updates, state = tx.update(jnp.zeros(3), tx.init(params))
    assert np.all(np.asarray(updates) == 0.0)
    grad_at_zero = jax.grad(lambda g: jnp.sum(tx.update(g, tx.init(params))[0]))(jnp.zeros(3))
    assert np.all(np.isfinite(grad_at_zero))
