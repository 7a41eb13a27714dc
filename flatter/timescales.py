"""The analytic predictor of docs/theory.md §6.9: stability, tau1, plateau, drift speed, tau2, steps T.

Everything here is computed from the hyperparameters and the valley's geometry at one point
(:func:`measure_geometry`), before anything is simulated; :func:`predict_steps` integrates the limit
dynamics (the label-noise flow or the critical reduced ODE) to turn the geometry into a number of
steps for a convergence criterion.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._criteria import first_passage, settling_time
from ._problem import Params, Problem
from ._progress import keep_alive
from ._validation import check_choice, check_momentum, check_positive, check_positive_int, check_range
from .limit._critical import coupling_at_two_thirds, critical_flow, critical_kappa
from .limit._dynamics import label_noise_flow as _label_noise_flow
from .limit._integrate import integrate
from .limit._modes import spectral_radius as spectral_radius
from .limit._reduced_sde import paths_function, reduced_hyperparameters
from .valley._flat import flatten
from .valley._spectrum import normal_curvatures_flat
from .valley._tangent import flat_tangent_projector


class ValleyGeometry(NamedTuple):
    r"""Curvature of Γ at a point: the normal Hessian eigenvalues :math:`h_i` and their gradients.

    ``curvature_gradients[i]`` is :math:`\nabla_\Gamma h_i` (flat, projected on the tangent space);
    their sum is :math:`\nabla_\Gamma\mathrm{tr}\nabla^2 L`.
    """

    curvatures: Float[Array, " r"]
    curvature_gradients: Float[Array, "r p"]

    @property
    def trace_gradient(self) -> Float[Array, " p"]:
        return self.curvature_gradients.sum(0)


def measure_geometry(problem: Problem, params: Params, *, rtol: float = 1e-8) -> ValleyGeometry:
    r"""Normal curvatures :math:`h_i` (nonzero eigenvalues of :math:`JJ^\top/n`) and their gradients.

    Dense (the :math:`N\times N` Gram matrix and its eigenvalue derivatives, in one compiled call);
    ``params`` should be on Γ (see :func:`flatter.valley.project`).
    """
    h, grads = _all_curvatures(problem, params)
    keep = np.asarray(h > rtol * h[0])
    return ValleyGeometry(h[keep], grads[keep])


@jax.jit
def _all_curvatures(problem: Problem, params: Params):
    r"""Every eigenvalue of :math:`JJ^\top/n` (descending) and its gradient projected on the tangent space."""
    theta, fp = flatten(problem, params)

    def eigs(t):
        return normal_curvatures_flat(fp, t)

    proj = flat_tangent_projector(fp, theta)
    return eigs(theta), jax.vmap(proj)(jax.jacrev(eigs)(theta))


def drift_weights(eta, beta, h):
    r"""Each normal mode's share of the drift along Γ: :math:`(1+\beta)/(2(2(1+\beta)-\eta h_i))`, the
    exact stationary variance over :math:`\eta\sigma^2/(B(1-\beta))`, halved (:math:`\to 1/4` as
    :math:`\eta\to0`). Plain arithmetic: NumPy or JAX arrays, broadcast."""
    return (1 + beta) / (2 * (2 * (1 + beta) - eta * h))


class Timescales(NamedTuple):
    """The predictor's output (all times in optimizer steps)."""

    eta: float
    beta: float
    eta_eff: float
    stable: bool
    underdamped: Bool[Array, " r"]
    tau1: float
    tau1_asymptotic: float
    variance: Float[Array, " r"]
    plateau_loss: float
    drift_velocity: Float[Array, " p"]
    drift_speed: float
    tau2: float
    kappa: float
    regime: str


