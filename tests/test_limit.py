"""Limit dynamics: closed forms, consistency of the two integrators, staying on the valley."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatter
from flatter import limit, valley


def test_time_map():
    assert float(limit.steps_to_time(400, 0.01, 0.5)) == pytest.approx(400 * 0.02**2)
    assert float(limit.time_to_steps(limit.steps_to_time(123, 0.003, 0.97), 0.003, 0.97)) == pytest.approx(123)


@pytest.mark.parametrize("method", ["scan", "diffrax"])
def test_label_noise_flow_on_toy_is_exponential(method):
    """h = 1 + y^2: dy/dt = -(sigma^2/4B) 2y, so y(t) = y0 exp(-sigma^2 t / 2B)."""
    problem = flatter.problems.toy_valley()
    flow = limit.label_noise_flow(problem, sigma=1.0, batch_size=2)
    sol = limit.integrate(
        problem,
        flow,
        jnp.array([0.0, 1.0]),
        t1=2.0,
        dt=0.002,
        save_every=100,
        observables=["y"],
        method=method,
    )
    exact = np.exp(-np.asarray(sol.ts) / 4)
    tol = 1e-3 if method == "scan" else 1e-6  # Euler vs Heun
    np.testing.assert_allclose(sol.observables["y"], exact, rtol=tol)


def test_general_sde_with_label_noise_reduces_to_the_flow():
    """LWA's corollary: Sigma = c Hess L gives drift -(c/4) grad_Gamma tr Hess L and no diffusion."""
    problem = flatter.problems.matrix_sensing(6, 1, 12, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)), tol=1e-14)
    theta, fp = valley.flatten(problem, params)
    flow = limit.label_noise_flow(problem, sigma=0.7, batch_size=3)
    for beta in (0.0, 0.9):
        sde = limit.limit_sde(problem, limit.label_noise_covariance(0.7, 3), eta=0.01, beta=beta)
        np.testing.assert_allclose(sde.drift(fp, theta), flow.drift(fp, theta), atol=1e-9)
        np.testing.assert_allclose(sde.diffusion(fp, theta), 0.0, atol=1e-7)


def two_mode_valley(h, slopes):
    """theta = (u1, u2, w), L = u^T M(w) u / 2 with M(w) = [[h1 + a w, c w], [c w, h2 + b w]]: the valley u = 0
    runs along w, its normal modes at w = 0 are u1, u2 (curvatures h1, h2), and the tangent component of
    d^2(grad L)[S] is a S11 + b S22 + 2 c S12, so the drift of the limit SDE reads the momentum covariance."""
    a, b, c = slopes

    def predict(theta, x):
        u, w = theta[:2], theta[2]
        m11, m12, m22 = h[0] + a * w, c * w, h[1] + b * w
        r11 = jnp.sqrt(m11)
        chol = jnp.array([[r11, m12 / r11], [0.0, jnp.sqrt(m22 - m12**2 / r11**2)]])  # chol^T chol = M(w)
        return jnp.sqrt(2.0) * chol @ u  # n = 2: L = |r|^2 / (2n) = u^T M u / 2

    return flatter.Problem(predict, jnp.zeros((2, 1)), jnp.zeros(2))


def test_limit_sde_momentum_covariance_matches_the_discrete_recurrence():
    """Two normal modes (h = 1, 3) with correlated noise, eta (h1 - h2)^2 ~ (1 - beta)^2 (h1 + h2): the covariance
    that flatter's limit_sde puts in its drift is the stationary covariance / eta_eff of the heavy-ball recurrence
    v <- beta v + H u + xi, u <- u - eta v (a NumPy simulation, 4000 chains), off-diagonal included, and not the
    overdamped Lyapunov solution Sigma_ij / (h_i + h_j)."""
    h = np.array([1.0, 3.0])
    cov = np.array([[1.0, 0.4], [0.4, 2.0]])
    eta, beta = 1e-4, 0.99
    chol = np.linalg.cholesky(cov)
    factor = np.zeros((3, 2))
    factor[:2] = chol  # purely normal noise: no mixed normal-tangent term in the drift

    def s_tilde_from_flatter(slopes):
        problem = two_mode_valley(h, slopes)
        sde = limit.limit_sde(problem, lambda fp, theta: jnp.asarray(factor), eta=eta, beta=beta)
        theta, fp = valley.flatten(problem, jnp.zeros(3))
        drift = np.asarray(sde.drift(fp, theta))
        np.testing.assert_allclose(drift[:2], 0.0, atol=1e-12)  # tangent to the valley
        return drift[2]

    flat = {
        (0, 0): -2 * s_tilde_from_flatter((1.0, 0.0, 0.0)),
        (1, 1): -2 * s_tilde_from_flatter((0.0, 1.0, 0.0)),
        (0, 1): -s_tilde_from_flatter((0.0, 0.0, 1.0)),
    }
    # The discrete recurrence, independent of flatter.
    rng = np.random.default_rng(0)
    chains, burn_in, steps = 4000, 2000, 4000
    u, v = np.zeros((chains, 2)), np.zeros((chains, 2))
    second = np.zeros((chains, 2, 2))
    for k in range(burn_in + steps):
        v = beta * v + h * u + rng.standard_normal((chains, 2)) @ chol.T
        u = u - eta * v
        if k >= burn_in:
            second += u[:, :, None] * u[:, None, :]
    per_chain = second / steps / (eta / (1 - beta))
    measured, se = per_chain.mean(0), per_chain.std(0) / np.sqrt(chains)
    for (i, j), value in flat.items():
        # O(eta_eff h) ~ 3% corrections to the limit, and the chains' standard error
        assert abs(measured[i, j] - value) < max(4 * se[i, j], 0.03 * abs(value)), ((i, j), measured[i, j], value)
    lyapunov = cov[0, 1] / (h[0] + h[1])
    assert abs(measured[0, 1] - lyapunov) > 10 * se[0, 1]  # the momentum suppression is real and resolved
    assert flat[(0, 1)] == pytest.approx(2 * (1 - beta) ** 2 * cov[0, 1] / (4 * eta + 8 * (1 - beta) ** 2), rel=1e-6)


