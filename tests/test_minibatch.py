"""The minibatch draw: each sampling's law, checked against closed forms, and its path through simulate and sweeps.

Without replacement a batch is a uniform B-subset; with replacement B independent uniform indices. The
step's gradient covariance follows from that alone (a finite-population correction), while at an
interpolating point, where the minibatch gradient is label noise, both give sigma^2/B * (1/n) X^T X: the
theory's B is the same. Tolerances are 5 standard errors of the Monte-Carlo estimate, with fixed seeds.
"""

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter
from flatter.sweep import SweepSpec

N, B, DRAWS = 10, 4, 20_000


def draws(sampling, n=N, b=B, count=DRAWS, seed=0):
    keys = jax.random.split(jax.random.key(seed), count)
    return np.asarray(jax.vmap(lambda k: flatter.draw_batch(k, n, b, sampling))(keys))


@pytest.mark.parametrize("sampling", flatter.SAMPLINGS)
def test_every_index_is_drawn_equally_often(sampling):
    counts = np.bincount(draws(sampling).ravel(), minlength=N)
    expected = DRAWS * B / N
    # Each index's count: at most binomial(DRAWS*B, 1/N) spread (smaller without replacement).
    se = np.sqrt(DRAWS * B * (1 / N) * (1 - 1 / N))
    assert np.all(np.abs(counts - expected) < 5 * se), counts


def test_with_replacement_repeats_an_index_as_often_as_the_birthday_law_says():
    batches = draws("with_replacement")
    distinct = np.mean([len(set(b)) == B for b in batches])
    law = np.prod(1 - np.arange(B) / N)  # P(no repeat) = n (n-1) ... (n-B+1) / n^B = 0.504
    assert abs(distinct - law) < 5 * np.sqrt(law * (1 - law) / DRAWS), (distinct, law)
    assert all(len(set(b)) == B for b in draws("without_replacement", count=2000))  # never a repeat


def linear_problem(targets_from=None):
    x = jax.random.normal(jax.random.key(3), (N, 2))
    w_star = jnp.array([0.5, -1.0])
    y = x @ w_star if targets_from is None else targets_from(x)
    return flatter.Problem(lambda w, xs: xs @ w, x, y, name="linear"), w_star


def one_step_updates(problem, make_tx, params, sampling, count=DRAWS):
    """One step from ``params`` for ``count`` keys (the batch's and the optimizer's: ``make_tx(key)``)."""

    def update(key):
        k_batch, k_tx = jax.random.split(key)
        tx = make_tx(k_tx)
        return flatter.make_step(problem, tx, B, sampling)(params, tx.init(params), k_batch)[0] - params

    return np.asarray(jax.jit(jax.vmap(update))(jax.random.split(jax.random.key(7), count)), np.float64)


def covariance_close(samples, expected):
    """Entrywise within 5 s.e. of the sample covariance (s.e. from the samples' fourth moments)."""
    centred = samples - samples.mean(0)
    products = centred[:, :, None] * centred[:, None, :]
    got, se = products.mean(0), products.std(0) / np.sqrt(len(samples))
    assert np.all(np.abs(got - expected) < 5 * se + 1e-12), (got, expected, se)


@pytest.mark.parametrize("sampling", flatter.SAMPLINGS)
def test_at_an_interpolating_point_both_samplings_give_the_label_noise_covariance_of_the_theory(sampling):
    problem, w_star = linear_problem()
    eta, sigma = 0.1, 0.5
    noisy = lambda k: optax.chain(flatter.label_noise(sigma, key=k, mode="minibatch"), flatter.heavy_ball(eta, 0.0))
    updates = one_step_updates(problem, noisy, w_star, sampling)
    x = np.asarray(problem.inputs, np.float64)
    # -eta * (1/B) X_B^T (-sigma zeta): each slot an example drawn uniformly, its noise independent of the others'.
    covariance_close(updates, eta**2 * sigma**2 / B * (x.T @ x) / N)


@pytest.mark.parametrize(
    ("sampling", "correction"), [("without_replacement", (N - B) / (N - 1)), ("with_replacement", 1.0)]
)
def test_off_the_valley_the_gradient_covariance_has_the_finite_population_correction(sampling, correction):
    problem, _ = linear_problem(lambda x: x @ jnp.array([0.5, -1.0]) + jnp.sin(7 * x[:, 0]))  # no exact fit
    eta, w = 0.1, jnp.array([0.2, 0.3])
    updates = one_step_updates(problem, lambda _: flatter.heavy_ball(eta, 0.0), w, sampling)
    x = np.asarray(problem.inputs, np.float64)
    per_example = x * (x @ np.asarray(w) - np.asarray(problem.targets, np.float64))[:, None]  # g_a = x_a r_a
    spread = np.cov(per_example.T, bias=True)  # the population covariance of the g_a
    covariance_close(updates, eta**2 * correction * spread / B)


