"""Train many runs of one optimizer and batch size at once: a vmapped, sharded loop over epochs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._devices import padded_run_count, place_runs, runs_sharding
from .._problem import Params, Problem
from .._progress import listening, tick, tick_in_program
from .._simulate import loops_are_slow
from .._validation import check_positive_int, check_range
from ..transforms import large_batch_schedule
from ._optimizers import large_batch_optimizer


class TrainingCurves(NamedTuple):
    """Per run (axis 0) and epoch (axis 1): the mean minibatch loss of the epoch, the accuracy on the
    validation and test data after it; ``diverged`` runs (a non-finite loss) have NaN accuracies."""

    train_loss: Float[np.ndarray, "runs epochs"]
    validation_accuracy: Float[np.ndarray, "runs epochs"]
    test_accuracy: Float[np.ndarray, "runs epochs"]
    diverged: np.ndarray


def train_runs(
    problem: Problem,
    init: Params | Callable[[Any], Params],
    *,
    optimizer: str,
    batch_size: int,
    epochs: int,
    learning_rates: Sequence[float] | Float[ArrayLike, " runs"],
    seeds: Sequence[int] | ArrayLike,
    validation: tuple[Array, Array],
    warmup_epochs: float = 1.0,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    trust_coefficient: float = 1e-3,
    runs_per_call: int | None = None,
    on_epoch: Callable[[], Any] | None = None,
) -> TrainingCurves:
    r"""Minibatch training of ``len(learning_rates)`` runs of one optimizer at one batch size, side by side.

    Run :math:`r` starts from ``init(key_r)`` (or the same ``init`` params for all), with
    ``key_r = jax.random.key(seeds[r])``, and trains for ``epochs`` passes over the problem's training set
    (a fresh permutation per epoch, :math:`n/B` steps of ``batch_size`` examples; the same
    ``epochs * n`` gradient evaluations for every batch size), on the problem's loss
    (:meth:`flatter.Problem.loss`) with :func:`large_batch_optimizer` and the schedule
    :func:`flatter.transforms.large_batch_schedule` of peak ``learning_rates[r]``. The runs are one
    vmapped program whose run axis is sharded over all devices, so one compile serves every learning
    rate and seed.

    Args:
      problem: any classifier Problem with test data (``Problem.from_flax`` of a user's module works).
      init: parameters, or ``init(key) -> params`` (different initial weights per seed).
      optimizer: a name in :data:`OPTIMIZERS`.
      validation: held-out ``(inputs, one-hot targets)`` for tuning (not the test set).
      runs_per_call: runs per compiled call (default: all of them in one); calls of one size reuse one
        program, which stays compiled between calls with the same optimizer, batch size, epochs and
        hyperparameters (:func:`tune_and_train` compiles each cell once).

    Returns:
      :class:`TrainingCurves` on the host.
    """
    if problem.test_inputs is None:
        raise ValueError(f"problem {problem.name!r} has no test data: train_runs reports test accuracy")
    n = problem.num_examples
    batch_size = check_positive_int("batch_size", batch_size)
    epochs = check_positive_int("epochs", epochs)
    learning_rates = np.atleast_1d(np.asarray(learning_rates, dtype=np.float64))
    seeds = np.atleast_1d(np.asarray(seeds))
    check_range("learning_rates", learning_rates, lower=0.0, lower_inclusive=False)
    if learning_rates.ndim != 1 or seeds.shape != learning_rates.shape:
        raise ValueError(
            f"learning_rates and seeds must be 1-d and of one length (one run each), got shapes "
            f"{learning_rates.shape} and {seeds.shape}"
        )
    if runs_per_call is not None:
        runs_per_call = check_positive_int("runs_per_call", runs_per_call)
    val_x, val_y = (jnp.asarray(a) for a in validation)
    if val_x.shape[1:] != problem.inputs.shape[1:] or val_y.shape[1:] != problem.targets.shape[1:]:
        raise ValueError(
            f"validation data must match the training data per example: inputs {problem.inputs.shape[1:]} vs "
            f"{val_x.shape[1:]}, targets {problem.targets.shape[1:]} vs {val_y.shape[1:]}"
        )
    dtype = jnp.result_type(float)
    init_fn = init if callable(init) else None
    config = _Config(optimizer, batch_size, n, epochs, float(warmup_epochs), float(momentum), float(weight_decay),
                     float(trust_coefficient), init_fn)  # fmt: skip
    runs = len(learning_rates)
    key_data = np.asarray(jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(jnp.asarray(seeds)))
    params0 = None if init_fn is not None else init
    start = _functions(config)[0]
    params_like = jax.eval_shape(start, params0, key_data[0])[0]
    with listening(on_epoch):
        if loops_are_slow(problem, params_like):
            # Convolutions: one compiled step per call and one run after another (a vmapped convolution is a
            # grouped one, and a convolution's gradient inside a loop is slow; see flatter.loops_are_slow).
            jstart, jstep, jeval, jinit, jbatches = _host_functions(config)
            out = []
            for peak, kd in zip(learning_rates.astype(dtype), key_data, strict=True):
                params, keys = jstart(params0, kd)
                state, record = jinit(params), []
                for key in keys:
                    losses = []
                    for idx in jbatches(key):
                        params, state, loss = jstep(problem, peak, params, state, idx)
                        losses.append(loss)
                    record.append((jnp.mean(jnp.stack(losses)), *jeval(problem, val_x, val_y, params)))
                    tick()
                out.append([np.asarray(jax.device_get(jnp.stack(r))) for r in zip(*record, strict=True)])
            loss, val_acc, test_acc = (np.stack(a).astype(np.float64) for a in zip(*out, strict=True))
        else:
            # The sweeps' "runs" mesh over all devices: every run is independent, nothing is communicated. Runs go
            # through in calls of one size (the last padded by repeating its final run), so the tuning runs and the
            # reported runs of a cell share one compiled program.
            sharding = runs_sharding()
            devices = 1 if sharding is None else jax.device_count()
            size = padded_run_count(min(runs, runs_per_call or runs), devices)
            fn = _vmapped_program(config)
            parts = []
            for first in range(0, runs, size):
                members = np.arange(first, min(first + size, runs))
                pad = np.concatenate([members, np.full(size - members.size, members[-1])])
                args = [place_runs(a, sharding) for a in (np.asarray(learning_rates[pad], dtype=dtype), key_data[pad])]
                result = jax.device_get(fn(problem, val_x, val_y, params0, *args))
                parts.append([np.asarray(a, dtype=np.float64)[: members.size] for a in result])
            loss, val_acc, test_acc = (np.concatenate(a) for a in zip(*parts, strict=True))
    diverged = ~np.all(np.isfinite(loss), axis=1)
    val_acc[diverged] = np.nan
    test_acc[diverged] = np.nan
    return TrainingCurves(loss, val_acc, test_acc, diverged)


class _Config(NamedTuple):
    """What a compiled training program depends on besides its inputs (hashable: the program cache's key)."""

    optimizer: str
    batch_size: int
    n: int
    epochs: int
    warmup_epochs: float
    momentum: float
    weight_decay: float
    trust_coefficient: float
    init_fn: Callable | None


def _functions(config: _Config):
    """The pieces of one run: ``start``, ``one_run``, ``evaluate``, ``optimizer_at`` and ``batches``."""
    unit = large_batch_schedule(
        1.0, batch_size=config.batch_size, train_size=config.n, epochs=config.epochs, warmup_epochs=config.warmup_epochs
    )
    steps_per_epoch, batch_size, epochs = unit.steps_per_epoch, config.batch_size, config.epochs
    hyper = dict(momentum=config.momentum, weight_decay=config.weight_decay, trust_coefficient=config.trust_coefficient)

    def optimizer_at(peak):
        return large_batch_optimizer(config.optimizer, lambda k: peak * unit.schedule(k), **hyper)

    def start(params0, key_data):
        k_init, k_data = jax.random.split(jax.random.wrap_key_data(key_data))
        params = config.init_fn(k_init) if config.init_fn is not None else params0
        return params, jax.random.split(k_data, epochs)

    def step(problem, peak, params, state, idx):
        loss, grads = jax.value_and_grad(problem.loss)(params, problem.inputs[idx], problem.targets[idx])
        updates, state = optimizer_at(peak).update(grads, state, params)
        return jax.tree.map(lambda p, u: (p + u).astype(p.dtype), params, updates), state, loss

    def batches(key):
        order = jax.random.permutation(key, config.n)[: steps_per_epoch * batch_size]
        return order.reshape(steps_per_epoch, batch_size)

    def evaluate(problem, val_x, val_y, params):
        test = problem.accuracy(params, problem.test_inputs, problem.test_targets)
        return problem.accuracy(params, val_x, val_y), test

    # The data and the shared init are arguments, not closed-over constants (which XLA would fold).
    def one_run(problem, val_x, val_y, params0, peak, key_data):
        params, keys = start(params0, key_data)

        def epoch(carry, key_index):
            def inner(c, idx):
                p, s, loss = step(problem, peak, *c, idx)
                return (p, s), loss

            key, index = key_index
            carry, losses = jax.lax.scan(inner, carry, batches(key))
            tick_in_program(index)  # once per epoch (and device), not per run
            return carry, (jnp.mean(losses), *evaluate(problem, val_x, val_y, carry[0]))

        carry = (params, optimizer_at(peak).init(params))
        _, (loss, val_acc, test_acc) = jax.lax.scan(epoch, carry, (keys, jnp.arange(epochs)))
        return loss, val_acc, test_acc

    return start, one_run, evaluate, optimizer_at, batches, step


@functools.lru_cache(maxsize=64)
def _vmapped_program(config: _Config):
    """One jitted, vmapped program per configuration: jit's own cache then serves every call of one shape."""
    one_run = _functions(config)[1]
    return jax.jit(jax.vmap(one_run, in_axes=(None, None, None, None, 0, 0)))


@functools.lru_cache(maxsize=64)
def _host_functions(config: _Config):
    """The host loop's jitted pieces, kept per configuration (so a second call compiles nothing)."""
    start, _, evaluate, optimizer_at, batches, step = _functions(config)
    init_state = jax.jit(lambda p: optimizer_at(1.0).init(p))
    return jax.jit(start), jax.jit(step), jax.jit(evaluate), init_state, jax.jit(batches)
