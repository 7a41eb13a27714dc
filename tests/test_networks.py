"""Phase 2 on classifiers: sweeps with label flips and recorded curves, the accuracy-plateau criterion, the
Fashion-MNIST driver end to end on a few hundred real images, and the CIFAR-10 smoke preset from an archive."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import never_silent

import flatter
from flatter.sweep import SweepSpec, load, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def softmax_classifier(n=24, d=5, k=3, seed=0):
    """A linear softmax classifier on separable random data (cross-entropy, one-hot targets, test split)."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=(d, k))
    x = rng.normal(size=(n + 12, d))
    y = jax.nn.one_hot(np.argmax(x @ w_true, -1), k)
    return flatter.Problem(
        lambda w, inputs: inputs @ w,
        x[:n],
        y[:n],
        test_inputs=x[n:],
        test_targets=y[n:],
        loss="cross_entropy",
        name="softmax",
    )


def flip_spec(problem, **fields):
    base = dict(
        gammas=(0.5, 2 / 3),
        etas=(0.5, 0.25),
        sigmas=(0.3,),
        batch_sizes=(8,),
        noise="flip",
        seeds=2,
        observable="loss",
        threshold=0.3,
        below=True,
        phase1=False,
        records=16,
        min_steps=64,
        max_steps=512,
        flow_time=20.0,
        curves=("accuracy", "test_accuracy"),
    )
    return SweepSpec.for_problem(problem, **(base | fields))


def test_a_flip_sweep_run_equals_a_direct_simulation_and_keeps_its_curves(tmp_path):
    problem = softmax_classifier()
    start = jnp.zeros((5, 3))
    spec = flip_spec(problem)
    res = run_sweep(spec, tmp_path, problem=problem, params0=start, progress=False)
    assert res.data["curve_accuracy"].shape == spec.shape + (spec.records + 1,)
    # Horizons: factor x (t*/eta_eff^2 + 5/(1 - beta)), rounded up to records x 2^j, within [min, max].
    points = spec.points()
    a = 1 - points["beta"]
    want = np.clip(3.0 * (20.0 * (a / points["eta"]) ** 2 + 5 / a), 64, 512)
    expect = 16 * 2 ** np.ceil(np.log2(want / 16))
    np.testing.assert_array_equal(res.data["horizon"].reshape(-1), expect)
    # Run i: label flips then heavy ball, keys fold_in(key(seed + 1), i) split into (flips, minibatches).
    i = 5
    key = jax.random.fold_in(jax.random.key(spec.seed + 1), i)
    k_noise, k_sim = jax.random.split(key)
    tx = optax.chain(
        flatter.label_flip(0.3, key=k_noise, num_classes=3), flatter.heavy_ball(points["eta"][i], points["beta"][i])
    )
    horizon = int(expect[i])
    traj = flatter.simulate(
        problem,
        tx,
        start,
        steps=horizon,
        key=k_sim,
        record_every=horizon // 16,
        batch_size=8,
        observables=["loss", "accuracy", "test_accuracy"],
    )
    flat = {k: v.reshape((-1,) + v.shape[len(spec.shape) :]) for k, v in res.data.items()}
    np.testing.assert_allclose(flat["curve_accuracy"][i], traj.observables["accuracy"], atol=1e-6)
    np.testing.assert_allclose(flat["curve_test_accuracy"][i], traj.observables["test_accuracy"], atol=1e-6)
    settle = flatter.settling_time(traj.steps, traj.observables["loss"], 0.3)
    assert flat["T_settle"][i] == float(settle.time)
    # The curves survive the round trip through the folder.
    np.testing.assert_array_equal(load(tmp_path).data["curve_accuracy"], res.data["curve_accuracy"])


