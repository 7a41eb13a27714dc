"""A bad hyperparameter that is traced (inside jit/vmap) cannot raise: the run must come out flagged, never silent."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter


def sensing():
    problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
    return problem, problem.init_params(jax.random.key(1))


def run_lnsgdm(eta, beta, sigma):
    problem, params = sensing()
    tx = optax.chain(flatter.label_noise(sigma, key=jax.random.key(2)), flatter.heavy_ball(eta, beta))
    traj = flatter.simulate(problem, tx, params, steps=20, key=jax.random.key(3), record_every=10)
    return traj.diverged, traj.diverged_at


GOOD = (0.01, 0.9, 0.1)
BAD = {
    "beta = 1": (0.01, 1.0, 0.1),
    "beta = -0.5": (0.01, -0.5, 0.1),
    "eta = 0": (0.0, 0.9, 0.1),
    "eta < 0": (-0.01, 0.9, 0.1),
    "sigma = -1": (0.01, 0.9, -1.0),
    "beta = nan": (0.01, float("nan"), 0.1),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
@pytest.mark.parametrize("transform", ["jit", "vmap"])
def test_bad_traced_hyperparameters_flag_the_run(case, transform):
    args = [np.asarray(v, np.float32) for v in BAD[case]]
    good = [np.asarray(v, np.float32) for v in GOOD]
    if transform == "jit":
        diverged, at = jax.jit(run_lnsgdm)(*args)
        assert bool(diverged) and int(at) == 1  # the first update is already NaN
        assert not bool(jax.jit(run_lnsgdm)(*good)[0])
    else:  # a sweep where one lane is bad: only that lane is flagged
        batch = [np.stack([g, a]) for g, a in zip(good, args, strict=True)]
        diverged, _ = jax.vmap(run_lnsgdm)(*batch)
        np.testing.assert_array_equal(diverged, [False, True])


def test_concrete_bad_values_still_raise_at_construction():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        flatter.heavy_ball(0.01, 1.0)
    with pytest.raises(ValueError, match=r"sigma must be >= 0"):
        flatter.label_noise(-1.0, key=jax.random.key(0))


@pytest.mark.parametrize(
    "eta,C,gamma",
    [(0.5, 3.0, 0.5), (0.01, -1.0, 0.5), (0.0, 1.0, 0.5), (0.5, 1.0, -1.0), (float("nan"), 1.0, 0.5)],
    ids=["beta < 0", "C < 0", "eta = 0", "gamma < 0", "eta nan"],
)
def test_momentum_rule_under_jit_returns_nan_for_bad_inputs(eta, C, gamma):
    beta = jax.jit(lambda e, c, g: flatter.momentum_rule(e, C=c, gamma=g))(eta, C, gamma)
    assert np.isnan(float(beta))
    ok = jax.jit(lambda e: flatter.momentum_rule(e, C=1.0, gamma=2 / 3))(0.001)
    assert float(ok) == pytest.approx(0.99, abs=1e-6)


def test_a_schedule_that_goes_negative_is_flagged():
    problem, params = sensing()
    schedule = lambda k: 0.01 - 0.002 * k  # noqa: E731  (0 at step 5, negative after)
    traj = flatter.simulate(
        problem, flatter.heavy_ball(schedule, 0.5), params, steps=20, key=jax.random.key(0), record_every=5
    )
    # eta_5 = 0 is allowed (a warm-up starts there); eta_6 < 0 is out of range, so theta_7 is NaN.
    assert bool(traj.diverged) and int(traj.diverged_at) == 7
    assert np.all(np.isfinite(traj.observables["loss"]))  # records keep the last finite state


def test_scaled_heavy_ball_no_longer_clips_beta_silently():
    problem, params = sensing()
    # 1 - C eta^gamma < 0 for the first steps of this warm-down schedule: formerly clipped to beta = 0.
    tx = flatter.scaled_heavy_ball(lambda k: 0.5 / (1.0 + k), C=3.0, gamma=0.5)
    traj = flatter.simulate(problem, tx, params, steps=10, key=jax.random.key(0), record_every=5)
    assert bool(traj.diverged) and int(traj.diverged_at) == 1
    fine = flatter.scaled_heavy_ball(lambda k: 0.01 / (1.0 + k), C=1.0, gamma=0.5)
    assert not bool(flatter.simulate(problem, fine, params, steps=10, key=jax.random.key(0)).diverged)


def test_sngm_traced_momentum_out_of_range_is_flagged():
    problem, params = sensing()

    def run(beta):
        tx = flatter.sngm(0.01, beta)
        return flatter.simulate(problem, tx, params, steps=10, key=jax.random.key(0)).diverged

    np.testing.assert_array_equal(jax.vmap(run)(jnp.array([0.9, 1.0, -0.1])), [False, True, True])


def classification():
    x = jax.random.normal(jax.random.key(0), (12, 4))
    y = jax.nn.one_hot(jnp.arange(12) % 3, 3)
    problem = flatter.Problem(lambda w, x: x @ w, x, y, loss="cross_entropy", name="linear-softmax")
    return problem, jnp.zeros((4, 3))


@pytest.mark.parametrize("p", [1.5, -0.3, float("nan")], ids=["p = 1.5", "p = -0.3", "p = nan"])
def test_label_flip_traced_probability_out_of_range_is_flagged(p):
    # bernoulli(NaN) draws no flip, so without a guard a bad p would silently run as p = 0.
    problem, params = classification()

    def run(prob):
        tx = optax.chain(flatter.label_flip(prob, key=jax.random.key(1), num_classes=3), optax.sgd(0.1))
        return flatter.simulate(problem, tx, params, steps=5, key=jax.random.key(2)).diverged

    np.testing.assert_array_equal(jax.vmap(run)(jnp.array([0.2, p], jnp.float32)), [False, True])
    assert bool(jax.jit(run)(jnp.float32(p)))

    def bare_update(prob):  # the transform on its own, outside simulate
        tx = flatter.label_flip(prob, key=jax.random.key(1), num_classes=3)
        grads = jax.grad(problem.loss)(params)
        updates, _ = tx.update(grads, tx.init(params), params, predict_fn=problem.outputs, targets=problem.targets)
        return jnp.all(jnp.isfinite(updates))

    assert bool(jax.jit(bare_update)(jnp.float32(0.2)))
    assert not bool(jax.jit(bare_update)(jnp.float32(p)))
