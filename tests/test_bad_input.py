"""Every bad input is refused early with the right error type and a message that names the parameter.

One row per case: (the call, the error type, a pattern that the message must match; the pattern
always contains the parameter's name).
"""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import refused

import flatter
from flatter.sweep import SweepSpec, load, run_sweep

KEY = jax.random.key(0)
TOY_PROBLEM, TOY_START = flatter.problems.toy_valley(), jnp.array([0.0, 1.0])
TOY = dict(problem="toy-valley", observable="abs_y", threshold=0.1, phase1=False, gammas=(0.5,), etas=(0.01,))


def linear():
    return flatter.Problem(lambda w, x: x @ w, jnp.ones((4, 2)), jnp.ones(4))


def simulate(**kw):
    args = dict(problem=linear(), optimizer=flatter.heavy_ball(0.1, 0.5), params0=jnp.ones(2), steps=10, key=KEY)
    args.update(kw)
    return flatter.simulate(args.pop("problem"), args.pop("optimizer"), args.pop("params0"), **args)


def toy_simulate(params):
    problem = flatter.problems.toy_valley()
    return flatter.simulate(problem, flatter.heavy_ball(0.1, 0.5), params, steps=2, key=KEY)


def flip_step(num_classes=3, targets=None):
    targets = jax.nn.one_hot(jnp.arange(6) % 3, 3) if targets is None else targets
    tx = flatter.label_flip(0.2, key=KEY, num_classes=num_classes)
    params = jnp.ones((2, 3))
    x = jnp.ones((6, 2))
    return tx.update(params, tx.init(params), params, predict_fn=lambda p: x @ p, targets=targets)


def sweep_spec(**kw):
    return SweepSpec(**{**TOY, **kw})


STEPS, VALUES = jnp.arange(4), jnp.ones(4)

