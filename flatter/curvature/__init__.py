"""Curvature at scale, matrix-free: Hutchinson traces, Lanczos sharpness and SLQ spectral densities."""

from ._density import SpectralDensity as SpectralDensity, spectral_density as spectral_density
from ._lanczos import lanczos_ritz_values as lanczos_ritz_values, sharpness as sharpness
from ._matvec import curvature_matvec as curvature_matvec
from ._trace import (
    TraceEstimate as TraceEstimate,
    hutchinson_observable as hutchinson_observable,
    hutchinson_trace as hutchinson_trace,
)

__all__ = [
    "SpectralDensity",
    "spectral_density",
    "lanczos_ritz_values",
    "sharpness",
    "curvature_matvec",
    "TraceEstimate",
    "hutchinson_observable",
    "hutchinson_trace",
]
