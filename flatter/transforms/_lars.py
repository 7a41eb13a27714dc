"""LARS as large-batch users configure it: optax.lars with biases and norm parameters left out."""

from __future__ import annotations

import jax
import optax

from .._validation import check_momentum, check_range


def matrices_only(params) -> object:
    """The mask that LARS users apply: True for weight matrices and kernels (``ndim >= 2``), False for
    biases and normalization scales/offsets (``ndim <= 1``), which get neither weight decay nor the
    trust ratio."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def lars_masked(
    learning_rate: float | optax.Schedule,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    trust_coefficient: float = 1e-3,
) -> optax.GradientTransformation:
    r"""``optax.lars`` with the masks of large-batch practice (You et al. 2017, and their public code).

    Per leaf :math:`w` with gradient :math:`g` (:func:`matrices_only` decides which leaves are masked in):

    .. math::

        d = g + \lambda w, \qquad
        \tilde d = \begin{cases} \dfrac{c\,\|w\|}{\|d\|}\, d & \text{weight matrices and kernels} \\
                                  g & \text{biases and norm parameters}\end{cases}, \qquad
        m \leftarrow \mu m - \eta_k \tilde d, \qquad w \leftarrow w + m,

    with :math:`\lambda` = ``weight_decay``, :math:`c` = ``trust_coefficient``, :math:`\mu` = ``momentum``
    and :math:`\eta_k` = ``learning_rate`` (a schedule: :func:`large_batch_schedule`). A ratio with a zero
    norm is 1. Mind the order: optax applies the learning rate *before* the momentum trace, so a
    schedule's change of :math:`\eta_k` acts on new gradients only (heavy ball here, :func:`flatter.heavy_ball`,
    multiplies the whole buffer).

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
      >>> tx = flatter.transforms.lars_masked(0.1, weight_decay=0.0, trust_coefficient=0.5)
      >>> grads = {"w": jnp.full((2, 2), 4.0), "b": jnp.full(2, 4.0)}
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> print(updates["w"][0, 0].item(), updates["b"][0].item())  # w: 0.5 * 2 / 8 * 4 = 0.5, times -0.1
      -0.05 -0.4
    """
    check_momentum("momentum", momentum)
    check_range("weight_decay", weight_decay, lower=0.0)
    check_range("trust_coefficient", trust_coefficient, lower=0.0, lower_inclusive=False)
    return optax.lars(
        learning_rate,
        weight_decay=weight_decay,
        weight_decay_mask=matrices_only,
        trust_coefficient=trust_coefficient,
        trust_ratio_mask=matrices_only,
        momentum=momentum,
    )
