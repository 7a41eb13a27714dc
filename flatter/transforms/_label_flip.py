"""Label-flip noise for classification (Damian et al.) as a chainable optax transform, its key in its state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_key, check_positive_int, check_range, check_scalars, nan_outside
from ._label_noise import check_receives_gradient


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class LabelFlipConfig:
    """The static part of :func:`label_flip`: the number of classes."""

    num_classes: int


class LabelFlipState(NamedTuple):
    """State of :func:`label_flip`: the key the next step splits, the flip probability, the config."""

    key: PRNGKeyArray
    probability: Float[Array, ""]
    config: LabelFlipConfig


def draw_label_flip(state: LabelFlipState, targets: Array) -> tuple[Array, LabelFlipState]:
    r"""The flipped one-hot targets of this step and the next state.

    Each example's class :math:`c = \arg\max_k y_{ak}` is kept with probability :math:`1-p` and
    otherwise replaced by :math:`(c + s) \bmod K` with :math:`s` uniform in :math:`\{1, \dots, K-1\}`:
    a uniformly drawn *other* class, never the true one.
    """
    classes = state.config.num_classes
    if targets.ndim != 2 or targets.shape[-1] != classes:
        raise ValueError(
            f"targets must be one-hot of shape (examples, num_classes={classes}) for label_flip, got shape "
            f"{targets.shape} (label_flip flips class labels; regression targets take label_noise)"
        )
    next_key, key_flip, key_shift = jax.random.split(state.key, 3)
    m = targets.shape[0]
    labels = jnp.argmax(targets, axis=-1)
    flip = jax.random.bernoulli(key_flip, state.probability, (m,))
    shift = jax.random.randint(key_shift, (m,), 1, classes)
    new = jax.nn.one_hot(jnp.where(flip, (labels + shift) % classes, labels), classes, dtype=targets.dtype)
    # bernoulli(NaN) draws no flip: carry an out-of-range (NaN) probability into the targets so the run is flagged
    new = jnp.where(jnp.isnan(state.probability), jnp.nan, new).astype(targets.dtype)
    return new, state._replace(key=next_key)


def label_flip(probability: float | jax.Array, *, key: PRNGKeyArray, num_classes: int):
    r"""Turn the gradient of the cross-entropy into its gradient at freshly flipped labels.

    The incoming ``updates`` must be the gradient of
    :math:`L_\mathcal{B} = -\frac1m\sum_a\sum_k y_{ak}\log\mathrm{softmax}(f_a)_k` over the :math:`m`
    examples of ``predict_fn`` with one-hot targets ``targets`` (both passed as extra arguments, as
    :func:`flatter.simulate` does). With :math:`\tilde y` the targets after :func:`draw_label_flip`,
    the output is exactly the gradient at the flipped labels,

    .. math::

        \tilde g = \frac1m J^\top(\mathrm{softmax}(f) - \tilde y) = g + \frac1m J^\top (y - \tilde y).

    Damian et al. flip with :math:`p = 0.2` (batch 256). When it runs first in the optimizer,
    :func:`flatter.simulate` draws the same flips itself and differentiates once at the flipped
    labels (one pass, the same update). A traced :math:`p \notin [0, 1]` gives NaN (a flagged run).

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> tx = flatter.label_flip(1.0, key=jax.random.key(0), num_classes=3)  # always flip
      >>> y = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
      >>> flipped, _ = flatter.draw_label_flip(tx.init(None), y)
      >>> print(bool(jnp.all(jnp.argmax(flipped, -1) != jnp.argmax(y, -1))))
      True
    """
    check_range("probability", probability, lower=0.0, upper=1.0)
    check_scalars(probability=probability)
    check_key("key", key)
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (a flip needs another class), got {num_classes}")
    probability = nan_outside(probability, lower=0.0, upper=1.0)
    config = LabelFlipConfig(num_classes)

    def init_fn(params: optax.Params) -> LabelFlipState:
        del params
        return LabelFlipState(key=key, probability=jnp.asarray(probability, jnp.result_type(float)), config=config)

    def update_fn(
        updates: optax.Updates,
        state: LabelFlipState,
        params: optax.Params | None = None,
        *,
        predict_fn: Callable[[optax.Params], jax.Array] | None = None,
        targets: jax.Array | None = None,
        folded_label_flip: LabelFlipState | None = None,
        gradient: optax.Updates | None = None,
        **extra_args: Any,
    ):
        del extra_args
        check_receives_gradient("label_flip", updates, gradient)
        if folded_label_flip is not None:  # the caller differentiated at this step's flipped labels already
            return updates, folded_label_flip
        if predict_fn is None or params is None or targets is None:
            raise ValueError(
                "label_flip needs params and the extra arguments predict_fn(params) -> logits and targets (one-hot): "
                "call tx.update(grads, state, params, predict_fn=..., targets=...)"
            )
        flipped, state = draw_label_flip(state, targets)
        _, pullback = jax.vjp(predict_fn, params)
        (delta,) = pullback((targets - flipped) / targets.shape[0])
        return jax.tree.map(lambda g, d: (g + d).astype(g.dtype), updates, delta), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
