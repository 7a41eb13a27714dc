"""The reduced SDE on the valley: position, tangent velocity and a fluctuating temperature per normal mode."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._problem import Observable, Params, Problem
from .._validation import check_key, check_momentum, check_positive, check_positive_int, check_range
from ..valley._flat import flatten
from ..valley._on_valley import OnValley
from ._critical import critical_kappa
from ._modes import mode_parameters


class ReducedSolution(NamedTuple):
    """Observables of ``seeds`` reduced-SDE paths at times ``ts`` (:math:`s = (1-\\beta)k`)."""

    ts: Float[Array, " R"]
    observables: dict[str, Float[Array, "seeds R"]]


def reduced_sde(
    problem: Problem,
    params0: Params,
    *,
    eta: float,
    beta: float,
    sigma: float,
    key: PRNGKeyArray,
    s1: float,
    ds: float,
    seeds: int = 32,
    batch_size: int = 1,
    save_every: int = 1,
    observables: Sequence[str] | Mapping[str, Observable] | None = None,
    fluctuations: bool = True,
    start_temperature: float = 0.0,
    projection_iterations: int = 2,
    rtol: float = 1e-8,
    adiabatic: bool = True,
) -> ReducedSolution:
    r"""Integrate the reduced dynamics of label-noise SGDM on Γ, with the transverse energy kept random.

    In :math:`s = (1-\beta)k`, with the tangent velocity :math:`P` in units of :math:`1-\beta` and one
    temperature :math:`u_i` (the energy of normal mode :math:`i` over its stationary value) per nonzero
    eigenvalue :math:`h_i` of :math:`JJ^\top/n` (the normal curvatures):

    .. math::

        d\theta = P\,ds, \qquad
        dP = -P\,ds - \kappa\,\nabla_\Gamma\Big(\sum_i c_i u_i h_i(\theta)\Big)ds, \qquad
        du_i = r_i(1-u_i)\,ds - \tfrac12 u_i\,[d_i = 2]\,d\ln h_i(\theta) + \sqrt{4r_iu_i/d_i}\;dW_i
        \quad\text{(Itô)},

    :math:`\kappa = \eta^2\sigma^2/(4B(1-\beta)^3)` (:func:`critical_kappa`), :math:`c_i, r_i, d_i` from
    :func:`mode_parameters` (stationary-variance factor, relaxation rate, degrees of freedom: 2 for an
    underdamped mode, whose energy is exponentially distributed, 1 for an overdamped one). The
    :math:`u_i` are Cox–Ingersoll–Ross processes with mean 1 and variance :math:`2/d_i` at
    stationarity, started at ``start_temperature`` (0 on Γ). The middle term is adiabatic compression: an
    underdamped mode oscillates at :math:`\sqrt{\eta h_i}` per step, fast against the motion along Γ, so
    its action :math:`E_i/\sqrt{\eta h_i}` is conserved as :math:`\theta` carries it to another curvature,
    and its :math:`x_i^2 \propto E_i/h_i` (the force's factor) scales by :math:`h_i^{-1/2}`, while the
    stationary value does not depend on :math:`h_i` (label noise). Above :math:`\gamma = 2/3` the valley is
    crossed in :math:`s \ll 1`, and the temperature built before the crossing then rises as the curvature
    falls (the toy at :math:`\gamma = 0.85`, at the bottom of the first swing: the mean loss is 17% below the
    discrete iterates' without this term and within 4% of it with the term; the first passage moves 2–3%
    earlier). Overdamped modes follow their curvature without an invariant and get no such term;
    ``adiabatic=False`` drops it. With ``fluctuations=False`` (:math:`u_i` = its mean), ``adiabatic=False``
    and every mode underdamped this is :func:`critical_flow`'s ODE; the
    fluctuations are what that ODE drops: one mode's energy is as random as it is large, and the
    force along Γ follows it (docs/theory.md §6.7's −29% at large :math:`\kappa`). The label noise also
    kicks :math:`P` directly: off Γ by the transverse offset :math:`x`, its gradient
    :math:`-\sigma J^\top\xi/\sqrt{Bn}` has the tangent part :math:`-\sigma P_T\nabla_\theta(\xi^\top J x)/\sqrt{Bn}`;
    each step adds :math:`-(\eta/(1-\beta))\sqrt{ds/(1-\beta)}` times one draw of it, with
    :math:`x \sim N(0, S)`, :math:`S` the modes' stationary variances times :math:`u_i`
    (:math:`O(\eta_\mathrm{eff}\sigma^2)` relative to the drift: it vanishes as :math:`\eta\to0` at
    fixed :math:`\gamma \le 2/3`). The observables are read at :math:`\theta + x`, where the
    discrete iterate is: with ``fluctuations`` a criterion sees the transverse noise floor
    (:math:`\mathrm{Var}_i \propto \eta/(1-\beta)`, largest at large :math:`\gamma`), as the
    simulation's does. An observable read on the valley (:func:`flatter.valley.on_valley`, ``"<name>@valley"``)
    is read at :math:`\theta` itself, the projection of :math:`\theta + x` to the order kept here.

    Scheme, per step of ``ds``: the gradient of :math:`\sum_i c_iu_ih_i` by Hellmann–Feynman
    (:math:`\nabla\,\mathrm{tr}(JJ^\top W)/n` with :math:`W = Q\,\mathrm{diag}(c\,u)\,Q^\top` from one
    eigendecomposition, of :math:`JJ^\top/n` or of :math:`J^\top J/n`, whichever is smaller, held
    fixed, each :math:`u_i` at its conditional mean over the step and first scaled to this step's curvatures), the
    friction integrated exactly for a constant force :math:`F` (:math:`P \leftarrow e^{-ds}P -
    (1-e^{-ds})F`, :math:`\theta \leftarrow \Pi(\theta - ds\,F + (1-e^{-ds})(P + F))`, both projected
    on :math:`T_\theta\Gamma` with :math:`I - J^\top(JJ^\top)^+J` from the same eigendecomposition,
    :math:`\Pi` = ``projection_iterations`` chord Gauss–Newton steps with this step's :math:`J`), with
    Heun's :math:`F`: the mean of the force at the start and at the
    end this predicts (two force evaluations per step, second order in ``ds``); each
    :math:`u_i` drawn from its exact transition (a scaled noncentral :math:`\chi^2` with :math:`d_i`
    degrees of freedom: :math:`u' = \frac{1-e}{d}\big((Z_1 + \sqrt{\lambda})^2 + (d-1)Z_2^2\big)`,
    :math:`e = e^{-r\,ds}`, :math:`\lambda = d\,u\,e/(1-e)`), so any ``ds`` is exact for :math:`u`. ``seeds``
    paths, vmapped; ``eta``, ``beta``, ``sigma``, ``s1`` and ``ds`` are traced (one compile for a
    sweep of them). Returns the observables of every path against :math:`s`; steps are
    :math:`k = s/(1-\beta)`.

    Choosing ``ds``: a motion along Γ that rings (:math:`\omega^2 = \kappa\lambda > 1`, with :math:`\lambda`
    the curvature of tr along Γ) is pumped at :math:`2\omega` by the random temperatures and the kick, and the
    scheme's error in that pumping grows as :math:`\omega^2 ds`: on the toy at :math:`\gamma = 0.85` a step of
    :math:`\omega\,ds = 0.3`, enough for the ring itself, settles 16% early at :math:`\omega = 12.6`. Keep
    :math:`\omega^2 ds \lesssim 0.3` (:func:`flatter.timescales.predict_grid` does).

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> toy = flatter.problems.toy_valley()
      >>> sol = flatter.limit.reduced_sde(toy, jnp.array([0.0, 1.0]), eta=6.4e-4, beta=1 - 6.4e-4 ** (2 / 3),
      ...     sigma=1.0, key=jax.random.key(0), s1=8.0, ds=0.1, seeds=4, save_every=10, observables=["abs_y"])
      >>> sol.observables["abs_y"].shape, float(sol.ts[-1])
      ((4, 9), 8.0)
    """
    check_positive("eta", eta)
    check_momentum("beta", beta)
    check_range("sigma", sigma, lower=0.0)
    check_key("key", key)
    check_positive("s1", s1)
    check_positive("ds", ds)
    seeds = check_positive_int("seeds", seeds)
    batch_size = check_positive_int("batch_size", batch_size)
    save_every = check_positive_int("save_every", save_every)
    n_steps = int(round(s1 / ds))
    if n_steps % save_every:
        raise ValueError(f"s1/ds = {n_steps} steps must be a multiple of save_every={save_every}")
    names = problem.resolve_observables(observables)
    run = _jitted_paths(
        names, n_steps // save_every, save_every, seeds, bool(fluctuations), projection_iterations, adiabatic=adiabatic
    )
    hyper = reduced_hyperparameters(eta, beta, sigma, batch_size, ds, start_temperature, rtol)
    obs = run(problem, params0, key, hyper)
    return ReducedSolution(jnp.arange(n_steps // save_every + 1) * (save_every * ds), obs)


def reduced_hyperparameters(eta, beta, sigma, batch_size, ds, start_temperature=0.0, rtol=1e-8) -> Array:
    """The traced hyperparameters of :func:`paths_function`, stacked on the last axis (broadcast)."""
    return jnp.stack(
        jnp.broadcast_arrays(*map(jnp.asarray, (eta, beta, sigma, batch_size, ds, start_temperature, rtol))), -1
    ).astype(float)


@functools.lru_cache(maxsize=32)
def _jitted_paths(*config, **options):
    return jax.jit(paths_function(*config, **options))


@functools.lru_cache(maxsize=32)
def paths_function(
    names,
    n_saves: int,
    save_every: int,
    seeds: int,
    fluctuations: bool,
    projection_iterations: int,
    substeps: int = 1,
    traced_saves: bool = False,
    decompose: str = "smaller",
    adiabatic: bool = True,
):
    r"""``(problem, params0, key, hyper[, saves]) -> observables (seeds, n_saves * substeps + 1)``: the seed-vmapped
    reduced SDE for one static configuration, the hyperparameters (:func:`reduced_hyperparameters`)
    traced, so one compile serves any ``eta, beta, sigma, ds`` (vmap it over a grid of them). With
    ``substeps`` > 1 each save also records ``substeps - 1`` points on the chord of its last step
    (observables only: no force evaluation), at spacing ``ds / substeps`` when ``save_every`` is 1.

    With ``traced_saves`` the number of saves is the call's argument ``saves <= n_saves`` (a traced
    integer: one compile serves every length), and the records after save ``saves`` repeat its value; the
    path up to it is the one ``n_saves = saves`` integrates (the same steps and noise). Its optional last
    argument ``every`` (traced too) replaces ``save_every``: the integration steps per save, so one program
    integrates a path finer than it records it (the noise of step :math:`k` is keyed by :math:`k` alone, so a
    path with ``every`` steps per save is the one ``save_every = every`` integrates).

    ``decompose``: ``"smaller"`` eigendecomposes :math:`J^\top J/n` when there are fewer parameters than
    outputs and :math:`JJ^\top/n` otherwise; ``"outputs"`` always :math:`JJ^\top/n` (the same paths to
    rounding, for tests). ``adiabatic=False`` leaves out the temperatures' response to the curvatures they are
    carried through (:func:`reduced_sde`), for the comparison with the §6.6 ODE, which has none."""

    def one_path(problem, params0, key, hyper, saves=None, every=None):
        eta, beta, sigma, batch_size, ds, start_temperature, rtol = hyper
        theta0, fp = flatten(problem, params0)
        kappa = critical_kappa(eta=eta, beta=beta, sigma=sigma, batch_size=batch_size)
        decay = jnp.exp(-ds)
        # 1 - e^{-ds} and ds - (1 - e^{-ds}) ~ ds^2/2 without cancellation: from a rounded e^{-ds} the second is
        # rounding noise below ds ~ 1e-3 in float32 (at ds = 1e-4 a spurious growth rate of order 1 along Gamma).
        relaxed = -jnp.expm1(-ds)
        lag = ds + jnp.expm1(-ds)

        n_out = jax.eval_shape(fp.residual, theta0).shape[0]
        n_params = theta0.shape[0]
        # The nonzero normal curvatures are the eigenvalues of J J^T/n (N x N) and of J^T J/n (p x p) alike:
        # decompose the smaller. J J^T/n's spectrum is J^T J/n's (ascending) after N - p zeros, so with p < N
        # the modes are the last p of the N temperatures u and of each step's normal draws: the same random
        # stream as the N x N decomposition, to rounding.
        n_modes = min(n_out, n_params) if decompose == "smaller" else n_out

        def normal_modes(jac):
            """(h, q): the m = min(N, p) largest eigenvalues of J J^T/n and their unit eigenvectors (N x m)."""
            if n_modes == n_out:
                return jnp.linalg.eigh(jac @ jac.T / fp.num_examples)
            h, v = jnp.linalg.eigh(jac.T @ jac / fp.num_examples)
            # q_i = J v_i / sqrt(n h_i) (unit: |J v_i|^2 = n h_i); a zero mode gets a zero column
            nonzero = h > 0
            return h, jnp.where(nonzero, (jac @ v) / jnp.sqrt(fp.num_examples * jnp.where(nonzero, h, 1.0)), 0.0)

        def step(carry, k):
            theta, vel, u_all, _, h_before = carry
            u = u_all[n_out - n_modes :]
            jac = fp.jacobian(theta)
            h, q = normal_modes(jac)
            active = h > rtol * jnp.max(h)
            modes = mode_parameters(eta, beta, h)
            # An underdamped mode oscillates fast against the motion along Gamma: its action E/omega is an
            # adiabatic invariant, so as its curvature moves from h_before to h its temperature u (its x^2 over the
            # stationary, curvature-free value) scales by sqrt(h_before / h).
            if adiabatic:
                fast = (modes.dof == 2.0) & active & (h_before > 0)
                u = jnp.where(fast, u * jnp.sqrt(jnp.where(fast, h_before / jnp.where(active, h, 1.0), 1.0)), u)
            inverse = jnp.where(active, 1.0 / (fp.num_examples * jnp.where(active, h, 1.0)), 0.0)

            def normal_part(v):  # J^T (J J^T)^+ J v from the one eigendecomposition (no SVD per use)
                return jac.T @ (q @ (inverse * (q.T @ (jac @ v))))

            def project(v):
                return v - normal_part(v)

            def retract(t):  # chord Gauss-Newton: t - J^T (J J^T)^+ r(t) with this step's Jacobian
                for _ in range(projection_iterations):
                    t = t - jac.T @ (q @ (inverse * (q.T @ fp.residual(t))))
                return t

            rate = jnp.where(active, modes.rate, 1.0)
            e = jnp.exp(-rate * ds)
            one_minus_e = jnp.maximum(-jnp.expm1(-rate * ds), jnp.finfo(e.dtype).tiny)
            # The force acts with u's mean over the step given its start (u itself when rate * ds << 1).
            x = rate * ds  # a mode with rate 0 in floating point (eta h << 1 - beta) must not give 0/0
            u_step = 1.0 + (u - 1.0) * jnp.where(x > 1e-4, one_minus_e / jnp.where(x > 1e-4, x, 1.0), 1.0 - 0.5 * x)
            w = (q * jnp.where(active, modes.weight * u_step, 0.0)) @ q.T  # Hellmann-Feynman: Q, c, u held

            def weighted_trace(t):
                j = fp.jacobian(t)
                return jnp.sum((w @ j) * j) / fp.num_examples

            def advance(f):  # exact for a constant force f: P' = -P - f over ds, projected on T Gamma
                end = decay * vel - relaxed * f
                move = relaxed * vel - lag * f
                return project(end), project(move)

            # Heun: the force averaged between the start and a predicted end (second order in ds)
            f0 = kappa * jax.grad(weighted_trace)(theta)
            f1 = kappa * jax.grad(weighted_trace)(theta + advance(f0)[1])
            vel, move = advance(0.5 * (f0 + f1))
            if fluctuations:  # the label noise's own kick along the valley, through the transverse offset x
                z = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, k), 1), (2, n_out), u.dtype)
                variance = eta * sigma**2 * modes.weight * u_step / (2.0 * (1.0 - beta) * batch_size)
                # x ~ N(0, S): unit normals J^T q_i / sqrt(n h_i) with the modes' variances
                coef = jnp.where(active, jnp.sqrt(variance * inverse) * z[0, n_out - n_modes :], 0.0)
                offset = jac.T @ (q @ coef)  # also where the observables are read: the iterate is theta + x
                kick = jax.grad(lambda t: z[1] @ jax.jvp(fp.residual, (t,), (offset,))[1])(theta)
                per_step = (eta / (1.0 - beta)) * sigma / jnp.sqrt(batch_size * fp.num_examples)
                vel = vel - project(per_step * jnp.sqrt(ds / (1.0 - beta)) * kick)
            else:
                offset = jnp.zeros_like(theta)
            theta = retract(theta + move)
            if fluctuations:  # the exact CIR transition: a scaled noncentral chi-square with d = 1 or 2 dof
                z = jax.random.normal(jax.random.fold_in(key, k), (2, n_out), u.dtype)[:, n_out - n_modes :]
                scale = one_minus_e / modes.dof
                shift = jnp.sqrt(u * e / scale)
                u = scale * ((z[0] + shift) ** 2 + (modes.dof - 1.0) * z[1] ** 2)
            else:
                u = 1.0 + (u - 1.0) * e
            return (theta, vel, u_all.at[n_out - n_modes :].set(u), offset, h), None

        def observe(point, offset):
            # At the iterate theta + x; an observable read on the valley at the state's own point of Gamma (its
            # projection to the order the reduced dynamics keeps), without a Gauss-Newton solve per path.
            return {
                name: fn.observable(problem, fp.unravel(point))
                if isinstance(fn, OnValley)
                else fn(problem, fp.unravel(point + offset))
                for name, fn in names
            }

        def save(carry, i):
            before = carry[0]
            if every is None:
                carry, _ = jax.lax.scan(step, carry, i * save_every + jnp.arange(save_every))
            else:  # a traced step count per save: a while loop, one compile for every count
                carry = jax.lax.fori_loop(0, every, lambda j, c: step(c, i * every + j)[0], carry)
            # substeps > 1: also on the chord since the last save, so a brief excursion between records is seen
            fractions = jnp.arange(1, substeps + 1) / substeps
            offset = carry[3]
            return carry, jax.vmap(lambda f: observe(before + f * (carry[0] - before), offset))(fractions)

        carry = (
            theta0,
            jnp.zeros_like(theta0),
            jnp.full((n_out,), start_temperature, theta0.dtype),
            jnp.zeros_like(theta0),
            # the curvatures the temperatures were last carried to; none yet: the first step measures them at theta0
            jnp.zeros((n_modes,), theta0.dtype),
        )
        first = observe(theta0, jnp.zeros_like(theta0))
        if saves is None:
            _, obs = jax.lax.scan(save, carry, jnp.arange(n_saves))
            return {k: jnp.concatenate([jnp.asarray(first[k])[None], obs[k].reshape(-1)]) for k in first}

        # A while loop to the traced `saves`, writing into records sized for n_saves (one compile, any length).
        records = {k: jnp.full((n_saves * substeps + 1,), jnp.asarray(v)) for k, v in first.items()}

        def save_into(i, state):
            carry, records = state
            carry, values = save(carry, i)
            records = {k: jax.lax.dynamic_update_slice(records[k], values[k], (1 + i * substeps,)) for k in records}
            return carry, records

        _, records = jax.lax.fori_loop(0, jnp.minimum(saves, n_saves), save_into, (carry, records))
        last = jnp.minimum(saves, n_saves) * substeps
        tail = jnp.arange(n_saves * substeps + 1) > last
        return {k: jnp.where(tail, v[last], v) for k, v in records.items()}  # the unused records repeat the last

    def run(problem, params0, key, hyper, saves=None, every=None):
        if traced_saves != (saves is not None) or (every is not None and not traced_saves):
            raise TypeError("saves (and every) are arguments exactly when the paths function has traced_saves")
        keys = jax.random.split(key, seeds)
        paths = jax.vmap(one_path, in_axes=(None, None, 0, None, None, None))
        return paths(problem, params0, keys, hyper, saves, every)

    return run
