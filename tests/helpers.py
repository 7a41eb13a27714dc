"""Shared helpers: a quadratic test loss, NumPy heavy-ball recurrences and a small toy-valley sweep spec."""

import jax.numpy as jnp
import numpy as np
import optax

A = np.array([[2.0, 0.3], [0.3, 0.5]])
B = np.array([1.0, -1.0])


def grad_np(theta):
    return A @ theta - B


def run_optax(tx, steps=25, theta0=(1.0, 2.0)):
    theta = jnp.asarray(theta0)
    state = tx.init(theta)
    out = []
    for _ in range(steps):
        updates, state = tx.update(jnp.asarray(A) @ theta - jnp.asarray(B), state, theta)
        theta = optax.apply_updates(theta, updates)
        out.append(np.asarray(theta))
    return np.array(out)


def run_numpy(eta, beta, nesterov=False, steps=25, theta0=(1.0, 2.0)):
    theta, v, out = np.array(theta0), np.zeros(2), []
    for k in range(steps):
        g = grad_np(theta)
        v = beta * v + g
        step = g + beta * v if nesterov else v
        theta = theta - eta(k) * step if callable(eta) else theta - eta * step
        out.append(theta.copy())
    return np.array(out)


def toy_spec(**kw):
    """A small toy-valley sweep (2 gammas x 2 etas x 4 seeds, SGDM and SGD at the same eta), fields overridable."""
    from flatter.sweep import SweepSpec

    base = dict(
        problem="toy-valley",
        gammas=(0.5, 2 / 3),
        etas=(0.01, 0.004),
        seeds=4,
        observable="abs_y",
        threshold=0.1,
        phase1=False,
        variants=("sgdm", "sgd-same-eta"),
        max_steps=2**14,
    )
    base.update(kw)
    return SweepSpec(**base)
