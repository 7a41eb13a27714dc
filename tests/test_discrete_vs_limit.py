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
