"""Phase 1 for networks: accumulated full-batch gradients, fitting the training set, checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flatter
from flatter.models import MLP


def classification(n=24, classes=4):
    x = jax.random.normal(jax.random.key(0), (n, 6))
    y = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (n,), 0, classes), classes)
    return flatter.Problem.from_flax(MLP(6, classes, width=32, depth=3, rngs=nnx.Rngs(2)), x, y, loss="cross_entropy")


def test_accumulated_gradient_equals_the_full_batch_gradient():
    problem, params = classification()
    full = jax.grad(problem.loss)(params)
    accumulated = flatter.full_batch_gradient(problem, params, batch_size=6)
    for a, b in zip(jax.tree.leaves(accumulated), jax.tree.leaves(full), strict=True):  # nnx params are float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="batch_size must divide n=24"):
        flatter.full_batch_gradient(problem, params, batch_size=5)


def test_fit_training_set_reaches_full_accuracy_the_same_with_accumulation():
    problem, params = classification()
    start_accuracy = float(problem.accuracy(params))
    fitted, info = flatter.fit_training_set(problem, params, learning_rate=0.5, momentum=0.9, check_every=20)
    assert info.converged and info.accuracy == 1.0 and start_accuracy < 1.0
    assert float(problem.accuracy(fitted)) == 1.0
    again, info2 = flatter.fit_training_set(
        problem, params, learning_rate=0.5, momentum=0.9, check_every=20, batch_size=8
    )
    assert info2.steps == info.steps and float(problem.accuracy(again)) == 1.0
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(fitted), strict=True):  # float32 summation order
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_squared_loss_fits_to_tolerance_and_reports_failure():
    x = jnp.eye(3)
    problem = flatter.Problem(lambda w, x: x @ w, x, jnp.ones(3))
    w, info = flatter.fit_training_set(problem, jnp.zeros(3), learning_rate=1.0, tol=1e-10, check_every=10)
    assert info.converged and info.loss <= 1e-10 and np.isnan(info.accuracy)
    _, short = flatter.fit_training_set(problem, jnp.zeros(3), learning_rate=1e-3, max_steps=10, check_every=10)
    assert not short.converged and short.steps == 10


def test_checkpoint_round_trip(tmp_path):
    problem, params = classification()
    path = tmp_path / "phase1.npz"
    flatter.save_checkpoint(path, params, accuracy=1.0, data="synthetic")
    loaded, meta = flatter.load_checkpoint(path, params)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert meta == {"accuracy": 1.0, "data": "synthetic"}
    other = MLP(6, 4, width=16, depth=3, rngs=nnx.Rngs(0))
    _, wrong = flatter.Problem.from_flax(other, problem.inputs, problem.targets, loss="cross_entropy")
    with pytest.raises(ValueError, match="has no leaf .* of shape"):
        flatter.load_checkpoint(path, wrong)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        flatter.load_checkpoint(path, params)