def predict_timescales(
    geometry: ValleyGeometry,
    *,
    eta: float,
    beta: float,
    sigma: float,
    batch_size: int = 1,
    distance: float = 1.0,
) -> Timescales:
    r"""The two timescales and the transverse statistics (docs/theory.md §1.6, §6.2-6.4, §6.9).

    - stability: :math:`\eta\max_i h_i < 2(1+\beta)`;
    - mode :math:`i` underdamped iff :math:`(1-\sqrt\beta)^2 < \eta h_i`;
    - :math:`\tau_1 = \max_i -1/(2\ln\rho_i)` with :math:`\rho_i` the heavy-ball spectral radius
      (variance relaxation), asymptotically :math:`1/(1-\beta)` (underdamped) or
      :math:`(1-\beta)/(2\eta h_i)` (overdamped), reported as ``tau1_asymptotic``;
    - :math:`\mathrm{Var}_i = \eta\sigma^2(1+\beta)/(B(1-\beta)(2(1+\beta)-\eta h_i))`, plateau loss
      :math:`\sum_i h_i\mathrm{Var}_i/2`;
    - drift per step :math:`v_\parallel = -(\eta_\mathrm{eff}^2\sigma^2/B)\sum_i\nabla_\Gamma h_i\,
      (1+\beta)/(2(2(1+\beta)-\eta h_i))` (:math:`\to -(\eta_\mathrm{eff}^2\sigma^2/4B)\nabla_\Gamma
      \mathrm{tr}\nabla^2L`), :math:`\tau_2 = \Delta/|v_\parallel|` for a distance :math:`\Delta`;
    - :math:`\kappa = \eta^2\sigma^2/(4B(1-\beta)^3)`; regime ``"adiabatic"`` when
      :math:`\tau_1 < \tau_2/10`, ``"inertial"`` when the ballistic time
      :math:`(\eta^2\sigma^2|\nabla_\Gamma\mathrm{tr}|/B)^{-1/3}` is below :math:`1/(1-\beta)`, else
      ``"critical"``.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> geo = flatter.timescales.ValleyGeometry(jnp.array([2.0]), jnp.array([[0.0, 2.0]]))
      >>> ts = flatter.timescales.predict_timescales(geo, eta=0.01, beta=0.9, sigma=1.0)
      >>> print(round(float(ts.variance[0]), 5), round(float(ts.tau1_asymptotic), 1))
      0.05026 10.0
    """
    check_positive("eta", eta)
    check_momentum("beta", beta)
    check_range("sigma", sigma, lower=0.0)
    batch_size = check_positive_int("batch_size", batch_size)
    h = geometry.curvatures
    a = 1.0 - beta
    eta_eff = eta / a
    stable = bool(eta * float(jnp.max(h)) < 2 * (1 + beta))
    underdamped = (1 - math.sqrt(beta)) ** 2 < eta * h
    rho = spectral_radius(eta, beta, h)
    tau1 = float(jnp.max(-1.0 / (2.0 * jnp.log(rho))))
    tau1_asym = float(jnp.max(jnp.where(underdamped, 1.0 / a, a / (2 * eta * h))))
    variance = eta * sigma**2 * (1 + beta) / (batch_size * a * (2 * (1 + beta) - eta * h))
    velocity = -(eta_eff**2 * sigma**2 / batch_size) * (drift_weights(eta, beta, h) @ geometry.curvature_gradients)
    speed = float(jnp.linalg.norm(velocity))
    tau2 = distance / speed if speed > 0 else math.inf
    kappa = float(critical_kappa(eta=eta, beta=beta, sigma=sigma, batch_size=batch_size))
    grad_norm = float(jnp.linalg.norm(geometry.trace_gradient))
    ballistic = (eta**2 * sigma**2 * grad_norm / batch_size) ** (-1 / 3) if grad_norm > 0 else math.inf
    if tau1 < tau2 / 10:
        regime = "adiabatic"
    elif ballistic < 1 / a:
        regime = "inertial"
    else:
        regime = "critical"
    return Timescales(
        eta=eta,
        beta=beta,
        eta_eff=eta_eff,
        stable=stable,
        underdamped=underdamped,
        tau1=tau1,
        tau1_asymptotic=tau1_asym,
        variance=variance,
        plateau_loss=float(jnp.sum(h * variance) / 2),
        drift_velocity=velocity,
        drift_speed=speed,
        tau2=tau2,
        kappa=kappa,
        regime=regime,
    )


