"""Sharded, resumable sweeps over (eta, gamma, C, sigma, B, seeds, variants), and power-law fits."""

from ._fit import (
    OptimalGamma as OptimalGamma,
    PowerLawFit as PowerLawFit,
    optimal_C as optimal_C,
    optimal_gamma as optimal_gamma,
    power_law as power_law,
    vertex as vertex,
)
from ._grid import VARIANTS as VARIANTS, SweepSpec as SweepSpec, problem_digest as problem_digest
from ._predict import PredictedScaling as PredictedScaling, predict_spec as predict_spec
from ._results import SweepResults as SweepResults, load as load
from ._run import horizons as horizons, prepare as prepare, run_sweep as run_sweep
from ._store import SweepIncomplete as SweepIncomplete, SweepStoreError as SweepStoreError
