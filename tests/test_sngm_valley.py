"""SNGM near the valley: the sweep variant against a direct simulation, its limit flow, the driver's numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import toy_spec

import flatter
from flatter.drivers import sngm_valley
from flatter.limit import label_noise_flow, sngm_flow
from flatter.sweep import run_sweep
from flatter.valley import flatten


def test_the_sngm_variant_of_a_sweep_is_label_noise_then_sngm(tmp_path):
    """Run i of an sngm sweep equals simulate(chain(label_noise, sngm)) with the sweep's key for run i."""
    spec = toy_spec(variants=("sgdm", "sngm"), seeds=2, etas=(0.01,), gammas=(1 / 2,))
    res = run_sweep(spec, tmp_path, progress=False)
    problem = flatter.problems.toy_valley()
    beta = float(flatter.momentum_rule(0.01, C=1.0, gamma=1 / 2))
    run = 3  # variant sngm (axis 0 index 1), seed 1
    horizon = int(res.data["horizon"].reshape(-1)[run])
    k_noise, k_sim = jax.random.split(jax.random.fold_in(jax.random.key(spec.seed + 1), run))
    tx = optax.chain(flatter.label_noise(1.0, key=k_noise, mode="one"), flatter.sngm(0.01, beta))
    traj = flatter.simulate(
        problem, tx, problem.init_params(None), steps=horizon, key=k_sim, record_every=horizon // spec.records,
        observables=["abs_y"],
    )  # fmt: skip
    settle = flatter.settling_time(traj.steps, traj.observables["abs_y"], 0.1)
    assert float(res.data["T_settle"].reshape(-1)[run]) == float(settle.time)
    # ... and it is not heavy ball's run (the variant changes the program).
    assert res.data["T_settle"].reshape(-1)[1] != res.data["T_settle"].reshape(-1)[run]


def test_sngm_flow_is_the_label_noise_flow_divided_by_its_noise_energy():
    """-(1/4) grad log tr = label-noise flow / (sigma^2 tr / B): the same path at another speed (matrix sensing)."""
    problem = flatter.problems.make_problem("matrix-sensing", d=8, r=2, n=30)
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(0)))
    theta, fp = flatten(problem, params)
    sigma, b = 0.3, 5
    ours = sngm_flow(problem).drift(fp, theta)
    heavy = label_noise_flow(problem, sigma=sigma, batch_size=b).drift(fp, theta)
    trace = float(problem.gauss_newton_trace(params))
    np.testing.assert_allclose(ours, heavy / (sigma**2 * trace / b), rtol=1e-10)
    assert float(jnp.linalg.norm(ours)) > 0


def test_the_toy_valley_sngm_drift_closed_form():
    """tr∇²L = h(y) = 1 + y^2 on the toy: dy/dt = -(1/4) 2y/(1 + y^2), dx/dt = 0."""
    problem = flatter.problems.toy_valley()
    for y in (-2.0, 0.5, 3.0):
        theta, fp = flatten(problem, jnp.array([0.0, y]))
        np.testing.assert_allclose(sngm_flow(problem).drift(fp, theta), [0.0, -0.5 * y / (1 + y**2)], atol=1e-12)


@pytest.fixture(scope="module")
def toy_summary(tmp_path_factory):
    """The driver's toy-valley study with 6 seeds (the quick preset has 32): about 15 s."""
    import dataclasses

    out = tmp_path_factory.mktemp("sngm")
    specs = [dataclasses.replace(s, seeds=6) for s in sngm_valley.specs("toy-valley", "quick")]
    results = [run_sweep(s, out / s.digest, progress=False) for s in specs]
    flows = sngm_valley.flow_times(specs[-1], results[-1].meta["reference"])
    return sngm_valley.summarize(results, flows)


def test_on_the_toy_sngm_settles_at_the_time_of_its_limit_flow(toy_summary):
    """T eta_eff^2 -> s* of sngm_flow, not t* of heavy ball's flow (they differ by 20% here)."""
    flows = toy_summary["flow_times"]
    assert abs(flows["sngm"] / flows["sgdm"] - 1) > 0.15
    for row in toy_summary["extrapolated"]:
        if row["gamma"] <= 0.5:
            assert row["ratio_at_zero_eta_eff"] == pytest.approx(1.0, abs=0.1), row


def test_on_the_toy_sngm_has_the_exponents_and_gamma_star_of_heavy_ball(toy_summary):
    for row in toy_summary["alpha"]:
        if row["variant"] == "sngm" and row["gamma"] in (0.0, 0.25, 0.5, 2 / 3):
            assert row["alpha"] == pytest.approx(row["predicted"], abs=max(0.1, 3 * row["se"])), row
    gamma_star = toy_summary["gamma_star"]["sngm"]["gamma"]
    assert gamma_star == pytest.approx(2 / 3, abs=0.06)


def test_unknown_problem_is_named():
    with pytest.raises(ValueError, match="problem must be one of"):
        sngm_valley.specs("nope", "quick")
