"""LARS as configured for large batches (optax.lars with masks) and the fixed-epoch warm-up + cosine schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatter


def numpy_lars_step(params, grads, buffers, lr, momentum, weight_decay, trust):
    """One LARS step by hand (You et al. 2017 with the masks of their code): weight decay and the trust
    ratio on matrices only, the learning rate before the momentum trace (optax's order)."""
    updates, new_buffers = {}, {}
    for name, w in params.items():
        g = grads[name]
        if w.ndim >= 2:
            d = g + weight_decay * w
            wn, dn = np.linalg.norm(w), np.linalg.norm(d)
            d = d * (trust * wn / dn if wn > 0 and dn > 0 else 1.0)
        else:
            d = g
        new_buffers[name] = -lr * d + momentum * buffers[name]
        updates[name] = new_buffers[name]
    return updates, new_buffers


def test_lars_masked_matches_a_numpy_step_per_leaf_over_three_steps():
    rng = np.random.default_rng(0)
    params = {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4), "scale": rng.normal(size=4) + 2}
    tx = flatter.transforms.lars_masked(0.3, momentum=0.8, weight_decay=0.01, trust_coefficient=0.02)
    state = tx.init(jax.tree.map(jnp.asarray, params))
    buffers = {k: np.zeros_like(v) for k, v in params.items()}
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        ours, state = tx.update(jax.tree.map(jnp.asarray, grads), state, jax.tree.map(jnp.asarray, params))
        ref, buffers = numpy_lars_step(params, grads, buffers, 0.3, 0.8, 0.01, 0.02)
        for k in params:
            np.testing.assert_allclose(ours[k], ref[k], rtol=1e-10, err_msg=k)
        params = {k: params[k] + ref[k] for k in params}
    # The trust ratio really acts per leaf: a kernel's update norm is trust * lr * |w| on the first step.
    assert not np.allclose(ours["kernel"], -0.3 * grads["kernel"])


def test_matrices_only_leaves_out_biases_and_norm_parameters():
    params = {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}, "norm": {"scale": jnp.ones(3)}}
    assert flatter.transforms.matrices_only(params) == {
        "dense": {"kernel": True, "bias": False},
        "norm": {"scale": False},
    }


@pytest.mark.parametrize("epochs", [1, 4])
def test_the_schedule_gives_every_batch_size_the_same_gradient_evaluations(epochs):
    train = 2048
    sizes = [16, 32, 64, 128, 256]  # up to 12.5% of the training set
    schedules = [
        flatter.transforms.large_batch_schedule(0.1 * b / 16, batch_size=b, train_size=train, epochs=epochs + 1)
        for b in sizes
    ]
    assert {s.gradient_evaluations for s in schedules} == {(epochs + 1) * train}
    for b, s in zip(sizes, schedules, strict=True):
        values = np.array([float(s.schedule(k)) for k in range(s.steps + 1)])
        peak = 0.1 * b / 16
        assert s.steps == (epochs + 1) * train // b and s.warmup_steps == train // b
        np.testing.assert_allclose(values[s.warmup_steps], peak, rtol=1e-6)  # warm-up ends at the peak
        assert np.all(np.diff(values[: s.warmup_steps + 1]) > 0)  # linear warm-up rises
        assert np.all(np.diff(values[s.warmup_steps :]) <= 1e-12)  # cosine decay falls
        assert values[-1] == pytest.approx(0.0, abs=1e-12)


def test_the_schedule_rejects_a_batch_that_does_not_divide_the_training_set():
    with pytest.raises(ValueError, match="batch_size must divide train_size=1000"):
        flatter.transforms.large_batch_schedule(0.1, batch_size=300, train_size=1000, epochs=2)
    with pytest.raises(ValueError, match="warmup_epochs"):
        flatter.transforms.large_batch_schedule(0.1, batch_size=100, train_size=1000, epochs=2, warmup_epochs=3)
