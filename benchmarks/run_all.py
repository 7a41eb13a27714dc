"""Re-measure every figure flatter publishes and write ``benchmarks/RESULTS.md``: one command, no hand edits.

Each figure is a command run in a fresh output folder (nothing resumed) with a cold compilation cache, with its
wall time, the machine
(processor, cores, memory, jax), the load average before and after, the commit (and whether the tree had
uncommitted changes) and the lines of its output that hold the result. Every entry is stored as it finishes
(``benchmarks/results/NAME.json``, written atomically), so ``--only NAME`` re-measures one figure and keeps the
others; ``RESULTS.md`` is regenerated from all stored entries every time. Run it from a fresh clone on a quiet
machine::

    git clone REPO fresh && cd fresh && python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]"
    .venv/bin/python benchmarks/run_all.py            # everything (about 45 minutes on 2 cores)
    .venv/bin/python benchmarks/run_all.py --only main-job suite
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "results"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MEASURED_TIMES = ROOT / "flatter" / "drivers" / "measured_times.json"  # what `flatter COMMAND --help` quotes


@dataclasses.dataclass(frozen=True)
class Figure:
    """One published figure: the command that measures it (``{out}``: a fresh folder) and what to keep."""

    name: str
    title: str
    command: str
    keep_from: str | None = None  # keep the output from the first line containing this (None: the last lines)
    last_lines: int = 12
    timeout: int = 3600
    preset: str | None = None  # "command problem preset" when it runs a CLI preset as is: --help quotes its time


FLATTER = f"{shlex.quote(sys.executable)} -m flatter._cli"
PYTHON = shlex.quote(sys.executable)
FIGURES = (
    Figure(
        "main-job",
        "The main job: the quick scaling preset on the toy valley (the README's first command)",
        f"{FLATTER} scaling --problem toy-valley --preset quick --out {{out}} --no-progress",
        keep_from="alpha in T ~ eta^-alpha",
        preset="scaling toy-valley quick",
    ),
    Figure(
        "matrix-sensing",
        "The quick scaling preset on matrix sensing (the off-critical case beside the main job: overdamped)",
        f"{FLATTER} scaling --problem matrix-sensing --preset quick --out {{out}} --no-progress",
        keep_from="alpha in T ~ eta^-alpha",
        preset="scaling matrix-sensing quick",
    ),
    Figure(
        "teacher-student",
        "The quick scaling preset on the teacher-student network",
        f"{FLATTER} scaling --problem teacher-student --preset quick --out {{out}} --no-progress",
        keep_from="alpha in T ~ eta^-alpha",
        preset="scaling teacher-student quick",
    ),
    Figure(
        "cstar",
        "The optimal prefactor C* against sigma",
        f"{FLATTER} cstar --out {{out}}",
        keep_from="C* at gamma",
        preset="cstar toy-valley quick",
    ),
    Figure(
        "demo",
        "One comparison on matrix sensing (flatter demo)",
        f"{FLATTER} demo --out {{out}}",
        last_lines=16,
        preset="demo matrix-sensing default",
    ),
    Figure(
        "predict-vs-simulate",
        "The reduced-SDE predictor against simulated medians",
        f"{PYTHON} benchmarks/predict_vs_simulate.py",
        keep_from="first pred",  # the whole table: its header and every row
    ),
    Figure(
        "predict-vs-simulate-small-eta",
        "The predictor against simulated medians on the toy above 2/3, at eta 100x smaller (the same kappa), float64",
        f"{PYTHON} benchmarks/predict_vs_simulate.py --only toy --gammas 0.75 0.85 --eta-scale 0.01 --x64",
        keep_from="eta x ",  # the step sizes, the header, then every row
    ),
    Figure(
        "predict-vs-simulate-diagonal-small-eta",
        "The diagonal network at 2/3 and 0.75 with eta 100x smaller (the same kappa), float64: do its escapes vanish?",
        f"{PYTHON} benchmarks/predict_vs_simulate.py --only diagonal --gammas 0.667 0.75 --eta-scale 0.01 --x64",
        keep_from="eta x ",
    ),
    Figure(
        "predict-vs-simulate-sensing-small-eta",
        "Matrix sensing, underdamped, at 0.75 with eta 100x smaller (the same kappa), float64: do its escapes vanish?",
        f"{PYTHON} benchmarks/predict_vs_simulate.py --only 'sensing underdamp' --gammas 0.75 --eta-scale 0.01 --x64",
        keep_from="eta x ",
    ),
    Figure(
        "reduced-sde-step",
        "The reduced SDE's settling time against its step, where the motion along the valley rings",
        f"{PYTHON} benchmarks/reduced_sde_step.py",
    ),
    Figure(
        "sweep-throughput",
        "The matrix-sensing step against a hand-fused JAX step (and PyTorch when installed), interleaved rounds",
        f"{PYTHON} benchmarks/sweep_throughput.py --rounds 5",
        last_lines=16,
    ),
    Figure(
        "mlp-peers",
        "The MLP-6 sweep step (Fashion-MNIST quick sizes) against plain JAX + optax and PyTorch, interleaved rounds",
        f"{PYTHON} benchmarks/mlp_peers.py --rounds 5",
        last_lines=10,
    ),
    Figure(
        "sweep-devices",
        "Sweeps on 1, 2, 4 and 8 CPU devices",
        f"{PYTHON} benchmarks/sweep_devices.py",
        last_lines=12,
    ),
    Figure(
        "limit-integrators",
        "The limit SDE three ways: hand-written scan, flatter's scan path, flatter's diffrax path",
        f"{PYTHON} benchmarks/limit_integrators.py",
        last_lines=10,
    ),
    Figure(
        "sngm-valley",
        "SNGM beside heavy ball near the valley (experiments/sngm_valley.py)",
        f"{PYTHON} experiments/sngm_valley.py --out {{out}}",
        keep_from="toy-valley: alpha in T",  # the three problems' tables, each with its regime
    ),
    Figure(
        "large-batch",
        "The large-batch study, Fashion-MNIST quick preset",
        f"{FLATTER} large-batch --out {{out}}",
        last_lines=40,
        preset="large-batch fashion-mnist quick",
    ),
    Figure(
        "fashion-mnist",
        "The MLP-6 on Fashion-MNIST, quick preset",
        f"{FLATTER} fashion-mnist --preset quick --out {{out}} --no-progress --verbose",
        last_lines=40,
        preset="fashion-mnist fashion-mnist quick",
    ),
    Figure(
        "fashion-mnist-critical",
        "The MLP-6 on Fashion-MNIST at the critical damping ratio, at the protocol's size",
        f"{FLATTER} fashion-mnist --preset critical --out {{out}} --no-progress --verbose",
        last_lines=40,
        preset="fashion-mnist fashion-mnist critical",
    ),
    Figure(
        "network-valley",
        "The valley of a network, matrix-free: interpolate, project, the label-noise flow and compare on MLP-6 with "
        "500 Fashion-MNIST images",
        f"{PYTHON} benchmarks/network_valley.py",
        keep_from="MLP-6 width",
    ),
    Figure(
        "network-valley-tanh",
        "The same on MLP-6 with tanh units (a loss three times differentiable, as the limit assumes)",
        f"{PYTHON} benchmarks/network_valley.py --activation tanh",
        keep_from="MLP-6 width",
    ),
    Figure(
        "regime-map",
        "The regime map from the reduced SDE, with a diagonal linear network placed at its own damping ratio "
        "(theory/regime_map.py, full mode)",
        f"env FLATTER_OUT={{out}} MPLBACKEND=Agg {PYTHON} theory/regime_map.py",
        keep_from="predicted grid:",
        timeout=3600,
    ),
    Figure(
        "network-limit",
        "Discrete vs limit on a Fashion-MNIST MLP, tanh and ReLU (theory/network_limit.py, full mode)",
        f"env FLATTER_OUT={{out}} MPLBACKEND=Agg {PYTHON} theory/network_limit.py",
        keep_from="tanh: on the valley",
        timeout=3600,
    ),
    Figure(
        "cifar10-resnet18-smoke",
        "The cifar10 driver end to end with ResNet-18 (the suite runs it on a 3-layer MLP)",
        f"{PYTHON} benchmarks/cifar_smoke.py",
        last_lines=20,
    ),
    Figure(
        "suite",
        "The test suite (the README's second command, without the install)",
        f"{PYTHON} -m pytest -q --durations=15",
        last_lines=22,
    ),
)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _uncommitted_changes() -> bool:
    """Whether a tracked file differs from the commit, other than what this script writes itself (the stored entries,
    RESULTS.md, the times --help quotes): otherwise every entry after the first of a run would say so."""
    own = {RESULTS, MEASURED_TIMES}
    changed = _git("diff", "--name-only", "HEAD")
    if changed == "unknown":  # not a git checkout: nothing to compare with
        return False
    return any(
        (ROOT / name) not in own and STORE not in (ROOT / name).parents for name in changed.splitlines() if name.strip()
    )


def machine() -> dict:
    """The processor, cores, memory and software of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        memory = None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    import importlib.metadata as md

    versions = {}
    for name in ("jax", "jaxlib", "numpy", "torch"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": cores, "memory_gib": memory, "python": platform.python_version(), **versions}


def kept_lines(output: str, figure: Figure) -> list[str]:
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    if figure.keep_from is not None:
        for i, line in enumerate(lines):
            if figure.keep_from in line:
                return lines[i:]
    return lines[-figure.last_lines :]


def measure(figure: Figure) -> dict:
    """Run one figure's command in a fresh folder; its record (also when it fails: the exit code says so)."""
    with tempfile.TemporaryDirectory(prefix=f"flatter-{figure.name}-") as out:
        command = figure.command.format(out=shlex.quote(out))
        load_before = os.getloadavg()
        start = time.perf_counter()
        print(f"[{figure.name}] {command}", flush=True)
        try:
            # A cold compilation cache of its own: the time of a first run, not of one the cache remembers.
            env = {**os.environ, "FLATTER_COMPILATION_CACHE_DIR": os.path.join(out, ".jax-cache")}
            done = subprocess.run(
                command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=figure.timeout, stdin=None,
                env=env,
            )  # fmt: skip
            # What a command prints is its stdout; stderr holds its progress bars, kept only when it failed.
            output, code = done.stdout + (done.stderr if done.returncode else ""), done.returncode
        except subprocess.TimeoutExpired as err:
            output, code = f"{err.stdout or ''}{err.stderr or ''}\n(timed out after {figure.timeout} s)", 124
        wall = time.perf_counter() - start
    record = {
        "name": figure.name,
        "title": figure.title,
        "command": figure.command.replace(FLATTER, "flatter").replace(PYTHON, "python").format(out="OUT"),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": _uncommitted_changes(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(wall, 1),
        "exit_code": code,
        "output": kept_lines(output, figure),
    }
    print(f"[{figure.name}] exit {code}, {wall:.0f} s", flush=True)
    return record


def store(record: dict) -> None:
    STORE.mkdir(parents=True, exist_ok=True)
    path = STORE / f"{record['name']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_results() -> None:
    """``RESULTS.md`` from every stored record, in the order of :data:`FIGURES`."""
    records = []
    for figure in FIGURES:
        path = STORE / f"{figure.name}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
    lines = [
        "# Measured results",
        "",
        "Written by `python benchmarks/run_all.py` (do not edit by hand): each figure with the commit it was measured",
        "at, the machine, the load average (1, 5, 15 min) before and after, the command (`OUT` a fresh folder) and",
        "its wall time, setup and compiles included. Speeds are ratios against a reference measured in the same run.",
        "",
    ]
    for r in records:
        m = r["machine"]
        software = ", ".join(f"{k} {m[k]}" for k in ("python", "jax", "numpy", "torch") if k in m)
        status = "" if r["exit_code"] == 0 else f" — **exit code {r['exit_code']}: the figure below is not valid**"
        dirty = " (with uncommitted changes)" if r["uncommitted_changes"] else ""
        lines += [
            f"## {r['title']}",
            "",
            f"`{r['command']}`: {r['wall_seconds']:.0f} s{status}",
            "",
            f"- commit `{r['commit'][:10]}`{dirty}, {r['date']}",
            f"- {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {software}",
            f"- load {r['load_before']} before, {r['load_after']} after",
            "",
            "```",
            *r["output"],
            "```",
            "",
        ]
    RESULTS.write_text("\n".join(lines))
    write_measured_times()


def write_measured_times() -> None:
    """The wall time of every CLI preset measured without error, for ``flatter COMMAND --help``."""
    times = {}
    for figure in FIGURES:
        path = STORE / f"{figure.name}.json"
        if figure.preset is None or not path.exists():
            continue
        r = json.loads(path.read_text())
        if r["exit_code"] == 0:
            keep = ("wall_seconds", "commit", "date")
            times[figure.preset] = {
                **{k: r[k] for k in keep},
                "cpu": r["machine"]["cpu"],
                "cores": r["machine"]["cores"],
            }
    tmp = MEASURED_TIMES.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(times, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, MEASURED_TIMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [f.name for f in FIGURES]
    parser.add_argument("--only", nargs="+", choices=names, help="measure these figures only (others are kept)")
    parser.add_argument("--skip", nargs="+", choices=names, default=[], help="leave these figures as they are")
    parser.add_argument("--list", action="store_true", help="list the figures and their commands")
    parser.add_argument("--write-only", action="store_true", help="regenerate RESULTS.md from the stored records")
    args = parser.parse_args()
    if args.list:
        for f in FIGURES:
            print(f"{f.name:<20} {f.command}")
        return
    if not args.write_only:
        for figure in FIGURES:
            if (args.only and figure.name not in args.only) or figure.name in args.skip:
                continue
            store(measure(figure))
            write_results()
    write_results()
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
