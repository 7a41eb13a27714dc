"""A two-layer teacher and an overparametrized two-layer student (docs/theory.md §1.7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._problem import Problem
from .._validation import check_choice, check_positive_int

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def teacher_student(
    d_in: int = 10,
    k: int = 3,
    m: int = 40,
    n: int = 200,
    *,
    key: PRNGKeyArray | None = None,
    n_test: int = 1000,
    activation: str = "tanh",
) -> Problem:
    r"""Regression on the outputs of a width-:math:`k` two-layer teacher with a width-:math:`m` student.

    Inputs :math:`x \sim N(0, I_{d})`; teacher :math:`y = a^{*\top}\sigma(W^* x)/\sqrt{k}` with
    :math:`W^*_{jl} \sim N(0, 1/d)`, :math:`a^*_j = \pm 1`; student
    :math:`f(\theta, x) = a^\top\sigma(Wx)/\sqrt{m}` with :math:`\theta = \{W \in \mathbb{R}^{m\times
    d}, a \in \mathbb{R}^m\}`. Requires :math:`n < m(d+1)` (fewer examples than parameters), so the
    interpolating set is a manifold of dimension at least :math:`m(d+1) - n`. ``init_params(key)`` is
    the standard :math:`N(0, 1/d)`, :math:`N(0, 1)` initialization.

    Examples:
      >>> import jax, flatter
      >>> problem = flatter.problems.teacher_student(key=jax.random.key(0))
      >>> params = problem.init_params(jax.random.key(1))
      >>> print(problem.predict(params, problem.inputs).shape, problem.test_inputs.shape)
      (200,) (1000, 10)
    """
    d_in = check_positive_int("d_in", d_in)
    k = check_positive_int("k", k)
    m = check_positive_int("m", m)
    n = check_positive_int("n", n)
    n_test = check_positive_int("n_test", n_test)
    check_choice("activation", activation, tuple(_ACTIVATIONS))
    if n >= m * (d_in + 1):
        raise ValueError(
            f"n must be below the student's parameter count m*(d_in+1) = {m * (d_in + 1)} (overparametrized), got n={n}"
        )
    act = _ACTIVATIONS[activation]
    if key is None:
        key = jax.random.key(0)
    k_w, k_a, k_x, k_xt = jax.random.split(key, 4)
    w_star = jax.random.normal(k_w, (k, d_in)) / jnp.sqrt(d_in)
    a_star = jax.random.rademacher(k_a, (k,), jnp.result_type(float))

    def teacher(x):
        return act(x @ w_star.T) @ a_star / jnp.sqrt(k)

    x_train = jax.random.normal(k_x, (n, d_in))
    x_test = jax.random.normal(k_xt, (n_test, d_in))

    def predict(params: dict[str, Array], x: Float[Array, "b d"]) -> Float[Array, " b"]:
        return act(x @ params["W"].T) @ params["a"] / jnp.sqrt(m)

    def init_params(key_init):
        kw, ka = jax.random.split(key_init)
        return {
            "W": jax.random.normal(kw, (m, d_in)) / jnp.sqrt(d_in),
            "a": jax.random.normal(ka, (m,)),
        }

    return Problem(
        predict,
        x_train,
        teacher(x_train),
        test_inputs=x_test,
        test_targets=teacher(x_test),
        extras={"W_star": w_star, "a_star": a_star},
        init_params=init_params,
        name="teacher-student",
    )
