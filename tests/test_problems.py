"""Problems: closed forms against generic computations, phase 1, flax models, the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import refused

import flatter


def generic_trace(problem, params):
    """tr(J^T J)/n from a dense Jacobian, ignoring the problem's closed form."""
    jac = jax.jacfwd(problem.residual_vector)(params)
    return sum(float(jnp.sum(leaf**2)) for leaf in jax.tree.leaves(jac)) / problem.num_examples


def test_matrix_sensing_closed_form_trace():
    problem = flatter.problems.matrix_sensing(5, 2, 12, key=jax.random.key(0))
    u = problem.init_params(jax.random.key(1))
    assert float(problem.gauss_newton_trace(u)) == pytest.approx(generic_trace(problem, u), rel=1e-10)


def test_matrix_sensing_truth_interpolates_and_observables():
    problem = flatter.problems.matrix_sensing(8, 2, 30, key=jax.random.key(0))
    u_star = problem.extras["U_star"]
    padded = jnp.concatenate([u_star, jnp.zeros((8, 6))], axis=1)
    obs = problem.observe(padded)
    assert obs["loss"] < 1e-20 and obs["test_loss"] < 1e-20
    assert obs["recovery_error"] == pytest.approx(0.0, abs=1e-12)
    lam = np.linalg.eigvalsh(np.asarray(u_star.T @ u_star))
    assert obs["effective_rank"] == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-10)


def test_toy_valley_closed_forms():
    problem = flatter.problems.toy_valley(h0=2.0, curvature_slope=0.5)
    theta = jnp.array([0.3, -0.7])
    h = 2.0 * (1 + 0.5 * 0.49)
    assert float(problem.loss(theta)) == pytest.approx(0.5 * h * 0.09)
    assert float(problem.gauss_newton_trace(theta)) == pytest.approx(generic_trace(problem, theta))
    assert float(problem.gauss_newton_trace(jnp.array([0.0, -0.7]))) == pytest.approx(h)
    # On the valley the Hessian of L equals the Gauss-Newton matrix.
    hess = jax.hessian(problem.loss)(jnp.array([0.0, -0.7]))
    assert float(jnp.trace(hess)) == pytest.approx(h)


@pytest.mark.parametrize("method,kwargs", [("gauss_newton", {}), ("gd", {"learning_rate": 2.0})])
def test_interpolate_reaches_the_valley(method, kwargs):
    problem = flatter.problems.teacher_student(d_in=4, k=2, m=12, n=20, key=jax.random.key(0))
    params0 = problem.init_params(jax.random.key(1))
    params, info = flatter.interpolate(
        problem,
        params0,
        method=method,
        tol=1e-9,
        max_steps=200 if method == "gauss_newton" else 50_000,
        **kwargs,
    )
    assert info.converged and float(problem.loss(params)) <= 1e-9


def test_interpolate_raises_when_not_converged():
    problem = flatter.problems.teacher_student(d_in=4, k=2, m=12, n=20, key=jax.random.key(0))
    with pytest.raises(flatter.InterpolationError, match="tol"):
        flatter.interpolate(
            problem, problem.init_params(jax.random.key(1)), method="gd", learning_rate=1e-4, max_steps=10
        )


def test_flax_nnx_model():
    from flax import nnx

    x = jax.random.normal(jax.random.key(0), (10, 3))
    y = jax.random.normal(jax.random.key(1), (10, 1))
    module = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    problem, params = flatter.Problem.from_flax(module, x, y)
    assert float(problem.loss(params)) == pytest.approx(float(0.5 * jnp.mean((module(x) - y) ** 2)))
    # Linear model: J^T J / n has trace (|X|_F^2 + n) / n (weights and bias).
    assert float(problem.gauss_newton_trace(params)) == pytest.approx(float((jnp.sum(x**2) + 10) / 10))
    traj = flatter.simulate(
        problem, flatter.heavy_ball(0.1, 0.5), params, steps=200, key=jax.random.key(0), record_every=200
    )
    assert traj.observables["loss"][-1] < traj.observables["loss"][0]


def test_custom_observables_and_unknown_name():
    problem = flatter.Problem(
        lambda w, x: x @ w, jnp.eye(2), jnp.ones(2), observables={"norm": lambda p, w: jnp.sum(w**2)}
    )
    assert float(problem.observe(jnp.ones(2), ["norm"])["norm"]) == 2.0
    with pytest.raises(ValueError, match="unknown observable"):
        problem.observe(jnp.ones(2), ["nope"])


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_eval_batch_size_gives_the_same_numbers_in_chunks(loss):
    """Chunked evaluation (10 examples in chunks of 4: the last one padded) equals one call on all of them,
    for the loss, the residuals and both accuracies; a chunk counted twice or the padding kept would not."""
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(10, 3)), rng.normal(size=(7, 3))
    y, yt = jax.nn.one_hot(rng.integers(0, 4, 10), 4), jax.nn.one_hot(rng.integers(0, 4, 7), 4)
    w = jnp.asarray(rng.normal(size=(3, 4)))
    calls = []

    def predict(p, inputs):
        calls.append(inputs.shape[0])
        return jnp.tanh(inputs @ p) * 3

    whole = flatter.Problem(predict, x, y, test_inputs=xt, test_targets=yt, loss=loss)
    chunked = flatter.Problem(predict, x, y, test_inputs=xt, test_targets=yt, loss=loss, eval_batch_size=4)
    names = ["loss", "accuracy", "test_loss", "test_accuracy"]
    observed = jax.jit(lambda p, q: q.observe(p, names))(w, chunked)  # through jit: the pytree keeps the chunk
    for name in names:
        np.testing.assert_allclose(observed[name], whole.observe(w, [name])[name], rtol=1e-12, err_msg=name)
    expected = whole.outputs(w)
    calls.clear()
    np.testing.assert_allclose(chunked.outputs(w), expected, rtol=1e-12)
    assert calls == [4]  # one chunk's shape traced (lax.map), never all 10 examples at once
    calls.clear()
    chunked.loss(w)
    assert calls == [10]  # what is differentiated stays one call
    assert 0.0 < float(whole.accuracy(w)) < 1.0  # a test that can tell a wrong argmax


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_eval_batch_size_must_be_a_positive_integer(bad):
    with refused(ValueError, "eval_batch_size"):
        flatter.Problem(lambda w, x: x @ w, jnp.ones((3, 2)), jnp.ones(3), eval_batch_size=bad)


def test_eval_batch_size_padding_keeps_derivatives_finite():
    """The padded rows of the last chunk must be real examples: a model with an infinite derivative at a
    zero input (here a norm, as GroupNorm's variance is 0 on a constant image) turns zero padding into
    0 * inf = NaN in the gradient, although the padded outputs are dropped."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)))
    problem = flatter.Problem(lambda w, z: jnp.linalg.norm(z * w, axis=-1), x, jnp.ones(5), eval_batch_size=4)
    grad = jax.grad(lambda w: problem.observe(w, ["loss"])["loss"])(jnp.ones(3))
    expected = jax.grad(lambda w: 0.5 * jnp.mean((jnp.linalg.norm(x * w, axis=-1) - 1) ** 2))(jnp.ones(3))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
