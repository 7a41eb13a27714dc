"""The `flatter` command line.

Arguments are parsed before anything heavy is imported, so ``--help``, ``--version`` and argument
errors answer at once (a command's ``--help`` imports its presets, to state their sizes: a second or two).
Before JAX starts, the commands set the machine up for sweeps: on CPU one
JAX device per core (``--cpu-devices``, default: every core this process may use) so that a sweep's
runs are split over all cores, and one OpenBLAS thread (``OPENBLAS_NUM_THREADS``, unless already
set) for the small dense linear algebra of the setup, where more threads only contend. JAX's
persistent compilation cache is on (``~/.cache/flatter/jax``; ``FLATTER_COMPILATION_CACHE=0`` turns it
off, ``FLATTER_COMPILATION_CACHE_DIR`` moves it), so a second run of a command compiles nothing.
"""

from __future__ import annotations

import argparse
import os
import sys


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("flatter")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0+local"


def compilation_cache_dir() -> str | None:
    """The folder of JAX's persistent compilation cache for the CLI, or None when it is off.

    ``FLATTER_COMPILATION_CACHE=0`` turns it off; ``FLATTER_COMPILATION_CACHE_DIR`` moves it; the
    default is ``$XDG_CACHE_HOME/flatter/jax`` (``~/.cache/flatter/jax``).
    """
    if os.environ.get("FLATTER_COMPILATION_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    folder = os.environ.get("FLATTER_COMPILATION_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "flatter", "jax")
    return folder


def _configure_machine(cpu_devices: int) -> None:
    """One JAX CPU device per core, single-threaded OpenBLAS and the persistent compilation cache (a second
    run of a command compiles nothing); must run before JAX's backends start."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import jax

    cache = compilation_cache_dir()
    if cache is not None:
        jax.config.update("jax_compilation_cache_dir", cache)
        # Every program, however quick to compile: a sweep's many small ones add up.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    else:  # off means off, also where JAX_COMPILATION_CACHE_DIR names a cache
        jax.config.update("jax_enable_compilation_cache", False)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return  # the user chose the host devices already
    jax.config.update("jax_num_cpu_devices", cpu_devices)


def _add_machine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=_cores(),
        metavar="N",
        help="JAX devices on CPU; a sweep splits its runs over them (default: the %(default)s usable cores)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with every error on one line (``flatter: error: ...``) and exit status 2; a command's help
    ends with its presets, each with its size and measured time (imported only when that help is asked for)."""

    presets_of: str | None = None

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        text = super().format_help()
        if self.presets_of is None:
            return text
        import textwrap

        from .drivers._about import preset_notes

        notes = [
            textwrap.fill(note, width=100, initial_indent="  ", subsequent_indent="      ")
            for note in preset_notes(self.presets_of)
        ]
        return text + "\npresets (size; wall time measured by benchmarks/run_all.py):\n" + "\n".join(notes) + "\n"


