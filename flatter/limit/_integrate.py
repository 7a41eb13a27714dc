"""Integrators that stay on the valley: a fast projected `lax.scan` path and a projected diffrax path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._problem import Observable, Params, Problem
from .._structural_jit import structural_jit
from .._validation import check_choice, check_positive, check_positive_int
from ..valley._flat import FlatProblem, flatten
from ..valley._projection import gauss_newton_steps
from ._dynamics import LimitDynamics


class LimitSolution(NamedTuple):
    """Observables of a limit trajectory at times ``ts`` (SDE time :math:`t`), and its end point."""

    ts: Float[Array, " R"]
    observables: dict[str, Float[Array, " R"]]
    params: Params
    residual_norm: Float[Array, " R"]


class ProjectedSolver(diffrax.AbstractWrappedSolver, diffrax.AbstractItoSolver):
    r"""Wrap a diffrax solver so that every step ends on the manifold: :math:`y_1 \leftarrow \Pi(y_1)`.

    End-of-step projection (diffrax has no manifold support, see diffrax #62/#277/#699): the inner
    solver's :math:`y_1` is replaced by ``project(y1)`` before it is returned, saved and used for
    dense output. Wrapping ``diffrax.Euler`` gives projected Euler-Maruyama (Itô); wrapping an ODE
    solver (``Heun``, ``Tsit5``) gives a projected ODE integrator.
    """

    solver: diffrax.AbstractSolver
    project: Callable = eqx.field(static=True)

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense_info, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        y1 = self.project(y1)
        if "y1" in dense_info:
            dense_info = dict(dense_info, y1=y1)
        return y1, y_error, dense_info, solver_state, result

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)


def _observe(problem, fp, names, theta):
    params = fp.unravel(theta)
    obs = {name: fn(problem, params) for name, fn in names}
    return obs, jnp.linalg.norm(fp.residual(theta))


def integrate(
    problem: Problem,
    dynamics: LimitDynamics,
    params0: Params,
    *,
    t1: float,
    dt: float,
    key: PRNGKeyArray | None = None,
    save_every: int = 1,
    observables: Sequence[str] | Mapping[str, Observable] | None = None,
    method: str = "scan",
    solver: diffrax.AbstractSolver | None = None,
    projection_iterations: int = 2,
    matrix_free_projection: bool | None = None,
    progress: bool = False,
) -> LimitSolution:
    r"""Integrate limit dynamics on Γ from ``params0`` (which must lie on Γ) up to time ``t1``.

    Both paths take :math:`n = t_1/dt` steps of size :math:`dt` and return observables every
    ``save_every`` steps (at :math:`t = 0, s\,dt, 2s\,dt, \dots, t_1`):

    - ``method="scan"`` (fast path): projected Euler-Maruyama in one ``lax.scan``,
      :math:`\theta_{j+1} = \Pi\big(\theta_j + b(\theta_j)\,dt + \sigma(\theta_j)\,\sqrt{dt}\,\xi_j\big)`,
      :math:`\xi_j \sim N(0, I_m)` from ``key`` (Itô); diffrax issue #517 is why this exists.
    - ``method="diffrax"``: ``diffrax.diffeqsolve`` with :class:`ProjectedSolver` around ``solver``
      (default ``Euler`` for SDEs, ``Heun`` for ODEs), ``StepTo`` on the same grid,
      ``SaveAt(ts, fn=observables)``, a ``VirtualBrownianTree`` from ``key`` (deterministic in the
      key) and, with ``progress=True``, diffrax's tqdm progress meter.

    :math:`\Pi` is ``projection_iterations`` minimum-norm Gauss-Newton steps (dense or LSMR:
    ``matrix_free_projection``, by default by the Jacobian's size, :func:`flatter.valley.choose_solver`). Time is
    the limit time :math:`t` (use :func:`steps_to_time` to compare with optimizer steps). Both paths
    work under ``jax.vmap`` over ``key``.

    Examples:
      >>> import jax.numpy as jnp, numpy as np, flatter
      >>> problem = flatter.problems.toy_valley()  # tr Hess L = 1 + y^2 on the valley x = 0
      >>> flow = flatter.limit.label_noise_flow(problem, sigma=1.0)  # dy/dt = -y/2
      >>> sol = flatter.limit.integrate(problem, flow, jnp.array([0.0, 1.0]), t1=2.0, dt=0.001, save_every=1000,
      ...                               observables=["y"])
      >>> print(np.round(sol.observables["y"], 3), np.round(np.exp(-np.asarray(sol.ts) / 2), 3))
      [1.    0.606 0.368] [1.    0.607 0.368]
    """
    check_choice("method", method, ("scan", "diffrax"))
    check_positive("t1", t1)
    check_positive("dt", dt)
    save_every = check_positive_int("save_every", save_every)
    n_steps = int(round(t1 / dt))
    if n_steps < 1 or abs(n_steps * dt - t1) > 1e-9 * max(1.0, t1):
        raise ValueError(f"t1 must be a positive multiple of dt, got t1={t1}, dt={dt}")
    if n_steps % save_every:
        raise ValueError(f"the number of steps t1/dt = {n_steps} must be a multiple of save_every={save_every}")
    names = problem.resolve_observables(observables)
    problem.check_params(params0)
    theta0, fp = flatten(problem, params0)
    stochastic = dynamics.diffusion is not None
    if stochastic and key is None:
        raise ValueError("integrate: a stochastic limit (diffusion) needs a key")
    noise_dim = dynamics.noise_dim
    if stochastic and noise_dim < 0:
        noise_dim = jax.eval_shape(lambda t: dynamics.diffusion(fp, t), theta0).shape[1]

    def project(theta):
        return gauss_newton_steps(fp, theta, projection_iterations, matrix_free=matrix_free_projection)

    n_saves = n_steps // save_every
    # Compiled once per program (flatter._structural_jit): t1 and dt are inputs, so another end time or step size
    # with the same step count, or a new closure for the same dynamics, reuses the executable.
    if method == "scan":

        def solve(theta0, dt, key):
            return _integrate_scan(
                problem, dynamics, fp, names, theta0, project, dt, n_saves, save_every, key, noise_dim
            )

        return structural_jit(solve, theta0, jnp.asarray(dt, theta0.dtype), key)

    def solve(theta0, t1, key):
        return _integrate_diffrax(
            problem, dynamics, fp, names, theta0, project, dt, t1, n_steps, n_saves, key, noise_dim, solver, progress
        )

    return structural_jit(solve, theta0, jnp.asarray(t1, theta0.dtype), key)


def _integrate_scan(problem, dynamics, fp, names, theta0, project, dt, n_saves, save_every, key, noise_dim):
    stochastic = dynamics.diffusion is not None

    def step(carry, _):
        theta, key = carry
        incr = dynamics.drift(fp, theta) * dt
        if stochastic:
            key, sub = jax.random.split(key)
            xi = jax.random.normal(sub, (noise_dim,), theta.dtype)
            incr = incr + dynamics.diffusion(fp, theta) @ (jnp.sqrt(dt) * xi)
        return (project(theta + incr), key), None

    def save(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=save_every)
        return carry, _observe(problem, fp, names, carry[0])

    key = jax.random.key(0) if key is None else key
    (theta, _), (obs, res) = jax.lax.scan(save, (theta0, key), None, length=n_saves)
    obs0, res0 = _observe(problem, fp, names, theta0)
    ts = jnp.arange(n_saves + 1) * (save_every * dt)
    observables = {k: jnp.concatenate([obs0[k][None], obs[k]]) for k in obs0}
    return LimitSolution(ts, observables, fp.unravel(theta), jnp.concatenate([res0[None], res]))


def _integrate_diffrax(
    problem, dynamics, fp, names, theta0, project, dt, t1, n_steps, n_saves, key, noise_dim, solver, progress
):
    drift = diffrax.ODETerm(lambda t, y, args: dynamics.drift(fp, y))
    if dynamics.diffusion is not None:
        bm = diffrax.VirtualBrownianTree(0.0, t1, tol=dt / 4, shape=(noise_dim,), key=key)
        terms: Any = diffrax.MultiTerm(drift, diffrax.ControlTerm(lambda t, y, args: dynamics.diffusion(fp, y), bm))
        inner = solver or diffrax.Euler()
    else:
        terms = drift
        inner = solver or diffrax.Heun()
    ts = jnp.linspace(0.0, t1, n_saves + 1)
    grid = jnp.linspace(0.0, t1, n_steps + 1)
    sol = diffrax.diffeqsolve(
        terms,
        ProjectedSolver(inner, project),
        0.0,
        t1,
        None,
        theta0,
        saveat=diffrax.SaveAt(ts=ts, fn=lambda t, y, args: _observe(problem, fp, names, y) + (y,)),
        stepsize_controller=diffrax.StepTo(ts=grid),
        max_steps=n_steps + 1,
        progress_meter=diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter(),
    )
    obs, res, thetas = sol.ys
    return LimitSolution(ts, obs, fp.unravel(thetas[-1]), res)


def flat_problem(problem: Problem, params: Params) -> FlatProblem:
    """The flat residual map used by the integrators (for custom drifts)."""
    return flatten(problem, params)[1]
