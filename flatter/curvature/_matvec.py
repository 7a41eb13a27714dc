"""Curvature-vector products of a Problem's loss on flat vectors, never forming a matrix."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._problem import Params, Problem

Vector = Float[Array, " p"]


def curvature_matvec(
    problem: Problem, params: Params, *, kind: str = "hessian", batch_size: int | None = None
) -> tuple[Callable[[Vector], Vector], Vector]:
    r"""``(matvec, theta)``: :math:`v \mapsto \nabla^2 L\,v` (``kind="hessian"``) or :math:`J^\top J v/n`
    (``"gauss_newton"``) at ``params``, on flat vectors.

    :math:`L` is the problem's mean loss over all :math:`n` examples (squared or cross-entropy), accumulated over
    minibatches of ``batch_size`` (``lax.map``; memory of one minibatch): the Hessian product is
    forward-over-reverse (``jvp`` of ``grad``), the Gauss-Newton product one ``jvp`` and one ``vjp``.
    Neither forms a :math:`p\times p` or :math:`n\times p` matrix.
    """
    if kind not in ("hessian", "gauss_newton"):
        raise ValueError(f"kind must be one of 'hessian', 'gauss_newton', got {kind!r}")
    theta, unravel = ravel_pytree(params)
    xs, ys = problem.minibatches(batch_size)
    n = problem.num_examples

    if kind == "gauss_newton" and problem.loss_kind != "squared":
        raise ValueError(
            f"kind='gauss_newton' is J^T J/n, the squared loss's; use kind='hessian' for {problem.loss_kind}"
        )

    def batch_loss(t, x, y):  # this minibatch's share of L (its mean loss weighted by its size / n)
        return problem.loss(unravel(t), x, y) * x.shape[0] / n

    def matvec(v: Vector) -> Vector:
        def one(batch):
            x, y = batch
            if kind == "hessian":
                return jax.jvp(jax.grad(lambda t: batch_loss(t, x, y)), (theta,), (v,))[1]
            out, jv = jax.jvp(lambda t: problem.predict(unravel(t), x), (theta,), (v,))
            _, pullback = jax.vjp(lambda t: problem.predict(unravel(t), x), theta)
            return pullback(jv)[0] / n

        if xs.shape[0] == 1:  # no loop around the model: XLA:CPU runs convolution gradients in loops slowly
            return one((xs[0], ys[0]))
        return jnp.sum(jax.lax.map(one, (xs, ys)), axis=0)

    return matvec, theta
