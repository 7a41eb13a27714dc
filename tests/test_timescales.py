"""The analytic predictor against independent computations (docs/theory.md §6.2-6.9)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
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
    """gamma = 0 (plain SGD) on the toy: T = 2 ln(y0/delta) / (eta^2 eps^2) (docs/theory.md §6.7: 29473)."""
    problem = flatter.Problem(
        flatter.problems.toy_valley().predict,
        jnp.ones((1, 1)),
        jnp.zeros((1,)),
        observables={"abs_y": lambda p, th: jnp.abs(th[1])},
        trace_hessian=None,
    )
    exact = 2 * math.log(10) / 0.0125**2
    kwargs = dict(eta=0.0125, beta=0.0, sigma=1.0, observable="abs_y", threshold=0.1)
    flow = timescales.predict_steps(problem, jnp.array([0.0, 1.0]), method="flow", **kwargs)
    assert flow.method == "flow" and not flow.censored
    assert flow.settle == pytest.approx(exact, rel=0.01)
    assert flow.first == pytest.approx(flow.settle, rel=0.01)
    sde = timescales.predict_steps(problem, jnp.array([0.0, 1.0]), **kwargs)  # the default: the reduced SDE
    assert sde.method == "sde" and not sde.censored
    assert sde.settle == pytest.approx(exact, rel=0.04)


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


def numpy_toy_settle(eta, beta, sigma, steps, seeds=64, delta=0.1, seed=0):
    """docs/theory.md §6.7's NumPy toy (h = 1 + y^2, y0 = 1, B = 1): the median settling step of |y| < delta."""
    rng = np.random.default_rng(seed)
    x, y = np.zeros(seeds), np.ones(seeds)
    vx, vy = np.zeros(seeds), np.zeros(seeds)
    last = np.zeros(seeds, int)
    for k in range(steps):
        sh = np.sqrt(1 + y * y)
        res = sh * x - sigma * rng.standard_normal(seeds)
        gx, gy = res * sh, res * x * y / sh
        vx, vy = beta * vx + gx, beta * vy + gy
        x, y = x - eta * vx, y - eta * vy
        last[y * y >= delta**2] = k + 1
    assert np.all(last < steps), "horizon too short for the reference"
    return float(np.median(last))


def test_reduced_sde_predicts_the_large_coupling_case_the_ode_misses():
    """gamma = 2/3, sigma = C = 1 (kappa = 1/4): one transverse mode whose energy is as random as it is large.
    The reduced SDE must land within 10% of an independent NumPy simulation; the reduced ODE (temperature at
    its mean) is off by more than 20% here, so the comparison can fail."""
    eta = 6.4e-4
    beta = 1 - eta ** (2 / 3)
    reference = numpy_toy_settle(eta, beta, 1.0, steps=3000)
    toy = flatter.problems.toy_valley()
    kwargs = dict(eta=eta, beta=beta, sigma=1.0, observable="abs_y", threshold=0.1)
    sde = timescales.predict_steps(toy, toy.init_params(None), **kwargs)
    ode = timescales.predict_steps(toy, toy.init_params(None), method="ode", **kwargs)
    assert sde.settle == pytest.approx(reference, rel=0.10)
    assert abs(ode.settle / reference - 1) > 0.2
    assert sde.model_evaluations <= 64 * 3000 / 50  # >= 50x fewer than the simulation


