"""The flow reference behind a sweep's horizons: one jitted label-noise-flow integration, sized by its speed."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._criteria import settling_time
from .._problem import Params, Problem
from ..limit import label_noise_flow
from ..valley import flatten, gauss_newton_steps

SEGMENT_STEPS = 64
"""Projected Euler steps per jitted segment (one host check per segment)."""
STEPS_PER_TIMESCALE = 128
"""Euler steps per initial timescale |theta_0| / |d theta/dt|: the step size of the reference."""
MAX_SEGMENTS = 64


class FlowReference(NamedTuple):
    """The label-noise flow at :math:`\\sigma^2/(4B) = 1` from the sweep's start (everything else rescales).

    ``flow_time``: the flow time :math:`t^*` at which the criterion settles (the horizon of the flow
    if it never does, with ``flow_censored``); ``distance``: :math:`\\|\\theta(t^*) - \\theta_0\\|`;
    ``grad_norm``: :math:`|\\nabla_\\Gamma\\mathrm{tr}\\nabla^2 L|` at the start; ``steps``: Euler
    steps taken.
    """

    flow_time: float
    distance: float
    grad_norm: float
    flow_censored: bool
    steps: int

    def to_dict(self) -> dict:
        return self._asdict()


@partial(jax.jit, static_argnames=("observable", "steps"))
def _segment(problem: Problem, params_like: Params, theta, dt, *, observable: str, steps: int):
    r"""``steps`` projected Euler steps of the flow from the flat ``theta``; the observable after each step.

    ``dt <= 0`` asks for the reference step :math:`\|\theta\|/(128\,\|\dot\theta\|)` (returned with
    the speed), so the first segment sizes the integration without a compile of its own.
    """
    _, fp = flatten(problem, params_like)
    ((_, fn),) = problem.resolve_observables([observable])
    # The label-noise flow at sigma^2/(4B) = 1, its projections solved on the Gram matrix (cheap; it only sizes)
    drift = label_noise_flow(problem, sigma=2.0, batch_size=1, projector="gram").drift
    speed = jnp.linalg.norm(drift(fp, theta))
    scale = jnp.linalg.norm(theta)
    auto = jnp.where(speed > 0, jnp.where(scale > 0, scale, 1.0) / speed / STEPS_PER_TIMESCALE, 1e-3)
    dt = jnp.where(dt > 0, dt, auto)

    def step(t, _):
        t = gauss_newton_steps(fp, t + drift(fp, t) * dt, 2, solver="gram")  # back onto the valley
        return t, fn(problem, fp.unravel(t))

    theta, obs = jax.lax.scan(step, theta, None, length=steps)
    return theta, obs, dt, speed


def flow_reference(
    problem: Problem,
    params0: Params,
    *,
    observable: str,
    threshold: float,
    below: bool = True,
    progress: bool = False,
) -> FlowReference:
    r"""Integrate :math:`d\theta/dt = -\nabla_\Gamma\mathrm{tr}\nabla^2 L` until ``observable`` settles.

    Projected Euler of :func:`flatter.limit.label_noise_flow` (:func:`flatter.limit.integrate`'s scheme, with
    the tangent projection and the two Gauss-Newton steps solved on the Gram matrix :math:`JJ^\top`,
    :func:`flatter.valley.gram_solve`) with the step
    :math:`dt = \tau_0/128`, :math:`\tau_0 = \|\theta_0\|/\|\dot\theta_0\|` the time the initial speed
    needs to cover the parameters' own scale, in jitted segments of 64 steps that continue from
    where the last one stopped (nothing is recomputed), until the observable is inside the band at
    the end of a segment or after 64 segments (censored). One compile per problem.
    """
    theta0, _ = flatten(problem, params0)
    inside = (lambda v: v <= threshold) if below else (lambda v: v >= threshold)
    first = float(problem.observe(params0, [observable])[observable])
    values, theta, dt, speed0 = [np.asarray([first])], theta0, jnp.zeros((), theta0.dtype), None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc="limit flow for the horizons", unit="step", leave=False)
    for _ in range(MAX_SEGMENTS):
        theta, obs, dt, speed = _segment(problem, params0, theta, dt, observable=observable, steps=SEGMENT_STEPS)
        speed0 = float(speed) if speed0 is None else speed0
        values.append(np.asarray(obs))
        if bar is not None:
            bar.update(SEGMENT_STEPS)
        if inside(values[-1][-1]):
            break
    if bar is not None:
        bar.close()
    series = np.concatenate(values)
    ts = float(dt) * np.arange(series.size)
    settle = settling_time(ts, series, threshold, below=below)
    return FlowReference(
        flow_time=float(settle.time),
        distance=float(jnp.linalg.norm(theta - theta0)),
        grad_norm=speed0,
        flow_censored=bool(settle.censored),
        steps=int(series.size - 1),
    )