def _check_out(path: str) -> None:
    """The results folder exists or can be made, and is writable: checked before any work starts."""
    from pathlib import Path

    if not path.strip():  # Path("") is the working directory: results would land among the user's files
        raise ValueError("--out must name a folder, got an empty string")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {path} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {path} cannot be created: {err.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path} is not writable")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flatter",
        description="SGD with momentum and label noise near the valley of minimizers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flatter {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    demo = sub.add_parser(
        "demo", help="SGDM-LN with the 2/3 rule vs SGD on matrix sensing (about 10 s on 2 cores)", formatter_class=fmt
    )
    demo.presets_of = "demo"
    demo.add_argument("--out", default="flatter-out/demo", help="folder for demo.png/.npz/.json")
    demo.add_argument("--seeds", type=int, default=4, help="seeds per optimizer")
    demo.add_argument("--steps", type=int, default=100_000, help="steps per run")
    _add_machine_options(demo)
    scaling = sub.add_parser(
        "scaling",
        help="the 2/3 scaling law: sweep (gamma, eta) x seeds, fit alpha(gamma) with error bars, gamma*",
        description="Run (or resume) the sweeps of a preset, print the alpha(gamma) table and gamma*, and write "
        "scaling.png, summary.json and the per-run results under OUT/PROBLEM/PRESET.",
        formatter_class=fmt,
    )
    scaling.presets_of = "scaling"
    scaling.add_argument(
        "--problem",
        choices=("toy-valley", "matrix-sensing", "teacher-student"),
        default="toy-valley",
        help="the built-in problem: toy-valley sits where gamma* = 2/3 is predicted (underdamped along the valley, "
        "kappa = 0.25), matrix-sensing off it (overdamped, kappa = 0.006)",
    )
    scaling.add_argument("--preset", choices=("quick", "paper"), default="quick", help="quick: 2 CPU cores; paper")
    scaling.add_argument("--out", default="flatter-out/scaling", help="results folder (re-running resumes)")
    scaling.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    scaling.add_argument("--verbose", action="store_true", help="print setup times and the number of compiles")
    _add_machine_options(scaling)
    cstar = sub.add_parser(
        "cstar", help="the optimal prefactor C* against the noise sigma at gamma = 2/3", formatter_class=fmt
    )
    cstar.presets_of = "cstar"
    cstar.add_argument("--problem", choices=("toy-valley",), default="toy-valley", help="the built-in problem")
    cstar.add_argument("--preset", choices=("quick", "paper"), default="quick", help="grid size")
    cstar.add_argument("--out", default="flatter-out/cstar", help="results folder")
    _add_machine_options(cstar)
    for dataset, presets, about in (
        (
            "fashion-mnist",
            ("quick", "critical", "paper"),
            "MLP-6 on Fashion-MNIST (Debian's dataset-fashion-mnist, or --data DIR)",
        ),
        ("cifar10", ("smoke", "paper"), "ResNet-18 on CIFAR-10 (--data: the official python-version archive)"),
    ):
        network = sub.add_parser(
            dataset,
            help=f"two phases on real data: {about}; alpha(gamma), gamma*, tr∇²L and test accuracy",
            description=f"{about}. Phase 1: full-batch GD to a fitted training set (checkpointed); phase 2: a "
            "resumable sweep of label-noise SGDM with 1 - beta = C eta^gamma over gammas, etas and seeds. Prints "
            "alpha(gamma) with error bars and gamma*, writes the figure, summary.json and curves.npz.",
            formatter_class=fmt,
        )
        network.presets_of = dataset
        network.add_argument("--preset", choices=presets, default=presets[0], help="grid and sizes")
        network.add_argument(
            "--data",
            default=None,
            metavar="DIR",
            help="the data: IDX files (fashion-mnist; default /usr/share/datasets/fashion-mnist), or "
            "cifar-10-python.tar.gz / cifar-10-batches-py/ / a folder holding either (cifar10)",
        )
        network.add_argument("--width", type=int, default=None, help="override the preset's network width")
        network.add_argument("--seeds", type=int, default=None, help="override the preset's seeds per point")
        network.add_argument(
            "--sampling",
            choices=("without_replacement", "with_replacement", "shuffle"),
            default=None,
            help="how phase 2 draws its minibatches (default without replacement, the theory's; with replacement "
            "costs O(B), not a partial sort of n uniforms, and has the same limit dynamics; shuffle: flatter 0.1's "
            "draw without replacement, to resume its results)",
        )
        network.add_argument("--out", default="flatter-out", help="results folder (re-running resumes)")
        network.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        network.add_argument("--verbose", action="store_true", help="print setup times and the number of compiles")
        _add_machine_options(network)
    large = sub.add_parser(
        "large-batch",
        help="test accuracy against batch size for MSGD, SNGM, LARS and Adam at a fixed epoch budget",
        description="For every optimizer and batch size: tune the peak learning rate on a log grid by validation "
        "accuracy, train fresh seeds at it (warm-up + cosine decay, the same epochs at every batch size), and report "
        "test accuracy (mean ± s.d.) and epochs to a target accuracy. Writes large_batch.png, summary.json and "
        "curves.npz under OUT/large-batch/DATASET/PRESET; re-running resumes finished cells.",
        formatter_class=fmt,
    )
    large.presets_of = "large-batch"
    large.add_argument("--dataset", choices=("fashion-mnist", "cifar10"), default="fashion-mnist", help="the data")
    large.add_argument(
        "--preset",
        default=None,
        help="fashion-mnist: quick (2 CPU cores; the default) or paper; cifar10: smoke (the default) or paper",
    )
    large.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="IDX files (fashion-mnist; default /usr/share/datasets/fashion-mnist), or the CIFAR-10 python archive",
    )
    large.add_argument("--width", type=int, default=None, help="override the preset's network width")
    large.add_argument("--seeds", type=int, default=None, help="override the preset's reported seeds per cell")
    large.add_argument("--epochs", type=int, default=None, help="override the preset's epoch budget")
    large.add_argument("--out", default="flatter-out", help="results folder (re-running resumes)")
    large.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    _add_machine_options(large)
    return parser


