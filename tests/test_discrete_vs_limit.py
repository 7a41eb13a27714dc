"""Seed-averaged SGDM with label noise converges to the limit flow as eta -> 0 (time t = eta_eff^2 k).

The order is fitted on a log-log plot of the largest discrepancy over the trajectory against eta, at
beta = 0 and at a fixed beta = 0.9; the test asserts it is clearly positive and prints it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatter


def fitted_order(problem, params, etas, beta, **kwargs):
    errs = []
    for eta in etas:
        c = flatter.compare(problem, params, eta=eta, beta=beta, key=jax.random.key(0), **kwargs)
        assert c.diverged == 0
        errs.append(c.max_discrepancy)
    order = float(np.polyfit(np.log(etas), np.log(errs), 1)[0])
    print(f"\n{problem.name} beta={beta}: eta={etas} max discrepancy={np.round(errs, 4)} order={order:.2f}")
    return order, errs


@pytest.mark.parametrize("beta,etas", [(0.0, [0.04, 0.02, 0.01]), (0.9, [0.004, 0.002, 0.001])])
def test_toy_valley(beta, etas):
    problem = flatter.problems.toy_valley()
    order, errs = fitted_order(
        problem, jnp.array([0.0, 1.0]), etas, beta, sigma=1.0, t1=2.0, seeds=256, records=20, observable="y"
    )
    assert order > 0.7
    assert errs[-1] < 0.01  # y moves from 1 to exp(-1) over t = 2


@pytest.mark.parametrize("beta,etas", [(0.0, [0.01, 0.005, 0.0025]), (0.9, [0.001, 0.0005, 0.00025])])
def test_matrix_sensing(beta, etas):
    problem = flatter.problems.matrix_sensing(10, 1, 20, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
    order, errs = fitted_order(
        problem,
        params,
        etas,
        beta,
        sigma=1.0,
        t1=0.1,
        seeds=32,
        records=10,
        observable="trace_hessian",
        batch_size=1,
    )
    assert order > 0.5
    assert errs[-1] < 0.1 * 137  # tr Hess L falls from 137 to 43 over t = 0.1


def test_the_limit_error_is_reported_and_kept_below_the_discrepancy():
    """With few records the old fixed limit step had more Euler error than the discrepancy it measured."""
    problem = flatter.problems.toy_valley()
    start = jnp.array([0.0, 1.0])
    c = flatter.compare(
        problem,
        start,
        eta=0.001,
        beta=0.9,
        sigma=1.0,
        t1=2.0,
        seeds=256,
        records=4,
        observable="y",
        key=jax.random.key(0),
        limit_substeps=1,
    )
    # An independent reference: the same flow with 4096 Euler steps per record.
    flow = flatter.limit.label_noise_flow(problem, sigma=1.0, batch_size=1)
    dt = 0.5 / 4096
    ref = flatter.limit.integrate(problem, flow, start, t1=2.0, dt=dt, save_every=4096, observables=["y"])
    true_error = np.abs(np.asarray(c.limit) - np.asarray(ref.observables["y"]))
    assert c.limit_substeps > 1  # the step was refined
    assert np.max(true_error) <= 2 * float(np.max(c.limit_error)) + 1e-12  # the estimate is honest
    assert np.max(true_error) < 0.2 * c.max_discrepancy  # and the discrepancy is the dynamics', not Euler's


def test_further_observables_ride_along_and_the_order_fit_leaves_out_the_noise_floor():
    """``also=`` reads more observables on the same runs and limit paths (the toy's x stays 0 on both sides, and y
    is the Comparison of ``observable="y"``); discrepancy_order fits the log-log slope of the resolved points only,
    and a point whose discrepancy is within 2 standard errors is reported, not fitted."""
    problem = flatter.problems.toy_valley()
    start = jnp.array([0.0, 1.0])
    kwargs = dict(beta=0.0, sigma=1.0, t1=2.0, key=jax.random.key(0), seeds=64, records=10)
    comps = [flatter.compare(problem, start, eta=eta, observable="y", also=["x"], **kwargs) for eta in (0.04, 0.02)]
    alone = flatter.compare(problem, start, eta=0.04, observable="y", **kwargs)
    np.testing.assert_array_equal(comps[0].limit, alone.limit)
    np.testing.assert_array_equal(comps[0].discrete, alone.discrete)
    x = comps[0].also["x"]
    assert x.observable == "x" and x.discrete.shape == comps[0].discrete.shape
    assert float(jnp.max(jnp.abs(x.limit))) == 0.0 and float(jnp.max(jnp.abs(x.discrete_mean))) > 0.0
    fit = flatter.discrepancy_order(comps)
    errs = [c.max_discrepancy for c in comps]
    assert fit.resolved.all()
    assert fit.order == pytest.approx(np.log(errs[0] / errs[1]) / np.log(2), rel=1e-9)  # two points: the slope
    assert fit.interval[0] < fit.order < fit.interval[1]
    floor = comps[1]._replace(discrepancy_stderr=comps[1].discrepancy)  # as if the seeds could not resolve it
    third = flatter.compare(problem, start, eta=0.01, observable="y", **kwargs)
    partial = flatter.discrepancy_order([comps[0], floor, third])
    assert partial.resolved.tolist() == [True, False, True] and "1 point(s) at the noise floor" in str(partial)
    with pytest.raises(ValueError, match="also must not repeat"):
        flatter.compare(problem, start, eta=0.04, observable="y", also=["y"], **kwargs)


def test_several_step_sizes_share_one_limit_path_refined_for_the_smallest_discrepancy():
    """compare_step_sizes runs each eta's discrete runs exactly as compare does and integrates the limit once per
    record interval: the shared path is the one compare refines for the step size with the smallest discrepancy (the
    most substeps). At eta = 0.04, t1/eta^2 = 1250 steps is no multiple of 4 records, so its records fall at other
    times (every 312 steps) and it keeps a path of its own."""
    problem = flatter.problems.toy_valley()
    start = jnp.array([0.0, 1.0])
    kwargs = dict(beta=0.0, sigma=1.0, t1=2.0, key=jax.random.key(0), seeds=32, records=4, observable="y")
    etas = (0.04, 0.01, 0.005)  # alone, the limit is refined to 2, 4 and 8 Heun steps a record
    shared = flatter.compare_step_sizes(problem, start, etas=etas, limit_substeps=1, **kwargs)
    alone = [flatter.compare(problem, start, eta=eta, limit_substeps=1, **kwargs) for eta in etas]
    assert [c.limit_substeps for c in alone] == [2, 4, 8]
    for s, a in zip(shared, alone, strict=True):
        assert s.eta == a.eta
        np.testing.assert_array_equal(s.discrete, a.discrete)
        np.testing.assert_array_equal(s.t, a.t)
        assert float(jnp.max(s.limit_error)) <= 0.1 * s.max_discrepancy
    assert float(shared[0].t[1]) == pytest.approx(312 * 0.04**2)
    np.testing.assert_array_equal(shared[0].limit, alone[0].limit)  # its own path
    for s in shared[1:]:  # one path for eta = 0.01 and 0.005, refined as 0.005's
        np.testing.assert_array_equal(s.limit, alone[2].limit)
        assert s.limit_substeps == 8
    with pytest.raises(ValueError, match="etas"):
        flatter.compare_step_sizes(problem, start, etas=(0.02, 0.0), **kwargs)


def test_the_flow_runs_on_a_network_with_more_parameters_than_the_dense_projector_took():
    """Above 2,048 parameters the projector used to be CG on JJ^T, which stalled at a network's fitted point and
    failed inside lineax; it is now chosen as the Gauss-Newton steps are (dense least squares while the Jacobian is
    small), and its drift is tangent: J b = 0 to rounding."""
    from flax import nnx

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 40)))
    y = jax.nn.one_hot(np.arange(12) % 10, 10, dtype=x.dtype)
    problem, params = flatter.Problem.from_flax(flatter.models.MLP(40, 10, width=40, depth=3, rngs=nnx.Rngs(0)), x, y)
    params = jax.tree.map(lambda leaf: leaf.astype(x.dtype), params)
    start, _ = flatter.interpolate(problem, params)
    theta, fp = flatter.valley.flatten(problem, start)
    assert theta.size > 2048
    drift = flatter.limit.label_noise_flow(problem, sigma=1.0, batch_size=12).drift(fp, theta)
    normal = jax.jvp(fp.residual, (theta,), (drift,))[1]
    scale = float(jnp.linalg.norm(fp.jacobian(theta), 2)) * float(jnp.linalg.norm(drift))
    assert scale > 0 and float(jnp.linalg.norm(normal)) < 1e-4 * scale  # float32