CASES = [
    # the regime of a point
    (
        "regime sigma < 0",
        lambda: flatter.limit.regime(TOY_PROBLEM, TOY_START, sigma=-1.0, C=1.0),
        ValueError,
        r"sigma must be >= 0",
    ),
    (
        "regime C = 0",
        lambda: flatter.limit.regime(TOY_PROBLEM, TOY_START, sigma=1.0, C=0.0),
        ValueError,
        r"C must be > 0",
    ),
    # the minibatch draw
    ("draw_batch B > n", lambda: flatter.draw_batch(KEY, 10, 20), ValueError, r"batch_size must be <= n = 10"),
    ("draw_batch B < 0", lambda: flatter.draw_batch(KEY, 10, -1, "shuffle"), ValueError, r"batch_size must be"),
    ("draw_batch sampling", lambda: flatter.draw_batch(KEY, 10, 3, "bogus"), ValueError, r"sampling must be one of"),
    # optimizers
    ("heavy_ball lr 0", lambda: flatter.heavy_ball(0.0, 0.5), ValueError, r"learning_rate must be > 0"),
    ("heavy_ball lr < 0", lambda: flatter.heavy_ball(-0.1, 0.5), ValueError, r"learning_rate must be > 0, got -0.1"),
    ("heavy_ball lr nan", lambda: flatter.heavy_ball(float("nan"), 0.5), ValueError, r"learning_rate must be > 0"),
    ("heavy_ball lr str", lambda: flatter.heavy_ball("0.1", 0.5), TypeError, r"learning_rate must be a number"),
    ("heavy_ball lr None", lambda: flatter.heavy_ball(None, 0.5), TypeError, r"learning_rate must be a number"),
    ("heavy_ball beta 1", lambda: flatter.heavy_ball(0.1, 1.0), ValueError, r"momentum must be in \[0, 1\), got 1"),
    ("heavy_ball beta < 0", lambda: flatter.heavy_ball(0.1, -0.2), ValueError, r"momentum must be in \[0, 1\)"),
    ("heavy_ball beta array", lambda: flatter.heavy_ball(0.1, jnp.array([0.5, 1.2])), ValueError, r"momentum.*1.2"),
    ("heavy_ball beta str", lambda: flatter.heavy_ball(0.1, "0.9"), TypeError, r"momentum must be a number"),
    ("momentum_rule C 0", lambda: flatter.momentum_rule(0.1, C=0.0, gamma=0.5), ValueError, r"C must be > 0"),
    ("momentum_rule gamma<0", lambda: flatter.momentum_rule(0.1, C=1.0, gamma=-1.0), ValueError, r"gamma must be >= 0"),
    ("momentum_rule beta<0", lambda: flatter.momentum_rule(0.5, C=3.0, gamma=0.5), ValueError, r"beta = 1 - C\*eta"),
    ("momentum_rule lr 0", lambda: flatter.momentum_rule(0.0, C=1.0, gamma=0.5), ValueError, r"learning_rate must"),
    ("scaled_hb C<0", lambda: flatter.scaled_heavy_ball(0.1, C=-1.0, gamma=0.5), ValueError, r"C must be > 0"),
    ("scaled_hb lr 0", lambda: flatter.scaled_heavy_ball(0.0, C=1.0, gamma=0.5), ValueError, r"learning_rate must"),
    ("scaled_hb gamma str", lambda: flatter.scaled_heavy_ball(0.1, C=1.0, gamma="a"), TypeError, r"gamma must be"),
    ("sngm beta 1.5", lambda: flatter.sngm(0.1, 1.5), ValueError, r"momentum must be in \[0, 1\)"),
    ("sngm lr < 0", lambda: flatter.sngm(-1.0, 0.5), ValueError, r"learning_rate must be > 0"),
    ("sngm wd < 0", lambda: flatter.sngm(0.1, 0.5, weight_decay=-1e-4), ValueError, r"weight_decay must be >= 0"),
    ("label_noise sigma<0", lambda: flatter.label_noise(-0.1, key=KEY), ValueError, r"sigma must be >= 0"),
    ("label_noise sigma str", lambda: flatter.label_noise("a", key=KEY), TypeError, r"sigma must be a number"),
    ("label_noise mode", lambda: flatter.label_noise(0.1, key=KEY, mode="batch"), ValueError, r"mode must be one of"),
    ("label_noise dist", lambda: flatter.label_noise(0.1, key=KEY, distribution="x"), ValueError, r"distribution must"),
    ("label_noise key int", lambda: flatter.label_noise(0.1, key=123), TypeError, r"key must be a JAX PRNG key"),
    ("label_noise key None", lambda: flatter.label_noise(0.1, key=None), TypeError, r"key must be a JAX PRNG key"),
    ("label_perturbation", lambda: flatter.label_perturbation(KEY, (3,), 0.1, mode="x"), ValueError, r"mode must be"),
    # problems
    ("unknown problem", lambda: flatter.problems.make_problem("mnist"), ValueError, r"unknown problem name 'mnist'"),
    ("sensing r > d", lambda: flatter.problems.matrix_sensing(4, 5, 10), ValueError, r"r must be <= d"),
    ("sensing d 0", lambda: flatter.problems.matrix_sensing(0, 1, 10), ValueError, r"d must be a positive integer"),
    ("sensing n 0", lambda: flatter.problems.matrix_sensing(4, 1, 0), ValueError, r"n must be a positive integer"),
    ("sensing not overparam.", lambda: flatter.problems.matrix_sensing(3, 1, 50), ValueError, r"n must be below"),
    ("sensing init_scale 0", lambda: flatter.problems.matrix_sensing(4, 1, 8, init_scale=0.0), ValueError, "init_sc"),
    ("teacher n too big", lambda: flatter.problems.teacher_student(d_in=2, m=3, n=50), ValueError, r"n must be below"),
    ("teacher activation", lambda: flatter.problems.teacher_student(activation="gelu"), ValueError, r"activation must"),
    ("toy h0 0", lambda: flatter.problems.toy_valley(h0=0.0), ValueError, r"h0 must be > 0"),
    ("toy slope < 0", lambda: flatter.problems.toy_valley(curvature_slope=-1.0), ValueError, r"curvature_slope must"),
    (
        "Problem examples",
        lambda: flatter.Problem(lambda w, x: x @ w, jnp.ones((3, 2)), jnp.ones(4)),
        ValueError,
        r"inputs and targets must have the same number of examples",
    ),
    (
        "Problem test half",
        lambda: flatter.Problem(lambda w, x: x @ w, jnp.ones((3, 2)), jnp.ones(3), test_inputs=jnp.ones((2, 2))),
        ValueError,
        r"test_inputs and test_targets must be given together",
    ),
    ("Problem predict", lambda: flatter.Problem(None, jnp.ones((3, 2)), jnp.ones(3)), TypeError, r"predict must be"),
    (
        "Problem pullback",
        lambda: flatter.Problem(lambda w, x: x @ w, jnp.ones((3, 2)), jnp.ones(3), pullback=1),
        TypeError,
        r"pullback must be a callable",
    ),
    # simulate and friends
    ("simulate steps/record", lambda: simulate(record_every=3), ValueError, r"steps must be a multiple of record_"),
    ("simulate steps 0", lambda: simulate(steps=0), ValueError, r"steps must be a positive integer"),
    ("simulate batch > n", lambda: simulate(batch_size=5), ValueError, r"batch_size must be in \[1, n=4\]"),
    ("simulate observable", lambda: simulate(observables=["accuracy"]), ValueError, r"unknown observable"),
    ("simulate params shape", lambda: simulate(params0=jnp.ones(3)), ValueError, r"predict\(params, inputs\)"),
    ("simulate toy params", lambda: toy_simulate(jnp.ones(3)), ValueError, r"params do not fit problem 'toy-valley'"),
    ("simulate key None", lambda: simulate(key=None), TypeError, r"key must be a JAX PRNG key"),
    ("simulate key int", lambda: simulate(key=3), TypeError, r"key must be a JAX PRNG key"),
    ("simulate optimizer", lambda: simulate(optimizer=0.1), TypeError, r"optimizer must be an optax"),
    ("simulate chunks", lambda: simulate(chunks=3), ValueError, r"chunks must divide"),
    ("simulate sampling", lambda: simulate(batch_size=2, sampling="epoch"), ValueError, r"sampling must be one of"),
    (
        "make_step sampling",
        lambda: flatter.make_step(linear(), flatter.heavy_ball(0.1, 0.5), 2, "replace"),
        ValueError,
        r"sampling must be one of 'without_replacement', 'with_replacement'",
    ),
    ("interpolate method", lambda: flatter.interpolate(linear(), jnp.ones(2), method="newton"), ValueError, r"method"),
    (
        "project params",
        lambda: flatter.valley.project(flatter.problems.toy_valley(), jnp.ones(3)),
        ValueError,
        r"params do not fit",
    ),
    ("first_passage lengths", lambda: flatter.first_passage(STEPS, jnp.ones(3), 0.1), ValueError, r"values must"),
    ("first_passage nan thr", lambda: flatter.first_passage(STEPS, VALUES, float("nan")), ValueError, r"threshold"),
    ("first_passage 2-D steps", lambda: flatter.first_passage(jnp.ones((2, 2)), VALUES, 0.1), ValueError, r"steps"),
    ("settling lengths", lambda: flatter.settling_time(STEPS, jnp.ones(5), 0.1), ValueError, r"values must"),
    ("settling thr str", lambda: flatter.settling_time(STEPS, VALUES, "a"), TypeError, r"threshold must be a number"),
    # fits
    ("power_law eta < 0", lambda: flatter.sweep.power_law([-1e-3, 1e-2, 1e-1], np.ones((3, 4))), ValueError, r"etas"),
    ("power_law one eta", lambda: flatter.sweep.power_law([1e-3], np.ones((1, 4))), ValueError, r"etas must be.*3"),
    ("power_law shapes", lambda: flatter.sweep.power_law([1e-3, 1e-2, 0.1], np.ones((2, 4))), ValueError, r"times mu"),
    (
        "power_law censored",
        lambda: flatter.sweep.power_law([1e-3, 1e-2, 0.1], np.ones((3, 4)), np.zeros((3, 2), bool)),
        ValueError,
        r"censored must have the shape",
    ),
    (
        "power_law duplicate eta",
        lambda: flatter.sweep.power_law([1e-3, 1e-3, 0.1], np.ones((3, 4))),
        ValueError,
        r"etas",
    ),
    (
        "power_law negative time",
        lambda: flatter.sweep.power_law([1e-3, 1e-2, 0.1], -np.ones((3, 4))),
        ValueError,
        r"times must be >= 0",
    ),
    ("alpha gamma < 0", lambda: flatter.timescales.alpha(-1.0), ValueError, r"gamma must be in \[0, 1\)"),
    ("alpha gamma 1", lambda: flatter.timescales.alpha(1.0), ValueError, r"gamma must be in \[0, 1\)"),
    (
        "optimal C sigma < 0",
        lambda: flatter.timescales.predict_optimal_C(
            flatter.problems.toy_valley(), jnp.ones(2), sigma=-1.0, observable="abs_y", threshold=0.1
        ),
        ValueError,
        r"sigma must be > 0",
    ),
    (
        "problem nan inputs",
        lambda: flatter.Problem(lambda w, x: x @ w, jnp.full((4, 2), jnp.nan), jnp.ones(4)),
        ValueError,
        r"inputs must be finite: 8 of 8",
    ),
    (
        "problem inf targets",
        lambda: flatter.Problem(lambda w, x: x @ w, jnp.ones((4, 2)), jnp.array([1, 2, jnp.inf, 0])),
        ValueError,
        r"targets must be finite: 1 of 4 .* index \[2\]",
    ),
    (
        "simulate foreign opt_state",
        lambda: simulate(opt_state=optax.adam(0.1).init(jnp.ones(2))),
        ValueError,
        r"opt_state must be optimizer.init\(params0\)'s structure",
    ),
    (
        "simulate int params",
        lambda: simulate(params0=jnp.ones(2, int)),
        ValueError,
        r"params must be floating-point arrays.*int",
    ),
    (
        "simulate key batch",
        lambda: simulate(key=jax.random.split(KEY, 4)),
        ValueError,
        r"key must be a single PRNG key, got a batch of shape \(4,\)",
    ),
    (
        "simulate raw key batch",
        lambda: simulate(key=jax.random.key_data(jax.random.split(KEY, 3))),
        ValueError,
        r"key must be a single PRNG key, got a batch of shape \(3,\)",
    ),
    (
        "label_flip other classes",
        lambda: flip_step(num_classes=5),
        ValueError,
        r"targets must be one-hot of shape \(examples, num_classes=5\).*got shape \(6, 3\)",
    ),
    (
        "label_flip regression",
        lambda: flip_step(targets=jnp.ones(6)),
        ValueError,
        r"targets must be one-hot.*got shape \(6,\)",
    ),
    (
        "optimal_gamma shape",
        lambda: flatter.sweep.optimal_gamma([0.5, 0.6], [1e-3, 1e-2], np.ones((2, 4))),
        ValueError,
        r"times must have shape \(len\(gammas\), len\(etas\), seeds\) = \(2, 2, S\), got \(2, 4\)",
    ),
    (
        "optimal_gamma one gamma",
        lambda: flatter.sweep.optimal_gamma([0.5], [1e-3], np.ones((1, 1, 4))),
        ValueError,
        r"gammas must be .* at least 2",
    ),
    # sweeps
    ("spec problem", lambda: sweep_spec(problem="mnist"), ValueError, r"problem must be one of"),
    ("spec problem type", lambda: sweep_spec(problem=flatter.problems.toy_valley()), TypeError, r"problem must be"),
    ("spec observable", lambda: sweep_spec(observable="accuracy"), ValueError, r"observable must be one of"),
    ("spec variants empty", lambda: sweep_spec(variants=()), ValueError, r"variants must not be empty"),
    ("spec variant", lambda: sweep_spec(variants=("adam",)), ValueError, r"variants must be one of"),
    ("spec duplicate gamma", lambda: sweep_spec(gammas=(0.5, 0.5)), ValueError, r"gammas must not repeat"),
    ("spec scalar gammas", lambda: sweep_spec(gammas=0.5), TypeError, r"gammas must be a sequence"),
    ("spec str etas", lambda: sweep_spec(etas="0.01"), TypeError, r"etas must be a sequence"),
    ("spec eta 0", lambda: sweep_spec(etas=(0.0,)), ValueError, r"etas must be > 0"),
    ("spec C eta^g > 1", lambda: sweep_spec(Cs=(200.0,)), ValueError, r"1 - beta = C\*eta\*\*gamma"),
    ("spec batch > n", lambda: sweep_spec(batch_sizes=(5,)), ValueError, r"batch_sizes must be in \[1, n=1\]"),
    (
        "spec records > max",
        lambda: sweep_spec(records=512, max_steps=256, min_steps=128),
        ValueError,
        r"records must be <= max_steps",
    ),
    (
        "heavy_ball lr vector",
        lambda: flatter.heavy_ball(jnp.array([0.1, 0.2]), 0.5),
        ValueError,
        r"learning_rate must be a scalar \(or a schedule\), got shape \(2,\)",
    ),
    (
        "label_noise sigma vector",
        lambda: flatter.label_noise(np.ones(3), key=KEY),
        ValueError,
        r"sigma must be a scalar",
    ),
    (
        "simulate noise after stateless optax.sgd",
        lambda: simulate(optimizer=optax.chain(optax.sgd(0.1), flatter.label_noise(0.1, key=KEY))),
        ValueError,
        r"label_noise must come first in optax.chain: the updates it received are not the gradient",
    ),
    (
        "simulate flip after a clip",
        lambda: flatter.simulate(
            flatter.Problem(lambda w, x: x @ w, jnp.ones((4, 2)), jnp.eye(2)[jnp.array([0, 1, 0, 1])]),
            optax.chain(optax.clip(1.0), flatter.label_flip(0.2, key=KEY, num_classes=2), flatter.heavy_ball(0.1, 0.5)),
            jnp.ones((2, 2)),
            steps=2,
            key=KEY,
        ),
        ValueError,
        r"label_flip must come first in optax.chain",
    ),
    (
        "simulate noise after heavy_ball",
        lambda: simulate(optimizer=optax.chain(flatter.heavy_ball(0.1, 0.5), flatter.label_noise(0.1, key=KEY))),
        ValueError,
        r"label_noise must come first in optax.chain",
    ),
    (
        "simulate gaussian noise on cross-entropy",
        lambda: flatter.simulate(
            flatter.Problem(
                lambda w, x: x @ w, jnp.ones((4, 2)), jnp.eye(2)[jnp.array([0, 1, 0, 1])], loss="cross_entropy"
            ),
            optax.chain(flatter.label_noise(0.1, key=KEY), flatter.heavy_ball(0.1, 0.5)),
            jnp.ones((2, 2)),
            steps=2,
            key=KEY,
        ),
        ValueError,
        r"label_noise perturbs regression labels.*use label_flip",
    ),
    ("spec min > max", lambda: sweep_spec(min_steps=2**12, max_steps=2**10), ValueError, r"min_steps must be <="),
    ("spec nan threshold", lambda: sweep_spec(threshold=float("nan")), ValueError, r"threshold must be finite"),
    ("spec seed < 0", lambda: sweep_spec(seed=-1), ValueError, r"seed must be a non-negative integer"),
    ("spec seeds 0", lambda: sweep_spec(seeds=0), ValueError, r"seeds must be a positive integer"),
    ("spec records 0", lambda: sweep_spec(records=0), ValueError, r"records must be a positive integer"),
    ("spec horizon_factor", lambda: sweep_spec(horizon_factor=0.5), ValueError, r"horizon_factor must be >= 1"),
    ("spec noise mode", lambda: sweep_spec(label_noise_mode="x"), ValueError, r"label_noise_mode must be one of"),
    ("spec sampling", lambda: sweep_spec(sampling="bootstrap"), ValueError, r"sampling must be one of"),
    ("spec kwargs", lambda: sweep_spec(problem_kwargs=[1]), TypeError, r"problem_kwargs must be a dict"),
    ("spec below", lambda: sweep_spec(below="yes"), TypeError, r"below must be True or False"),
    ("spec no-noise variant", lambda: sweep_spec(variants=("sgdm-no-label-noise",)), ValueError, r"variants 'sgdm-no"),
    ("run_sweep chunk_size 0", lambda: run_sweep(sweep_spec(), "/tmp/x", chunk_size=0), ValueError, r"chunk_size"),
    ("run_sweep max_chunks", lambda: run_sweep(sweep_spec(), "/tmp/x", max_chunks=-1), ValueError, r"max_chunks"),
    ("run_sweep spec", lambda: run_sweep({"problem": "toy-valley"}, "/tmp/x"), TypeError, r"spec must be"),
    ("load missing", lambda: load("/nonexistent/sweep"), FileNotFoundError, r"no sweep folder at /nonexistent"),
]