def test_reduced_sde_without_fluctuations_is_the_critical_ode():
    """fluctuations=False, adiabatic=False at small eta (every mode underdamped, relaxing at rate 1, weight 1): the
    critical reduced ODE of docs/theory.md §6.6, integrated independently by flatter.limit.critical_flow."""
    toy = flatter.problems.toy_valley()
    eta = 1e-6
    beta = 1 - eta ** (2 / 3)  # C = 1: kappa = 1/4
    kappa = float(flatter.limit.critical_kappa(eta=eta, beta=beta, sigma=1.0))
    start = toy.init_params(None)
    ode = flatter.limit.critical_flow(toy, start, kappa=kappa, s1=10.0, ds=0.001, save_every=100, observables=["y"])
    sde = flatter.limit.reduced_sde(
        toy,
        start,
        eta=eta,
        beta=beta,
        sigma=1.0,
        key=jax.random.key(0),
        s1=10.0,
        ds=0.01,
        seeds=1,
        save_every=10,
        observables=["y"],
        fluctuations=False,
        adiabatic=False,  # the §6.6 ODE has no adiabatic compression of the temperature
    )
    np.testing.assert_allclose(sde.observables["y"][0], ode.observables["y"], atol=2e-3)
    assert float(jnp.min(ode.observables["y"])) < 0.5  # it moved: the comparison is not of two constants


def test_predict_grid_flags_unstable_points_and_keeps_stable_ones():
    toy = flatter.problems.toy_valley()  # h = 2 at y = 1: eta h > 2(1 + beta) for eta = 2.5, beta = 0
    grid = timescales.predict_grid(
        toy, toy.init_params(None), eta=[2.5, 0.01], beta=[0.0, 0.9], sigma=1.0, observable="abs_y", threshold=0.1
    )
    assert grid.stable.tolist() == [False, True]
    assert np.isinf(grid.settle[0]) and grid.censored[0]
    assert np.isfinite(grid.settle[1]) and not grid.censored[1]
    assert grid.settle_samples.shape == (2, 48)


@pytest.mark.heavy
def test_predict_spec_on_a_users_problem_gives_the_registered_problems_numbers_and_gamma_star_near_two_thirds():
    """sweep.predict_spec on the toy quick grid (kappa = 1/4: the underdamped side of the regime map) predicts
    gamma* within 0.05 of 2/3 at the smallest eta (a physics claim that fails for an overdamped setting, see
    the next assertion), and a Problem built in a notebook from the same predict function gets the same numbers."""
    # The toy quick preset's grid (flatter scaling --problem toy-valley), written out as a user would.
    spec = flatter.sweep.SweepSpec(
        problem="toy-valley",
        gammas=(0.5, 0.6, 2 / 3, 0.75, 0.85),
        etas=(0.01, 0.004, 0.0016, 0.00064),
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        label_noise_mode="one",
        seeds=32,
        max_steps=2**16,
    )
    registered = flatter.sweep.predict_spec(spec, seeds=16, extra_decades=0)
    assert abs(registered.gamma_star[-1] - 2 / 3) < 0.05
    assert registered.overshoot > 1.05  # settling waits for the overshoot at gamma = 2/3
    base = flatter.problems.toy_valley()
    mine = flatter.Problem(base.predict, base.inputs, base.targets, observables={"abs_y": lambda p, th: jnp.abs(th[1])})
    fields = {f: getattr(spec, f) for f in ("gammas", "etas", "observable", "threshold", "phase1", "label_noise_mode")}
    users = flatter.sweep.predict_spec(
        flatter.sweep.SweepSpec.for_problem(mine, **fields), mine, jnp.array([0.0, 1.0]), seeds=16, extra_decades=0
    )
    np.testing.assert_allclose(users.settle, registered.settle, rtol=1e-6)
    # sigma = 0.1 (kappa = 0.0025): the creeping side, where the settling T keeps falling with gamma up to the edge
    import dataclasses

    creeping = flatter.sweep.predict_spec(dataclasses.replace(spec, sigmas=(0.1,)), seeds=16, extra_decades=0)
    assert creeping.overshoot < 1.05 and creeping.gamma_star[-1] > 0.75