def test_scan_and_diffrax_agree_as_dt_shrinks_and_stay_on_valley():
    problem = flatter.problems.matrix_sensing(10, 1, 20, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)), tol=1e-14)
    flow = limit.label_noise_flow(problem, sigma=1.0)
    ref = limit.integrate(
        problem,
        flow,
        params,
        t1=0.2,
        dt=0.2 / 4096,
        save_every=4096,
        method="diffrax",
        observables=["trace_hessian"],
    )
    errs, dts = [], [0.2 / 64, 0.2 / 128, 0.2 / 256, 0.2 / 512]
    for dt in dts:
        n = int(round(0.2 / dt))
        sol = limit.integrate(problem, flow, params, t1=0.2, dt=dt, save_every=n, observables=["trace_hessian"])
        errs.append(float(jnp.linalg.norm(sol.params - ref.params)))
        assert float(sol.residual_norm[1:].max()) < 1e-10  # back on the valley after every step
    order = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert order > 0.8, (order, errs)  # projected Euler: first order
    assert float(ref.residual_norm[1:].max()) < 1e-10


def test_sde_paths_stay_on_valley_and_agree_in_law():
    problem = flatter.problems.toy_valley()
    sde = limit.limit_sde(problem, limit.isotropic_noise(0.3), eta=0.01, beta=0.9)
    keys = jax.random.split(jax.random.key(0), 128)
    out = {}
    for method in ("scan", "diffrax"):
        sol = jax.vmap(
            lambda k, m=method: limit.integrate(
                problem,
                sde,
                jnp.array([0.0, 1.0]),
                t1=1.0,
                dt=0.01,
                save_every=100,
                key=k,
                observables=["x", "y"],
                method=m,
            )
        )(keys)
        assert float(jnp.abs(sol.observables["x"]).max()) < 1e-12  # on the valley x = 0
        out[method] = np.asarray(sol.observables["y"][:, -1])
    # Tangent diffusion Sigma_par = 0.09 over t = 1: std 0.3 (plus a small drift), both paths.
    for y in out.values():
        assert 0.25 < y.std() < 0.35
    se = np.hypot(out["scan"].std(), out["diffrax"].std()) / np.sqrt(128)
    assert abs(out["scan"].mean() - out["diffrax"].mean()) < 4 * se


def test_flow_on_matrix_sensing_lowers_sharpness_and_recovers():
    problem = flatter.problems.matrix_sensing(10, 1, 20, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
    start = problem.observe(params)
    assert float(start["recovery_error"]) > 0.5  # phase 1 alone does not recover X*
    sol = limit.integrate(
        problem,
        limit.label_noise_flow(problem, sigma=1.0),
        params,
        t1=2.0,
        dt=0.002,
        save_every=100,
        observables=["trace_hessian", "recovery_error", "effective_rank"],
    )
    tr = np.asarray(sol.observables["trace_hessian"])
    assert np.all(np.diff(tr) <= 1e-9)  # a gradient flow of tr Hess L
    assert tr[-1] < 0.5 * tr[0]
    assert float(sol.observables["recovery_error"][-1]) < 1e-3
    assert float(sol.observables["effective_rank"][-1]) == pytest.approx(1.0, abs=1e-3)


def test_a_networks_flow_matrix_free_follows_the_dense_one(monkeypatch):
    """The label-noise flow on an MLP (1,518 parameters, 12 examples, one-hot targets) integrated matrix-free
    (the trace's gradient summed over chunks of examples, the tangent projection and the retraction by LSMR: no
    Jacobian formed) follows the dense flow (whole Jacobian, least squares) to LSMR's tolerance: tr∇²L paths within
    1e-4 relative over 6 steps, both on Γ."""
    from flax import nnx

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(12, 20)), jnp.float32)
    y = jax.nn.one_hot(np.arange(12) % 10, 10)
    module = flatter.models.MLP(20, 10, width=26, depth=3, rngs=nnx.Rngs(0))
    problem, params = flatter.Problem.from_flax(module, x, y)
    start, _ = flatter.interpolate(problem, params, tol=1e-7)
    kwargs = dict(t1=0.6, dt=0.1, save_every=1, observables=["trace_hessian"])
    dense = limit.integrate(
        problem, limit.label_noise_flow(problem, sigma=1.0, batch_size=12, projector="lstsq"), start,
        matrix_free_projection=False, **kwargs,
    )  # fmt: skip
    monkeypatch.setattr(flatter.valley._projection, "DENSE_PROJECTION_LIMIT", 0)  # every choice by size: LSMR
    p = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    monkeypatch.setattr(flatter._problem, "TRACE_CHUNK_ENTRIES", 5 * 10 * p)  # 3 chunks of 5 examples
    assert p == 1518 and problem.example_chunks(p)[0].shape[:2] == (3, 5)
    free = limit.integrate(problem, limit.label_noise_flow(problem, sigma=1.0, batch_size=12), start, **kwargs)
    a, b = np.asarray(dense.observables["trace_hessian"]), np.asarray(free.observables["trace_hessian"])
    assert a[-1] < 0.99 * a[0]  # the flow moves tr
    np.testing.assert_allclose(b, a, rtol=1e-4)
    print(f"\nlargest relative difference {np.max(np.abs(b / a - 1)):.1e}")
    assert max(float(np.max(dense.residual_norm)), float(np.max(free.residual_norm))) < 1e-4
