"""A Problem's residual map on flat parameter vectors (what the valley computations work on)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._problem import Params, Problem


class FlatProblem(NamedTuple):
    """``residual(theta) = r(unravel(theta))`` and ``loss`` on :math:`\\mathbb{R}^p`."""

    residual: Callable[[Float[Array, " p"]], Float[Array, " N"]]
    unravel: Callable[[Float[Array, " p"]], Params]
    num_examples: int

    def loss(self, theta: Float[Array, " p"]):
        r = self.residual(theta)
        return 0.5 * (r @ r) / self.num_examples


def flatten(problem: Problem, params: Params) -> tuple[Float[Array, " p"], FlatProblem]:
    """Ravel ``params`` and return the flat vector with the flat residual map."""
    flat, unravel = ravel_pytree(params)

    def residual(theta):
        return problem.residual_vector(unravel(theta))

    return flat, FlatProblem(residual, unravel, problem.num_examples)
