"""The 6-layer MLP of the Fashion-MNIST experiment (flax nnx)."""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from .._validation import check_positive_int


class MLP(nnx.Module):
    r"""A fully connected network: ``depth`` linear layers with ``activation`` (ReLU by default) between them.

    Input images are flattened; widths are ``in -> width -> ... -> width -> outputs`` (``depth - 1``
    hidden layers of ``width``). The paper's MLP-6 is ``depth=6`` with ReLU; its width is not stated,
    256-512 is the plausible range (docs/theory.md §1.7). Build the Problem with ``Problem.from_flax``.

    The limit dynamics on the valley assume a loss three times differentiable (docs/theory.md §1.5); a ReLU
    network's is not (:math:`\mathrm{tr}\,\nabla^2 L` jumps where a unit switches), a smooth activation such
    as ``jax.nn.tanh`` or ``jax.nn.gelu`` gives one that is.

    Examples:
      >>> from flax import nnx
      >>> from flatter.models import MLP
      >>> model = MLP(784, 10, width=32, depth=6, rngs=nnx.Rngs(0))
      >>> import jax.numpy as jnp; print(model(jnp.ones((2, 28, 28))).shape)
      (2, 10)
    """

    def __init__(
        self,
        in_features: int,
        outputs: int,
        *,
        width: int = 256,
        depth: int = 6,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
        rngs: nnx.Rngs,
    ):
        if not callable(activation):
            raise TypeError(f"activation must be a function of an array, such as jax.nn.tanh; got {activation!r}")
        in_features = check_positive_int("in_features", in_features)
        outputs = check_positive_int("outputs", outputs)
        width = check_positive_int("width", width)
        depth = check_positive_int("depth", depth)
        sizes = [in_features] + [width] * (depth - 1) + [outputs]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
