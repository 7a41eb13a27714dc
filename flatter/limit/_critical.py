"""The reduced second-order dynamics on the valley at the critical scaling gamma = 2/3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._problem import Observable, Params, Problem
from .._validation import check_positive, check_positive_int, check_range
from ..valley._flat import flatten
from ..valley._projection import gauss_newton_steps
from ..valley._tangent import flat_tangent_projector, riemannian_gradient_trace_flat
from ._integrate import LimitSolution, _observe


def critical_kappa(*, eta, beta, sigma, batch_size=1):
    r"""The coupling :math:`\kappa = \eta^2\sigma^2/(4B(1-\beta)^3)` of :func:`critical_flow`.

    The one definition of :math:`\kappa` in flatter (the convention of the reduced ODE of
    ``docs/theory.md`` §6.6 with :math:`\varepsilon^2 = \sigma^2/2`). At :math:`1-\beta = C\eta^{2/3}` it is
    :math:`\sigma^2/(4BC^3)`, independent of :math:`\eta` (:func:`coupling_at_two_thirds`): that cancellation is
    why :math:`T\propto\eta^{-2/3}` at :math:`\gamma = 2/3`. ``batch_size`` is the :math:`B` of the noise
    covariance (:func:`flatter.transforms.label_noise_batch`). Plain arithmetic: floats, NumPy or traced arrays.

    Examples:
      >>> import flatter
      >>> print(round(float(flatter.limit.critical_kappa(eta=1e-3, beta=1 - 0.5 * 1e-2, sigma=1.0)), 6))
      2.0
    """
    return eta**2 * sigma**2 / (4.0 * batch_size * (1.0 - beta) ** 3)


def coupling_at_two_thirds(sigma, C, batch_size=1):
    r"""The coupling :math:`\kappa = \sigma^2/(4BC^3)` of the rule :math:`1-\beta = C\eta^{2/3}`, at any :math:`\eta`.

    :func:`critical_kappa` at :math:`\eta = 1`, :math:`1-\beta = C` (where the rule's :math:`\eta` cancels).

    Examples:
      >>> import flatter
      >>> print(float(flatter.limit.coupling_at_two_thirds(sigma=1.0, C=0.5)))
      2.0
    """
    return critical_kappa(eta=1.0, beta=1.0 - C, sigma=sigma, batch_size=batch_size)


def critical_flow(
    problem: Problem,
    params0: Params,
    *,
    kappa: float | Float[Array, ""],
    s1: float,
    ds: float = 0.01,
    save_every: int = 1,
    observables: Sequence[str] | Mapping[str, Observable] | None = None,
    matrix_free: bool | None = None,
    projection_iterations: int = 2,
    start_temperature: float = 0.0,
) -> LimitSolution:
    r"""Integrate the critical-regime reduced ODE (docs/theory.md §6.6) on Γ.

    In the time :math:`s = (1-\beta)k`, with the tangent velocity :math:`P` in units of
    :math:`1-\beta` and the transverse "temperature" :math:`u` (energy over its stationary value):

    .. math::

        \frac{d\theta}{ds} = P, \qquad
        \frac{dP}{ds} = -P - \kappa\,u(s)\,\nabla_\Gamma\mathrm{tr}\nabla^2L(\theta), \qquad
        \frac{du}{ds} = 1 - u,

    :math:`\kappa` from :func:`critical_kappa`, :math:`u(0)` = ``start_temperature`` (0 when starting
    exactly on Γ), so :math:`u(s) = 1 - (1-u_0)e^{-s}`. For :math:`\kappa \ll 1` it reduces to the
    label-noise flow in :math:`t = \eta_\mathrm{eff}^2 k`; at :math:`\gamma = 2/3` it is the
    :math:`\eta`-independent limit, and :math:`T = s^*/(1-\beta)` steps.

    Scheme: the friction is integrated exactly over each step
    (:math:`P \leftarrow e^{-ds}P - (1-e^{-ds})\kappa u\nabla_\Gamma\mathrm{tr}`), then :math:`P` is
    projected onto :math:`T_\theta\Gamma`, :math:`\theta \leftarrow \Pi(\theta + ds\,P)`. Returns the
    observables against :math:`s` (``LimitSolution.ts``).

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()  # y'' + y' = -2 kappa u(s) y
      >>> sol = flatter.limit.critical_flow(problem, jnp.array([0.0, 1.0]), kappa=0.25, s1=20.0, ds=0.01,
      ...                                   save_every=500, observables=["y"])
      >>> y = sol.observables["y"]
      >>> print(y.shape, bool(y[0] == 1.0), bool(abs(y[-1]) < 0.1))
      (5,) True True
    """
    check_range("kappa", kappa, lower=0.0)
    check_positive("s1", s1)
    check_positive("ds", ds)
    save_every = check_positive_int("save_every", save_every)
    n_steps = int(round(s1 / ds))
    if n_steps % save_every:
        raise ValueError(f"s1/ds = {n_steps} steps must be a multiple of save_every={save_every}")
    names = problem.resolve_observables(observables)
    theta0, fp = flatten(problem, params0)
    decay = jnp.exp(-ds)

    def step(carry, j):
        theta, vel = carry
        s_mid = (j + 0.5) * ds
        u = 1.0 - (1.0 - start_temperature) * jnp.exp(-s_mid)
        force = kappa * u * riemannian_gradient_trace_flat(problem, fp, theta, matrix_free)
        vel = decay * vel - (1.0 - decay) * force
        vel = flat_tangent_projector(fp, theta, matrix_free)(vel)
        theta = gauss_newton_steps(fp, theta + ds * vel, projection_iterations)
        return (theta, vel), None

    def save(carry, i):
        carry, _ = jax.lax.scan(step, carry, i * save_every + jnp.arange(save_every))
        return carry, _observe(problem, fp, names, carry[0])

    n_saves = n_steps // save_every
    (theta, _), (obs, res) = jax.lax.scan(save, (theta0, jnp.zeros_like(theta0)), jnp.arange(n_saves))
    obs0, res0 = _observe(problem, fp, names, theta0)
    ts = jnp.arange(n_saves + 1) * (save_every * ds)
    observables = {k: jnp.concatenate([obs0[k][None], obs[k]]) for k in obs0}
    return LimitSolution(ts, observables, fp.unravel(theta), jnp.concatenate([res0[None], res]))
