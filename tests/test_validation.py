"""Every bad input raises a ValueError that names the parameter and its allowed range."""

import jax
import jax.numpy as jnp
import pytest

import flatter

KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: flatter.heavy_ball(0.0, 0.5), r"learning_rate must be > 0"),
        (lambda: flatter.heavy_ball(-0.1, 0.5), r"learning_rate must be > 0, got -0.1"),
        (lambda: flatter.heavy_ball(0.1, 1.0), r"momentum must be in \[0, 1\), got 1"),
        (lambda: flatter.heavy_ball(0.1, -0.2), r"momentum must be in \[0, 1\)"),
        (lambda: flatter.heavy_ball(0.1, jnp.array([0.5, 1.2])), r"momentum must be in \[0, 1\), got 1.2"),
        (lambda: flatter.heavy_ball(float("nan"), 0.5), r"learning_rate"),
        (lambda: flatter.momentum_rule(0.1, C=0.0, gamma=0.5), r"C must be > 0"),
        (lambda: flatter.momentum_rule(0.1, C=1.0, gamma=-1.0), r"gamma must be >= 0"),
        (lambda: flatter.momentum_rule(0.5, C=3.0, gamma=0.5), r"beta = 1 - C\*eta\*\*gamma.*in \[0, 1\)"),
        (lambda: flatter.momentum_rule(0.0, C=1.0, gamma=0.5), r"learning_rate must be > 0"),
        (lambda: flatter.scaled_heavy_ball(0.1, C=-1.0, gamma=0.5), r"C must be > 0"),
        (lambda: flatter.scaled_heavy_ball(0.0, C=1.0, gamma=0.5), r"learning_rate must be > 0"),
        (lambda: flatter.sngm(0.1, 1.5), r"momentum must be in \[0, 1\)"),
        (lambda: flatter.sngm(-1.0, 0.5), r"learning_rate must be > 0"),
        (lambda: flatter.sngm(0.1, 0.5, weight_decay=-1e-4), r"weight_decay must be >= 0"),
        (lambda: flatter.label_noise(-0.1, key=KEY), r"sigma must be >= 0"),
        (lambda: flatter.label_noise(0.1, key=KEY, mode="batch"), r"mode must be one of"),
        (lambda: flatter.label_noise(0.1, key=KEY, distribution="laplace"), r"distribution must be one of"),
        (lambda: flatter.problems.make_problem("mnist"), r"unknown problem name 'mnist'"),
        (lambda: flatter.problems.matrix_sensing(4, 5, 10), r"r must be <= d"),
        (lambda: flatter.problems.matrix_sensing(0, 1, 10), r"d must be a positive integer"),
        (lambda: flatter.problems.teacher_student(d_in=2, m=3, n=50), r"n must be below"),
        (lambda: flatter.problems.teacher_student(activation="gelu"), r"activation must be one of"),
        (lambda: flatter.problems.toy_valley(h0=0.0), r"h0 must be > 0"),
        (
            lambda: flatter.Problem(lambda w, x: x @ w, jnp.ones((3, 2)), jnp.ones(4)),
            r"same number of examples",
        ),
        (
            lambda: flatter.Problem(lambda w, x: x @ w, jnp.ones((3, 2)), jnp.ones(3), test_inputs=jnp.ones((2, 2))),
            r"test_inputs and test_targets must be given together",
        ),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def problem():
    return flatter.Problem(lambda w, x: x @ w, jnp.ones((4, 2)), jnp.ones(4))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 10, "record_every": 3}, r"steps must be a multiple of record_every"),
        ({"steps": 0}, r"steps must be a positive integer"),
        ({"steps": 10, "batch_size": 5}, r"batch_size must be in \[1, n=4\]"),
        ({"steps": 10, "observables": ["accuracy"]}, r"unknown observable"),
        ({"steps": 10, "params0": jnp.ones(3)}, r"predict\(params, inputs\)"),
    ],
)
def test_bad_simulate_arguments(kwargs, match):
    params0 = kwargs.pop("params0", jnp.ones(2))
    with pytest.raises(ValueError, match=match):
        flatter.simulate(problem(), flatter.heavy_ball(0.1, 0.5), params0, key=KEY, **kwargs)


def test_interpolate_bad_method():
    with pytest.raises(ValueError, match="method must be one of"):
        flatter.interpolate(problem(), jnp.ones(2), method="newton")
