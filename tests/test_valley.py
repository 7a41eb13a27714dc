"""The valley: projection, tangent projector (dense vs matrix-free), curvature and its gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatter
from flatter import valley


@pytest.fixture(scope="module")
def sensing():
    problem = flatter.problems.matrix_sensing(5, 1, 8, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)), tol=1e-24)
    return problem, params


@pytest.mark.parametrize("method", ["dense", "matrix_free"])
def test_projection_lands_on_the_valley_orthogonally(sensing, method):
    problem, params = sensing
    theta, fp = valley.flatten(problem, params)
    normal = jax.random.normal(jax.random.key(2), theta.shape)
    jac = jax.jacfwd(fp.residual)(theta)
    normal = jac.T @ jnp.linalg.lstsq(jac.T, normal)[0]  # a normal direction at theta
    pushed = theta + 1e-3 * normal / jnp.linalg.norm(normal)
    back = valley.project(problem, fp.unravel(pushed), method=method)
    assert float(jnp.linalg.norm(problem.residual_vector(back))) < 1e-10
    # A small normal displacement is undone to second order in its size.
    assert float(jnp.linalg.norm(back.reshape(-1) - theta)) < 1e-5


def test_projection_refuses_far_points(sensing):
    problem, params = sensing
    with pytest.raises(valley.ValleyError, match="not near the valley"):
        valley.project(problem, params * 10.0)


def test_matrix_free_projector_equals_dense(sensing):
    problem, params = sensing
    dense = valley.tangent_projector(problem, params, matrix_free=False)
    free = valley.tangent_projector(problem, params, matrix_free=True)
    theta, fp = valley.flatten(problem, params)
    for i in range(3):
        v = jax.random.normal(jax.random.key(i), theta.shape)
        np.testing.assert_allclose(free(v), dense(v), atol=1e-8)
    # A projector: idempotent, symmetric, kills the rows of J.
    mat = valley.dense_tangent_projector(fp, theta)
    np.testing.assert_allclose(mat @ mat, mat, atol=1e-10)
    np.testing.assert_allclose(mat, mat.T, atol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(fp.residual)(theta) @ mat, 0.0, atol=1e-9)


def test_riemannian_gradient_on_toy():
    problem = flatter.problems.toy_valley(h0=2.0, curvature_slope=0.5)
    g = valley.riemannian_gradient_trace(problem, jnp.array([0.0, 0.8]))
    np.testing.assert_allclose(g, [0.0, 2.0 * 0.5 * 2 * 0.8], atol=1e-12)  # d/dy h0 (1 + a y^2)


def test_riemannian_gradient_is_derivative_along_the_valley(sensing):
    """Moving along the tangent direction -g lowers tr Hess L at rate |g|^2 (first order)."""
    problem, params = sensing
    g = valley.riemannian_gradient_trace(problem, params)
    theta, fp = valley.flatten(problem, params)
    eps = 1e-5
    moved = valley.project(problem, fp.unravel(theta - eps * g))
    rate = (problem.gauss_newton_trace(moved) - problem.gauss_newton_trace(params)) / eps
    assert float(rate) == pytest.approx(-float(g @ g), rel=1e-3)


def test_spectrum_dense_matches_hessian_and_lanczos(sensing):
    problem, params = sensing
    dense = valley.hessian_spectrum(problem, params)
    theta, fp = valley.flatten(problem, params)
    hess = np.linalg.eigvalsh(np.asarray(jax.hessian(fp.loss)(theta)))[::-1]
    np.testing.assert_allclose(dense, hess[: dense.shape[0]], rtol=1e-6, atol=1e-8)
    lanczos = valley.hessian_spectrum(problem, params, method="lanczos", k=20)
    np.testing.assert_allclose(lanczos[:3], dense[:3], rtol=1e-8)
