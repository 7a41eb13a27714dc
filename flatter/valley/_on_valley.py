r"""Observables read on the valley: project onto Γ first, then read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jaxtyping import Scalar

from .._problem import Params, Problem
from .._validation import check_positive_int
from ._flat import flatten
from ._projection import GAUSS_NEWTON_SOLVERS, choose_solver, gauss_newton_steps

ON_VALLEY_SUFFIX = "@valley"
"""An observable's name with this suffix (``"trace_hessian@valley"``) is that observable read on the valley
(:func:`on_valley`): every name a sweep, :func:`flatter.simulate`, the predictor or the CLI takes accepts it."""


@dataclasses.dataclass(frozen=True)
class OnValley:
    """An observable read on the valley (:func:`on_valley`): hashable by its parts, so that a program built for it
    is built once however often the name is resolved; ``observable`` is the observable read at the projection."""

    observable: Callable[[Problem, Params], Scalar]
    iterations: int = 2
    solver: str | None = None

    def __call__(self, problem: Problem, params: Params) -> Scalar:
        if problem.loss_kind != "squared":
            raise ValueError(
                f"on_valley reads an observable on the zero-loss valley of a squared loss; problem {problem.name!r} "
                f"has loss={problem.loss_kind!r}"
            )
        theta, flat_problem = flatten(problem, params)
        chosen = self.solver or choose_solver(problem.targets.size, theta.size)
        projected = gauss_newton_steps(flat_problem, theta, self.iterations, solver=chosen)
        return self.observable(problem, flat_problem.unravel(projected))


def on_valley(
    observable: Callable[[Problem, Params], Scalar],
    *,
    iterations: int = 2,
    solver: str | None = None,
) -> OnValley:
    r"""``observable`` read at the point of :math:`\Gamma` below :math:`\theta` instead of at :math:`\theta`.

    .. math::

        O_\Gamma(\theta) = O\bigl(G^{k}(\theta)\bigr), \qquad
        G(\theta) = \theta - J^+ r(\theta),

    ``iterations`` :math:`= k` minimum-norm Gauss-Newton steps (:func:`gauss_newton_step`), which converge
    quadratically to the orthogonal projection :math:`\Phi(\theta)` of a point near :math:`\Gamma`: at a
    distance :math:`\epsilon` two steps leave an error :math:`O(\epsilon^4)`.

    Why: SGDM-LN fluctuates about :math:`\Gamma` by :math:`x \sim \sqrt{\eta_\mathrm{eff}}\,\sigma` in the
    normal directions. An observable whose gradient has a normal component, as
    :math:`\mathrm{tr}\nabla^2L` does on a generic valley, then fluctuates to first order in :math:`x`, and a
    threshold on it measures the noise, not the motion along the valley; :math:`O_\Gamma` depends on the
    position along :math:`\Gamma` only, to :math:`O(x^2)` (the limit dynamics' own reading, Li-Wang-Arora's
    :math:`\Phi`). On the toy valley, whose :math:`\mathrm{tr}` has no normal gradient, it changes nothing.

    ``solver``: one of :data:`GAUSS_NEWTON_SOLVERS`; by default ``"cholesky"`` (dense) for Jacobians up to
    :data:`DENSE_PROJECTION_LIMIT` entries and ``"lsmr"`` (matrix-free) above, so a network's projection
    costs JVPs and VJPs, never a :math:`N\times p` matrix. Pure and traceable: usable under ``jit`` and
    ``vmap`` as every observable is. Squared loss only (:math:`\Gamma` is the zero-loss set).

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> X = jnp.array([[1.0, 0.5], [0.3, 1.0]]); y = jnp.array([1.0, 0.6])
      >>> problem = flatter.Problem(lambda w, x: x @ (w * w), X, y)
      >>> read = flatter.valley.on_valley(lambda problem, w: problem.loss(w))
      >>> w = jnp.array([1.0, 0.5])  # off the valley: loss 5e-3
      >>> print(float(problem.loss(w)) > 1e-3, float(read(problem, w)) < 1e-6)
      True True
      >>> print(problem.observe(w, ["trace_hessian@valley"]).keys())  # the same, by name
      dict_keys(['trace_hessian@valley'])
    """
    if not callable(observable):
        raise TypeError(f"observable must be callable fn(problem, params), got {observable!r}")
    iterations = check_positive_int("iterations", iterations)
    if solver is not None and solver not in GAUSS_NEWTON_SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(map(repr, GAUSS_NEWTON_SOLVERS))} or None, got {solver!r}")
    return OnValley(observable, iterations, solver)


def split_on_valley(name: str) -> tuple[str, bool]:
    """``(base name, read on the valley?)`` for an observable's name: ``"tr@valley"`` -> ``("tr", True)``."""
    if name.endswith(ON_VALLEY_SUFFIX) and len(name) > len(ON_VALLEY_SUFFIX):
        return name[: -len(ON_VALLEY_SUFFIX)], True
    return name, False