class StepsPrediction(NamedTuple):
    r"""Predicted steps to a criterion, with the method used and whether the horizon was enough.

    ``first``/``settle`` are medians over the predictor's paths (one path for the deterministic
    methods); ``settle_samples`` holds every path's settling steps (``inf`` where censored), for
    bootstrap intervals. ``censored`` is True when the median itself is a lower bound (more than half
    the paths did not settle within the last horizon). ``stable`` is False when
    :math:`\eta h_\max > 2(1+\beta)` (heavy ball diverges on the steepest normal direction): then nothing
    is integrated, ``first = settle = inf``, ``censored`` is True and ``method`` is ``"unstable"``.
    """

    first: float
    settle: float
    censored: bool
    method: str
    model_evaluations: int
    stable: bool = True
    settle_samples: np.ndarray | None = None


METHODS = ("sde", "ode", "flow")
CRITERION_SUBSTEPS = 4
"""The criteria see each integration step at this many points of its chord (observables only): a coarse
step would miss the brief late excursions out of the band that set the settling time."""


class StepsGrid(NamedTuple):
    r"""Predicted steps at a grid of points (arrays over the points, flattened in C order).

    ``settle_samples``/``first_samples``: every path's steps (``inf`` where that path is censored),
    shape ``(points, seeds)``, for bootstrap intervals (:func:`flatter.sweep.optimal_gamma` takes them
    as the seeds axis). ``first``/``settle``: medians over paths; ``censored``: the median is a lower
    bound (more than half the paths censored); ``point_evaluations``: each point's share of
    ``model_evaluations`` (without the padding); ``stable``: :math:`\eta h_\max < 2(1+\beta)` (where
    False nothing is integrated and the steps are ``inf``); ``end_values``: every path's observable at the
    end of its horizon, ``(points, seeds)`` (NaN where unstable): where the criterion's observable rests
    once the motion along the valley has settled, its noise floor. ``unresolved``: paths that came back
    non-finite even at the finest step (``resolution * 2**MAX_REFINE`` per horizon): the steps are ``inf`` and
    ``censored`` is set, but no horizon is to blame.
    """

    first: np.ndarray
    settle: np.ndarray
    censored: np.ndarray
    stable: np.ndarray
    first_samples: np.ndarray
    settle_samples: np.ndarray
    model_evaluations: int
    method: str
    point_evaluations: np.ndarray
    end_values: np.ndarray | None = None
    unresolved: np.ndarray | None = None


