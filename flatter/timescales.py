"""The analytic predictor of THEORY.md §6.9: stability, tau1, plateau, drift speed, tau2, steps T.

Everything here is computed from the hyperparameters and the valley's geometry at one point
(:func:`measure_geometry`), before anything is simulated; :func:`predict_steps` integrates the limit
dynamics (the label-noise flow or the critical reduced ODE) to turn the geometry into a number of
steps for a convergence criterion.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._criteria import first_passage, settling_time
from ._problem import Params, Problem
from ._validation import check_choice, check_momentum, check_positive, check_positive_int, check_range
from .limit._critical import critical_flow, critical_kappa
from .limit._dynamics import label_noise_flow as _label_noise_flow
from .limit._integrate import integrate
from .valley._flat import flatten
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

    Dense (the :math:`N\times N` Gram matrix and its eigenvalue derivatives); ``params`` should be on
    Γ (see :func:`flatter.valley.project`).
    """
    theta, fp = flatten(problem, params)

    def eigs(t):
        jac = jax.jacfwd(fp.residual)(t)
        return jnp.linalg.eigvalsh(jac @ jac.T / fp.num_examples)[::-1]

    h = eigs(theta)
    keep = np.asarray(h > rtol * h[0])
    grads = jax.jacrev(eigs)(theta)[keep]
    proj = flat_tangent_projector(fp, theta)
    return ValleyGeometry(h[keep], jax.vmap(proj)(grads))


def spectral_radius(eta, beta, h) -> Float[Array, ...]:
    r"""Spectral radius of the heavy-ball iteration on a quadratic of curvature :math:`h`.

    The roots of :math:`z^2 - (1+\beta-\eta h)z + \beta = 0`: :math:`\rho = \sqrt\beta` when they are
    complex (underdamped), else the larger modulus of the two real roots.
    """
    a = 1.0 + beta - eta * h
    disc = a * a - 4.0 * beta
    real = 0.5 * (jnp.abs(a) + jnp.sqrt(jnp.maximum(disc, 0.0)))
    return jnp.where(disc < 0, jnp.sqrt(beta), real)


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
    r"""The two timescales and the transverse statistics (THEORY.md §1.6, §6.2-6.4, §6.9).

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
    weights = (1 + beta) / (2 * (2 * (1 + beta) - eta * h))
    velocity = -(eta_eff**2 * sigma**2 / batch_size) * (weights @ geometry.curvature_gradients)
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
        eta,
        beta,
        eta_eff,
        stable,
        underdamped,
        tau1,
        tau1_asym,
        variance,
        float(jnp.sum(h * variance) / 2),
        velocity,
        speed,
        tau2,
        kappa,
        regime,
    )


class StepsPrediction(NamedTuple):
    """Predicted steps to a criterion, with the method used and whether the horizon was enough.

    ``stable`` is False when :math:`\\eta h_\\max > 2(1+\beta)` (heavy ball diverges on the steepest
    normal direction): then nothing is integrated, ``first = settle = inf``, ``censored`` is True and
    ``method`` is ``"unstable"``.
    """

    first: float
    settle: float
    censored: bool
    method: str
    model_evaluations: int
    stable: bool = True


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
    kappa_flow: float = 1e-3,
    resolution: int = 2000,
    max_doublings: int = 6,
) -> StepsPrediction:
    r"""Predict the steps for ``observable`` to reach (first passage) and stay (settling) past ``threshold``.

    From ``params0`` on Γ with :math:`u(0) = 0`: integrates the critical reduced ODE in
    :math:`s = (1-\beta)k` with :math:`\kappa` from the hyperparameters (:math:`T = s^*/(1-\beta)`),
    or, when :math:`\kappa` < ``kappa_flow`` (deep in the adiabatic regime, where the reduced ODE is
    the label-noise flow), the flow in :math:`t = \eta_\mathrm{eff}^2k` (:math:`T = t^*/
    \eta_\mathrm{eff}^2`). The horizon starts from :math:`\tau_2` and doubles until the criterion is
    met (``censored`` otherwise). ``resolution`` is the number of integration steps per horizon. At an
    unstable point (:math:`\eta h_\max > 2(1+\beta)`) it says so (``stable=False``, infinite steps)
    instead of predicting a finite time.
    """
    check_positive("eta", eta)
    check_momentum("beta", beta)
    a = 1.0 - beta
    kappa = float(critical_kappa(eta=eta, beta=beta, sigma=sigma, batch_size=batch_size))
    geo = measure_geometry(problem, params0)
    ts = predict_timescales(geo, eta=eta, beta=beta, sigma=sigma, batch_size=batch_size)
    if not ts.stable:  # the discrete dynamics blow up: no limit dynamics describes them
        return StepsPrediction(math.inf, math.inf, True, "unstable", 0, stable=False)
    use_flow = kappa < kappa_flow
    # A first horizon in the integration variable (t for the flow, s for the reduced ODE).
    horizon = 4.0 * ts.tau2 * (eta / a) ** 2 if use_flow else max(4.0 * ts.tau2 * a, 20.0)
    horizon = horizon if math.isfinite(horizon) and horizon > 0 else 1.0
    evaluations = 0
    for _ in range(max_doublings + 1):
        step = horizon / resolution
        if use_flow:
            flow = _label_noise_flow(problem, sigma=sigma, batch_size=batch_size)
            sol = integrate(problem, flow, params0, t1=resolution * step, dt=step, observables=[observable])
            scale = (a / eta) ** 2
        else:
            sol = critical_flow(problem, params0, kappa=kappa, s1=resolution * step, ds=step, observables=[observable])
            scale = 1.0 / a
        evaluations += resolution
        values = sol.observables[observable]
        settle = settling_time(sol.ts, values, threshold, below=below)
        if not bool(settle.censored):
            break
        horizon *= 2
    # Still censored after the last doubling: the times are lower bounds, flagged as such.
    first = first_passage(sol.ts, values, threshold, below=below)
    return StepsPrediction(
        float(first.time) * scale,
        float(settle.time) * scale,
        bool(settle.censored),
        "flow" if use_flow else "critical",
        evaluations,
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
    gamma = jnp.asarray(gamma)
    above = gamma if criterion == "settle" else jnp.full_like(gamma, 2.0 / 3.0)
    return jnp.where(gamma <= 2.0 / 3.0, 2.0 - 2.0 * gamma, above)


def optimal_C(
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
    Cs = np.geomspace(0.2, 5.0, 25) if Cs is None else np.asarray(Cs, float)
    kappas = jnp.asarray(sigma**2 / (4.0 * batch_size * Cs**3))

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
    first-passage time of the non-adiabatic start (THEORY §6.5) and the settling of the momentum
    memory. Each term dominates in one regime; the sum is within a small factor everywhere, which is
    what a horizon needs (sweeps use a multiple of it and report censored runs).
    """
    eta = np.asarray(eta, float)
    a = 1.0 - np.asarray(beta, float)
    drift = np.asarray(flow_time, float) * (a / eta) ** 2
    ballistic = (24.0 * distance * batch_size / (eta**2 * np.asarray(sigma, float) ** 2 * grad_norm)) ** (1 / 3)
    return drift + ballistic + 5.0 / a
