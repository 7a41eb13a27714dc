"""Sharded, resumable sweeps over (eta, gamma, C, sigma, B, seeds, variants), and power-law fits."""

from ._fit import (
    OptimalGamma as OptimalGamma,
    PowerLawFit as PowerLawFit,
    optimal_C as optimal_C,
    optimal_gamma as optimal_gamma,
    power_law as power_law,
    vertex as vertex,
)
from ._grid import (
    VARIANTS as VARIANTS,
    SweepSpec as SweepSpec,
    problem_digest as problem_digest,
    start_digest as start_digest,
)
from ._predict import PredictedScaling as PredictedScaling, predict_spec as predict_spec
from ._reference import FlowReference as FlowReference, flow_reference as flow_reference
from ._results import SweepResults as SweepResults, load as load
from ._run import (
    chunk_sizes as chunk_sizes,
    horizons as horizons,
    prepare as prepare,
    resolved_threshold as resolved_threshold,
    run_sweep as run_sweep,
)
from ._spec_regime import spec_regime as spec_regime
from ._store import (
    FIELDS as FIELDS,
    SweepIncomplete as SweepIncomplete,
    SweepInterrupted as SweepInterrupted,
    SweepStoreError as SweepStoreError,
)
from ._summary import (
    UNDETERMINED_SE as UNDETERMINED_SE,
    ExponentRow as ExponentRow,
    GammaStar as GammaStar,
    ScalingSummary as ScalingSummary,
    gamma_text as gamma_text,
    interval_text as interval_text,
    is_determined as is_determined,
    predicted_alpha as predicted_alpha,
    regime_text as regime_text,
    summarize as summarize,
)

__all__ = [
    "gamma_text",
    "interval_text",
    "FlowReference",
    "flow_reference",
    "chunk_sizes",
    "OptimalGamma",
    "PowerLawFit",
    "optimal_C",
    "optimal_gamma",
    "power_law",
    "vertex",
    "VARIANTS",
    "SweepSpec",
    "problem_digest",
    "start_digest",
    "PredictedScaling",
    "predict_spec",
    "SweepResults",
    "load",
    "horizons",
    "prepare",
    "resolved_threshold",
    "run_sweep",
    "spec_regime",
    "FIELDS",
    "SweepIncomplete",
    "SweepInterrupted",
    "SweepStoreError",
    "UNDETERMINED_SE",
    "ExponentRow",
    "GammaStar",
    "ScalingSummary",
    "is_determined",
    "predicted_alpha",
    "regime_text",
    "summarize",
]
