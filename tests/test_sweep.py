"""Sweeps: resumption after interruption, sharded == unsharded, deduplication, horizons, one-line load."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import toy_spec

import flatter
from flatter.sweep import SweepSpec, load, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def test_interrupted_sweep_resumes_without_losing_runs(tmp_path):
    spec = toy_spec()
    assert run_sweep(spec, tmp_path / "a", chunk_size=4, max_chunks=2, progress=False) is None
    chunk_files = sorted((tmp_path / "a" / "chunks").glob("*.npz"))
    assert len(chunk_files) == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in chunk_files}
    resumed = run_sweep(spec, tmp_path / "a", chunk_size=4, progress=False)
    # The finished chunks were not recomputed (untouched files) and the rest was filled in.
    for p in chunk_files:
        assert p.stat().st_mtime_ns == stamps[p.name]
    fresh = run_sweep(spec, tmp_path / "b", chunk_size=4, progress=False)
    for k in fresh.data:
        np.testing.assert_array_equal(resumed.data[k], fresh.data[k])
    loaded = load(tmp_path / "a")
    np.testing.assert_array_equal(loaded.data["T_settle"], fresh.data["T_settle"])
    assert loaded.spec == spec and loaded.meta["environment"]["packages"]["jax"]


def test_changed_spec_does_not_resume(tmp_path):
    run_sweep(toy_spec(), tmp_path, max_chunks=1, progress=False)
    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(toy_spec(seeds=5), tmp_path, progress=False)


def test_results_match_a_direct_simulation(tmp_path):
    """Run i of the sweep equals a hand-built simulate() call with key fold_in(key(seed+1), i)."""
    import jax
    import optax

    spec = toy_spec(variants=("sgdm",), seeds=2, etas=(0.01,), gammas=(2 / 3,))
    res = run_sweep(spec, tmp_path, progress=False)
    problem = flatter.problems.toy_valley()
    beta = float(flatter.momentum_rule(0.01, C=1.0, gamma=2 / 3))
    horizon = int(res.data["horizon"].reshape(-1)[1])
    key = jax.random.fold_in(jax.random.key(spec.seed + 1), 1)
    k_noise, k_sim = jax.random.split(key)
    tx = optax.chain(flatter.label_noise(1.0, key=k_noise, mode="one"), flatter.heavy_ball(0.01, beta))
    traj = flatter.simulate(
        problem,
        tx,
        problem.init_params(None),
        steps=horizon,
        key=k_sim,
        record_every=horizon // spec.records,
        observables=["abs_y"],
    )
    settle = flatter.settling_time(traj.steps, traj.observables["abs_y"], 0.1)
    assert float(res.data["T_settle"].reshape(-1)[1]) == float(settle.time)


def test_baselines_are_deduplicated_and_censored_honestly(tmp_path):
    res = run_sweep(toy_spec(max_steps=2**10, min_steps=256), tmp_path, progress=False)
    same = res.sel(variant="sgd-same-eta")
    # beta = 0 for every gamma: identical runs, computed once.
    np.testing.assert_array_equal(same["T_settle"][0], same["T_settle"][1])
    # SGD at eta = 0.004 needs ~2 ln 10 / eta^2 = 288k steps > 1024: censored, at the horizon.
    assert res.dims(variant="sgd-same-eta") == ("gamma", "eta", "seed")
    assert np.all(same["censored_settle"][:, 1])
    assert np.all(same["T_settle"][:, 1] == same["horizon"][:, 1])


def test_horizons_follow_the_prediction():
    spec = toy_spec()
    points = spec.points()
    ref = {"flow_time": 2 * np.log(10) / 4, "distance": 1.0, "grad_norm": 2.0}  # flow at sigma^2/4B = 1
    h = flatter.sweep.horizons(spec, points, ref, 1)
    assert np.all(h >= spec.min_steps) and np.all(h % spec.records == 0)
    sgdm = points["variant"] == "sgdm"
    # At each gamma a smaller eta gets a longer horizon; SGD at the same eta far more than SGDM.
    for g in spec.gammas:
        at = sgdm & (points["gamma"] == g)
        assert h[at & (points["eta"] == 0.004)].min() > h[at & (points["eta"] == 0.01)].max()
    same = points["variant"] == "sgd-same-eta"
    # (its predicted 3 x 2 ln 10 / eta^2 = 864k steps is capped at max_steps)
    assert np.all(h[same & (points["eta"] == 0.004)] == spec.max_steps)


SHARDED = """
import os, sys, numpy as np
import jax
import flatter
from flatter.sweep import SweepSpec, run_sweep
assert jax.device_count() == 8, jax.device_count()
spec = SweepSpec(problem="toy-valley", gammas=(0.5, 2 / 3), etas=(0.01, 0.004), seeds=6, observable="abs_y",
                 threshold=0.1, phase1=False, max_steps=2**13)
