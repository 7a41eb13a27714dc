"""The critical-regime reduced ODE at gamma = 2/3 against simulations of the toy (docs/theory.md §6.6-6.7)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flatter
from flatter import limit, timescales

ABS_Y = {"abs_y": lambda problem, theta: jnp.abs(theta[1])}


def toy():
    base = flatter.problems.toy_valley()
    return flatter.Problem(
        base.predict, base.inputs, base.targets, observables=ABS_Y, trace_hessian=base.trace_hessian_fn
    )


def reduced_ode_settle(C, eps, delta=0.1):
    sol = limit.critical_flow(
        toy(), jnp.array([0.0, 1.0]), kappa=eps**2 / (4 * C**3), s1=200.0, ds=0.01, observables=["abs_y"]
    )
    settle = flatter.settling_time(sol.ts, sol.observables["abs_y"], delta)
    assert not bool(settle.censored)
    return float(settle.time) / C  # = T eta^(2/3)


def simulated_settle(eta, C, eps, seeds=128, delta=0.1):
    beta = float(flatter.momentum_rule(eta, C=C, gamma=2 / 3))
    horizon = int(4 * 20 / (C * eta ** (2 / 3)))
    horizon -= horizon % 10
    problem = toy()

    def run(key):
        k1, k2 = jax.random.split(key)
        tx = optax.chain(flatter.label_noise(eps, key=k1), flatter.heavy_ball(eta, beta))
        traj = flatter.simulate(
            problem, tx, jnp.array([0.0, 1.0]), steps=horizon, key=k2, record_every=10, observables=["abs_y"]
        )
        return flatter.settling_time(traj.steps, traj.observables["abs_y"], delta)

    t = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), seeds))
    assert not np.any(t.censored)
    return float(np.median(t.time)) * eta ** (2 / 3)


def test_reduced_ode_reproduces_theory_table():
    # docs/theory.md §6.7 brackets: [18.1] (eps 0.5, C 1), [10.8] (eps 0.5, C 0.5), [4.9] (eps 1, C 1).
    assert reduced_ode_settle(1.0, 0.5) == pytest.approx(18.1, abs=0.1)
    assert reduced_ode_settle(0.5, 0.5) == pytest.approx(10.8, abs=0.1)
    assert reduced_ode_settle(1.0, 1.0) == pytest.approx(4.9, abs=0.1)


def test_reduced_ode_matches_simulation_as_eta_shrinks():
    """T_settle eta^(2/3) is eta-independent at gamma = 2/3 and tends to the ODE's s*/C.

    kappa = 0.5 (C = 0.5): a visible finite-eta gap (about 20% at eta = 0.1) that closes as eta shrinks.
    kappa = 0.0625 (C = 1): within a few percent already (docs/theory.md §6.7: 18.1 [18.1]). Medians over 128
    seeds (statistical error of the median about 3%).
    """
    ode = reduced_ode_settle(0.5, 0.5)
    gaps = {eta: abs(simulated_settle(eta, 0.5, 0.5) - ode) / ode for eta in (0.1, 0.0016)}
    print(f"\nkappa=0.5: reduced ODE {ode:.2f}, relative gaps {gaps}")
    assert gaps[0.0016] < 0.15
    assert gaps[0.0016] < gaps[0.1] - 0.03
    ode = reduced_ode_settle(1.0, 0.5)
    for eta in (0.01, 0.0016):
        assert abs(simulated_settle(eta, 1.0, 0.5) - ode) / ode < 0.08


def test_optimal_C_scales_as_eps_to_two_thirds():
    eps = np.array([0.5, 1.0, 2.0])
    best = []
    for e in eps:
        c_star, _, _ = timescales.predict_optimal_C(
            toy(),
            jnp.array([0.0, 1.0]),
            sigma=float(e),
            observable="abs_y",
            threshold=0.1,
            Cs=np.geomspace(0.3, 3.0, 41),
            s1=200.0,
        )
        best.append(c_star)
    slope = np.polyfit(np.log(eps), np.log(best), 1)[0]
    assert slope == pytest.approx(2 / 3, abs=0.1)
    assert best[1] == pytest.approx(1.0, rel=0.2)  # docs/theory.md §6.7: C* ~ 1 at eps = 1


@pytest.mark.parametrize("zeta", [0.6, 1.4])
def test_the_damping_ratio_says_whether_the_critical_flow_overshoots_the_flat_point(zeta):
    """On the toy (tr = 1 + y^2: lambda = 2 exactly, the ODE y'' + y' = -2 kappa u y is linear) the flow crosses the
    flat point y = 0 iff zeta = 1/(2 sqrt(kappa lambda)) < 1; flatter.limit.regime reads lambda off the valley."""
    toy = flatter.problems.toy_valley()
    start = jnp.array([0.0, 1.0])
    kappa = 1.0 / (4 * zeta**2 * 2.0)
    sigma = (4 * kappa) ** 0.5  # kappa = sigma^2 / (4 B C^3) at B = C = 1
    found = limit.regime(toy, start, sigma=sigma, C=1.0)
    assert found.curvature == pytest.approx(2.0, rel=1e-6) and found.zeta == pytest.approx(zeta, rel=1e-6)
    sol = limit.critical_flow(toy, start, kappa=kappa, s1=40.0, ds=0.01, save_every=10, observables=["y"])
    overshoots = bool(np.min(np.asarray(sol.observables["y"])) < -1e-3)
    assert overshoots == (zeta < 1) and found.side == ("underdamped" if zeta < 1 else "overdamped")


def test_a_sweeps_regime_counts_its_noisy_labels_by_the_one_rule():
    """spec_regime reads lambda at the sweep's phase-1 point and B from its label-noise mode: every label of n noised
    is kappa / n, so zeta grows by sqrt(n) at the same sigma and C; on the toy zeta = 1/(2 sqrt(2 kappa))."""
    toy = flatter.sweep.SweepSpec(
        problem="toy-valley", gammas=(2 / 3,), etas=(1e-3,), Cs=(2.0,), sigmas=(1.0,), seeds=2, max_steps=1000,
        observable="abs_y", threshold=0.1,
    )  # fmt: skip
    assert flatter.sweep.spec_regime(toy).zeta == pytest.approx(0.5 / np.sqrt(2 * 1.0 / (4 * 2.0**3)), rel=1e-5)
    kwargs = dict(problem="matrix-sensing", problem_kwargs={"d": 6, "r": 2, "n": 20}, gammas=(2 / 3,), etas=(1e-3,),
                  Cs=(1.0,), sigmas=(0.5,), seeds=2, max_steps=1000)  # fmt: skip
    one = flatter.sweep.spec_regime(flatter.sweep.SweepSpec(label_noise_mode="one", **kwargs))
    every = flatter.sweep.spec_regime(flatter.sweep.SweepSpec(label_noise_mode="all", **kwargs))
    assert one.curvature == pytest.approx(every.curvature, rel=1e-9)  # the same phase-1 point
    assert every.kappa == pytest.approx(one.kappa / 20, rel=1e-12)
    assert every.zeta == pytest.approx(one.zeta * np.sqrt(20), rel=1e-9)