def test_simulate_with_replacement_is_the_recurrence_with_randint_batches():
    problem, _ = linear_problem(lambda x: x @ jnp.array([0.5, -1.0]) + 0.1 * x[:, 1] ** 2)
    eta, beta, steps, key = 0.05, 0.6, 12, jax.random.key(5)
    traj = flatter.simulate(
        problem,
        flatter.heavy_ball(eta, beta),
        jnp.zeros(2),
        steps=steps,
        key=key,
        batch_size=B,
        sampling="with_replacement",
        record_every=steps,
        observables=["loss"],
    )
    # The recurrence in NumPy, with the batches simulate documents: a key split off per step, B uniform indices.
    x, y = np.asarray(problem.inputs, np.float64), np.asarray(problem.targets, np.float64)
    w, v = np.zeros(2), np.zeros(2)
    for _ in range(steps):
        key, sub = jax.random.split(key)
        idx = np.asarray(jax.random.randint(sub, (B,), 0, N))
        g = x[idx].T @ (x[idx] @ w - y[idx]) / B
        v = beta * v + g
        w = w - eta * v
    np.testing.assert_allclose(np.asarray(traj.params), w, rtol=1e-5, atol=1e-6)
    default = flatter.simulate(problem, flatter.heavy_ball(eta, beta), jnp.zeros(2), steps=steps, key=key, batch_size=B)
    assert not np.allclose(np.asarray(default.params), w)  # the default draws other batches


def test_a_sweeps_sampling_is_part_of_its_identity_and_left_out_at_its_default():
    base = dict(problem="toy-valley", observable="abs_y", threshold=0.1, phase1=False, gammas=(0.5,), etas=(0.01,))
    assert SweepSpec(**base).digest == SweepSpec(**base, sampling="without_replacement").digest
    assert "sampling" not in SweepSpec(**base).to_json()  # earlier sweeps' folders keep their names
    assert SweepSpec(**base, sampling="with_replacement").digest != SweepSpec(**base).digest
    # A minibatch sweep's identity names the draw without replacement (its algorithm decides the numbers), a
    # full-batch one does not: its folders of earlier versions resume.
    minibatch = SweepSpec(**{**base, "problem": "matrix-sensing", "observable": "loss"}, batch_sizes=(4,))
    assert minibatch.to_json()["minibatch_draw"] == "top_k-of-uniforms"
    assert "minibatch_draw" not in SweepSpec(**base).to_json()


def test_a_sweep_runs_its_sampling(tmp_path):
    """Run i of a sweep with ``sampling="with_replacement"`` is simulate() with that sampling and run i's key."""
    from flatter.sweep import run_sweep

    problem, w_star = linear_problem()
    spec = SweepSpec.for_problem(
        problem,
        etas=(0.05,),
        gammas=(0.5,),
        sigmas=(0.3,),
        batch_sizes=(B,),
        label_noise_mode="minibatch",
        seeds=2,
        observable="loss",
        threshold=1e-9,
        phase1=False,
        flow_time=0.01,
        records=4,
        min_steps=16,
        max_steps=64,
        sampling="with_replacement",
    )
    res = run_sweep(spec, tmp_path, problem=problem, params0=w_star + 0.1, progress=False)
    horizon = int(res.data["horizon"].reshape(-1)[1])
    k_noise, k_sim = jax.random.split(jax.random.fold_in(jax.random.key(spec.seed + 1), 1))
    beta = float(flatter.momentum_rule(0.05, C=1.0, gamma=0.5))
    tx = optax.chain(flatter.label_noise(0.3, key=k_noise, mode="minibatch"), flatter.heavy_ball(0.05, beta))
    run = dict(steps=horizon, key=k_sim, batch_size=B, record_every=horizon // 4, observables=["loss"])
    direct = flatter.simulate(problem, tx, w_star + 0.1, sampling="with_replacement", **run)
    other = flatter.simulate(problem, tx, w_star + 0.1, **run)
    got = float(res.data["final_value"].reshape(-1)[1])
    np.testing.assert_allclose(got, float(direct.observables["loss"][-1]), rtol=1e-5)
    assert not np.isclose(got, float(other.observables["loss"][-1]), rtol=1e-3)


LEGACY = Path(__file__).parent / "data" / "minibatch-sweep-0.1"
"""A minibatch sweep written by flatter 0.1 (commit ac00d29, float64), whose draw without replacement was a shuffle."""


def test_a_minibatch_sweep_of_flatter_0_1_loads_and_resumes_with_its_own_draw(tmp_path):
    from flatter.sweep import SweepStoreError, load, run_sweep

    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    old = load(folder)
    assert old.spec.sampling == "shuffle"  # read back as the draw that made it, under the digest it was stored with
    assert old.spec.digest == json.loads((folder / "spec.json").read_text())["digest"] == "6ec9f09a3727a18d"
    # Today's default draw is another sweep: refused in that folder, saying how to resume it.
    today = dataclasses.replace(old.spec, sampling="without_replacement")
    assert today.digest != old.spec.digest
    with pytest.raises(SweepStoreError, match="sampling='shuffle' resumes it"):
        run_sweep(today, folder, progress=False)
    # sampling="shuffle" recomputes 0.1's numbers exactly; today's draw gives others from the same keys.
    again = run_sweep(old.spec, tmp_path / "again", progress=False)
    np.testing.assert_array_equal(again.data["final_value"], old.data["final_value"])
    other = run_sweep(today, tmp_path / "today", progress=False)
    assert not np.array_equal(other.data["final_value"], old.data["final_value"])
