"""Curvature at scale, matrix-free: Hutchinson traces and Lanczos sharpness of a Problem's loss."""

from ._lanczos import sharpness as sharpness
from ._matvec import curvature_matvec as curvature_matvec
from ._trace import (
    TraceEstimate as TraceEstimate,
    hutchinson_observable as hutchinson_observable,
    hutchinson_trace as hutchinson_trace,
)