def test_the_noise_batch_is_one_rule_so_two_specs_of_the_same_dynamics_predict_the_same_times():
    """A full batch of n = 2 noised labels, asked for as batch_sizes=(n,) or as label_noise_mode="all", is one
    dynamics (B = n): the same kappa and settling times; one noised label (B = 1) doubles kappa and the drift."""
    from helpers import diagonal_network

    problem, start = diagonal_network()
    grid = dict(gammas=(0.5, 2 / 3), etas=(0.02,), observable="trace_hessian", threshold=0.8,
                relative_threshold=True, phase1=False, seeds=4, max_steps=2**16)  # fmt: skip
    specs = {
        "minibatch of n": flatter.sweep.SweepSpec.for_problem(problem, batch_sizes=(2,), **grid),
        "all labels": flatter.sweep.SweepSpec.for_problem(problem, label_noise_mode="all", **grid),
        "one label": flatter.sweep.SweepSpec.for_problem(problem, label_noise_mode="one", **grid),
    }
    predicted = {
        name: flatter.sweep.predict_spec(s, problem, start, seeds=8, extra_decades=0) for name, s in specs.items()
    }
    assert predicted["minibatch of n"].kappa == predicted["all labels"].kappa
    np.testing.assert_allclose(predicted["minibatch of n"].settle, predicted["all labels"].settle, rtol=0.1)
    assert predicted["one label"].kappa == pytest.approx(2 * predicted["all labels"].kappa)
    # At gamma = 1/2 the drift along the valley sets T, and the drift is sigma^2/(4B) grad tr: half the time.
    np.testing.assert_allclose(predicted["one label"].settle[0], predicted["all labels"].settle[0] / 2, rtol=0.1)