a = run_sweep(spec, sys.argv[1] + "/sharded", chunk_size=16, progress=False, shard=True, verbose=True)
b = run_sweep(spec, sys.argv[1] + "/single", chunk_size=16, progress=False, shard=False)
for k in a.data:
    if k == "final_value":  # per-device batch width changes XLA's vector code, hence the last bits of a float
        np.testing.assert_allclose(a.data[k], b.data[k], rtol=1e-4)
    else:  # every step count, censoring and divergence flag is identical
        np.testing.assert_array_equal(a.data[k], b.data[k])
print("sharded == unsharded", a.data["T_settle"].size)
"""


def test_sharded_over_8_cpu_devices_equals_unsharded(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", SHARDED, str(tmp_path)], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "sharded == unsharded 24" in result.stdout
    # Runs past a multiple of 8 go unsharded on one device rather than padded: nothing computed in vain.
    assert "requested (1.00x)" in result.stdout, result.stdout


def test_flow_reference_agrees_with_the_library_integrator():
    """The horizon reference (Gram solves, auto step) against flatter.limit.integrate (pinv/lstsq, fine fixed step)."""
    import jax

    from flatter.sweep import flow_reference

    problem = flatter.problems.matrix_sensing(10, 1, 20, key=jax.random.key(0))
    params, _ = flatter.interpolate(problem, problem.init_params(jax.random.key(1)))
    threshold = 0.3 * float(problem.observe(params, ["recovery_error"])["recovery_error"])
    assert threshold > 0.1  # far from the truth: the flow has a long way to go
    ref = flow_reference(problem, params, observable="recovery_error", threshold=threshold)
    assert not ref.flow_censored and ref.steps >= 64
    flow = flatter.limit.label_noise_flow(problem, sigma=2.0, batch_size=1)
    t1 = 2 * ref.flow_time
    sol = flatter.limit.integrate(problem, flow, params, t1=t1, dt=t1 / 2000, observables=["recovery_error"])
    exact = flatter.settling_time(sol.ts, sol.observables["recovery_error"], threshold)
    assert not bool(exact.censored)
    assert ref.flow_time == pytest.approx(float(exact.time), rel=0.03)
    grad = flatter.valley.riemannian_gradient_trace(problem, params)
    assert ref.grad_norm == pytest.approx(float(np.linalg.norm(grad)), rel=1e-4)


def user_valley(name="my-valley", slope=1.0):
    """The toy valley written by a user: a predict function, no registry."""
    import jax.numpy as jnp

    def predict(theta, x):
        return jnp.sqrt(1.0 + slope * theta[1] ** 2) * theta[0] * x[:, 0]

    observables = {"abs_y": lambda problem, theta: jnp.abs(theta[1])}
    return flatter.Problem(predict, jnp.ones((1, 1)), jnp.zeros(1), observables=observables, name=name)


def test_a_users_own_problem_sweeps_resumes_fits_and_plots(tmp_path):
    import jax.numpy as jnp

    problem = user_valley()
    spec = SweepSpec.for_problem(
        problem,
        gammas=(0.5, 2 / 3),
        etas=(0.01, 0.004, 0.0016),
        seeds=4,
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        variants=("sgdm",),
        max_steps=2**14,
    )
    start = jnp.array([0.0, 1.0])
    assert run_sweep(spec, tmp_path, problem=problem, params0=start, chunk_size=4, max_chunks=1, progress=False) is None
    res = run_sweep(spec, tmp_path, problem=problem, params0=start, progress=False)
    # The same dynamics as the registered toy valley, run for run (the keys depend only on the run index).
    builtin = run_sweep(
        toy_spec(gammas=(0.5, 2 / 3), etas=(0.01, 0.004, 0.0016), variants=("sgdm",), seeds=4, max_steps=2**14),
        tmp_path / "builtin",
        progress=False,
    )
    np.testing.assert_array_equal(res.data["T_settle"], builtin.data["T_settle"])
    loaded = load(tmp_path)
    assert loaded.spec == spec and loaded.spec.problem_digest == flatter.sweep.problem_digest(problem)
    summary = flatter.sweep.summarize(loaded)
    assert summary.row("sgdm", 0.5).alpha == pytest.approx(1.0, abs=0.15)
    assert loaded.power_law("sgdm", gamma=0.5).alpha == summary.row("sgdm", 0.5).alpha
    flatter.figures.save_figure(flatter.figures.scaling_figure(loaded, summary), tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="problem does not match the spec"):
        run_sweep(spec, tmp_path / "other", problem=user_valley(slope=2.0, name="my-valley-2"), params0=start)
    with pytest.raises(ValueError, match="pass it as problem="):
        run_sweep(spec, tmp_path / "other2")
    with pytest.raises(ValueError, match="observable must be one of"):
        SweepSpec.for_problem(problem, observable="recovery_error", phase1=False)


def readme_notebook() -> str:
    """The README's notebook on a user's own model (the python block under its heading), verbatim."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## A notebook on your own model", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_notebook_prints_the_clis_table_and_draws_its_figure_in_ten_lines(tmp_path, capsys, monkeypatch):
    """The README's promise for a user's own model: public names only, at most 10 lines, the CLI's table."""
    code = readme_notebook()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    assert "drivers" not in code and "._" not in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README notebook", "exec"), {})
    table = capsys.readouterr().out
    assert "alpha in T ~ eta^-alpha, my-valley" in table and "gamma* = argmin_gamma T_settle" in table
    rows = [line.split() for line in table.splitlines() if line.startswith("sgdm ")]
    assert [float(r[1]) for r in rows] == [0.5, 0.667, 0.85]
    assert float(rows[0][3]) == pytest.approx(1.0, abs=0.15)  # alpha(1/2) = 2 - 2 gamma, docs/theory.md §1.5
    # the table is the summary's, the summary is the fits': the CLI prints the same function of the same numbers
    results = flatter.sweep.load(tmp_path / "out")
    assert float(rows[1][3]) == pytest.approx(results.power_law("sgdm", gamma=2 / 3).alpha, abs=0.005)
    assert f"{results.optimal_gamma('sgdm').gamma:.3f}" in table
    assert (tmp_path / "scaling.png").stat().st_size > 20_000


