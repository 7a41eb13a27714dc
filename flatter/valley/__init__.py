"""The valley of minimizers Γ = {θ : r(θ) = 0} of a Problem: projection, tangent space, curvature."""

from .._problem import TRACE_CHUNK_ENTRIES as TRACE_CHUNK_ENTRIES
from ._descent_curvature import DescentGeometry as DescentGeometry, descent_geometry as descent_geometry
from ._flat import FlatProblem as FlatProblem, flatten as flatten
from ._on_valley import (
    ON_VALLEY_SUFFIX as ON_VALLEY_SUFFIX,
    on_valley as on_valley,
)
from ._projection import (
    DENSE_MEMORY_LIMIT as DENSE_MEMORY_LIMIT,
    DENSE_PROJECTION_LIMIT as DENSE_PROJECTION_LIMIT,
    GAUSS_NEWTON_SOLVERS as GAUSS_NEWTON_SOLVERS,
    ValleyError as ValleyError,
    check_dense_jacobian as check_dense_jacobian,
    choose_solver as choose_solver,
    dense_solver as dense_solver,
    gauss_newton_step as gauss_newton_step,
    gauss_newton_steps as gauss_newton_steps,
    gram_solve as gram_solve,
    normal_coefficients as normal_coefficients,
    project as project,
    refined_gram_solve as refined_gram_solve,
)
from ._spectrum import hessian_spectrum as hessian_spectrum, normal_curvatures_flat as normal_curvatures_flat
from ._tangent import (
    PROJECTOR_SOLVERS as PROJECTOR_SOLVERS,
    dense_tangent_projector as dense_tangent_projector,
    flat_tangent_projector as flat_tangent_projector,
    gauss_newton_trace_flat as gauss_newton_trace_flat,
    gauss_newton_trace_gradient_flat as gauss_newton_trace_gradient_flat,
    lsmr_tangent_projector as lsmr_tangent_projector,
    matrix_free_tangent_projector as matrix_free_tangent_projector,
    riemannian_gradient_trace as riemannian_gradient_trace,
    riemannian_gradient_trace_flat as riemannian_gradient_trace_flat,
    tangent_projector as tangent_projector,
    trace_hessian as trace_hessian,
)

__all__ = [
    "FlatProblem",
    "flatten",
    "DescentGeometry",
    "descent_geometry",
    "DENSE_PROJECTION_LIMIT",
    "ON_VALLEY_SUFFIX",
    "on_valley",
    "DENSE_MEMORY_LIMIT",
    "GAUSS_NEWTON_SOLVERS",
    "ValleyError",
    "check_dense_jacobian",
    "choose_solver",
    "dense_solver",
    "gauss_newton_step",
    "gauss_newton_steps",
    "gram_solve",
    "normal_coefficients",
    "refined_gram_solve",
    "project",
    "hessian_spectrum",
    "normal_curvatures_flat",
    "PROJECTOR_SOLVERS",
    "dense_tangent_projector",
    "flat_tangent_projector",
    "TRACE_CHUNK_ENTRIES",
    "gauss_newton_trace_flat",
    "gauss_newton_trace_gradient_flat",
    "lsmr_tangent_projector",
    "matrix_free_tangent_projector",
    "riemannian_gradient_trace",
    "riemannian_gradient_trace_flat",
    "tangent_projector",
    "trace_hessian",
]