def test_flip_noise_needs_a_classifier_and_the_flow_reference_a_squared_loss(tmp_path):
    squared = flatter.Problem(lambda w, x: x @ w, jnp.eye(3), jnp.ones(3), name="lin")
    spec = SweepSpec.for_problem(squared, noise="flip", observable="loss", threshold=0.1, phase1=False, flow_time=1.0)
    with pytest.raises(ValueError, match="noise='flip' .* needs loss='cross_entropy'"):
        run_sweep(spec, tmp_path / "a", problem=squared, params0=jnp.zeros(3), progress=False)
    classifier = softmax_classifier()
    no_time = flip_spec(classifier, flow_time=None)
    with pytest.raises(ValueError, match="give the spec a flow_time"):
        run_sweep(no_time, tmp_path / "b", problem=classifier, params0=jnp.zeros((5, 3)), progress=False)
    with pytest.raises(ValueError, match=r"sigmas must be in \[0, 1\]"):
        flip_spec(classifier, sigmas=(1.5,))
    with pytest.raises(ValueError, match="noise must be one of"):
        flip_spec(classifier, noise="uniform")
    with pytest.raises(ValueError, match="curves must be observables"):
        flip_spec(classifier, curves=("sharpness",))


def test_plateau_time_closed_form_and_censoring():
    steps = jnp.arange(0, 1000, 10)  # 100 records
    k = np.asarray(steps, float)
    acc = 0.9 - 0.4 * np.exp(-k / 100)  # within 0.005 of 0.9 once 0.4 e^{-k/100} <= 0.005: k >= 100 ln 80 = 438.2
    t = flatter.plateau_time(steps, acc, 0.005, window=1, plateau_fraction=0.1)
    plateau = acc[90:].mean()  # the plateau is the mean of the last 10 records, just below 0.9
    expect = k[np.argmax(np.abs(acc - plateau) <= 0.005)]
    assert float(t.time) == expect and 430 <= expect <= 450 and not bool(t.censored)
    # Smoothing over 4 records delays the time by at most 3 records; a still-rising curve is censored.
    t4 = flatter.plateau_time(steps, acc, 0.005, window=4, plateau_fraction=0.1)
    assert expect <= float(t4.time) <= expect + 30
    rising = 0.9 - 0.4 * np.exp(-k / 1000)
    assert bool(flatter.plateau_time(steps, rising, 0.005, plateau_fraction=0.1).censored)
    assert bool(flatter.plateau_time(steps, acc, 0.005, diverged=jnp.asarray(True)).censored)
    with pytest.raises(ValueError, match=r"window must be an integer in \[1, 100\]"):
        flatter.plateau_time(steps, acc, 0.005, window=0)


def test_squared_loss_on_one_hot_targets_reports_accuracy():
    y = jax.nn.one_hot(jnp.array([0, 1, 2, 1]), 3)
    problem = flatter.Problem(lambda w, x: x @ w, jnp.eye(4), y, test_inputs=jnp.eye(4)[:2], test_targets=y[:2])
    assert {"accuracy", "test_accuracy", "trace_hessian"} <= set(problem.observable_names)
    w = jnp.asarray(np.eye(4, 3)[[0, 1, 2, 0]])  # predicts classes 0, 1, 2, 0
    assert float(problem.observe(w, ["accuracy"])["accuracy"]) == 0.75
    regression = flatter.Problem(lambda w, x: x @ w, jnp.eye(4), jnp.ones((4, 3)) * 0.5)
    assert "accuracy" not in regression.observable_names


def test_hutchinson_on_a_subset_is_the_trace_of_that_subset():
    from flatter.curvature import hutchinson_observable, hutchinson_trace

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    problem = flatter.Problem(lambda w, inputs: jnp.tanh(inputs @ w), x, rng.normal(size=(12, 2)))
    w = jnp.asarray(rng.normal(size=(4, 2)))
    sub = problem.with_data(problem.inputs[::3][:4], problem.targets[::3][:4])
    fn = hutchinson_observable(6, kind="hessian", examples=4, seed=3)
    direct = hutchinson_trace(sub, w, key=jax.random.key(3), num_probes=6, kind="hessian").mean
    assert float(jax.jit(fn)(problem, w)) == pytest.approx(float(direct), rel=1e-6)
    full = hutchinson_observable(6, kind="hessian", seed=3)(problem, w)
    assert float(full) == pytest.approx(
        float(hutchinson_trace(problem, w, key=jax.random.key(3), num_probes=6, kind="hessian").mean), rel=1e-6
    )
    assert float(direct) != pytest.approx(float(full), rel=1e-3)  # the subset is not the full data