def _project_errors() -> tuple[type[BaseException], ...]:
    """The errors that are one line for the user: bad input, files, and a valley that could not be reached."""
    errors: list[type[BaseException]] = [ValueError, TypeError, OSError]
    # Their modules import JAX, so they are looked up only once a command has loaded them.
    for module, name in (("flatter._interpolate", "InterpolationError"), ("flatter.valley._projection", "ValleyError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    """Run a command; every error is one line on stderr with exit status 2 (``FLATTER_DEBUG=1``: traceback)."""
    args = _parser().parse_args(argv)
    try:
        for name in ("cpu_devices", "seeds", "steps", "width", "epochs"):
            if getattr(args, name, None) is not None and getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        _check_out(args.out)
        _configure_machine(args.cpu_devices)
        _run(args)
    except Exception as err:
        if os.environ.get("FLATTER_DEBUG") or not isinstance(err, _project_errors()):
            raise
        print(f"flatter: error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        if os.environ.get("FLATTER_DEBUG"):
            raise
        # Chunks are written atomically as they finish, so a rerun resumes exactly where this one stopped; a
        # sweep's interrupt says how many runs are saved.
        generic = f"interrupted; every finished chunk under {args.out} is saved: rerun the same command to resume"
        print(f"flatter: {str(err) or generic}", file=sys.stderr)
        return 130
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.command == "scaling":
        from .drivers.scaling import run_scaling

        run_scaling(args.problem, args.preset, args.out, progress=not args.no_progress, verbose=args.verbose)
    elif args.command == "cstar":
        from .drivers.cstar import run_cstar

        run_cstar(args.problem, args.preset, args.out)
    elif args.command in ("fashion-mnist", "cifar10"):
        from .drivers.networks import run_network_experiment

        overrides = {k: getattr(args, k) for k in ("width", "seeds", "sampling") if getattr(args, k) is not None}
        run_network_experiment(
            args.command,
            args.preset,
            args.out,
            data_dir=args.data,
            progress=not args.no_progress,
            verbose=args.verbose,
            **overrides,
        )
    elif args.command == "large-batch":
        from .drivers.large_batch import run_large_batch

        overrides = {k: getattr(args, k) for k in ("width", "seeds", "epochs") if getattr(args, k) is not None}
        preset = args.preset or {"fashion-mnist": "quick", "cifar10": "smoke"}[args.dataset]
        run_large_batch(args.dataset, preset, args.out, data_dir=args.data, progress=not args.no_progress, **overrides)
    elif args.command == "demo":
        from .drivers.demo import DemoConfig, run_demo

        run_demo(DemoConfig(seeds=args.seeds, steps=args.steps), out=args.out)


if __name__ == "__main__":
    sys.exit(main())
