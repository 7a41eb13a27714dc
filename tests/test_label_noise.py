"""label_noise equals jax.grad of the loss at explicitly perturbed labels, and has the right law."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter


def model(params, x):
    # Two-output nonlinear model so that vector outputs and pytrees are exercised.
    h = jnp.tanh(x @ params["W"])
    return h @ params["v"]


def setup(m=7, k=2):
    kx, kw, kv, ky = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(kx, (m, 3))
    params = {"W": jax.random.normal(kw, (3, 5)), "v": jax.random.normal(kv, (5, k))}
    y = jax.random.normal(ky, (m, k))
    return x, y, params


def loss(params, x, y):
    return 0.5 * jnp.sum((model(params, x) - y) ** 2) / x.shape[0]


@pytest.mark.parametrize("mode", ["minibatch", "all", "one"])
@pytest.mark.parametrize("distribution", ["gaussian", "rademacher"])
def test_equals_gradient_at_perturbed_labels(mode, distribution):
    x, y, params = setup()
    sigma, key = 0.3, jax.random.key(42)
    tx = flatter.label_noise(sigma, key=key, mode=mode, distribution=distribution)
    state = tx.init(params)
    grads = jax.grad(loss)(params, x, y)
    noisy, new_state = jax.jit(lambda g, s, p: tx.update(g, s, p, predict_fn=lambda q: model(q, x)))(
        grads, state, params
    )
    # Independent reconstruction: the transform splits its key, the second half draws the labels.
    next_key, sample_key = jax.random.split(key)
    delta = flatter.label_perturbation(sample_key, y.shape, sigma, mode=mode, distribution=distribution)
    expected = jax.grad(loss)(params, x, y + delta)
    for a, b in zip(jax.tree.leaves(noisy), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert jnp.all(jax.random.key_data(new_state.key) == jax.random.key_data(next_key))
    if mode == "one":  # exactly one example is perturbed, by m * sigma * xi
        assert int(jnp.sum(jnp.any(delta != 0, axis=1))) == 1
    if distribution == "rademacher" and mode != "one":
        np.testing.assert_allclose(jnp.abs(delta), sigma)


def test_chains_in_front_of_an_optimizer():
    x, y, params = setup()
    tx = optax.chain(flatter.label_noise(0.5, key=jax.random.key(1)), flatter.heavy_ball(0.1, 0.9))
    state = tx.init(params)
    grads = jax.grad(loss)(params, x, y)
    updates, state = tx.update(grads, state, params, predict_fn=lambda q: model(q, x))
    delta = flatter.label_perturbation(jax.random.split(jax.random.key(1))[1], y.shape, 0.5)
    expected = jax.grad(loss)(params, x, y + delta)
    np.testing.assert_allclose(updates["W"], -0.1 * expected["W"], rtol=1e-12)


@pytest.mark.parametrize("mode,scale", [("minibatch", "1/m"), ("one", "1")])
def test_noise_covariance_is_sigma2_times_gauss_newton(mode, scale):
    """Cov of the noise = (sigma^2/m) J^T J/m (every label) or sigma^2 J^T J/m (one label)."""
    m, sigma = 6, 0.7
    x = jax.random.normal(jax.random.key(3), (m, 2))
    w = jnp.array([0.4, -1.1])
    predict = lambda w: jnp.tanh(x @ w)  # noqa: E731
    jac = jax.jacfwd(predict)(w)
    gn = jac.T @ jac / m
    expected = sigma**2 * gn * (1.0 / m if scale == "1/m" else 1.0)

    def noise(key):
        tx = flatter.label_noise(sigma, key=key, mode=mode)
        g, _ = tx.update(jnp.zeros(2), tx.init(w), w, predict_fn=predict)
        return g

    samples = jax.vmap(noise)(jax.random.split(jax.random.key(0), 200_000))
    cov = np.cov(np.asarray(samples).T)
    # 200k samples: relative standard error of a covariance entry is below 1% (heavier for "one").
    np.testing.assert_allclose(cov, expected, rtol=0.05, atol=0.02 * np.abs(expected).max())
    np.testing.assert_allclose(samples.mean(0), 0.0, atol=0.02 * np.sqrt(np.diag(expected)).max())


def test_full_batch_modes_reject_minibatches():
    x, y, params = setup()
    tx = flatter.label_noise(0.1, key=jax.random.key(0), mode="all")
    with pytest.raises(ValueError, match="mode='all'"):
        tx.update(params, tx.init(params), params, predict_fn=lambda q: model(q, x), full_batch=False)


def test_needs_predict_fn():
    tx = flatter.label_noise(0.1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="predict_fn"):
        tx.update(jnp.zeros(2), tx.init(jnp.zeros(2)), jnp.zeros(2))
