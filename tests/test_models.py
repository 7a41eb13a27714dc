"""The nnx models: shapes, the published ResNet-18 parameter count, per-example normalization, use as a Problem."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import flatter
from flatter.models import MLP, ResNet18


def count(module):
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def test_resnet18_has_the_published_parameter_count_and_is_per_example():
    model = ResNet18(10, rngs=nnx.Rngs(0))
    assert count(model) == 11_173_962  # ResNet-18, CIFAR variant, 10 classes
    x = jax.random.normal(jax.random.key(0), (3, 32, 32, 3))

    @nnx.jit  # one compiled program (eagerly, every layer's ops compile one by one: a minute on 2 cores)
    def batch_and_first(model, x):
        return model(x), model(x[:1])

    out, first = batch_and_first(model, x)
    assert out.shape == (3, 10)
    # GroupNorm normalizes within an example: its outputs do not depend on the rest of the batch.
    np.testing.assert_allclose(first, out[:1], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("depth,width", [(6, 32), (2, 8)])
def test_mlp_layers_and_parameters(depth, width):
    model = MLP(784, 10, width=width, depth=depth, rngs=nnx.Rngs(0))
    assert len(model.layers) == depth
    sizes = [784] + [width] * (depth - 1) + [10]
    assert count(model) == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert model(jnp.ones((5, 28, 28))).shape == (5, 10)


@pytest.mark.parametrize("activation", [jax.nn.relu, jnp.tanh])
def test_mlp_is_its_layers_with_the_activation_between_them(activation):
    """An independent forward pass in NumPy from the module's own weights: the activation sits between the layers
    and not after the last one (ReLU the default, the paper's)."""
    model = MLP(
        5, 3, width=4, depth=3, rngs=nnx.Rngs(0), **({} if activation is jax.nn.relu else {"activation": activation})
    )
    x = np.asarray(jax.random.normal(jax.random.key(1), (7, 5)))
    numpy_activation = (lambda z: np.maximum(z, 0.0)) if activation is jax.nn.relu else np.tanh
    h = x
    for i, layer in enumerate(model.layers):
        h = h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
        if i < len(model.layers) - 1:
            h = numpy_activation(h)
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(x))), h, rtol=1e-5, atol=1e-6)


def test_mlp_as_a_problem_trains_on_one_hot_targets():
    x = jax.random.normal(jax.random.key(0), (32, 8, 8))
    labels = jnp.arange(32) % 10
    targets = jax.nn.one_hot(labels, 10)
    problem, params = flatter.Problem.from_flax(MLP(64, 10, width=16, depth=3, rngs=nnx.Rngs(1)), x, targets)
    tx = optax.chain(flatter.label_noise(0.01, key=jax.random.key(2)), flatter.heavy_ball(0.1, 0.9))
    traj = flatter.simulate(problem, tx, params, steps=200, key=jax.random.key(3), record_every=100)
    loss = np.asarray(traj.observables["loss"])
    assert loss[-1] < 0.5 * loss[0] and not bool(traj.diverged)


def test_bad_sizes():
    with pytest.raises(ValueError, match="width must be a positive integer"):
        MLP(784, 10, width=0, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="activation"):  # names the parameter (the suite also type-checks)
        MLP(784, 10, activation="tanh", rngs=nnx.Rngs(0))
