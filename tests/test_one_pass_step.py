"""The one-pass label-noise step equals the composable two-pass transform, for closed-form and autodiff pullbacks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter
from flatter._simulate import _make_step


def two_pass(tx):
    # An identity transform in front hides the label noise from the fold: the exact two-pass reference path.
    return optax.chain(optax.identity(), tx)


def sensing():
    problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
    return problem, problem.init_params(jax.random.key(1))


def mlp():
    x = jax.random.normal(jax.random.key(0), (12, 3))
    y = jax.random.normal(jax.random.key(1), (12, 2))
    predict = lambda p, x: jnp.tanh(x @ p["W"]) @ p["v"]  # noqa: E731
    params = {"W": jax.random.normal(jax.random.key(2), (3, 5)), "v": jax.random.normal(jax.random.key(3), (5, 2))}
    return flatter.Problem(predict, x, y), params


@pytest.mark.parametrize("make", [sensing, mlp], ids=["closed-form pullback", "autodiff pullback"])
@pytest.mark.parametrize("mode,batch", [("minibatch", None), ("all", None), ("one", None), ("minibatch", 5)], ids=str)
def test_same_trajectory_as_the_two_pass_transform(make, mode, batch):
    problem, params = make()
    tx = optax.chain(flatter.label_noise(0.3, key=jax.random.key(5), mode=mode), flatter.heavy_ball(0.02, 0.9))
    kw = dict(steps=60, key=jax.random.key(2), record_every=10, batch_size=batch, observables=["loss"])
    fused = flatter.simulate(problem, tx, params, **kw)
    exact = flatter.simulate(problem, two_pass(tx), params, **kw)
    for a, b in zip(jax.tree.leaves(fused.params), jax.tree.leaves(exact.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.observables["loss"], exact.observables["loss"], rtol=1e-12)
    # The noise really is there: without it the trajectory differs.
    clean = flatter.simulate(problem, flatter.heavy_ball(0.02, 0.9), params, **kw)
    assert not np.allclose(fused.observables["loss"][1:], clean.observables["loss"][1:])


def test_one_step_is_the_gradient_at_the_noised_labels():
    """Independent of flatter's step code: jax.grad of the loss at y + sigma*zeta, with the transform's draw."""
    problem, params = mlp()
    sigma, key = 0.3, jax.random.key(5)
    tx = optax.chain(flatter.label_noise(sigma, key=key), flatter.heavy_ball(0.1, 0.0))
    new_params, _, _ = _make_step(problem, tx, None)(params, tx.init(params), jax.random.key(0))
    delta = flatter.label_perturbation(jax.random.split(key)[1], problem.targets.shape, sigma)
    grads = jax.grad(lambda p: problem.loss(p, targets=problem.targets + delta))(params)
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_matrix_sensing_pullback_equals_autodiff():
    problem, u = sensing()
    c = jax.random.normal(jax.random.key(9), (problem.num_examples,))
    _, vjp = jax.vjp(lambda v: problem.predict(v, problem.inputs), u)
    np.testing.assert_allclose(problem.pullback(u, problem.inputs, c), vjp(c)[0], rtol=1e-12, atol=1e-12)


def test_leading_label_noise_is_recognized_structurally():
    p = jnp.zeros(3)
    ln = flatter.label_noise(0.1, key=jax.random.key(0))
    hb = flatter.heavy_ball(0.1, 0.5)
    found = lambda tx: flatter.leading_label_noise(tx.init(p)) is not None  # noqa: E731
    assert found(ln)
    assert found(optax.chain(ln, hb))
    assert found(optax.chain(optax.chain(ln, optax.identity()), hb))
    # Not first (a transform before it sees the clean gradient), twice, or wrapped: the exact two-pass path.
    assert not found(optax.chain(optax.clip(1.0), ln, hb))
    assert not found(optax.chain(hb, ln))
    assert not found(optax.chain(ln, flatter.label_noise(0.1, key=jax.random.key(1))))
    assert not found(optax.inject_hyperparams(flatter.label_noise)(sigma=0.1, key=jax.random.key(0)))
    assert not found(hb)


def test_modes_all_and_one_refuse_minibatches_in_the_fused_step_too():
    problem, params = sensing()
    tx = optax.chain(flatter.label_noise(0.1, key=jax.random.key(0), mode="one"), flatter.heavy_ball(0.01, 0.5))
    with pytest.raises(ValueError, match="mode='one'.*full-batch"):
        flatter.simulate(problem, tx, params, steps=2, key=jax.random.key(0), batch_size=4)