def test_a_stored_prediction_is_read_back_and_not_recomputed(tmp_path, monkeypatch):
    spec = flatter.sweep.SweepSpec(
        problem="toy-valley", gammas=(0.5, 2 / 3), etas=(0.01, 0.004), observable="abs_y", threshold=0.1,
        phase1=False, seeds=2, max_steps=2**12,
    )  # fmt: skip
    first = flatter.sweep.predict_spec(spec, seeds=4, extra_decades=0, store=tmp_path)
    assert len(list(tmp_path.glob("prediction-*.json"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the stored prediction was recomputed")

    monkeypatch.setattr(flatter.sweep._predict, "predict_grid", refuse)
    again = flatter.sweep.predict_spec(spec, seeds=4, extra_decades=0, store=tmp_path)
    for name in ("settle", "first", "gamma_star", "gamma_star_ci", "etas"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert again.kappa == first.kappa and again.gammas == first.gammas
    # Other arguments are another prediction: computed, not read.
    with pytest.raises(AssertionError, match="recomputed"):
        flatter.sweep.predict_spec(spec, seeds=8, extra_decades=0, store=tmp_path)


def test_the_grid_program_compiles_once_and_its_traced_length_integrates_the_same_path():
    from flatter.limit._reduced_sde import paths_function, reduced_hyperparameters

    toy = flatter.problems.toy_valley()
    start = jnp.array([0.0, 1.0])
    names = toy.resolve_observables(["abs_y"])
    hyper = reduced_hyperparameters(1e-3, 1 - 1e-2, 1.0, 1, 0.5)
    key = jax.random.key(3)
    static = jax.jit(paths_function(names, 12, 1, 2, True, 2, 4))(toy, start, key, hyper)["abs_y"]
    traced = jax.jit(paths_function(names, 32, 1, 2, True, 2, 4, traced_saves=True))(toy, start, key, hyper, 12)
    np.testing.assert_array_equal(traced["abs_y"][:, : 12 * 4 + 1], static)  # the same steps and noise
    assert (traced["abs_y"][:, 12 * 4 + 1 :] == static[:, -1:]).all()  # then the last record, repeated
    # A grid whose points need different step counts (refinements) and horizons (doublings): one program.
    eta = np.array([1e-2, 4e-3, 1.6e-3, 6.4e-4])
    gamma = np.array([0.5, 2 / 3, 0.85])[:, None]
    grid = flatter.timescales.predict_grid(
        toy, start, eta=eta, beta=1 - eta**gamma, sigma=1.0, observable="abs_y", threshold=0.1, seeds=4,
        key=jax.random.key(11),
    )  # fmt: skip
    assert len(set(grid.point_evaluations.tolist())) > 2
    program = flatter.timescales._jitted_grid(names, 32 << flatter.timescales.MAX_REFINE, 4, True, True)
    assert program._cache_size() == 1


def test_the_reduced_sde_decomposes_the_smaller_gram_matrix_and_integrates_the_same_paths():
    """Matrix sensing with N = 60 outputs and p = 16 parameters: J^T J/n (16 x 16) gives the paths J J^T/n does."""
    from flatter.limit._reduced_sde import paths_function, reduced_hyperparameters

    problem = flatter.problems.matrix_sensing(8, 2, 60, key=jax.random.key(0))
    start, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
    names = problem.resolve_observables(["recovery_error", "trace_hessian"])
    hyper = reduced_hyperparameters(4e-3, 1 - 0.35 * 4e-3 ** (2 / 3), 0.1, 1, 0.05)
    args = (names, 8, 2, 3, True, 2)
    small = jax.jit(paths_function(*args))(problem, start, jax.random.key(4), hyper)
    outputs = jax.jit(paths_function(*args, decompose="outputs"))(problem, start, jax.random.key(4), hyper)
    for name in small:
        assert np.ptp(np.asarray(outputs[name])) > 0  # the paths move: the comparison can fail
        np.testing.assert_allclose(small[name], outputs[name], rtol=1e-5, atol=1e-7)


def test_a_criterion_within_the_noise_floor_is_flagged_with_a_threshold_that_clears_it():
    from flatter.sweep import PredictedScaling
    from flatter.sweep._predict import FLOOR_MARGIN

    floor = np.array([[0.05, 0.06], [0.14, 0.16]])  # (gamma, eta): the floor rises with gamma
    common = dict(
        gammas=(0.5, 0.85), etas=np.array([0.01, 0.001]), settle=np.ones((2, 2)), first=np.ones((2, 2)),
        gamma_star=np.full(2, 0.6), gamma_star_ci=np.full((2, 2), 0.6), kappa=0.1, overshoot=1.0,
        model_evaluations=1, wall_seconds=0.0, floor=floor,
    )  # fmt: skip
    low = PredictedScaling(**common, threshold=0.2, below=True)
    # threshold / (1 + margin) = 0.133: the two points at gamma = 0.85, which the 0.2 threshold does not clear by 1.5x
    assert FLOOR_MARGIN == 0.5
    assert low.floor_problems() == [(0.85, 0.01, 0.14), (0.85, 0.001, 0.16)]
    assert low.floor_problems(etas=[0.01]) == [(0.85, 0.01, 0.14)]
    assert PredictedScaling(**common, threshold=0.085, below=True).floor_problems() == [
        (0.5, 0.001, 0.06), (0.85, 0.01, 0.14), (0.85, 0.001, 0.16),
    ]  # fmt: skip
    suggested = low.suggested_threshold()  # beyond 1.5 x 0.16 = 0.24, two digits
    assert suggested == pytest.approx(0.25)
    assert PredictedScaling(**common, threshold=suggested, below=True).floor_problems() == []
    # An "above" criterion: the floor must sit 1.5x below the threshold.
    high = PredictedScaling(**common, threshold=0.1, below=False)
    assert high.floor_problems() == [(0.5, 0.01, 0.05), (0.5, 0.001, 0.06), (0.85, 0.01, 0.14)]
    assert high.suggested_threshold() == pytest.approx(0.033)  # below 0.05 / 1.5
    assert PredictedScaling(**common, threshold=0.033, below=False).floor_problems() == []
    # The record keeps the floor: read back, the same verdict.
    assert PredictedScaling.from_summary(low.summary()).floor_problems() == low.floor_problems()


def test_a_stiff_point_is_refined_not_censored_and_its_first_passage_matches_the_simulation():
    """The diagonal network at gamma = 0.85, eta = 1e-5 (kappa = 56 there): Hess_Gamma tr is far from isotropic,
    so the step the predictor first takes, sized by kappa |grad tr|^2 / tr, is too coarse and its paths come back
    non-finite. It must refine them, not report a censored time: the first passage of tr@valley below 2.45 (from
    3.97; 2.28 at the flat end) is then the simulated median's within 15 % (64 seeds of SGDM-LN each; both
    medians carry ~5 % sampling error)."""
    from helpers import diagonal_network

    problem, start = diagonal_network()
    eta, beta, sigma, batch = 1e-5, 1 - 1.077 * 1e-5**0.85, 1.0, 2  # kappa = sigma^2 / (4 B C^3) = 0.1 at 2/3
    criterion = dict(observable="trace_hessian@valley", threshold=2.45)
    grid = flatter.timescales.predict_grid(
        problem, start, eta=eta, beta=beta, sigma=sigma, batch_size=batch, seeds=64, **criterion
    )
    assert not grid.unresolved[0] and np.isfinite(grid.first[0])

    def first_passage(key):
        k1, k2 = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(sigma, key=k1), flatter.heavy_ball(eta, beta))  # every label: B = n
        traj = flatter.simulate(
            problem, tx, start, steps=80_000, key=k2, record_every=100, observables=[criterion["observable"]]
        )
        return flatter.first_passage(traj.steps, traj.observables[criterion["observable"]], criterion["threshold"])

    simulated = jax.jit(jax.vmap(first_passage))(jax.random.split(jax.random.key(1), 64))
    assert simulated.censored.mean() < 0.25  # a few runs wander off first (the median is a real value)
    assert grid.first[0] == pytest.approx(float(np.median(simulated.time)), rel=0.15)


def test_the_reduced_sde_rings_down_at_its_friction_in_float32_at_small_steps():
    """flatter's default dtype is float32. At eta = 1e-6, gamma = 0.85 the grid steps with ds ~ 1e-4; the step's
    displacement carries the force with weight ds - (1 - e^{-ds}) ~ ds^2/2 = 5e-9, below the rounding of a float32
    e^{-ds} (3e-8), and computed from it that weight was noise of the wrong sign: the ring along the valley decayed
    at rate 0.28 instead of 1/2 per unit s (the mean paths settled ~20% late). Deterministic paths
    (fluctuations=False): the envelope of |y| over s in [7, 8] in float32 must be float64's within 10% (it was 3.7x
    float64's)."""
    eta = 1e-6
    beta = 1 - 2 ** (-1 / 3) * eta**0.85

    def late_envelope(x64):
        with jax.enable_x64(x64):
            dtype = jnp.float64 if x64 else jnp.float32
            toy = flatter.problems.toy_valley()  # its data in this precision
            sol = flatter.limit.reduced_sde(
                toy, jnp.array([0.0, 1.0], dtype), eta=eta, beta=beta, sigma=1.0, key=jax.random.key(0), s1=8.0,
                ds=1e-4, seeds=1, save_every=10, observables=["abs_y"], fluctuations=False,
            )  # fmt: skip
            values = sol.observables["abs_y"][0]
            assert values.dtype == dtype
            return float(values[np.asarray(sol.ts) >= 7.0].max())

    single, double = late_envelope(False), late_envelope(True)
    assert double == pytest.approx(np.exp(-7 / 2) * 0.5, rel=0.5)  # rings down at e^{-s/2}: the check has teeth
    assert single == pytest.approx(double, rel=0.10)


def test_the_grid_steps_an_underdamped_oscillation_finely_enough_for_the_noise_that_pumps_it(monkeypatch):
    """The toy at gamma = 0.85, eta = 1e-4, C = 2^(-1/3) (kappa = 79 there: the motion along the valley rings at
    omega = 12.6 per unit s). The random temperature and the label-noise kick pump that ring at 2 omega, and a step
    of omega ds ~ 0.3 (enough for the deterministic ring, which is converged there) filters the pumping out, so the
    paths settle ~15% early. The grid's settling time (in s) must be the reduced SDE's own at omega ds = 0.013
    within 7% (512 paths each: ~3% sampling error apiece); with the old step (NOISE_STEP unbounded) it is more
    than 12% early, so the comparison can fail. (Against the discrete iterates: benchmarks/predict_vs_simulate.py,
    the toy's rows.)"""
    toy = flatter.problems.toy_valley()
    eta = 1e-4
    a = 2 ** (-1 / 3) * eta**0.85
    kwargs = dict(eta=eta, beta=1 - a, sigma=1.0)
    fine = flatter.limit.reduced_sde(
        toy, toy.init_params(None), **kwargs, key=jax.random.key(0), s1=16.0, ds=1e-3, seeds=512, save_every=10,
        observables=["abs_y"],
    )  # fmt: skip
    settled = flatter.settling_time(fine.ts, fine.observables["abs_y"], 0.1)
    assert settled.censored.mean() < 0.05  # the few still ringing at s = 16 count there: the median is real
    reference = float(np.median(settled.time))

    def grid_settle():
        grid = timescales.predict_grid(
            toy, toy.init_params(None), **kwargs, observable="abs_y", threshold=0.1, seeds=512, key=jax.random.key(1)
        )
        return float(grid.settle[0]) * a

    assert grid_settle() == pytest.approx(reference, rel=0.07)
    monkeypatch.setattr(timescales, "NOISE_STEP", math.inf)
    assert grid_settle() < 0.88 * reference


def test_the_temperature_is_compressed_adiabatically_as_the_valley_is_crossed():
    """Above gamma = 2/3 the toy's y crosses from h = 2 to h ~ 1.2 in s ~ 0.5, fast against the temperature's
    relaxation (rate 1) and slow against the transverse oscillation, so the transverse action is conserved and x^2
    rises by ~sqrt(h_before / h). The mean loss 1/2 h x^2 over s in [0.45, 0.55] from the reduced SDE is the NumPy
    recurrence's (8192 seeds; THEORY §6.7's minimal re-implementation) within 6 %; without the adiabatic term it is
    ~14 % low (each mean has a ~1.5 % standard error)."""
    eta, sigma, beta = 1e-4, 1.0, 1 - 1e-4**0.85  # C = 1: kappa = 1/4 at gamma = 2/3
    window = np.arange(int(0.45 / (1 - beta)), int(0.55 / (1 - beta)))
    rng = np.random.default_rng(0)
    x, y, vx, vy = np.zeros(8192), np.ones(8192), np.zeros(8192), np.zeros(8192)
    losses = []
    for k in range(window[-1] + 1):  # heavy ball on f = sqrt(1 + y^2) x, one noised label per step
        sh = np.sqrt(1 + y * y)
        residual = sh * x - sigma * rng.standard_normal(x.size)
        vx, vy = beta * vx + residual * sh, beta * vy + residual * x * y / sh
        x, y = x - eta * vx, y - eta * vy
        if k + 1 >= window[0]:
            losses.append(np.mean(0.5 * (1 + y * y) * x * x))
    simulated = float(np.mean(losses))

    toy = flatter.problems.toy_valley()

    def reduced(adiabatic):
        sol = flatter.limit.reduced_sde(
            toy, toy.init_params(None), eta=eta, beta=beta, sigma=sigma, key=jax.random.key(0), s1=0.55, ds=0.005,
            seeds=4096, observables=["loss"], adiabatic=adiabatic,
        )  # fmt: skip
        return float(np.mean(np.asarray(sol.observables["loss"])[:, np.asarray(sol.ts) >= 0.45 - 1e-9]))

    assert reduced(True) == pytest.approx(simulated, rel=0.06)
    assert reduced(False) < 0.92 * simulated  # the comparison can fail: the term is what closes the gap
