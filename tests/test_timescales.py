"""The analytic predictor against independent computations (THEORY.md §6.2-6.9)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from test_stationary_variance import measure

import flatter
from flatter import timescales


def geometry_of(h):
    return timescales.ValleyGeometry(jnp.asarray([h]), jnp.zeros((1, 2)))


@pytest.mark.parametrize(
    "eta,beta,h", [(0.01, 0.99, 1.0), (0.1, 0.0, 2.0), (0.001, 0.5, 3.0), (0.3, 0.9, 5.0), (0.05, 0.8, 0.2)]
)
def test_tau1_is_read_off_the_iteration_matrix(eta, beta, h):
    """Variance relaxes like rho^(2k), rho the spectral radius of [[1+beta-eta h, -beta], [1, 0]]."""
    rho = max(abs(np.linalg.eigvals(np.array([[1 + beta - eta * h, -beta], [1.0, 0.0]]))))
    ts = timescales.predict_timescales(geometry_of(h), eta=eta, beta=beta, sigma=1.0)
    assert ts.tau1 == pytest.approx(-1 / (2 * math.log(rho)), rel=1e-9)


def test_tau1_asymptotic_regimes():
    under = timescales.predict_timescales(geometry_of(1.0), eta=0.01, beta=0.999, sigma=1.0)
    assert bool(under.underdamped[0]) and under.tau1 == pytest.approx(1 / 0.001, rel=0.01)
    over = timescales.predict_timescales(geometry_of(1.0), eta=1e-4, beta=0.0, sigma=1.0)
    assert not bool(over.underdamped[0]) and over.tau1 == pytest.approx(1 / (2e-4), rel=0.01)


def test_stability_boundary():
    assert timescales.predict_timescales(geometry_of(1.0), eta=3.7, beta=0.9, sigma=1.0).stable
    assert not timescales.predict_timescales(geometry_of(1.0), eta=3.9, beta=0.9, sigma=1.0).stable


def test_stationary_variance_equals_simulated():
    eta, beta, h, eps = 0.05, 0.9, 2.0, 0.5
    ts = timescales.predict_timescales(geometry_of(h), eta=eta, beta=beta, sigma=eps)
    mean, se = measure(eta, beta, h, eps, seed=3)
    assert abs(mean - float(ts.variance[0])) < 4 * se + 0.01 * mean
    assert ts.plateau_loss == pytest.approx(h * float(ts.variance[0]) / 2)


def test_geometry_and_drift_on_toy():
    problem = flatter.problems.toy_valley()
    geo = timescales.measure_geometry(problem, jnp.array([0.0, 0.5]))
    np.testing.assert_allclose(geo.curvatures, [1.25])
    np.testing.assert_allclose(geo.trace_gradient, [0.0, 1.0], atol=1e-12)
    eta, beta, sigma = 1e-4, 0.5, 1.0
    ts = timescales.predict_timescales(geo, eta=eta, beta=beta, sigma=sigma, distance=0.5)
    # Small eta: v = -(eta_eff^2 sigma^2 / 4) grad tr = what the flow gives per step.
    eta_eff = eta / (1 - beta)
    np.testing.assert_allclose(ts.drift_velocity, [0.0, -(eta_eff**2) / 4], rtol=1e-4)
    assert ts.tau2 == pytest.approx(0.5 / (eta_eff**2 / 4), rel=1e-4)
    assert ts.regime == "adiabatic"


def test_predicted_steps_match_the_adiabatic_closed_form():
    """gamma = 0 (plain SGD) on the toy: T = 2 ln(y0/delta) / (eta^2 eps^2) (THEORY §6.7: 29473)."""
    problem = flatter.Problem(
        flatter.problems.toy_valley().predict,
        jnp.ones((1, 1)),
        jnp.zeros((1,)),
        observables={"abs_y": lambda p, th: jnp.abs(th[1])},
        trace_hessian=None,
    )
    pred = timescales.predict_steps(
        problem, jnp.array([0.0, 1.0]), eta=0.0125, beta=0.0, sigma=1.0, observable="abs_y", threshold=0.1
    )
    assert pred.method == "flow" and not pred.censored
    assert pred.settle == pytest.approx(2 * math.log(10) / 0.0125**2, rel=0.01)
    assert pred.first == pytest.approx(pred.settle, rel=0.01)


def test_alpha_is_v_shaped():
    g = jnp.array([0.0, 0.25, 0.5, 0.6, 2 / 3, 0.75, 0.85])
    np.testing.assert_allclose(timescales.alpha(g), [2.0, 1.5, 1.0, 0.8, 2 / 3, 0.75, 0.85], rtol=1e-6)
    np.testing.assert_allclose(timescales.alpha(g, "first")[4:], 2 / 3, rtol=1e-6)
    assert int(jnp.argmin(timescales.alpha(g))) == 4


def test_predict_steps_says_when_the_point_is_unstable():
    """eta h_max > 2(1 + beta): heavy ball diverges; the predictor must not return a finite time."""
    problem = flatter.problems.toy_valley()  # h = 1 + y^2 = 2 at y = 1
    start = jnp.array([0.0, 1.0])
    bad = flatter.timescales.predict_steps(
        problem, start, eta=2.5, beta=0.0, sigma=1.0, observable="abs_y", threshold=0.1
    )
    assert not bad.stable and bad.method == "unstable" and bad.censored
    assert bad.settle == float("inf") and bad.first == float("inf")
    good = flatter.timescales.predict_steps(
        problem, start, eta=0.01, beta=0.9, sigma=1.0, observable="abs_y", threshold=0.1
    )
    assert good.stable and np.isfinite(good.settle)