@pytest.fixture
def float32():
    """The drivers' float32 networks as a user runs them (the suite's default is float64)."""
    with jax.enable_x64(False):
        yield


@pytest.mark.heavy
def test_fashion_mnist_driver_end_to_end_on_real_images(tmp_path, fashion_idx_folder, float32):
    """Both phases on 100 real images: phase 1 fits them, the sweep finishes, the figure and files are written."""
    from flatter.drivers.networks import run_network_experiment

    tiny = dict(
        width=32,
        train_per_class=10,
        test_per_class=10,
        batch_size=25,
        gammas=(0.5, 2 / 3, 5 / 6),
        etas=(0.05, 0.1, 0.2),
        seeds=2,
        records=8,
        max_steps=2**11,
        trace_examples=50,
        trace_probes=2,
    )
    with never_silent():  # phase 1, the pilot, the sweep and the records all show progress
        summary = run_network_experiment(
            "fashion-mnist", "quick", tmp_path, data_dir=fashion_idx_folder, progress=True, **tiny
        )
    out = tmp_path / "fashion-mnist" / "quick"
    assert summary["phase1"]["observables"]["accuracy"] == 1.0
    assert summary["trace_end_median"] < summary["trace_start"]  # label noise lowers tr∇²L
    rows = {(round(r["gamma"], 4), r["criterion"]) for r in summary["alpha"]}
    assert rows >= {(0.6667, "settle"), (0.6667, "first"), (0.6667, "accuracy_plateau")}
    assert (out / "fashion-mnist.png").stat().st_size > 20_000
    with np.load(out / "curves.npz") as f:
        assert f["curve_trace"].shape == (1, 3, 1, 3, 1, 1, 2, 9)
    assert summary["regime"]["kappa"] == pytest.approx(0.5**2 / (4 * 25))  # sigma^2/(4 B C^3), B = 25 noisy labels
    assert summary["regime"]["curvature"] > 0 and summary["regime"]["side"] in ("underdamped", "overdamped")
    # A rerun reuses phase 1, the pilot, the valley's curvature and every run.
    stamps = {name: (out / name).stat().st_mtime_ns for name in ("phase1.npz", "pilot.json", "regime.json")}
    again = run_network_experiment(
        "fashion-mnist", "quick", tmp_path, data_dir=fashion_idx_folder, progress=False, **tiny
    )
    assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps
    assert json.dumps(again["alpha"]) == json.dumps(summary["alpha"])  # NaN-safe equality


