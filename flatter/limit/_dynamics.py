"""The limit dynamics on the valley: label-noise flow and the general-noise SDE with momentum."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._problem import Problem
from .._validation import check_momentum, check_positive, check_positive_int, check_range
from ..valley._flat import FlatProblem
from ..valley._tangent import riemannian_gradient_trace_flat
from ._noise import NoiseFactor

Vector = Float[Array, " p"]


class LimitDynamics(NamedTuple):
    r"""An Itô SDE :math:`d\theta = b(\theta)\,dt + \sigma(\theta)\,dW` on Γ, in flat coordinates.

    ``drift(fp, theta) -> (p,)``; ``diffusion(fp, theta) -> (p, m)`` or ``None`` for an ODE;
    ``noise_dim`` is :math:`m`. The integrators project back onto Γ after every step, which also
    supplies the normal (Itô-correction) drift that keeps the exact solution on Γ.
    """

    drift: Callable[[FlatProblem, Vector], Vector]
    diffusion: Callable[[FlatProblem, Vector], Float[Array, "p m"]] | None
    noise_dim: int
    name: str


def label_noise_flow(
    problem: Problem,
    *,
    sigma: float,
    batch_size: int = 1,
    matrix_free: bool | None = None,
    projector: str | None = None,
) -> LimitDynamics:
    r"""The label-noise limit flow on Γ (Li-Wang-Arora; with momentum, docs/theory.md §1.5 (R1)):

    .. math::

        \frac{d\theta}{dt} = -\frac{\sigma^2}{4B}\,\nabla_\Gamma \mathrm{tr}\,\nabla^2 L(\theta),
        \qquad t = k\,\eta_\mathrm{eff}^2,\quad \eta_\mathrm{eff} = \frac{\eta}{1-\beta}

    valid for :math:`\sigma\to 0` then :math:`\eta \to 0` with :math:`1-\beta = C\eta^\gamma`,
    :math:`\gamma < 2/3` (adiabatic). :math:`B` is the number of noisy labels per step (the batch
    size; :math:`n` for label-noise mode ``"all"``, 1 for ``"one"``:
    :func:`flatter.transforms.label_noise_batch`). Deterministic: label noise has no tangent diffusion on Γ.
    The tangent projection is :func:`flatter.valley.flat_tangent_projector`'s (``projector`` one of
    :data:`flatter.valley.PROJECTOR_SOLVERS`, or chosen by ``matrix_free`` and the size).

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()
      >>> theta, fp = flatter.valley.flatten(problem, jnp.array([0.0, 0.5]))
      >>> flow = flatter.limit.label_noise_flow(problem, sigma=2.0)  # sigma^2/(4B) = 1
      >>> print(flow.drift(fp, theta))  # -grad_Gamma tr = -(0, 2y)
      [-0. -1.]
    """
    check_range("sigma", sigma, lower=0.0)
    batch_size = check_positive_int("batch_size", batch_size)
    scale = sigma**2 / (4.0 * batch_size)

    def drift(fp, theta):
        return -scale * riemannian_gradient_trace_flat(problem, fp, theta, matrix_free, solver=projector)

    return LimitDynamics(drift, None, 0, f"label-noise flow (sigma={sigma:g}, B={batch_size})")


def second_derivative_of_gradient(fp: FlatProblem, theta: Vector, a: Vector, b: Vector) -> Vector:
    r"""The third-derivative contraction :math:`\partial^2(\nabla L)[a, b]`.

    .. math::

        \partial^2(\nabla L)[a, b] = \frac{\partial^2}{\partial s\,\partial u}\nabla L(\theta + sa + ub)
    """
    grad = jax.grad(fp.loss)
    return jax.jvp(lambda t: jax.jvp(grad, (t,), (a,))[1], (theta,), (b,))[1]


def limit_sde(problem: Problem, noise: NoiseFactor, *, eta: float, beta: float) -> LimitDynamics:
    r"""The limit SDE on Γ for gradient noise :math:`\Sigma = FF^\top` and heavy ball :math:`(\eta,\beta)`.

    Li-Wang-Arora Theorem 5.2 with the momentum normal covariance of docs/theory.md §6.8, in time
    :math:`t = k\,\eta_\mathrm{eff}^2` (Itô):

    .. math::

        d\theta = \Sigma_\parallel^{1/2}\,dW
          - P\,\partial^2(\nabla L)\big[\nabla^2L^{+}\,\Sigma_{\perp\parallel}\big]\,dt
          - \tfrac12\,P\,\partial^2(\nabla L)[\tilde S]\,dt \;+\; \text{(normal terms)}

    with :math:`P` the tangent projector, :math:`\Sigma_\parallel = P\Sigma P`,
    :math:`\Sigma_{\perp\parallel} = (I-P)\Sigma P`, and, in the eigenbasis :math:`(h_i, v_i)` of
    :math:`\nabla^2 L` on the normal space, :math:`a = 1-\beta`,

    .. math::

        \tilde S_{ij} = \frac{2a^2\,\Sigma_{ij}}{\eta\,(h_i - h_j)^2 + 2a^2\,(h_i + h_j)},

    the stationary normal covariance of heavy ball divided by :math:`\eta_\mathrm{eff}`. For
    :math:`a^2 \gg \eta\,|h_i - h_j|` (overdamped, :math:`\gamma < 1/2`) it is LWA's
    :math:`\mathcal{L}^{-1}_{\nabla^2L}(\Sigma_\perp)`; in the underdamped regime cross-covariances
    between different curvatures are suppressed. The normal drift terms (LWA's (b) and the normal
    part of the others) are supplied by the integrators' projection onto Γ after every step.
    For label noise :math:`\Sigma = c\nabla^2L` this reduces to :func:`label_noise_flow`. Dense
    linear algebra: for models with up to a few thousand parameters.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley()
      >>> theta, fp = flatter.valley.flatten(problem, jnp.array([0.0, 0.5]))
      >>> sde = flatter.limit.limit_sde(problem, flatter.limit.label_noise_covariance(2.0), eta=0.01, beta=0.9)
      >>> print(sde.drift(fp, theta), sde.diffusion(fp, theta).ravel())  # the flow -(sigma^2/4) grad tr, no noise
      [ 0. -1.] [0. 0.]
    """
    check_positive("eta", eta)
    check_momentum("beta", beta)
    a = 1.0 - beta

    def geometry(fp, theta):
        jac = fp.jacobian(theta)
        _, s, vt = jnp.linalg.svd(jac, full_matrices=False)
        h = s**2 / fp.num_examples
        # Normal directions: right singular vectors with nonzero singular value (rank of J).
        keep = s > s[0] * 1e-8
        normal = vt.T * keep  # (p, N) with zeroed columns for the null directions
        proj = jnp.eye(theta.shape[0], dtype=theta.dtype) - normal @ normal.T
        return normal, h, keep, proj

    def drift(fp, theta):
        normal, h, keep, proj = geometry(fp, theta)
        factor = noise(fp, theta)  # (p, m)
        sig_n = normal.T @ factor  # normal components of F in the eigenbasis
        sigma_nn = sig_n @ sig_n.T
        denom = eta * (h[:, None] - h[None, :]) ** 2 + 2 * a**2 * (h[:, None] + h[None, :])
        mask = keep[:, None] & keep[None, :]
        s_tilde = jnp.where(mask, 2 * a**2 * sigma_nn / jnp.where(mask, denom, 1.0), 0.0)
        lam, q = jnp.linalg.eigh(s_tilde)
        dirs = normal @ q  # S = sum_l lam_l w_l w_l^T
        d2 = jax.vmap(lambda w: second_derivative_of_gradient(fp, theta, w, w))(dirs.T)
        normal_reg = lam @ d2
        # Mixed term: H^+ Sigma_{perp,par} = A B^T with A = V diag(1/h) V^T F, B = P F.
        inv_h = jnp.where(keep, 1.0 / jnp.where(keep, h, 1.0), 0.0)
        left = normal @ (inv_h[:, None] * sig_n)
        right = proj @ factor
        mixed = jax.vmap(lambda u, v: second_derivative_of_gradient(fp, theta, u, v))(left.T, right.T)
        return -proj @ (mixed.sum(0) + 0.5 * normal_reg)

    def diffusion(fp, theta):
        _, _, _, proj = geometry(fp, theta)
        return proj @ noise(fp, theta)

    return LimitDynamics(drift, diffusion, -1, f"limit SDE (eta={eta:g}, beta={beta:g})")
