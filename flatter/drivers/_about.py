"""What ``--help`` says of a command's presets: the size of each, computed from its definition, and the wall
time ``benchmarks/run_all.py`` measured for it (``measured_times.json``, written by that script beside this
file; never edited by hand). A preset nobody measured on the machine of record says so."""

from __future__ import annotations

import json
import math
from pathlib import Path

MEASURED_TIMES = Path(__file__).with_name("measured_times.json")

# The presets of each command, keyed as in measured_times.json: (command, problem or dataset, preset).
PRESET_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "demo": (("matrix-sensing", "default"),),
    "scaling": tuple(
        (problem, preset)
        for problem in ("toy-valley", "matrix-sensing", "teacher-student")
        for preset in ("quick", "paper")
    ),
    "cstar": (("toy-valley", "quick"), ("toy-valley", "paper")),
    "fashion-mnist": (("fashion-mnist", "quick"), ("fashion-mnist", "critical"), ("fashion-mnist", "paper")),
    "cifar10": (("cifar10", "smoke"), ("cifar10", "paper")),
    "large-batch": tuple(
        (dataset, preset)
        for dataset, presets in (("fashion-mnist", ("quick", "paper")), ("cifar10", ("smoke", "paper")))
        for preset in presets
    ),
}


def measured_times() -> dict[str, dict]:
    """``{"command problem preset": record}`` as measured by ``benchmarks/run_all.py`` ({} when never measured)."""
    try:
        return json.loads(MEASURED_TIMES.read_text())
    except (OSError, ValueError):
        return {}


def preset_size(command: str, problem: str, preset: str) -> str:
    """The size of one preset in words: runs, steps and model, from the preset's own definition."""
    if command == "demo":
        from .demo import DemoConfig

        c = DemoConfig()
        return (
            f"matrix sensing d = {c.d}, r = {c.r}, n = {c.n}; 3 optimizers x {c.seeds} seeds = {3 * c.seeds} runs "
            f"of {c.steps:,} steps"
        )
    if command in ("scaling", "cstar"):
        if command == "scaling":
            from .scaling import presets

            specs = presets(problem, preset)
        else:
            from .cstar import cstar_spec

            specs = [cstar_spec(problem, preset)]
        runs = sum(math.prod(spec.shape) for spec in specs)
        sweeps = f" in {len(specs)} sweeps" if len(specs) > 1 else ""
        kwargs = specs[0].problem_kwargs or {}
        default = "2 parameters" if problem == "toy-valley" else "default sizes"
        model = ", ".join(f"{k} = {v}" for k, v in kwargs.items()) or default
        steps = max(spec.max_steps for spec in specs)
        return f"{model}; {runs:,} runs{sweeps}, horizons capped at {steps:,} steps"
    if command in ("fashion-mnist", "cifar10"):
        from .networks import PRESETS

        c = PRESETS[command][preset]
        runs = len(c.gammas) * len(c.etas) * c.seeds
        return (
            f"{_model(c)} on {_images(c.train_per_class)} training images; {len(c.gammas)} gamma x {len(c.etas)} "
            f"eta x {c.seeds} seed{'s' * (c.seeds > 1)} = {runs} runs of at most {c.max_steps:,} steps, "
            f"batch {c.batch_size}"
        )
    if command == "large-batch":
        from .large_batch import PRESETS

        c = PRESETS[problem][preset]
        per_cell = sum(len(grid) for _, grid in c.grids) * c.tuning_seeds + len(c.grids) * c.seeds
        return (
            f"{_model(c)} on {_images(c.train_per_class)} training images, {c.epochs} epochs; "
            f"{len(c.grids)} optimizers x {len(c.batch_sizes)} batch sizes ({c.batch_sizes[0]}-{c.batch_sizes[-1]}), "
            f"{per_cell * len(c.batch_sizes)} runs with the tuning"
        )
    raise ValueError(f"command must be one of {sorted(PRESET_KEYS)}, got {command!r}")


def preset_notes(command: str) -> list[str]:
    """One paragraph per preset of ``command``: its size and its measured wall time (or that it was not measured)."""
    times = measured_times()
    notes = []
    for problem, preset in PRESET_KEYS[command]:
        record = times.get(f"{command} {problem} {preset}")
        if record is None:
            when = "wall time not measured yet"
        else:
            when = (
                f"measured {_duration(record['wall_seconds'])} on {record['cpu']}, {record['cores']} cores "
                f"(commit {record['commit'][:7]}, {record['date'][:10]}; benchmarks/RESULTS.md)"
            )
        several = len({key[0] for key in PRESET_KEYS[command]}) > 1
        name = f"{problem} {preset}" if several else preset
        notes.append(f"{name}: {preset_size(command, problem, preset)}; {when}")
    return notes


def _model(config) -> str:
    return f"{'ResNet' if config.model == 'resnet18' else 'MLP'}-{config.depth} width {config.width}"


def _images(per_class: int | None) -> str:
    return "all" if per_class is None else f"{10 * per_class:,}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