def test_sel_drops_the_axes_it_fixes_and_the_singletons(tmp_path):
    res = run_sweep(toy_spec(max_steps=2**10, min_steps=256), tmp_path, progress=False)
    d = res.sel(variant="sgdm", gamma=2 / 3)
    assert d["T_settle"].shape == (2, 4) and res.dims(variant="sgdm", gamma=2 / 3) == ("eta", "seed")
    full = res.sel(squeeze=False, variant="sgdm", gamma=2 / 3)
    assert full["T_settle"].shape == (1, 2, 1, 1, 4)
    np.testing.assert_array_equal(full["T_settle"][0, :, 0, 0], d["T_settle"])
    t, c = res.times("sgdm", None)
    assert t.shape == (2, 2, 4) and c.dtype == bool
    with pytest.raises(ValueError, match="unknown axes"):
        res.sel(colour="red")
    with pytest.raises(ValueError, match="variant='adam' is not on the sweep's grid"):
        res.sel(variant="adam")
    with pytest.raises(ValueError, match="criterion must be"):
        res.times("sgdm", 0.5, "fastest")


def test_to_xarray_labels_every_axis(tmp_path):
    res = run_sweep(toy_spec(max_steps=2**10, min_steps=256), tmp_path, progress=False)
    ds = res.to_xarray()
    assert tuple(ds["T_settle"].dims) == tuple(res.axes)
    picked = ds["T_settle"].sel(variant="sgdm", gamma=2 / 3, eta=0.004).values.reshape(-1)
    np.testing.assert_array_equal(picked, res.sel(variant="sgdm", gamma=2 / 3, eta=0.004)["T_settle"])
    assert list(ds["batch_size"].values) == ["full"] and ds.attrs["digest"] == res.spec.digest


def test_a_sweep_with_its_bar_on_gives_the_numbers_of_one_without(tmp_path, capsys):
    """The bar's heartbeat (a host callback at every record) is only in the program; the runs are the same, and
    the bar reaches every requested run-step."""
    spec = toy_spec(batch_sizes=(None,), seeds=2, records=16)
    quiet = run_sweep(spec, tmp_path / "quiet", progress=False)
    shown = run_sweep(spec, tmp_path / "shown", progress=True)
    for name in ("T_settle", "T_first", "final_value", "censored_settle"):
        np.testing.assert_array_equal(shown.data[name], quiet.data[name])
    bar = capsys.readouterr().err.splitlines()  # tqdm's carriage returns split lines too
    final = [line for line in bar if line.startswith("sweep toy-valley") and "100%" in line]
    assert final, bar[-3:]
