"""No compile a user would not expect: eager loops over hyperparameters, sweeps over many horizons, the CLI."""

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from helpers import SILENCE_LIMIT, gaps_between, run_clocked

import flatter
from flatter.sweep import SweepSpec, chunk_sizes, run_sweep

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def count_xla_compiles():
    """Counts XLA backend compiles (JAX's own monitoring event), independent of flatter's cache."""
    events = []

    def listener(name, *args, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_eager_simulate_loop_over_eta_compiles_once():
    problem = flatter.problems.matrix_sensing(6, 1, 20, key=jax.random.key(0))
    params = problem.init_params(jax.random.key(1))

    def run(eta):  # a fresh optimizer (a new Python closure) at every point, as a notebook loop builds it
        tx = optax.chain(flatter.label_noise(0.1, key=jax.random.key(2)), flatter.heavy_ball(eta, 0.9))
        traj = flatter.simulate(problem, tx, params, steps=40, key=jax.random.key(3), record_every=10)
        return float(traj.observables["loss"][-1])

    run(0.011)  # the first point compiles (the chunk and the eager ops around it)
    with count_xla_compiles() as compiles:
        losses = [run(eta) for eta in (0.001, 0.002, 0.004, 0.008, 0.016)]
    assert compiles == [], f"{len(compiles)} compiles in a loop over 5 eta values"
    assert len(set(losses)) == 5  # and the values really differ per eta


def test_python_float_literals_do_recompile_correctly():
    """A hyperparameter baked into the program as a literal must not hit another program's executable."""
    problem = flatter.problems.toy_valley(curvature_slope=0.0)
    x = [
        float(flatter.simulate(problem, optax.sgd(lr), jnp.array([1.0, 0.0]), steps=3, key=jax.random.key(0)).params[0])
        for lr in (0.5, 0.25)
    ]
    assert x == [0.125, 0.421875]  # (1 - lr)^3 each: optax.sgd keeps lr as a Python float


def toy_spec(**kw):
    base = dict(
        problem="toy-valley",
        gammas=(0.5, 2 / 3, 0.85),
        etas=(0.01, 0.004, 0.0016),
        seeds=4,
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        variants=("sgdm", "sgd-eta-eff", "sgd-same-eta"),
        max_steps=2**14,
    )
    base.update(kw)
    return SweepSpec(**base)


def test_sweep_compiles_once_per_chunk_shape_not_per_horizon(tmp_path, capsys, own_compiles):
    res = run_sweep(toy_spec(), tmp_path, progress=False, verbose=True)
    horizons = np.unique(res.data["horizon"])
    compiles = res.meta["compiles_last_run"]
    out = capsys.readouterr().out
    shapes = int(out.split("chunk size: ")[1].split(")")[0])
    # Three variants, several horizons, one program: one compile per distinct chunk size.
    assert len(horizons) >= 4
    assert compiles == shapes < len(horizons)
    assert f"{compiles} compile" in out and "setup" in out
    computed, requested = re.search(r"([\d,]+) run-steps computed for ([\d,]+) requested", out).groups()
    assert computed == requested and int(requested.replace(",", "")) > 0  # no padded run (one device here)


def test_chunk_sizes_are_few_shapes_with_little_padding():
    for devices in (1, 2, 8):
        for count in range(1, 700):
            sizes = chunk_sizes(count, 256, devices)
            assert all(s % devices == 0 and s <= max(256, devices) for s in sizes)
            assert count <= sum(sizes) < count + devices  # no padding but the device count's rounding
            padded = chunk_sizes(count, 256, devices, smallest=8)  # fewer shapes, at most a chunk of 8 padded
            assert count <= sum(padded) < count + max(8, devices) + devices
            units = [s // devices for s in sizes]
            assert all(u & (u - 1) == 0 for u in units)  # powers of two


def test_cli_help_and_errors_answer_without_importing_jax():
    code = (
        "import sys\nfrom flatter._cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\nsys.exit(code)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "scaling" in out.stdout and time.perf_counter() - start < 5  # generous: a loaded CI machine
    for args, rc, text in ((["--version"], 0, "flatter "), (["scaling", "--preset", "huge"], 2, "invalid choice")):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == rc and text in out.stdout + out.stderr, out.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "flatter._cli", "scaling", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert "default: toy-valley" in help_text and "--cpu-devices" in help_text


def test_cli_bad_cpu_devices_is_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "flatter._cli", "scaling", "--cpu-devices", "0"], capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--cpu-devices" in out.stderr


def test_a_second_run_of_a_command_compiles_nothing(tmp_path):
    """The CLI's persistent compilation cache: the same command again hits the cache for every program."""
    # A program read from the cache is timed like a compile (the duration event) and counted as a cache hit.
    code = (
        "import sys, jax\nevents = []\n"
        "jax.monitoring.register_event_duration_secs_listener(lambda name, *a, **k: events.append(name))\n"
        "jax.monitoring.register_event_listener(lambda name, *a, **k: events.append(name))\n"
        "from flatter._cli import main\nrc = main(sys.argv[1:])\n"
        "compiles = events.count('/jax/core/compile/backend_compile_duration')\n"
        "print('compiles', compiles - events.count('/jax/compilation_cache/cache_hits'), 'programs', compiles)\n"
        "sys.exit(rc)"
    )
    command = [sys.executable, "-c", code, "demo", "--steps", "200", "--seeds", "1"]
    env = {**os.environ, "FLATTER_COMPILATION_CACHE_DIR": str(tmp_path / "cache"), "FLATTER_COMPILATION_CACHE": "1"}

    def compiles(out: str, **extra: str) -> tuple[int, int]:  # a fresh folder each time: the work is redone
        code, output, stamps = run_clocked(
            command + ["--out", str(tmp_path / out)], timeout=600, cwd=ROOT, env={**env, **extra}
        )
        assert code == 0, output[-2000:]
        assert max(np.diff(stamps)) <= SILENCE_LIMIT, gaps_between(stamps)  # compiling included: never silent
        words = output.rsplit("compiles ", 1)[1].split()
        return int(words[0]), int(words[2])  # compiled, and programs built (compiled or read from the cache)

    first, programs = compiles("a")
    assert first > 0 and any((tmp_path / "cache").iterdir())
    assert compiles("b")[0] == 0
    # Off: every program compiles again. Two programs of one run with the same HLO under different in-memory keys
    # (an eager reshape from two call sites) are one compile and one cache hit when the cache is on.
    assert compiles("c", FLATTER_COMPILATION_CACHE="0")[0] == programs


def test_a_bar_is_redrawn_while_a_long_call_reports_nothing():
    """keep_alive redraws the bar on a timer while the body runs (a compile, a chunk), and stops with it."""
    import time as clock

    from flatter._progress import keep_alive

    class Bar:
        disable, draws = False, 0

        def refresh(self):
            self.draws += 1

    bar = Bar()
    with keep_alive(bar, every=0.05):
        clock.sleep(0.5)
    drawn = bar.draws
    assert 5 <= drawn <= 11  # about one redraw per 0.05 s of the 0.5 s call
    clock.sleep(0.2)
    assert bar.draws == drawn  # and none after it
    with keep_alive(None):  # no bar (progress off): nothing to redraw
        pass
