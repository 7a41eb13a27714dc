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


@pytest.mark.parametrize("case", ["cond 1e4", "rank-deficient"])
def test_the_refined_cholesky_solve_gives_the_minimum_norm_solution_to_rounding(case, monkeypatch):
    """The dense default (Cholesky on JJ^T, refined against J) against NumPy's pseudo-inverse, on a 60 x 400
    float64 Jacobian with singular values over 4 decades (cond(JJ^T) = 1e8), and on one with a repeated row (rank
    59, where JJ^T is singular). Unrefined, the same solve is off by cond(J)^2 eps."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    v, _ = np.linalg.qr(rng.normal(size=(400, 60)))
    jac = (u * np.logspace(0, -4, 60)) @ v.T
    if case == "rank-deficient":
        jac[1] = jac[0]
    rhs = jac @ rng.normal(size=400)  # in the range of J: a consistent system, as a projection's is
    exact = np.linalg.pinv(jac) @ rhs

    def error():
        solved = jnp.asarray(jac).T @ valley.refined_gram_solve(jnp.asarray(jac), jnp.asarray(rhs))
        return float(np.linalg.norm(np.asarray(solved) - exact) / np.linalg.norm(exact))

    refined = error()
    monkeypatch.setattr(flatter.valley._projection, "GRAM_REFINEMENTS", 0)
    unrefined = error()
    print(f"\n{case}: relative error {refined:.1e} refined, {unrefined:.1e} unrefined")
    assert refined < 1e-10
    if case == "cond 1e4":
        assert unrefined > 100 * refined  # the refinement is what makes it exact


def test_a_tall_jacobian_gets_least_squares_not_the_gram_solve():
    """With more outputs than parameters (linear regression, 10 x 3) JJ^T is singular by its shape and the residual is
    off the range of J: the step chosen for you is least squares (one step reaches NumPy's solution), where the
    refined Gram solve, asked for by name, is off by about 0.1."""
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.normal(size=(10, 3))), jnp.asarray(rng.normal(size=10))
    theta, fp = valley.flatten(flatter.Problem(lambda w, inputs: inputs @ w, x, y), jnp.zeros(3))
    exact = np.linalg.lstsq(np.asarray(x), np.asarray(y), rcond=None)[0]
    assert valley.choose_solver(10, 3) == valley.dense_solver(10, 3) == "lstsq"
    np.testing.assert_allclose(valley.gauss_newton_steps(fp, theta, 1), exact, atol=1e-12)
    np.testing.assert_allclose(valley.gauss_newton_steps(fp, theta, 1, matrix_free=False), exact, atol=1e-12)
    assert float(np.max(np.abs(valley.gauss_newton_steps(fp, theta, 1, solver="cholesky") - exact))) > 0.01


def test_the_dense_projectors_agree(sensing):
    """The tangent projector by refined Cholesky (the default) and by least squares through the SVD."""
    problem, params = sensing
    theta, fp = valley.flatten(problem, params)
    vector = jax.random.normal(jax.random.key(3), theta.shape)
    by_cholesky = valley.flat_tangent_projector(fp, theta)(vector)
    by_svd = valley.flat_tangent_projector(fp, theta, solver="lstsq")(vector)
    np.testing.assert_allclose(by_cholesky, by_svd, atol=1e-12 * float(jnp.linalg.norm(vector)))
    assert float(jnp.linalg.norm(by_svd - vector)) > 0.1 * float(jnp.linalg.norm(vector))  # it projects


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


def test_an_observable_read_on_the_valley_moves_at_second_order_in_the_normal_displacement():
    """On a generic valley (the diagonal network) grad tr Hess L has a normal component: tr at theta* + eps n moves
    by O(eps) (fitted order 1), but read on the valley (project, then read) by O(eps^2) (fitted order 2), and a
    tangent step moves both alike. Orders from a log-log fit over eps in [1e-3, 1e-1]."""
    from helpers import diagonal_network

    problem, start = diagonal_network()
    theta, fp = valley.flatten(problem, start)
    jac = jax.jacfwd(fp.residual)(theta)
    normal = jac[0] / jnp.linalg.norm(jac[0])  # a row of J: orthogonal to the valley
    (_, raw), (_, read) = problem.resolve_observables(["trace_hessian", "trace_hessian@valley"])
    base = raw(problem, start)
    assert abs(float(read(problem, start) - base)) < 1e-12  # on Gamma both are the same number
    eps = np.geomspace(1e-3, 1e-1, 6)
    raw_error = [abs(float(raw(problem, fp.unravel(theta + e * normal)) - base)) for e in eps]
    read_error = [abs(float(read(problem, fp.unravel(theta + e * normal)) - base)) for e in eps]
    assert np.polyfit(np.log(eps), np.log(raw_error), 1)[0] == pytest.approx(1.0, abs=0.1)
    assert np.polyfit(np.log(eps), np.log(read_error), 1)[0] == pytest.approx(2.0, abs=0.15)
    # Along the valley the projection changes nothing to first order: the same derivative.
    project_tangent = valley.flat_tangent_projector(fp, theta)
    tangent = project_tangent(jax.grad(lambda t: raw(problem, fp.unravel(t)))(theta))
    tangent = tangent / jnp.linalg.norm(tangent)
    e = 1e-4
    slopes = [(float(f(problem, fp.unravel(theta + e * tangent))) - float(base)) / e for f in (raw, read)]
    assert slopes[1] == pytest.approx(slopes[0], rel=1e-3) and slopes[0] > 0.1


def test_a_sweep_takes_an_observable_read_on_the_valley_by_name():
    from helpers import diagonal_network

    problem, start = diagonal_network()
    spec = flatter.sweep.SweepSpec.for_problem(problem, observable="trace_hessian@valley", threshold=0.5, phase1=False)
    assert spec.observable == "trace_hessian@valley"
    with pytest.raises(ValueError, match="@valley"):
        flatter.sweep.SweepSpec.for_problem(problem, observable="hessian@valley", threshold=0.5, phase1=False)
    with pytest.raises(ValueError, match="unknown observable"):
        problem.observe(start, ["trace@valley"])
    with pytest.raises(ValueError, match="iterations"):
        valley.on_valley(lambda problem, p: p, iterations=0)


def test_the_descent_curvature_is_the_riemannian_hessian_on_a_curved_valley():
    """Valley: the unit circle (f = e^{theta_0} (|theta|^2 - 1)), where tr Hess L = |grad f|^2 = 4 e^{2 cos phi}
    at theta = (cos phi, sin phi) and the geodesic is the arc: lambda = d^2/dphi^2 [4 e^{2 cos phi}]
    = 4 e^{2 cos phi} (4 sin^2 phi - 2 cos phi), a closed form the Euclidean Hessian of tr alone misses (it
    leaves out the normal gradient against the circle's curvature)."""

    def predict(theta, x):
        return jnp.exp(theta[0]) * (theta @ theta - 1.0) * x[:, 0]

    problem = flatter.Problem(predict, jnp.ones((1, 1)), jnp.zeros(1), name="circle")
    for phi in (0.4, 1.1, 2.5):
        theta = jnp.array([np.cos(phi), np.sin(phi)])
        geometry = valley.descent_geometry(problem, theta)
        trace = 4 * np.exp(2 * np.cos(phi))
        assert geometry.trace == pytest.approx(trace, rel=1e-10)
        assert geometry.gradient_norm == pytest.approx(abs(trace * 2 * np.sin(phi)), rel=1e-8)
        curvature = trace * (4 * np.sin(phi) ** 2 - 2 * np.cos(phi))
        assert geometry.curvature == pytest.approx(curvature, rel=1e-10)  # exact: no finite difference
        assert valley.descent_geometry(problem, theta, matrix_free=True).curvature == pytest.approx(curvature, rel=1e-8)
        tangent = jnp.array([-np.sin(phi), np.cos(phi)])
        euclidean = tangent @ jax.hessian(lambda t: problem.gauss_newton_trace(t))(theta) @ tangent
        assert abs(float(euclidean) - geometry.curvature) > 0.1 * abs(geometry.curvature)


@pytest.fixture(scope="module")
def small_network():
    """An MLP (depth 3, width 96) on 40 examples of 64 features with one-hot targets, as a user builds it: the
    problem, its initialization, and the point of the valley that matrix-free interpolation reaches from it."""
    from flax import nnx

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(40, 64)), jnp.float32)
    y = jax.nn.one_hot(np.arange(40) % 10, 10)
    problem, params = flatter.Problem.from_flax(flatter.models.MLP(64, 10, width=96, depth=3, rngs=nnx.Rngs(0)), x, y)
    fitted, info = flatter.interpolate(problem, params, tol=1e-7)
    return problem, params, fitted, info