@pytest.mark.heavy(minutes=1)
def test_cifar10_smoke_preset_runs_from_an_archive(tmp_path, capsys, float32):
    """The cifar10 driver end to end on an archive in the official format: phase 1, the pilot, the sweep, the
    summary and the figure. The smoke preset on one learnable image per class, with a 3-layer MLP in place of its
    ResNet-18, whose convolutions take XLA minutes to compile (``benchmarks/cifar_smoke.py`` runs this with
    ResNet-18; the ResNet's parameter count and the host loop for convolutions have tests of their own); the CLI's
    own wiring is checked on a missing archive."""
    import subprocess
    import sys

    from helpers import write_cifar

    from flatter.drivers.networks import run_network_experiment

    write_cifar(tmp_path, archive=True, per_batch=8, test=20, learnable=True)
    with never_silent():
        record = run_network_experiment(
            "cifar10", "smoke", tmp_path / "out", data_dir=tmp_path / "cifar-10-python.tar.gz", progress=True,
            model="mlp", depth=3, width=32, train_per_class=1, test_per_class=1, batch_size=8, max_steps=8,
        )  # fmt: skip
    printed = capsys.readouterr().out
    assert "gamma* (vertex of log T_settle" in printed and "phase 1: " in printed and "pilot: " in printed
    assert record["runs"] == 6 and record["trace_start"] > 0
    out = tmp_path / "out" / "cifar10" / "smoke"
    assert (out / "cifar10.png").stat().st_size > 20_000 and (out / "summary.json").exists()
    command = [sys.executable, "-m", "flatter._cli", "cifar10", "--preset", "smoke", "--width", "32", "--no-progress"]
    bad = subprocess.run(
        command + ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out2")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "cifar-10-python.tar.gz" in bad.stderr


def tiny_conv_classifier():
    """A one-convolution classifier: on CPU its steps run from the host loop (flatter.loops_are_slow)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 6, 6, 1))
    y = jax.nn.one_hot(np.arange(16) % 3, 3)

    def predict(params, inputs):
        h = jax.lax.conv_general_dilated(
            inputs, params["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.tanh(h).mean(axis=(1, 2)) @ params["head"]

    params = {"kernel": jnp.asarray(rng.normal(size=(3, 3, 1, 4)) * 0.5), "head": jnp.asarray(rng.normal(size=(4, 3)))}
    return flatter.Problem(predict, x, y, loss="cross_entropy", name="conv"), params


def test_the_host_loop_for_convolutions_gives_the_compiled_loops_numbers(tmp_path, monkeypatch):
    problem, params = tiny_conv_classifier()
    assert flatter.loops_are_slow(problem, params)  # a convolution (on any backend)
    assert not flatter.loops_are_slow(softmax_classifier(), jnp.zeros((5, 3)))

    def run(p):
        tx = optax.chain(flatter.label_flip(0.2, key=jax.random.key(0), num_classes=3), flatter.heavy_ball(0.1, 0.8))
        return flatter.simulate(
            problem, tx, p, steps=12, key=jax.random.key(1), record_every=3, batch_size=8, observables=["loss"]
        )

    host = run(params)  # eager: the host loop
    compiled = jax.jit(run)(params)  # traced: the compiled scan
    np.testing.assert_allclose(host.observables["loss"], compiled.observables["loss"], rtol=1e-10)
    spec = flip_spec(
        problem,
        gammas=(0.5,),
        etas=(0.2, 0.1),
        sigmas=(0.2,),
        threshold=0.5,
        records=4,
        min_steps=8,
        max_steps=16,
        flow_time=1.0,
        curves=("loss",),
    )
    a = run_sweep(spec, tmp_path / "host", problem=problem, params0=params, progress=False)
    monkeypatch.setattr("flatter.sweep._run.loops_are_slow", lambda *_: False)
    b = run_sweep(spec, tmp_path / "scan", problem=problem, params0=params, progress=False)
    for k in a.data:
        np.testing.assert_allclose(a.data[k], b.data[k], rtol=1e-9, err_msg=k)


def test_simulate_refuses_the_dense_default_trace_on_a_network(monkeypatch):
    """observables=None would record trace_hessian through the dense Jacobian: a clear error past the limit,
    and the same call with named observables runs."""
    problem, params = tiny_conv_classifier()
    squared = flatter.Problem(problem.predict, problem.inputs, problem.targets, name="conv-squared")
    tx = flatter.heavy_ball(0.01, 0.5)
    monkeypatch.setattr("flatter._simulate.DENSE_JACOBIAN_LIMIT", 100)
    with pytest.raises(ValueError, match="observables=None.*trace_hessian.*hutchinson_observable"):
        flatter.simulate(squared, tx, params, steps=2, key=jax.random.key(0))
    traj = flatter.simulate(squared, tx, params, steps=2, key=jax.random.key(0), observables=["loss"])
    assert traj.observables["loss"].shape == (3,)


def test_the_critical_fashion_preset_is_at_the_protocols_size():
    """docs/theory.md §1.7: at least 5 gammas including 2/3, 4 etas over at least a decade and 8 seeds; the same
    network and phase 1 as the quick preset, so the regime it was moved to is measured at the same fitted point."""
    from flatter.drivers.networks import preset

    critical, quick = preset("fashion-mnist", "critical"), preset("fashion-mnist", "quick")
    assert len(critical.gammas) >= 5 and min(abs(g - 2 / 3) for g in critical.gammas) < 1e-12
    assert len(critical.etas) >= 4 and max(critical.etas) / min(critical.etas) >= 10 - 1e-9
    assert critical.seeds >= 8
    same = ("width", "depth", "train_per_class", "phase1_learning_rate", "phase1_tol", "noise_scale", "batch_size")
    assert all(getattr(critical, name) == getattr(quick, name) for name in same)
    assert critical.C < quick.C  # less damping: kappa = sigma^2/(4BC^3) grows as C^-3