def predict_grid(
    problem: Problem,
    params0: Params,
    *,
    eta,
    beta,
    sigma,
    batch_size: int = 1,
    observable: str,
    threshold: float,
    below: bool = True,
    method: str = "sde",
    seeds: int = 48,
    resolution: int = 32,
    max_doublings: int = 6,
    key: PRNGKeyArray | None = None,
    progress: bool = False,
) -> StepsGrid:
    r"""Predict the steps to a criterion at every point of a grid of ``eta, beta, sigma`` (broadcast), in one compile.

    The reduced SDE of :func:`flatter.limit.reduced_sde` (``method="sde"``: ``seeds`` paths with
    fluctuating transverse temperatures) or its mean (``"ode"``: one path), from ``params0`` on Γ with
    no transverse energy, vmapped over the points and the paths; the first-passage and settling
    criteria (:func:`flatter.first_passage`, :func:`flatter.settling_time` on ``observable`` against
    ``threshold``) are evaluated inside the compiled function, at ``CRITERION_SUBSTEPS`` points of
    every record's chord (observables only). Each point
    records ``resolution`` steps (times :math:`2^j` where the along-valley oscillation,
    :math:`\omega^2 \approx \kappa|\nabla_\Gamma\mathrm{tr}|^2/\mathrm{tr}`, needs
    :math:`ds \le 0.3(1+\omega)/\omega^2`), and with ``method="sde"`` integrates each record in
    :math:`2^m` steps where the oscillation rings (:math:`\omega > 1`), so that
    :math:`\omega^2 ds \le` ``NOISE_STEP``: the random temperatures and the label-noise kick pump the
    ring at twice its frequency, and a coarser step filters some of that out, so the paths settle too early
    (the toy at :math:`\gamma = 0.85`: −16% at :math:`\omega = 12.6` with :math:`\omega\,ds = 0.3`;
    docs/theory.md §6.6)
    over a horizon in :math:`s = (1-\beta)k` that starts at
    :math:`\max(4\tau_2(1-\beta), 12)` and doubles (for the points that need it) until at least
    three quarters of its paths have settled. A point whose paths come back non-finite (a step too coarse for the
    stiffest direction of :math:`\kappa\,\mathrm{Hess}_\Gamma\mathrm{tr}`, which :math:`\omega` can underestimate
    many times over) is integrated again with twice the steps over the same horizon, and marked ``unresolved`` if
    the finest step (``resolution * 2**MAX_REFINE``) still fails. Steps are :math:`k = s/(1-\beta)`. Model
    evaluations count force evaluations (two per integration step) times paths times points integrated. With
    ``progress`` a tqdm bar counts the points whose prediction is final.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> toy = flatter.problems.toy_valley()
      >>> eta = jnp.array([1e-3, 5e-4])
      >>> grid = flatter.timescales.predict_grid(toy, toy.init_params(None), eta=eta, beta=1 - eta ** (2 / 3),
      ...     sigma=1.0, observable="abs_y", threshold=0.1, seeds=8)
      >>> grid.settle.shape, bool(grid.settle[1] > grid.settle[0])  # T grows as eta falls: ~ eta^(-2/3)
      ((2,), True)
    """
    check_choice("method", method, ("sde", "ode"))
    eta, beta, sigma = (np.asarray(v, float).ravel() for v in np.broadcast_arrays(eta, beta, sigma))
    check_positive("eta", eta)
    check_momentum("beta", beta)
    check_range("sigma", sigma, lower=0.0)
    batch_size = check_positive_int("batch_size", batch_size)
    seeds = check_positive_int("seeds", seeds) if method == "sde" else 1
    resolution = check_positive_int("resolution", resolution)
    key = jax.random.key(0) if key is None else key
    geo = measure_geometry(problem, params0)
    h, grads = np.asarray(geo.curvatures), np.asarray(geo.curvature_gradients)
    a = 1.0 - beta
    stable = eta * h.max() < 2 * (1 + beta)
    weights = drift_weights(eta[:, None], beta[:, None], h)
    speed = (eta / a) ** 2 * sigma**2 / batch_size * np.linalg.norm(weights @ grads, axis=-1)
    with np.errstate(divide="ignore"):
        horizon = np.maximum(np.where(speed > 0, 4.0 * a / speed, 12.0), 12.0)
    # The along-valley oscillation: omega^2 ~ kappa |grad tr|^2 / tr (the toy: 2 kappa). Steps of ds <= 0.3 / omega
    # keep it resolved: a point that needs more than `resolution` steps per horizon gets 2^j times as many.
    kappa = critical_kappa(eta=eta, beta=beta, sigma=sigma, batch_size=batch_size)
    trace, trace_gradient = h.sum(), np.linalg.norm(grads.sum(0))
    omega = np.sqrt(kappa * trace_gradient**2 / trace) if trace > 0 else np.zeros_like(kappa)
    rate = omega**2 / (1 + omega)  # the fastest along-valley rate: omega^2 overdamped (friction 1), omega underdamped
    # The noise pumps a ringing oscillation at 2 omega, and a step's error in that grows as omega^2 ds: integrated
    # finer than recorded there, omega^2 ds <= NOISE_STEP
    pumped = np.where((omega > 1.0) & (method == "sde"), omega**2, 0.0)
    names = problem.resolve_observables([observable])
    shape = (eta.size, seeds)
    first, first_cens = np.full(shape, np.inf), np.ones(shape, bool)
    settle, settle_cens = np.full(shape, np.inf), np.ones(shape, bool)
    end_values = np.full(shape, np.nan)
    todo = stable.copy()
    # A point whose paths come back non-finite was integrated with too coarse a step (the along-valley stiffness
    # exceeds the estimate omega, e.g. where Hess_Gamma tr is far from isotropic): it is integrated again with
    # twice the steps over the same horizon, without spending a horizon doubling, up to MAX_REFINE; past that it
    # keeps its last finite horizon's result (censored there), or is `unresolved` if it has none.
    extra = np.zeros(eta.size, int)
    doublings = np.zeros(eta.size, int)
    unresolved, integrated = np.zeros(eta.size, bool), np.zeros(eta.size, bool)
    evaluations, point_evaluations = 0, np.zeros(eta.size, int)
    # Points per call. On CPU one: a point's paths are vmapped, and a padded lane costs a whole point's steps
    # (a lone point that needs 2^6 times the steps is common). On an accelerator a quarter of the grid (a power
    # of two, at most GRID_BLOCK), where lanes are nearly free.
    block = 1 if jax.default_backend() == "cpu" else min(GRID_BLOCK, 1 << int(np.ceil(np.log2(max(eta.size / 4, 1)))))
    run = _jitted_grid(names, resolution << MAX_REFINE, seeds, method == "sde", below)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=eta.size, unit="point", desc="predict (reduced SDE)", initial=int((~todo).sum()))
    attempt, calls = 0, 0
    while todo.any():
        if bar is not None:
            bar.set_postfix(horizon_doublings=int(doublings[todo].max()))
        needed = np.ceil(np.log2(np.maximum(horizon * rate / (0.3 * resolution), 1.0)))
        refine = np.clip(needed + extra, 0, MAX_REFINE).astype(int)
        # Steps per record from the records a finite path needs, so that a refinement after a non-finite path
        # (extra) doubles the integration steps, not only the records.
        record_ds = horizon / (resolution << np.clip(needed, 0, MAX_REFINE).astype(int))
        substeps = np.ceil(np.log2(np.maximum(record_ds * pumped / NOISE_STEP, 1.0)))
        every = 1 << np.clip(substeps, 0, MAX_SUBSTEPS).astype(int)  # integration steps per record
        keys = jax.random.split(jax.random.fold_in(key, attempt), eta.size)
        attempt += 1
        blown = np.zeros(eta.size, bool)
        for j, m in sorted({(int(j), int(m)) for j, m in zip(refine[todo], every[todo], strict=True)}):
            steps = resolution << j
            ds = horizon / (steps * m)
            # The points still to do at this refinement, in calls of `block` points (the last padded): the step
            # counts are inputs, so every refinement and attempt runs the one compiled program.
            group = np.flatnonzero(todo & (refine == j) & (every == m))
            for index in np.array_split(group, -(-group.size // block)):
                padded = np.resize(index, block)
                hyper = reduced_hyperparameters(eta[padded], beta[padded], sigma[padded], batch_size, ds[padded])
                with keep_alive(bar):  # the first call compiles: seconds with nothing to count
                    out = run(problem, params0, keys[padded], hyper, threshold, np.int32(steps), np.int32(m))
                    f, fc, st, sc, ends = (np.asarray(v)[: index.size] for v in out)
                if bar is not None:  # a call is a few seconds on CPU: the bar moves with each, not each round
                    calls += 1
                    bar.set_postfix(horizon_doublings=int(doublings[todo].max()), calls=calls)
                evaluations += 2 * steps * m * seeds * padded.size  # two force evaluations per step (Heun)
                point_evaluations[index] += 2 * steps * m * seeds
                # A point with a non-finite path keeps what its last finite integration found (a shorter horizon).
                finite = np.isfinite(ends).all(axis=1)
                blown[index] = ~finite
                index, f, fc, st, sc, ends = (v[finite] for v in (index, f, fc, st, sc, ends))
                integrated[index] = True
                end_values[index] = ends
                # times come back in criterion records: to optimizer steps k = s / (1 - beta)
                to_steps = (ds[index] * m / CRITERION_SUBSTEPS / a[index])[:, None]
                first[index], first_cens[index] = f * to_steps, fc
                settle[index], settle_cens[index] = st * to_steps, sc
        done_before = int((~todo).sum())
        refinable = blown & (refine < MAX_REFINE)
        unresolved |= blown & ~refinable & ~integrated  # no finer step left and nothing finite: said so
        extra = np.where(blown, extra + 1, extra)
        longer = todo & ~blown & (settle_cens.mean(axis=1) > 0.25) & (doublings < max_doublings)
        todo = longer | (todo & refinable)
        horizon = np.where(longer, 2 * horizon, horizon)
        doublings = np.where(longer, doublings + 1, doublings)
        if bar is not None:
            bar.update(int((~todo).sum()) - done_before)
    if bar is not None:
        bar.update(eta.size - bar.n)  # what is still censored after the last doubling is final too
        bar.close()
    first_samples = np.where(first_cens, np.inf, first)
    settle_samples = np.where(settle_cens, np.inf, settle)
    with np.errstate(invalid="ignore"):
        return StepsGrid(
            first=np.where(stable & ~unresolved, np.median(first, axis=1), np.inf),
            settle=np.where(stable & ~unresolved, np.median(settle, axis=1), np.inf),
            censored=~stable | unresolved | (settle_cens.mean(axis=1) > 0.5),
            stable=stable,
            first_samples=first_samples,
            settle_samples=settle_samples,
            model_evaluations=evaluations,
            method=method,
            point_evaluations=point_evaluations,
            end_values=end_values,
            unresolved=unresolved,
        )


MAX_REFINE = 8
"""At most ``resolution * 2**MAX_REFINE`` records per point and horizon in :func:`predict_grid`."""
NOISE_STEP = 0.3
r""":func:`predict_grid` integrates a ringing along-valley oscillation (:math:`\omega > 1` in :math:`s`, damping
ratio below 1/2) with :math:`\omega^2 ds` at most this. A coarser step settles the noisy ring early by about
:math:`0.04\,\omega^2 ds`: on the toy at :math:`\gamma = 0.85`, with :math:`\omega\,ds = 0.3` (within 1.2% for
the ring without noise), −1% at :math:`\omega = 1.6`, −7.5% at 6.3, −16% at 12.6; with :math:`\omega^2 ds \le
0.3` within ~1% of :math:`\omega^2 ds = 0.05` (``benchmarks/reduced_sde_step.py``, benchmarks/RESULTS.md)."""
MAX_SUBSTEPS = 6
"""At most :math:`2^6` integration steps per record in :func:`predict_grid`."""
GRID_BLOCK = 64
"""At most this many points per compiled call of :func:`predict_grid` on an accelerator (a quarter of the grid,
rounded up to a power of two); one on CPU."""


@functools.lru_cache(maxsize=32)
def _jitted_grid(names, max_steps: int, seeds: int, fluctuations: bool, below: bool):
    """One compiled program for a whole grid: points vmapped, the step count (<= ``max_steps``) an input."""
    paths = paths_function(names, max_steps, 1, seeds, fluctuations, 2, CRITERION_SUBSTEPS, traced_saves=True)
    ((name, _),) = names

    def run(problem, params0, keys, hyper, threshold, steps, every):
        values = jax.vmap(paths, in_axes=(None, None, 0, 0, None, None))(problem, params0, keys, hyper, steps, every)
        values = values[name]
        # Records past the last step repeat it, so the criteria see the horizon's own end; a censored time is
        # that end, not the buffer's.
        index = jnp.arange(values.shape[-1])
        end = steps * CRITERION_SUBSTEPS
        first = first_passage(index, values, threshold, below=below)
        settle = settling_time(index, values, threshold, below=below)
        at_end = jax.lax.dynamic_index_in_dim(values, end, axis=-1, keepdims=False)
        return jnp.minimum(first.time, end), first.censored, jnp.minimum(settle.time, end), settle.censored, at_end

    return jax.jit(run)


def predict_steps(
    problem: Problem,
    params0: Params,
    *,
    eta: float,
    beta: float,
    sigma: float,
    batch_size: int = 1,
    observable: str,
    threshold: float,
    below: bool = True,
    method: str = "sde",
    seeds: int = 48,
    resolution: int | None = None,
    max_doublings: int = 6,
    key: PRNGKeyArray | None = None,
) -> StepsPrediction:
    r"""Predict the steps for ``observable`` to reach (first passage) and stay (settling) past ``threshold``.

    From ``params0`` on Γ, with the transverse energy 0 (just after phase 1):

    - ``method="sde"`` (default, every regime): :func:`predict_grid` at one point, ``seeds`` paths of
      the reduced dynamics (:func:`flatter.limit.reduced_sde`) in :math:`s = (1-\beta)k` with one
      fluctuating temperature per normal mode; :math:`T` is the median over paths of
      :math:`s^*/(1-\beta)`. Its cost does not grow with :math:`1/\eta`.
    - ``method="ode"``: the same with the temperatures at their mean (one path): the critical
      reduced ODE of docs/theory.md §6.6 with per-mode relaxation rates; it misses the fluctuations (−29% on
      the toy at :math:`\kappa = 1/4`).
    - ``method="flow"``: the label-noise flow in :math:`t = \eta_\mathrm{eff}^2k`
      (:math:`T = t^*/\eta_\mathrm{eff}^2`), the adiabatic limit :math:`\kappa\to0`, ``resolution``
      steps per horizon, the horizon doubled until the criterion is met.

    At an unstable point (:math:`\eta h_\max > 2(1+\beta)`) it says so (``stable=False``, infinite
    steps) instead of predicting a finite time.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()
      >>> p = flatter.timescales.predict_steps(problem, jnp.array([0.0, 1.0]), eta=0.01, beta=0.0, sigma=1.0,
      ...                                      observable="abs_y", threshold=0.1, method="flow")
      >>> print(round(p.settle / (2 * 2.302585 / 0.01**2), 2))  # the flow's y = exp(-t/2): t* = 2 ln 10, t = eta^2 k
      1.0
    """
    check_positive("eta", eta)
    check_momentum("beta", beta)
    check_choice("method", method, METHODS)
    if method != "flow":
        grid = predict_grid(
            problem,
            params0,
            eta=eta,
            beta=beta,
            sigma=sigma,
            batch_size=batch_size,
            observable=observable,
            threshold=threshold,
            below=below,
            method=method,
            seeds=seeds,
            resolution=32 if resolution is None else resolution,
            max_doublings=max_doublings,
            key=key,
        )
        if not grid.stable[0]:
            return StepsPrediction(
                first=math.inf, settle=math.inf, censored=True, method="unstable", model_evaluations=0, stable=False
            )
        return StepsPrediction(
            first=float(grid.first[0]),
            settle=float(grid.settle[0]),
            censored=bool(grid.censored[0]),
            method=method,
            model_evaluations=grid.model_evaluations,
            settle_samples=grid.settle_samples[0],
        )
    resolution = check_positive_int("resolution", 2000 if resolution is None else resolution)
    a = 1.0 - beta
    geo = measure_geometry(problem, params0)
    ts = predict_timescales(geo, eta=eta, beta=beta, sigma=sigma, batch_size=batch_size)
    if not ts.stable:  # the discrete dynamics blow up: no limit dynamics describes them
        return StepsPrediction(
            first=math.inf, settle=math.inf, censored=True, method="unstable", model_evaluations=0, stable=False
        )
    horizon = 4.0 * ts.tau2 * (eta / a) ** 2
    horizon = horizon if math.isfinite(horizon) and horizon > 0 else 1.0
    flow = _label_noise_flow(problem, sigma=sigma, batch_size=batch_size)
    evaluations = 0
    for _ in range(max_doublings + 1):
        step = horizon / resolution
        sol = integrate(problem, flow, params0, t1=resolution * step, dt=step, observables=[observable])
        evaluations += resolution
        settle = settling_time(sol.ts, sol.observables[observable], threshold, below=below)
        if not bool(settle.censored):
            break
        horizon *= 2
    first = first_passage(sol.ts, sol.observables[observable], threshold, below=below)
    scale = (a / eta) ** 2
    return StepsPrediction(
        first=float(first.time) * scale,
        settle=float(settle.time) * scale,
        censored=bool(settle.censored),
        method="flow",
        model_evaluations=evaluations,
    )


def alpha(gamma, criterion: str = "settle"):
    r"""Predicted exponent in :math:`T\propto\eta^{-\alpha}` for :math:`1-\beta = C\eta^\gamma`.

    Settling: :math:`\alpha = 2-2\gamma` for :math:`\gamma\le 2/3`, :math:`\gamma` above (V-shaped,
    minimum 2/3 at :math:`\gamma = 2/3`). First passage: :math:`2-2\gamma`, saturating at 2/3.

    Examples:
      >>> import flatter
      >>> print([round(float(flatter.timescales.alpha(g)), 3) for g in (0.0, 0.5, 2 / 3, 0.85)])
      [2.0, 1.0, 0.667, 0.85]
    """
    check_choice("criterion", criterion, ("settle", "first"))
    # gamma >= 1 keeps eta_eff = eta^(1 - gamma) / C from vanishing: no small-eta limit, no exponent
    check_range("gamma", gamma, lower=0.0, upper=1.0, upper_inclusive=False)
    gamma = jnp.asarray(gamma)
    above = gamma if criterion == "settle" else jnp.full_like(gamma, 2.0 / 3.0)
    return jnp.where(gamma <= 2.0 / 3.0, 2.0 - 2.0 * gamma, above)


def predict_optimal_C(
    problem: Problem,
    params0: Params,
    *,
    sigma: float,
    batch_size: int = 1,
    observable: str,
    threshold: float,
    Cs=None,
    below: bool = True,
    ds: float = 0.02,
    s1: float = 400.0,
) -> tuple[float, np.ndarray, np.ndarray]:
    r"""The prefactor :math:`C^*` minimizing the settling steps at :math:`\gamma = 2/3`.

    From the reduced ODE: :math:`T\eta^{2/3} = s^*(\kappa)/C` with :math:`\kappa = \sigma^2/(4BC^3)`,
    evaluated on a grid ``Cs`` (log-spaced by default). Returns ``(C*, Cs, T eta^(2/3))``; the
    prediction :math:`C^*\propto(\sigma^2/B)^{1/3}` follows from the scaling of :math:`\kappa`.
    """
    check_positive("sigma", sigma)
    batch_size = check_positive_int("batch_size", batch_size)
    check_positive("ds", ds)
    check_positive("s1", s1)
    check_range("threshold", threshold)  # finite
    Cs = np.geomspace(0.2, 5.0, 25) if Cs is None else np.asarray(Cs, float)
    check_positive("Cs", Cs)
    kappas = jnp.asarray(coupling_at_two_thirds(sigma, Cs, batch_size))

    def settle(kappa):  # one compiled reduced-ODE solve, vmapped over the C grid
        sol = critical_flow(problem, params0, kappa=kappa, s1=s1, ds=ds, save_every=5, observables=[observable])
        return settling_time(sol.ts, sol.observables[observable], threshold, below=below)

    result = jax.jit(jax.vmap(settle))(kappas)
    values = np.where(np.asarray(result.censored), np.inf, np.asarray(result.time) / Cs)
    return float(Cs[int(np.argmin(values))]), Cs, values


def settle_estimate(*, flow_time, distance, grad_norm, eta, beta, sigma, batch_size=1):
    r"""A closed-form estimate of the settling steps, vectorized over hyperparameters (for horizons).

    .. math::

        T \approx \frac{t^*}{\eta_\mathrm{eff}^2}
          + \Big(\frac{24\,\Delta\,B}{\eta^2\sigma^2\,|\nabla_\Gamma\mathrm{tr}\nabla^2L|}\Big)^{1/3}
          + \frac{5}{1-\beta}

    with :math:`t^*` the time the label-noise flow (at this :math:`\sigma, B`) takes to meet the
    criterion and :math:`\Delta` the distance it travels: the adiabatic drift time, the ballistic
    first-passage time of the non-adiabatic start (docs/theory.md §6.5) and the settling of the momentum
    memory. Each term dominates in one regime; the sum is within a small factor everywhere, which is
    what a horizon needs (sweeps use a multiple of it and report censored runs).
    """
    eta = np.asarray(eta, float)
    a = 1.0 - np.asarray(beta, float)
    drift = np.asarray(flow_time, float) * (a / eta) ** 2
    ballistic = (24.0 * distance * batch_size / (eta**2 * np.asarray(sigma, float) ** 2 * grad_norm)) ** (1 / 3)
    return drift + ballistic + 5.0 / a
