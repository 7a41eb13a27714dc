"""Power-law fits and optima against synthetic data with known exponents."""

import warnings

import numpy as np
import pytest

from flatter.sweep import optimal_C, optimal_gamma, power_law, vertex


def synthetic(alpha, etas, seeds=16, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return 3.0 * np.asarray(etas)[:, None] ** -alpha * np.exp(noise * rng.normal(size=(len(etas), seeds)))


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 1.3])
def test_recovers_exponent_with_honest_interval(alpha):
    etas = np.geomspace(1e-3, 1e-1, 5)
    hits = 0
    for seed in range(20):
        fit = power_law(etas, synthetic(alpha, etas, seed=seed), n_boot=300, seed=seed)
        assert fit.alpha == pytest.approx(alpha, abs=0.05)
        hits += fit.ci[0] <= alpha <= fit.ci[1]
    assert hits >= 15  # a 95% interval covers the truth in most of 20 independent data sets


def test_censored_points_are_dropped_not_counted_as_converged():
    etas = np.geomspace(1e-3, 1e-1, 5)
    times = synthetic(1.0, etas)
    censored = np.zeros_like(times, bool)
    censored[0, :12] = True  # more than half censored at the smallest eta: the median is unknown
    times[0, :12] = 100.0  # horizon (a lower bound, far below the truth)
    fit = power_law(etas, times, censored)
    assert fit.dropped == 1 and not fit.used[0]
    assert fit.alpha == pytest.approx(1.0, abs=0.05)
    fit_all = power_law(etas[:3], times[:3], censored[:3])
    assert fit_all.used.sum() == 2 and np.isnan(fit_all.alpha)  # too few points: NaN, never a fake number


def test_each_dropped_eta_says_why_and_an_unfitted_row_gives_its_reason():
    etas = np.geomspace(1e-3, 1e-1, 6)
    times = synthetic(1.0, etas, seeds=4)
    censored, diverged = np.zeros_like(times, bool), np.zeros_like(times, bool)
    censored[0, :3] = True  # unfinished within the horizon
    diverged[1, :3] = True  # blew up (the store also marks these censored)
    censored[1, :3] = True
    times[2, 1] = np.nan  # one run without a result yet
    times[3] = 0.0  # met at step 0
    fit = power_law(etas, times, censored, diverged=diverged)
    assert fit.status == ("censored", "diverged", "unfinished", "at start", "used", "used")
    assert fit.dropped_note() == "eta dropped: 1 censored, 1 diverged, 1 unfinished, 1 at start"
    assert np.isnan(fit.alpha)
    assert fit.reason == f"not fitted: 2 of 6 eta usable, 3 needed; {fit.dropped_note()}"
    full = power_law(etas[3:], synthetic(1.0, etas[3:], seeds=4))
    assert full.reason == "" and full.dropped_note() == "" and full.status == ("used",) * 3


def test_optimal_gamma_on_a_v_shape():
    gammas = np.array([0.5, 0.6, 2 / 3, 0.75, 0.85])
    etas = np.geomspace(1e-3, 1e-2, 4)
    alphas = np.where(gammas <= 2 / 3, 2 - 2 * gammas, gammas)
    times = np.stack([synthetic(a, etas, seed=i) for i, a in enumerate(alphas)])
    opt = optimal_gamma(gammas, etas, times, n_boot=100)
    assert 0.6 <= opt.gamma <= 0.75 and opt.ci[0] <= opt.gamma <= opt.ci[1]


def test_vertex_and_optimal_C():
    xs = np.linspace(-1, 1, 9)
    assert vertex(xs, (xs - 0.13) ** 2) == pytest.approx(0.13, abs=1e-9)
    Cs = np.geomspace(0.25, 4, 9)
    times = (1 / Cs + Cs**2 / 2)[:, None] * np.ones((1, 8))  # minimum at C = 1
    assert optimal_C(Cs, times) == pytest.approx(1.0, rel=0.1)


def test_a_gamma_star_at_the_grid_edge_is_printed_as_a_bound():
    from flatter.sweep._summary import gamma_text, interval_text

    grid = (0.5, 0.6, 2 / 3, 0.75, 0.85)
    assert gamma_text(0.85, grid) == ">= 0.850" and gamma_text(0.5, grid) == "<= 0.500"
    assert gamma_text(0.7123, grid) == "0.712" and gamma_text(float("nan"), grid) == "nan"
    # an interval's end on the edge is open: the bootstrap only says the vertex lies beyond it
    assert interval_text(0.63, 0.85, grid) == "[0.63, >= 0.85]" and interval_text(0.5, 0.6, grid) == "[<= 0.50, 0.60]"
    assert interval_text(0.671, 0.702, grid, 3) == "[0.671, 0.702]"


def test_optimal_gamma_without_an_uncensored_median_is_nan_without_a_warning():
    """Every run censored (the cifar10 smoke preset's case): gamma* and its interval are NaN, said once by the
    caller, not by a NumPy RuntimeWarning from the bootstrap."""
    times = np.full((2, 3, 4), 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = optimal_gamma(np.array([0.5, 0.6]), np.array([0.1, 0.2, 0.3]), times, np.ones_like(times, bool))
    assert np.isnan(fit.gamma) and np.all(np.isnan(fit.ci))
