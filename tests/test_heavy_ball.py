"""heavy_ball against an independent NumPy recurrence and against optax.sgd."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import A, B, grad_np, run_numpy, run_optax

import flatter


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("eta,beta", [(0.1, 0.0), (0.05, 0.9), (0.2, 0.5)])
def test_matches_numpy_recurrence(eta, beta, nesterov):
    np.testing.assert_allclose(
        run_optax(flatter.heavy_ball(eta, beta, nesterov=nesterov)),
        run_numpy(eta, beta, nesterov),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_identical_to_optax_sgd(nesterov):
    np.testing.assert_array_equal(
        run_optax(flatter.heavy_ball(0.05, 0.8, nesterov=nesterov)),
        run_optax(optax.sgd(0.05, 0.8, nesterov=nesterov)),
    )


def test_schedule_applied_after_the_buffer():
    sched = lambda k: 0.1 * jnp.asarray(0.9, jnp.float64) ** k  # noqa: E731
    np.testing.assert_allclose(
        run_optax(flatter.heavy_ball(sched, 0.7)),
        run_numpy(lambda k: 0.1 * 0.9**k, 0.7),
        rtol=1e-12,
    )


def test_pi_form_equivalence():
    """Sutskever form pi <- beta pi - eta g, theta <- theta + pi gives the same iterates."""
    eta, beta = 0.05, 0.9
    theta, pi, out = np.array([1.0, 2.0]), np.zeros(2), []
    for _ in range(25):
        pi = beta * pi - eta * grad_np(theta)
        theta = theta + pi
        out.append(theta.copy())
    np.testing.assert_allclose(run_optax(flatter.heavy_ball(eta, beta)), np.array(out), rtol=1e-12)


def test_array_hyperparameters_vmap():
    etas = jnp.array([0.01, 0.05, 0.1])
    betas = jnp.array([0.0, 0.5, 0.9])

    def final(eta, beta):
        tx = flatter.heavy_ball(eta, beta)
        theta = jnp.array([1.0, 2.0])

        def body(carry, _):
            theta, state = carry
            updates, state = tx.update(jnp.asarray(A) @ theta - jnp.asarray(B), state)
            return (optax.apply_updates(theta, updates), state), None

        (theta, _), _ = jax.lax.scan(body, (theta, tx.init(theta)), None, length=25)
        return theta

    got = jax.jit(jax.vmap(final))(etas, betas)
    for i in range(3):
        np.testing.assert_allclose(got[i], run_numpy(float(etas[i]), float(betas[i]))[-1], rtol=1e-12)
