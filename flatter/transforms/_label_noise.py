"""Label noise as a chainable optax transform that keeps its PRNG key in its state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice, check_key, check_range, check_scalars, nan_outside

LABEL_NOISE_MODES = ("minibatch", "all", "one")
LABEL_NOISE_DISTRIBUTIONS = ("gaussian", "rademacher")


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class LabelNoiseConfig:
    """The static choices of :func:`label_noise` (a pytree without leaves, so it rides in the state)."""

    mode: str
    distribution: str


class LabelNoiseState(NamedTuple):
    """State of :func:`label_noise`: the key that the next step splits, :math:`\\sigma`, and the config.

    :math:`\\sigma` lives in the state (as optax's ``inject_hyperparams`` does) so that the one-pass
    step of :func:`flatter.make_step` can draw exactly the perturbation this transform would.
    """

    key: PRNGKeyArray
    sigma: Float[Array, ""]
    config: LabelNoiseConfig


def label_noise_batch(mode: str, batch_size, num_examples: int):
    r"""The :math:`B` of the label noise's covariance :math:`(\sigma^2/B)\,\nabla^2L` on the valley.

    The one rule for the number of noisy labels per step, which the sweeps' optimizer, their horizons, the
    predictor and the coupling :math:`\kappa` all use:

    - a minibatch of ``batch_size`` examples (every one of its labels noised): :math:`B` = ``batch_size``;
    - the full batch (``batch_size`` None or negative) with ``mode="one"`` (one uniformly drawn label gets
      :math:`m\xi_i`, the noise of one-sample label-noise SGD): :math:`B = 1`;
    - the full batch with ``mode="all"`` or ``"minibatch"`` (every label noised): :math:`B = n`.

    ``batch_size`` may be an array (negative entries are full batch); the result has its shape.

    Examples:
      >>> import flatter
      >>> [int(flatter.transforms.label_noise_batch(m, b, 100)) for m, b in (("one", None), ("all", None), ("one", 8))]
      [1, 100, 8]
    """
    check_choice("mode", mode, LABEL_NOISE_MODES)
    full_batch_noise = 1 if mode == "one" else num_examples
    if batch_size is None:
        return full_batch_noise
    b = np.asarray(batch_size)
    return np.where(b < 0, full_batch_noise, b)


def label_perturbation(
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    sigma: float | jax.Array,
    *,
    mode: str = "minibatch",
    distribution: str = "gaussian",
    dtype: Any = None,
) -> Float[Array, "m ..."]:
    r"""The label perturbation :math:`\sigma\zeta` that :func:`label_noise` adds, from one key.

    For ``m = shape[0]`` examples, :math:`\xi` has i.i.d. entries (``"gaussian"``: :math:`N(0, 1)`,
    ``"rademacher"``: :math:`\pm 1`) and

    - ``mode="minibatch"`` or ``"all"``: :math:`\zeta = \xi` (every label gets fresh noise);
    - ``mode="one"``: :math:`\zeta = m\,\xi_i e_i` for one uniformly drawn example :math:`i` (the
      full-batch "LNGD" step whose noise equals one-sample label-noise SGD).

    Examples:
      >>> import jax, flatter
      >>> z = flatter.label_perturbation(jax.random.key(0), (4,), 0.5, distribution="rademacher")
      >>> print(sorted(set(abs(z).tolist())))
      [0.5]
    """
    check_choice("mode", mode, LABEL_NOISE_MODES)
    check_choice("distribution", distribution, LABEL_NOISE_DISTRIBUTIONS)
    dtype = dtype or jnp.result_type(float)
    # Only mode "one" needs a second draw; splitting only then keeps the per-step RNG cost minimal.
    key_xi, key_index = jax.random.split(key) if mode == "one" else (key, None)
    if distribution == "gaussian":
        xi = jax.random.normal(key_xi, shape, dtype)
    else:
        xi = jax.random.rademacher(key_xi, shape, dtype)
    if mode == "one":
        m = shape[0]
        index = jax.random.randint(key_index, (), 0, m)
        mask = (jnp.arange(m) == index).reshape((m,) + (1,) * (len(shape) - 1))
        xi = jnp.where(mask, m * xi, jnp.zeros_like(xi))
    return jnp.asarray(sigma, dtype) * xi


def label_noise(
    sigma: float | jax.Array,
    *,
    key: PRNGKeyArray,
    mode: str = "minibatch",
    distribution: str = "gaussian",
) -> optax.GradientTransformationExtraArgs:
    r"""Turn the gradient of the squared loss into its gradient at freshly noised labels.

    The incoming ``updates`` must be the gradient of
    :math:`L_\mathcal{B}(\theta) = \frac{1}{2m}\sum_{a\in\mathcal{B}} \|f_a(\theta) - y_a\|^2` over the
    :math:`m` examples that ``predict_fn`` evaluates (the minibatch, or all :math:`n`). The output is
    exactly the gradient at labels :math:`y + \sigma\zeta`:

    .. math::

        \tilde g = \nabla_\theta \frac{1}{2m}\sum_a \|f_a(\theta) - y_a - \sigma\zeta_a\|^2
                 = g - \frac{\sigma}{m} J^\top \zeta, \qquad J = \partial_\theta f_\mathcal{B}(\theta),

    with :math:`\zeta` drawn by :func:`label_perturbation` from a key split off the state. On the
    zero-loss valley the noise covariance is :math:`(\sigma^2/m)\,\nabla^2 L_\mathcal{B}` (modes
    ``"minibatch"`` with :math:`m = B` and ``"all"`` with :math:`m = n`) or :math:`\sigma^2\nabla^2 L`
    (mode ``"one"``). ``"all"`` and ``"one"`` are full-batch modes: when the caller passes
    ``full_batch=False`` (as :func:`flatter.simulate` does for minibatches) they raise.

    The model enters through the keyword-only extra argument ``predict_fn(params) -> outputs`` (the
    model restricted to this step's examples), following optax's ``obj_fn`` precedent (Sophia); its
    pullback gives :math:`J^\top\zeta` without forming :math:`J`. Chain it in front of any optimizer::

        tx = optax.chain(flatter.label_noise(0.1, key=key), flatter.heavy_ball(eta, beta))
        updates, state = tx.update(grads, state, params, predict_fn=lambda p: predict(p, xb))

    **One pass.** The transform above costs a second forward pass and pullback. When it is the
    *first* transform of the optimizer (alone, or first in ``optax.chain``), :func:`flatter.simulate`
    and the sweeps instead put the same draw into the residual, :math:`\\tilde g = \\frac1m J^\\top(r -
    \\sigma\\zeta)`, in one forward pass and one pullback, and call ``update`` with the extra argument
    ``folded_label_noise`` (the state after that draw, from :func:`draw_label_noise`), which the
    transform returns as its new state: the same trajectory to rounding.

    Args:
      sigma: noise scale :math:`\sigma \ge 0` (:math:`\varepsilon` in docs/theory.md), number or array.
      key: PRNG key kept in the state and split at every step.
      mode: ``"minibatch"``, ``"all"`` or ``"one"`` (see :func:`label_perturbation`).
      distribution: ``"gaussian"`` or ``"rademacher"`` (:math:`\pm\sigma`, as Damian et al.).

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> x = jnp.array([1.0, 2.0]); y = jnp.array([0.0, 0.0])
      >>> predict = lambda w: w * x
      >>> w = jnp.array(0.0)
      >>> grad = jax.grad(lambda w: 0.5 * jnp.mean((predict(w) - y) ** 2))(w)
      >>> tx = flatter.label_noise(1.0, key=jax.random.key(0), distribution="rademacher")
      >>> noisy, _ = tx.update(grad, tx.init(w), w, predict_fn=predict)
      >>> print(float(noisy) in {-1.5, -0.5, 0.5, 1.5})  # -(±1*1 ± 1*2)/2
      True
    """
    check_range("sigma", sigma, lower=0.0)
    check_scalars(sigma=sigma)
    check_choice("mode", mode, LABEL_NOISE_MODES)
    check_choice("distribution", distribution, LABEL_NOISE_DISTRIBUTIONS)
    check_key("key", key)
    sigma = nan_outside(sigma, lower=0.0)  # a traced sigma < 0 makes the gradient NaN: a flagged run

    config = LabelNoiseConfig(mode, distribution)

    def init_fn(params: optax.Params) -> LabelNoiseState:
        dtype = jax.tree.leaves(params)[0].dtype if jax.tree.leaves(params) else jnp.result_type(float)
        return LabelNoiseState(key=key, sigma=jnp.asarray(sigma, dtype), config=config)

    def update_fn(
        updates: optax.Updates,
        state: LabelNoiseState,
        params: optax.Params | None = None,
        *,
        predict_fn: Callable[[optax.Params], jax.Array] | None = None,
        full_batch: bool | None = None,
        folded_label_noise: LabelNoiseState | None = None,
        gradient: optax.Updates | None = None,
        **extra_args: Any,
    ):
        del extra_args
        check_receives_gradient("label_noise", updates, gradient)
        if folded_label_noise is not None:  # the caller put this step's draw into the residual already
            return updates, folded_label_noise
        if predict_fn is None or params is None:
            raise ValueError(
                "label_noise needs params and the extra argument predict_fn(params) -> outputs: "
                "call tx.update(grads, state, params, predict_fn=...)"
            )
        check_full_batch_mode(mode, full_batch)
        outputs, pullback = jax.vjp(predict_fn, params)
        noise, state = draw_label_noise(state, outputs)
        (noise_grad,) = pullback(-noise / outputs.shape[0])
        new_updates = jax.tree.map(lambda g, d: (g + d).astype(g.dtype), updates, noise_grad)
        return new_updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def check_receives_gradient(name: str, updates: optax.Updates, gradient: optax.Updates | None) -> None:
    """Refuse a label perturbation whose incoming updates are not the gradient (when the caller says what it was).

    :func:`flatter.make_step` passes the minibatch gradient as the extra argument ``gradient``. A transform
    before the perturbation that changes it (``optax.sgd``'s learning rate, a clip) would leave the noise term
    unscaled, or the update no gradient at noised labels; one that passes it through unchanged
    (``optax.identity``) hands on the very same arrays, also while tracing, so identity is the test.
    """
    if gradient is None:
        return
    got, want = jax.tree.leaves(updates), jax.tree.leaves(gradient)
    if len(got) != len(want) or any(a is not b for a, b in zip(got, want, strict=False)):
        raise ValueError(
            f"{name} must come first in optax.chain: the updates it received are not the gradient (a transform "
            f"before it changed them, e.g. optax.sgd's learning rate or a clip), so the noise would not be the "
            f"gradient at noised labels (e.g. optax.chain({name}(...), heavy_ball(eta, beta)))"
        )


def check_full_batch_mode(mode: str, full_batch: bool | None) -> None:
    """Modes ``"all"`` and ``"one"`` perturb the labels of a full-batch gradient only."""
    if mode in ("all", "one") and full_batch is False:
        raise ValueError(
            f"label_noise mode={mode!r} perturbs the labels of a full-batch gradient; "
            "use mode='minibatch' with minibatches (or batch_size=None)"
        )


def draw_label_noise(state: LabelNoiseState, outputs: jax.Array) -> tuple[jax.Array, LabelNoiseState]:
    r"""The perturbation :math:`\sigma\zeta` that :func:`label_noise` adds at this step, and the next state.

    Splits ``state.key`` into (next key, sample key) and draws :func:`label_perturbation` with the
    sample key: exactly what ``update`` does, so a caller that puts the noise into the residual itself
    (:func:`flatter.make_step`) reproduces the transform's trajectory.
    """
    next_key, sample_key = jax.random.split(state.key)
    noise = label_perturbation(
        sample_key,
        outputs.shape,
        state.sigma,
        mode=state.config.mode,
        distribution=state.config.distribution,
        dtype=outputs.dtype,
    )
    return noise, state._replace(key=next_key)


def leading_label_noise(opt_state: Any) -> LabelNoiseState | None:
    """The state of a :func:`label_noise` that runs first in the optimizer, or ``None``.

    Recognized structurally: the state is a :class:`LabelNoiseState`, or a chain's tuple whose first
    entry (recursively) is one, and no other label-noise state appears anywhere (a second one would
    also see the ``label_noise_folded`` flag). Wrappers such as ``inject_hyperparams`` are not looked
    into: those optimizers take the exact two-pass path.
    """
    return leading_state(opt_state, LabelNoiseState)


def leading_state(opt_state: Any, cls: type) -> Any:
    """The state of type ``cls`` of the optimizer's first transform (see :func:`leading_label_noise`), or ``None``."""
    is_state = lambda x: isinstance(x, cls)
    if sum(map(is_state, jax.tree.leaves(opt_state, is_leaf=is_state))) != 1:
        return None
    node = opt_state
    while type(node) is tuple and len(node) > 0:  # optax.chain's state is a plain tuple
        node = node[0]
    return node if is_state(node) else None
