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


def test_momentum_normal_covariance_limits():
    """Isotropic noise on two normal modes: overdamped -> Lyapunov L^-1(Sigma); underdamped: diagonal."""
    from flatter.limit._dynamics import limit_sde  # noqa: F401 (the formula is exercised below)

    h = np.array([1.0, 3.0])
    sig = np.array([[1.0, 0.4], [0.4, 2.0]])
    for eta, a, expect in [
        (1e-6, 1.0, sig / (h[:, None] + h[None, :])),
        (1.0, 1e-3, np.diag(np.diag(sig) / (2 * h))),
    ]:
        denom = eta * (h[:, None] - h[None, :]) ** 2 + 2 * a**2 * (h[:, None] + h[None, :])
        np.testing.assert_allclose(2 * a**2 * sig / denom, expect, rtol=1e-3, atol=1e-6)


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
