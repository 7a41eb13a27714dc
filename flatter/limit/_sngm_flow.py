"""The limit of SNGM with label noise along the valley: a flow of log tr∇²L, at the time of heavy ball."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._problem import Problem
from ..valley._tangent import flat_tangent_projector
from ._dynamics import LimitDynamics


def sngm_flow(problem: Problem, *, matrix_free: bool | None = None) -> LimitDynamics:
    r"""The limit flow on Γ of SNGM (:func:`flatter.sngm`) with label noise:

    .. math::

        \frac{d\theta}{dt} = -\frac14\,\nabla_\Gamma \log \mathrm{tr}\,\nabla^2 L(\theta)
        = -\frac{\nabla_\Gamma \mathrm{tr}\,\nabla^2 L}{4\,\mathrm{tr}\,\nabla^2 L},
        \qquad t = k\,\eta_\mathrm{eff}^2,\quad \eta_\mathrm{eff} = \frac{\eta}{1-\beta}.

    Why: near Γ the label-noise gradient is almost pure noise, :math:`g_k \approx \tfrac{\sigma}{B}
    J_B^\top\xi_k`, whose norm concentrates at :math:`N(\theta) = \sigma\sqrt{\mathrm{tr}\nabla^2 L/B}`.
    SNGM's :math:`u_{k+1} = \beta u_k + g_k/\|g_k\|` is then heavy ball at the learning rate
    :math:`\eta/N(\theta)`, whose flow (:func:`label_noise_flow`) at time :math:`k\,(\eta/N)^2/(1-\beta)^2` is
    :math:`-\tfrac{\sigma^2}{4B}\nabla_\Gamma\mathrm{tr}\nabla^2 L`; :math:`N^2` cancels
    :math:`\sigma^2/B`. So the path on Γ is heavy ball's, traversed at a speed divided by
    :math:`\tfrac{\sigma^2}{B}\mathrm{tr}\nabla^2 L`, independent of the noise scale and the batch (as
    SNGM is of the loss scale). For one normal direction (the toy valley) the norm does not
    concentrate, :math:`g/\|g\| = \pm\nabla f/\|\nabla f\|`, and the mean of the random sign gives the
    same drift exactly at leading order. The transverse relaxation (:math:`1/(1-\beta)` when
    underdamped) and this drift time (:math:`\propto (1-\beta)^2/\eta^2`) scale with :math:`\eta` as
    heavy ball's, so the exponents :math:`\alpha(\gamma)` and :math:`\gamma^* = 2/3` carry over.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> from flatter.limit import sngm_flow
      >>> from flatter.valley._flat import flatten
      >>> problem = flatter.problems.toy_valley()  # tr∇²L = h(y) = 1 + y^2 on x = 0
      >>> theta, fp = flatten(problem, jnp.array([0.0, 1.0]))
      >>> print(sngm_flow(problem).drift(fp, theta) + 0.0)  # -(1/4) * 2y / (1 + y^2) along y
      [ 0.   -0.25]
    """

    def drift(fp, theta):
        trace = lambda t: problem.gauss_newton_trace(fp.unravel(t))  # noqa: E731
        value, grad = jax.value_and_grad(trace)(theta)
        return -0.25 * flat_tangent_projector(fp, theta, matrix_free)(grad) / jnp.maximum(value, 1e-30)

    return LimitDynamics(drift, None, 0, "SNGM label-noise flow (-1/4 grad log tr)")
