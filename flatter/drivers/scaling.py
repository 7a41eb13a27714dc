"""The 2/3 scaling experiment: sweeps over (gamma, eta) per preset, fits of alpha(gamma), gamma*, figure."""

from __future__ import annotations

import time
from pathlib import Path

from .._io import environment, save_json
from ..figures import save_figure, scaling_figure
from ..sweep import ScalingSummary, SweepSpec, predict_spec, run_sweep, summarize

GAMMAS_LOW = (0.0, 0.25)
GAMMAS_HIGH = (0.5, 0.6, 2 / 3, 0.75, 0.85)


def presets(problem: str, preset: str) -> list[SweepSpec]:
    """The sweeps of a preset. ``quick`` is sized for 2 CPU cores in minutes; ``paper`` is the full grid.

    Every preset has the baselines of docs/theory.md §5 (label-noise SGD at the same eta and at eta_eff);
    ``paper`` adds Nesterov momentum and, where the problem allows minibatches, SGD noise without
    label noise. gamma <= 0.25 needs larger learning rates (T ~ eta^-2 + 2 gamma), so it is a separate
    sweep with its own eta grid, as in docs/theory.md §6.7.
    """
    quick = preset == "quick"
    if preset not in ("quick", "paper"):
        raise ValueError(f"preset must be one of 'quick', 'paper', got {preset!r}")
    if problem == "toy-valley":
        common = dict(
            problem="toy-valley",
            observable="abs_y",
            threshold=0.1,
            phase1=False,
            label_noise_mode="one",
            seeds=32 if quick else 128,
        )
        variants = ("sgdm", "sgd-eta-eff") if quick else ("sgdm", "nesterov", "sgd-eta-eff")
        return [
            SweepSpec(gammas=GAMMAS_LOW, etas=(0.1, 0.05, 0.025, 0.0125), variants=variants, **common),
            SweepSpec(
                gammas=GAMMAS_HIGH,
                etas=(0.01, 0.004, 0.0016, 0.00064),
                variants=variants + ("sgd-same-eta",),
                max_steps=2**16 if quick else 2**20,
                **common,
            ),
        ]
    if problem == "matrix-sensing":
        common = dict(
            problem="matrix-sensing",
            problem_kwargs={"d": 20, "r": 2, "n": 100},
            observable="recovery_error",
            threshold=0.2,
            # sigma^2/(4 C^3) ~ 0.006: the along-valley oscillation at gamma = 2/3 is underdamped, as on the toy
            sigmas=(0.032,),
            Cs=(0.35,),
            label_noise_mode="one",
            seeds=8 if quick else 32,
            horizon_factor=2.0 if quick else 3.0,
        )
        variants = (
            ("sgdm", "sgd-eta-eff", "sgd-same-eta") if quick else ("sgdm", "nesterov", "sgd-eta-eff", "sgd-same-eta")
        )
        specs = [
            SweepSpec(
                gammas=GAMMAS_HIGH,
                etas=(0.008, 0.004, 0.002, 0.001, 0.0005),
                variants=variants,
                max_steps=2**15 if quick else 2**20,
                **common,
            )
        ]
        if not quick:
            specs.append(SweepSpec(gammas=GAMMAS_LOW, etas=(0.008, 0.004, 0.002, 0.001), variants=("sgdm",), **common))
        return specs
    if problem == "teacher-student":
        # Criterion: tr Hess L down to 60% of its value at the phase-1 interpolator (the flow keeps lowering it
        # slowly, with no sharp end point; the test loss follows it). Read at theta: "trace_hessian@valley" removes
        # the transverse noise from the reading, but the criterion check (a median rest value) then flags the valley's
        # own resting tr (1.46 against the threshold 2.04) as a noise floor.
        common = dict(
            problem="teacher-student",
            problem_kwargs={"d_in": 8, "k": 2, "m": 20, "n": 60},
            observable="trace_hessian",
            threshold=0.6,
            relative_threshold=True,
            sigmas=(0.1,),
            Cs=(0.5,),
            label_noise_mode="one",
            seeds=8 if quick else 32,
            horizon_factor=2.0 if quick else 3.0,
        )
        return [
            SweepSpec(
                gammas=GAMMAS_HIGH,
                etas=(0.008, 0.004, 0.002, 0.001, 0.0005),
                variants=("sgdm", "sgd-eta-eff"),
                max_steps=2**16 if quick else 2**20,
                **common,
            )
        ]
    raise ValueError(f"unknown problem name {problem!r}; choose one of toy-valley, matrix-sensing, teacher-student")


def run_scaling(
    problem: str,
    preset: str = "quick",
    out: str | Path = "flatter-out/scaling",
    progress: bool = True,
    verbose: bool = False,
    predict: bool = True,
) -> ScalingSummary:
    """Run (or resume) the preset's sweeps, print the alpha table and gamma*, write the figure and data.

    With ``predict`` the SGDM grid is also predicted by the reduced SDE (:func:`flatter.sweep.predict_spec`):
    the summary, the printout and the figure show the predicted gamma*(eta) beside the measured one and say
    which regime the run is in.
    """
    out = Path(out) / problem / preset
    start = time.perf_counter()
    specs = presets(problem, preset)
    # The reduced-SDE prediction of the sweep gamma* is read from: which regime this run is in, what gamma* it
    # implies, and whether its criterion clears the noise floor, said before the sweeps run.
    high = max(range(len(specs)), key=lambda i: len(specs[i].gammas))
    predicted = None
    if predict:  # kept in the sweep's folder: a rerun of a finished job recomputes nothing
        store = out / f"sweep-{high}"
        store.mkdir(parents=True, exist_ok=True)
        predicted = predict_spec(specs[high], seeds=8, extra_decades=0, store=store, progress=progress)
        if predicted.floor_problems(etas=specs[high].etas):  # said before the sweeps run
            check = predicted.criterion_check(etas=specs[high].etas)
            print(f"{check}. Running the preset as it is; its gamma* is not printed as a measurement.", flush=True)
    results = [run_sweep(spec, out / f"sweep-{i}", progress=progress, verbose=verbose) for i, spec in enumerate(specs)]
    summary = summarize(results, predicted=predicted, problem=problem)
    wall = time.perf_counter() - start
    record = {
        **summary.to_json(),
        "preset": preset,
        "wall_seconds": wall,
        "environment": environment(),
        "sweeps": [str(out / f"sweep-{i}") for i in range(len(results))],
    }
    print("\n" + summary.table())
    headline = summary.headline()
    if headline is not None:
        print("\n" + headline)
    save_json(out / "summary.json", record)
    save_figure(scaling_figure(results, summary), out / "scaling.png")
    print(
        f"\nwrote {out / 'scaling.png'} and {out / 'summary.json'} ({wall:.0f} s; the sweeps'"
        f" per-run data: flatter.sweep.load('{out / 'sweep-0'}'))"
    )
    return summary