def test_a_networks_descent_curvature_matrix_free_is_the_second_difference_along_the_valley():
    """lambda on a fitted tanh MLP (1,930 parameters, 20 examples, float64), matrix-free (LSMR, the chunked trace
    gradient), against an independent reference: the central second difference of tr along the dense
    least-squares Gauss-Newton retraction, R(theta + eps v) with eps = 1e-3 (truncation O(eps^2) ~ 1e-6 relative,
    rounding u/eps^2 ~ 1e-10). The dense solve gives the same lambda, and so does the float32 network."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(20, 16)))
    y = jax.nn.one_hot(np.arange(20) % 10, 10, dtype=jnp.float64)
    sizes = (16, 32, 32, 10)
    params = [
        (jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a)), jnp.zeros(b))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]

    def predict(params, inputs):  # a user's own tanh MLP as a predict function
        for w, b in params[:-1]:
            inputs = jnp.tanh(inputs @ w + b)
        return inputs @ params[-1][0] + params[-1][1]

    problem = flatter.Problem(predict, x, y, name="tanh-mlp")
    start, _ = flatter.interpolate(problem, params, tol=1e-14)
    theta, fp = valley.flatten(problem, start)
    geometry = valley.descent_geometry(problem, start, matrix_free=True)
    v = -valley.riemannian_gradient_trace_flat(problem, fp, theta, solver="lstsq")
    assert float(jnp.linalg.norm(v)) == pytest.approx(geometry.gradient_norm, rel=1e-8)
    eps, v = 1e-3, v / jnp.linalg.norm(v)
    retracted = [valley.gauss_newton_steps(fp, theta + s * eps * v, 4, solver="lstsq") for s in (1.0, 0.0, -1.0)]
    along = [float(problem.gauss_newton_trace(fp.unravel(t))) for t in retracted]
    second_difference = (along[0] - 2 * along[1] + along[2]) / eps**2
    assert geometry.curvature == pytest.approx(second_difference, rel=1e-5)
    assert abs(geometry.curvature) > 1.0  # a curvature, not rounding
    assert valley.descent_geometry(problem, start, matrix_free=False).curvature == pytest.approx(
        geometry.curvature, rel=1e-8
    )
    narrow = jax.tree.map(lambda leaf: leaf.astype(jnp.float32), start)
    assert valley.descent_geometry(problem, narrow, matrix_free=True).curvature == pytest.approx(
        geometry.curvature, rel=1e-2
    )


def test_a_networks_riemannian_trace_gradient_is_computed_without_its_jacobian_and_equals_the_dense_one(
    small_network, monkeypatch
):
    """Above DENSE_PROJECTION_LIMIT the gradient of tr(J^T J)/n is summed over chunks of examples (here 3 chunks of
    16 examples, the last padded) and projected by LSMR; below it, by the whole Jacobian and the pseudo-inverse.
    The two agree on the fitted MLP, and the result is tangent (J g = 0)."""
    problem, _, params, _ = small_network
    theta, fp = valley.flatten(problem, params)
    monkeypatch.setattr(flatter._problem, "TRACE_CHUNK_ENTRIES", 16 * 10 * theta.size)
    chunked = valley.gauss_newton_trace_gradient_flat(problem, fp, theta)
    n = problem.num_examples
    dense = jax.grad(lambda t: jnp.sum(jax.jacrev(fp.residual)(t) ** 2) / n)(theta)  # the whole Jacobian
    np.testing.assert_allclose(chunked, dense, rtol=2e-3, atol=1e-5 * float(jnp.max(jnp.abs(dense))))
    assert problem.example_chunks(theta.size)[0].shape[:2] == (3, 16)
    whole = float(jnp.sum(jax.jacrev(fp.residual)(theta) ** 2) / n)
    assert float(problem.gauss_newton_trace(params)) == pytest.approx(whole, rel=1e-5)  # the value, by chunks too
    free = valley.riemannian_gradient_trace(problem, params)  # chunks and LSMR, chosen by size
    jac = jax.jacrev(fp.residual)(theta)
    exact = dense - jnp.linalg.lstsq(jac, jac @ dense)[0]  # the dense minimum-norm solve, not LSMR
    assert float(jnp.linalg.norm(free - exact)) < 1e-3 * float(jnp.linalg.norm(exact))
    assert float(jnp.linalg.norm(jax.jvp(fp.residual, (theta,), (free,))[1])) < 1e-4 * float(jnp.linalg.norm(free))
    assert float(jnp.linalg.norm(exact)) > 0.1 * float(jnp.linalg.norm(dense))  # the projection does something


def test_a_network_is_interpolated_matrix_free_to_the_point_the_dense_solve_reaches(small_network):
    """An MLP (depth 3, width 96: 16,522 parameters) on 40 examples with one-hot targets: its 400 x 16,522 Jacobian
    is above DENSE_PROJECTION_LIMIT, so interpolate chooses LSMR (JVPs and VJPs only) and reports it. Every step is
    the minimum-norm Gauss-Newton step the dense solve takes, so both reach the same point of the valley."""
    problem, params, free, info = small_network
    p = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    assert (
        valley.choose_solver(problem.targets.size, p) == "lsmr"
        and problem.targets.size * p > valley.DENSE_PROJECTION_LIMIT
    )
    assert info.solver == "lsmr" and info.converged and info.solver_iterations > info.steps
    assert info.residual_norm == pytest.approx(float(jnp.sqrt(2 * problem.num_examples * info.loss)), rel=1e-3)
    dense, dense_info = flatter.interpolate(problem, params, tol=1e-7, solver="lstsq")
    assert dense_info.solver == "lstsq" and dense_info.solver_iterations == 0
    a, b = (jax.flatten_util.ravel_pytree(q)[0] for q in (free, dense))
    moved = float(jnp.linalg.norm(b - jax.flatten_util.ravel_pytree(params)[0]))
    assert moved > 0.1 and float(jnp.linalg.norm(a - b)) < 1e-3 * moved


def test_a_dense_jacobian_past_the_memory_limit_is_refused_naming_the_matrix_free_solver(monkeypatch):
    problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
    monkeypatch.setattr(flatter.valley._projection, "DENSE_MEMORY_LIMIT", 1000)  # 20 x 36 float32 is 2,880 bytes
    with pytest.raises(ValueError, match=r"dense 20 x 36 Jacobian .* use solver='lsmr'"):
        flatter.interpolate(problem, problem.init_params(jax.random.key(1)), solver="lstsq")
    with pytest.raises(ValueError, match="solver='lsmr'"):
        valley.project(problem, problem.init_params(jax.random.key(1)), method="dense", max_loss=None)
    params, info = flatter.interpolate(problem, problem.init_params(jax.random.key(1)), solver="lsmr")
    assert info.converged  # the matrix-free solver needs no dense Jacobian