@pytest.mark.parametrize("beta", [1.0, 1.5, -0.1])
def test_every_momentum_transform_refuses_beta_outside_zero_one_by_name(beta):
    """beta is each transform's ``momentum`` argument: the error names it and its range, positionally or not."""
    import flatter

    for make in (
        lambda: flatter.heavy_ball(0.1, beta),
        lambda: flatter.heavy_ball(0.1, momentum=beta, nesterov=True),
        lambda: flatter.sngm(0.1, beta),
        lambda: flatter.sngm(learning_rate=0.1, momentum=beta),
    ):
        with pytest.raises(ValueError, match=rf"momentum must be in \[0, 1\), got {beta:g}"):
            make()


@pytest.mark.parametrize("make,error,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused(make, error, pattern):
    with refused(error, pattern):
        make()


def test_the_table_without_the_type_checker_gets_flatters_own_messages():
    """What a user without jaxtyping's checker sees: the same table, run in a fresh interpreter without it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-o",
            "addopts=-p no:cacheprovider",
            "-p",
            "no:jaxtyping",
            __file__,
            "-k",
            "test_bad_input_is_refused",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert f"{len(CASES)} passed" in out.stdout, out.stdout[-1000:]
    assert "TypeCheckError" not in out.stdout


CLI_CASES = [
    (["demo", "--seeds", "0"], r"--seeds must be >= 1"),
    (["demo", "--steps", "-5"], r"--steps must be >= 1"),
    (["demo", "--out", "{file}"], r"--out .* is a file, not a folder"),
    (["demo", "--out", ""], r"--out must name a folder, got an empty string"),
    (["scaling", "--out", "{file}"], r"--out .* is a file, not a folder"),
    (["scaling", "--out", "{file}/below"], r"--out .* cannot be created"),
    (["scaling", "--cpu-devices", "0"], r"--cpu-devices must be >= 1"),
    (["scaling", "--problem", "mnist"], r"argument --problem: invalid choice"),
    (["cstar", "--preset", "huge"], r"argument --preset: invalid choice"),
    (["frobnicate"], r"invalid choice"),
    # the option the user can change, not an internal one (record_every)
    (["demo", "--steps", "150", "--out", "{tmp}/demo"], r"--steps must be a multiple of 100 \(the demo records"),
    (["fashion-mnist", "--data", "{file}", "--out", "{tmp}/f"], r"is a file; pass the folder that holds"),
    # cifar10's own default preset (smoke), not fashion-mnist's (quick): what is missing is the data
    (["large-batch", "--dataset", "cifar10", "--out", "{tmp}/lb"], r"--data is required for cifar10"),
]


@pytest.mark.parametrize("args,pattern", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_errors_are_one_line_before_any_work(args, pattern, tmp_path):
    import subprocess
    import sys

    afile = tmp_path / "afile"
    afile.write_text("")
    args = [a.replace("{file}", str(afile)).replace("{tmp}", str(tmp_path)) for a in args]
    out = subprocess.run([sys.executable, "-m", "flatter._cli", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert __import__("re").search(pattern, lines[0]), lines[0]


def test_ctrl_c_is_one_line_that_says_how_to_resume(monkeypatch, capsys, tmp_path):
    from flatter import _cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_run", interrupted)
    monkeypatch.setattr(_cli, "_configure_machine", lambda cpu_devices: None)
    assert _cli.main(["demo", "--out", str(tmp_path / "demo")]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("flatter: interrupted") and "rerun the same command" in err


def test_a_valley_that_cannot_be_reached_is_one_line_in_the_cli(monkeypatch, capsys, tmp_path):
    from flatter import _cli
    from flatter._interpolate import InterpolationError

    def unreachable(args):
        raise InterpolationError("interpolate did not reach the valley: loss 0.3 after 50 iterations")

    monkeypatch.setattr(_cli, "_run", unreachable)
    monkeypatch.setattr(_cli, "_configure_machine", lambda cpu_devices: None)
    assert _cli.main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert (
        capsys.readouterr().err
        == "flatter: error: interpolate did not reach the valley: loss 0.3 after 50 iterations\n"
    )
