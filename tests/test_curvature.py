"""Matrix-free curvature against exact dense matrices on a small MLP (float64, fixed seeds)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import refused
from jax.flatten_util import ravel_pytree

import flatter


def mlp_problem(n=12):
    kx, ky, kw, kv = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(kx, (n, 3))
    y = jax.random.normal(ky, (n, 2))
    params = {"W": jax.random.normal(kw, (3, 6)), "v": 0.5 * jax.random.normal(kv, (6, 2))}
    return flatter.Problem(lambda p, x: jnp.tanh(x @ p["W"]) @ p["v"], x, y), params


def exact(problem, params, kind):
    theta, unravel = ravel_pytree(params)
    if kind == "hessian":
        return jax.hessian(lambda t: problem.loss(unravel(t)))(theta)
    jac = jax.jacfwd(lambda t: problem.residual_vector(unravel(t)))(theta)
    return jac.T @ jac / problem.num_examples


@pytest.mark.parametrize("kind", ["hessian", "gauss_newton"])
@pytest.mark.parametrize("batch_size", [None, 4])
def test_matvec_equals_the_dense_matrix(kind, batch_size):
    problem, params = mlp_problem()
    matvec, theta = flatter.curvature.curvature_matvec(problem, params, kind=kind, batch_size=batch_size)
    dense = exact(problem, params, kind)
    v = jax.random.normal(jax.random.key(3), theta.shape)
    np.testing.assert_allclose(matvec(v), dense @ v, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["hessian", "gauss_newton"])
def test_hutchinson_trace_within_three_standard_errors(kind):
    problem, params = mlp_problem()
    true = float(jnp.trace(exact(problem, params, kind)))
    est = flatter.curvature.hutchinson_trace(problem, params, key=jax.random.key(7), num_probes=400, kind=kind)
    mean, se = float(est.mean), float(est.stderr)
    assert abs(mean - true) < 3 * se, (mean, true, se)
    # The test has the power to see the classic mistakes: a factor 2, or a missing 1/n (n = 12).
    assert abs(2 * true - mean) > 3 * se and abs(12 * true - mean) > 3 * se and abs(true / 12 - mean) > 3 * se


def test_hutchinson_matches_the_closed_form_trace_on_matrix_sensing():
    problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
    u = problem.init_params(jax.random.key(1))
    est = flatter.curvature.hutchinson_trace(
        problem, u, key=jax.random.key(2), num_probes=300, kind="gauss_newton", batch_size=5
    )
    closed = float(problem.gauss_newton_trace(u))  # 4 tr(U^T M U)
    assert abs(float(est.mean) - closed) < 3 * float(est.stderr)


def test_sharpness_is_the_top_eigenvalue():
    problem, params = mlp_problem()
    for kind in ("hessian", "gauss_newton"):
        top = float(jnp.max(jnp.linalg.eigvalsh(exact(problem, params, kind))))
        got = float(flatter.curvature.sharpness(problem, params, key=jax.random.key(1), num_matvecs=30, kind=kind))
        assert got == pytest.approx(top, rel=1e-8)


def test_hutchinson_as_an_observable_in_simulate():
    problem, params = mlp_problem()
    obs = {"tr": flatter.curvature.hutchinson_observable(16)}
    traj = flatter.simulate(
        problem,
        flatter.heavy_ball(0.05, 0.5),
        params,
        steps=20,
        key=jax.random.key(0),
        record_every=10,
        observables=obs,
    )
    assert traj.observables["tr"].shape == (3,) and np.all(np.isfinite(traj.observables["tr"]))


def test_bad_arguments():
    problem, params = mlp_problem()
    with pytest.raises(ValueError, match="kind must be one of"):
        flatter.curvature.hutchinson_trace(problem, params, key=jax.random.key(0), kind="fisher")
    with pytest.raises(ValueError, match="batch_size must divide n=12"):
        flatter.curvature.hutchinson_trace(problem, params, key=jax.random.key(0), batch_size=5)
    with refused(TypeError, "key must be a JAX PRNG key"):
        flatter.curvature.sharpness(problem, params, key=0)


def test_spectral_density_by_stochastic_lanczos_quadrature():
    problem, params = mlp_problem()
    dense = exact(problem, params, "hessian")
    eigs = np.linalg.eigvalsh(np.asarray(dense))
    p = eigs.size
    full = flatter.curvature.spectral_density(problem, params, key=jax.random.key(4), num_probes=4, num_matvecs=p)
    np.testing.assert_allclose(np.sum(full.weights, -1), 1.0, rtol=1e-10)
    # Full Lanczos: every node is an eigenvalue of the dense Hessian (those the probe sees).
    assert np.max(np.min(np.abs(np.asarray(full.nodes)[..., None] - eigs), axis=-1)) < 1e-6 * np.max(np.abs(eigs))
    # The quadrature's first moment per probe is z^T H z / |z|^2; its average estimates tr H / p.
    slq = flatter.curvature.spectral_density(problem, params, key=jax.random.key(5), num_probes=200, num_matvecs=10)
    moments = np.sum(np.asarray(slq.weights) * np.asarray(slq.nodes), -1)
    se = moments.std(ddof=1) / np.sqrt(moments.size)
    assert abs(moments.mean() - eigs.sum() / p) < 3 * se and abs(2 * eigs.sum() / p - moments.mean()) > 3 * se
    grid = jnp.linspace(eigs.min() - 1, eigs.max() + 1, 2001)
    mass = float(jnp.sum(slq.density(grid, width=0.05)) * (grid[1] - grid[0]))
    assert mass == pytest.approx(1.0, abs=1e-3)  # a probability density
