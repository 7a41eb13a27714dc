"""simulate: determinism, chunking, vmapped sweeps that trace once, divergence, minibatches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter


@pytest.fixture(scope="module")
def sensing():
    problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
    return problem, params


def lnsgdm(eta, beta, key, sigma=0.5):
    return optax.chain(flatter.label_noise(sigma, key=key), flatter.heavy_ball(eta, beta))


def test_same_key_same_trajectory(sensing):
    problem, params = sensing
    run = lambda k: flatter.simulate(  # noqa: E731
        problem, lnsgdm(0.01, 0.9, k), params, steps=200, key=k, record_every=20, batch_size=5
    )
    a, b, c = run(jax.random.key(3)), run(jax.random.key(3)), run(jax.random.key(4))
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name], b.observables[name])
    assert not np.allclose(a.observables["loss"][1:], c.observables["loss"][1:])


def test_chunking_does_not_change_results(sensing):
    problem, params = sensing
    runs = [
        flatter.simulate(
            problem,
            lnsgdm(0.01, 0.9, jax.random.key(0)),
            params,
            steps=120,
            key=jax.random.key(1),
            record_every=10,
            chunks=c,
            batch_size=4,
        )
        for c in (1, 3, 12)
    ]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.steps, runs[0].steps)
        np.testing.assert_array_equal(r.observables["trace_hessian"], runs[0].observables["trace_hessian"])
    np.testing.assert_array_equal(runs[0].steps, np.arange(0, 121, 10))


def test_full_batch_gd_matches_numpy_on_linear_regression():
    """Plain heavy ball on least squares: compare every recorded loss with a NumPy recurrence."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=8)
    problem = flatter.Problem(lambda w, x: x @ w, X, y)
    eta, beta = 0.1, 0.8
    traj = flatter.simulate(
        problem,
        flatter.heavy_ball(eta, beta),
        jnp.zeros(3),
        steps=50,
        key=jax.random.key(0),
        observables=["loss"],
    )
    w, v, losses = np.zeros(3), np.zeros(3), [0.5 * np.mean(y**2)]
    for _ in range(50):
        v = beta * v + X.T @ (X @ w - y) / 8
        w = w - eta * v
        losses.append(0.5 * np.mean((X @ w - y) ** 2))
    np.testing.assert_allclose(traj.observables["loss"], losses, rtol=1e-10)


def test_minibatch_step_matches_manual_computation(sensing):
    problem, params = sensing
    key = jax.random.key(7)
    traj = flatter.simulate(
        problem, flatter.heavy_ball(0.01, 0.0), params, steps=1, key=key, batch_size=5, observables=["loss"]
    )
    # simulate splits its key once per step and draws the batch without replacement from the subkey: the 5
    # largest of n uniforms.
    idx = jax.lax.top_k(jax.random.uniform(jax.random.split(key)[1], (problem.num_examples,)), 5)[1]
    grad = jax.grad(lambda u: problem.loss(u, problem.inputs[idx], problem.targets[idx]))(params)
    np.testing.assert_allclose(traj.params, params - 0.01 * grad, rtol=1e-12)


def test_vmapped_sweep_traces_once(sensing):
    problem, params = sensing
    traces = []

    def run(eta, beta, key):
        traces.append(1)
        return flatter.simulate(
            problem, lnsgdm(eta, beta, key), params, steps=50, key=key, record_every=10
        ).observables["loss"]

    sweep = jax.jit(jax.vmap(run))
    keys = jax.random.split(jax.random.key(0), 6)
    etas = jnp.array([1e-3, 3e-3, 1e-2, 1e-3, 3e-3, 1e-2])
    betas = jnp.array([0.0, 0.5, 0.9, 0.9, 0.5, 0.0])
    first = sweep(etas, betas, keys)
    second = sweep(etas * 2, betas / 2, keys)
    assert len(traces) == 1
    assert first.shape == (6, 6) and not np.allclose(first, second)
    # Each lane equals the same run done alone.
    alone = run(etas[2], betas[2], keys[2])
    np.testing.assert_allclose(first[2], alone, rtol=1e-10)


def test_divergence_is_flagged_and_masked():
    """GD on x with curvature h diverges iff eta h > 2; the diverged lane stops, the others run."""
    problem = flatter.problems.toy_valley(h0=1.0, curvature_slope=0.0)
    etas = jnp.array([0.5, 1.9, 2.5, 4.0])

    def run(eta):
        return flatter.simulate(
            problem,
            flatter.heavy_ball(eta, 0.0),
            jnp.array([1.0, 0.0]),
            steps=2000,
            key=jax.random.key(0),
            record_every=100,
            observables=["x"],
        )

    traj = jax.jit(jax.vmap(run))(etas)
    np.testing.assert_array_equal(traj.diverged, [False, False, True, True])
    assert np.all(np.isfinite(traj.observables["x"]))
    # Overflow step from the exact recurrence x_k = (1 - eta)^k. The y-gradient of the toy carries
    # 0 * x^2, which turns NaN once x^2 overflows: the first k with x_k^2 = inf.
    for i in (2, 3):
        x, k = 1.0, 0
        with np.errstate(over="ignore", invalid="ignore"):
            while np.isfinite(x * x):
                x, k = x - float(etas[i]) * x, k + 1
        assert abs(int(traj.diverged_at[i]) - k) <= 1
    assert int(traj.diverged_at[0]) == -1


def test_progress_bar_runs(sensing, capsys):
    problem, params = sensing
    traj = flatter.simulate(
        problem,
        flatter.heavy_ball(0.01, 0.5),
        params,
        steps=40,
        key=jax.random.key(0),
        record_every=4,
        progress=True,
    )
    assert traj.steps[-1] == 40
    shown = capsys.readouterr().err  # tqdm writes to stderr
    assert f"simulate {problem.name}" in shown and "40/40" in shown


def test_a_diverged_run_is_censored_by_the_criteria_even_if_it_swung_through_the_band():
    steps = jnp.array([0, 10, 20, 30])
    values = jnp.array([1.0, 0.05, 0.02, 0.03])  # inside the band from step 10 on...
    for criterion in (flatter.first_passage, flatter.settling_time):
        clean = criterion(steps, values, 0.1)
        flagged = criterion(steps, values, 0.1, diverged=jnp.asarray(True))  # ...but the run blew up
        assert not bool(clean.censored) and bool(flagged.censored) and float(flagged.time) == 30.0
    # A real blow-up: GD at eta h > 2 on x, whose |x| swings through a band around 0 before overflowing.
    problem = flatter.problems.toy_valley(h0=1.0, curvature_slope=0.0)
    traj = flatter.simulate(
        problem,
        flatter.heavy_ball(2.5, 0.0),
        jnp.array([1e-3, 0.0]),
        steps=2000,
        key=jax.random.key(0),
        record_every=1,
        observables=["x"],
    )
    assert bool(traj.diverged)
    assert bool(
        flatter.first_passage(traj.steps, jnp.abs(traj.observables["x"]), 0.01, diverged=traj.diverged).censored
    )
