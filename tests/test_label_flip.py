"""Classification: softmax cross-entropy Problems and label-flip noise (Damian et al.), tested against jax.grad
and statistically with fixed seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import refused
from scipy import stats

import flatter
from flatter._simulate import _make_step

K = 4


def classification(n=24, test=True):
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, 5))
    y = jax.nn.one_hot(jnp.arange(n) % K, K)
    predict = lambda w, x: jnp.tanh(x @ w["a"]) @ w["b"]  # noqa: E731
    params = {"a": jax.random.normal(kw, (5, 8)), "b": 0.3 * jax.random.normal(jax.random.key(1), (8, K))}
    extra = dict(test_inputs=x[:6], test_targets=y[:6]) if test else {}
    return flatter.Problem(predict, x, y, loss="cross_entropy", **extra), params


def test_cross_entropy_problem():
    problem, params = classification()
    logits = problem.predict(params, problem.inputs)
    expected = -np.mean(np.sum(np.asarray(problem.targets) * np.asarray(jax.nn.log_softmax(logits)), -1))
    assert float(problem.loss(params)) == pytest.approx(expected, rel=1e-12)
    assert {"loss", "accuracy", "test_loss", "test_accuracy"} <= set(problem.observable_names)
    assert "trace_hessian" not in problem.observable_names
    acc = np.mean(np.argmax(logits, -1) == np.arange(24) % K)
    assert float(problem.observe(params, ["accuracy"])["accuracy"]) == pytest.approx(acc)
    with pytest.raises(ValueError, match="loss must be one of"):
        flatter.Problem(problem.predict, problem.inputs, problem.targets, loss="hinge")
    with pytest.raises(ValueError, match="one-hot"):
        flatter.Problem(problem.predict, problem.inputs, jnp.arange(24), loss="cross_entropy")
    with pytest.raises(ValueError, match="hutchinson_trace"):
        problem.gauss_newton_trace(params)


def test_flip_rate_and_never_the_true_class():
    """p = 0.2 over 200k draws: the flip rate within 4 s.e. of p, never the true class, the others uniform."""
    m, p = 2000, 0.2
    labels = jnp.arange(m) % K
    state = flatter.label_flip(p, key=jax.random.key(3), num_classes=K).init(None)
    draw = jax.jit(flatter.draw_label_flip)
    flips, other = 0, np.zeros(K - 1)
    for _ in range(100):
        flipped, state = draw(state, jax.nn.one_hot(labels, K))
        new = np.asarray(jnp.argmax(flipped, -1))
        moved = new != np.asarray(labels)
        flips += int(moved.sum())
        other += np.bincount((new[moved] - np.asarray(labels)[moved]) % K, minlength=K)[1:]
    total = 100 * m
    se = np.sqrt(p * (1 - p) / total)
    assert abs(flips / total - p) < 4 * se
    assert stats.chisquare(other).pvalue > 1e-3  # a uniform *other* class
    always, _ = flatter.draw_label_flip(
        flatter.label_flip(1.0, key=jax.random.key(0), num_classes=K).init(None), jax.nn.one_hot(labels, K)
    )
    assert np.all(np.argmax(always, -1) != np.asarray(labels))


def test_transform_is_the_gradient_at_the_flipped_labels():
    problem, params = classification()
    key = jax.random.key(5)
    tx = flatter.label_flip(0.5, key=key, num_classes=K)
    state = tx.init(params)
    grads = jax.grad(lambda p: problem.loss(p))(params)
    noisy, new_state = tx.update(
        grads, state, params, predict_fn=lambda p: problem.predict(p, problem.inputs), targets=problem.targets
    )
    flipped, _ = flatter.draw_label_flip(state, problem.targets)  # independent: the same draw, then jax.grad
    expected = jax.grad(lambda p: problem.loss(p, targets=flipped))(params)
    for a, b in zip(jax.tree.leaves(noisy), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert not np.allclose(jax.random.key_data(new_state.key), jax.random.key_data(state.key))


@pytest.mark.parametrize("batch", [None, 8])
def test_one_pass_step_equals_the_transform(batch):
    problem, params = classification()
    tx = optax.chain(flatter.label_flip(0.2, key=jax.random.key(1), num_classes=K), flatter.heavy_ball(0.1, 0.9))
    kw = dict(steps=30, key=jax.random.key(2), record_every=10, batch_size=batch)
    fused = flatter.simulate(problem, tx, params, **kw)
    exact = flatter.simulate(problem, optax.chain(optax.identity(), tx), params, **kw)
    for a, b in zip(jax.tree.leaves(fused.params), jax.tree.leaves(exact.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    one = _make_step(problem, tx, None)(params, tx.init(params), jax.random.key(0))[0]
    flipped, _ = flatter.draw_label_flip(tx.init(params)[0], problem.targets)
    g = jax.grad(lambda p: problem.loss(p, targets=flipped))(params)
    for a, p0, gg in zip(jax.tree.leaves(one), jax.tree.leaves(params), jax.tree.leaves(g), strict=True):
        np.testing.assert_allclose(a, p0 - 0.1 * gg, rtol=1e-11, atol=1e-12)


def test_cross_entropy_training_reaches_full_training_accuracy():
    problem, params = classification(n=24, test=False)
    clean = flatter.simulate(
        problem,
        flatter.heavy_ball(0.5, 0.9),
        params,
        steps=600,
        key=jax.random.key(0),
        record_every=600,
        observables=["accuracy"],
    )
    assert float(clean.observables["accuracy"][-1]) == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"probability must be in \[0, 1\]"):
        flatter.label_flip(1.5, key=jax.random.key(0), num_classes=K)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        flatter.label_flip(0.2, key=jax.random.key(0), num_classes=1)
    with refused(TypeError, "key must be a JAX PRNG key"):
        flatter.label_flip(0.2, key=0, num_classes=K)
