"""The optimizers a large-batch study compares, built from one learning-rate schedule each."""

from __future__ import annotations

from typing import Any

import optax

from .._validation import check_choice, check_momentum, check_range
from ..transforms import heavy_ball, lars_masked, sngm

OPTIMIZERS = ("msgd", "sngm", "lars", "adam")
"""The optimizers of :func:`large_batch_optimizer`, in the order figures and tables show them."""

LABELS = {"msgd": "MSGD", "sngm": "SNGM", "lars": "LARS", "adam": "Adam"}


def large_batch_optimizer(
    name: str,
    learning_rate: optax.ScalarOrSchedule,
    *,
    momentum: float | Any = 0.9,
    weight_decay: float | Any = 5e-4,
    trust_coefficient: float = 1e-3,
) -> optax.GradientTransformation:
    r"""One of :data:`OPTIMIZERS`, with the same L2 term :math:`\tfrac{\lambda}{2}\|w\|^2` for all of them.

    With minibatch gradient :math:`g_k`, :math:`\lambda` = ``weight_decay``, :math:`\beta` = ``momentum``
    and :math:`\eta_k` = ``learning_rate`` (a schedule, :func:`flatter.transforms.large_batch_schedule`):

    - ``"msgd"``: heavy ball as PyTorch's SGD, :math:`v \leftarrow \beta v + g_k + \lambda w`,
      :math:`w \leftarrow w - \eta_k v` (:func:`flatter.heavy_ball` after ``optax.add_decayed_weights``);
    - ``"sngm"``: :math:`u \leftarrow \beta u + \tilde g/\|\tilde g\|` with :math:`\tilde g = g_k + \lambda w`
      and the global norm, :math:`w \leftarrow w - \eta_k u` (:func:`flatter.sngm`);
    - ``"lars"``: :func:`flatter.transforms.lars_masked` (trust ratio ``trust_coefficient``
      :math:`\|w\|/\|g + \lambda w\|` per weight matrix; biases and norm parameters get neither the ratio nor
      the decay, as LARS users configure it; optax applies :math:`\eta_k` before the momentum trace);
    - ``"adam"``: ``optax.adam`` (:math:`b_1 = \beta`, :math:`b_2 = 0.999`) on :math:`g_k + \lambda w`, the
      everyday reference.

    Hyperparameters may be traced arrays (a vmapped learning rate compiles once).

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from flatter.large_batch import large_batch_optimizer
      >>> tx = large_batch_optimizer("sngm", 0.1, momentum=0.9, weight_decay=0.0)
      >>> w = jnp.array([1.0, 1.0]); u, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(w), w)
      >>> print(u)  # -0.1 * (3, 4) / 5
      [-0.06 -0.08]
    """
    check_choice("optimizer", name, OPTIMIZERS)
    check_momentum("momentum", momentum)
    check_range("weight_decay", weight_decay, lower=0.0)
    if name == "sngm":
        return sngm(learning_rate, momentum, weight_decay=weight_decay)
    if name == "lars":
        return lars_masked(
            learning_rate, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient
        )
    decay = optax.add_decayed_weights(weight_decay)
    if name == "msgd":
        return optax.chain(decay, heavy_ball(learning_rate, momentum))
    return optax.chain(decay, optax.adam(learning_rate, b1=momentum))
