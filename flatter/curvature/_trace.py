"""tr of the Hessian by Hutchinson's estimator (matfree), with its standard error."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray
from matfree import stochtrace

from .._problem import Params, Problem
from .._validation import check_key, check_positive_int
from ._matvec import curvature_matvec


class TraceEstimate(NamedTuple):
    """A stochastic trace estimate and its standard error (std of the probes / sqrt(probes))."""

    mean: Float[Array, ""]
    stderr: Float[Array, ""]


def hutchinson_trace(
    problem: Problem,
    params: Params,
    *,
    key: PRNGKeyArray,
    num_probes: int = 32,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> TraceEstimate:
    r""":math:`\mathrm{tr}\,\nabla^2 L \approx \frac1m\sum_{j=1}^m z_j^\top \nabla^2L\,z_j` with Rademacher :math:`z_j`.

    Unbiased; each probe costs one curvature-vector product (:func:`curvature_matvec`,
    minibatch-accumulated over the data, ``kind="gauss_newton"`` for :math:`J^\top J/n`, which
    equals the Hessian on the valley). Uses ``matfree.stochtrace`` (its Monte-Carlo estimator with
    mean and standard error); the standard error is that of the probe average.

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> X = jnp.eye(3); y = jnp.zeros(3)
      >>> problem = flatter.Problem(lambda w, x: x @ w, X, y)  # L = |w|^2 / 6: Hessian I/3, trace 1
      >>> est = flatter.curvature.hutchinson_trace(problem, jnp.ones(3), key=jax.random.key(0), num_probes=8)
      >>> print(round(float(est.mean), 6), float(est.stderr))  # z^T (I/3) z = 1 for every sign vector
      1.0 0.0
    """
    check_key("key", key)
    num_probes = check_positive_int("num_probes", num_probes)
    matvec, theta = curvature_matvec(problem, params, kind=kind, batch_size=batch_size)
    sampler = stochtrace.sampler_signs(theta, num=num_probes)
    estimate = stochtrace.estimator_monte_carlo_mean_and_sem(stochtrace.monte_carlo_trace(), sampler)
    mean, sem = estimate(lambda v: matvec(v), key)
    return TraceEstimate(jnp.asarray(mean), jnp.asarray(sem))


def hutchinson_observable(
    num_probes: int = 8,
    *,
    seed: int = 0,
    kind: str = "gauss_newton",
    batch_size: int | None = None,
    examples: int | None = None,
):
    """An observable ``fn(problem, params)`` for :func:`flatter.simulate`: a cheap Hutchinson tr of the curvature.

    The probes are the same at every record (key from ``seed``), so a trajectory's records are
    comparable with each other; use more probes for absolute values. ``examples`` estimates the
    trace of the loss on an evenly spaced subset of that many training examples (every
    :math:`\\lfloor n/m \\rfloor`-th, so a class-sorted data set keeps its class balance): an
    unbiased estimate of the full trace when the examples are exchangeable, at :math:`m/n` of the cost.
    """
    num_probes = check_positive_int("num_probes", num_probes)
    if examples is not None:
        examples = check_positive_int("examples", examples)

    def observable(problem: Problem, params: Params):
        if examples is not None and examples < problem.num_examples:
            stride = problem.num_examples // examples
            problem = problem.with_data(problem.inputs[::stride][:examples], problem.targets[::stride][:examples])
        return hutchinson_trace(
            problem, params, key=jax.random.key(seed), num_probes=num_probes, kind=kind, batch_size=batch_size
        ).mean

    return observable
