"""Shared helpers: a quadratic test loss and NumPy heavy-ball recurrences."""

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
