"""Discrete simulation of any optax optimizer on a Problem: one jitted scan, run in chunks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ._problem import Observable, Params, Problem
from ._validation import check_positive_int, is_concrete


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["steps", "observables", "diverged", "diverged_at", "params", "opt_state"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Trajectory:
    """The result of :func:`simulate` (a pytree, so it stacks under ``jax.vmap``).

    Attributes:
      steps: the step numbers :math:`k` of the records, ``(R,)``, starting at 0.
      observables: ``name -> (R,)`` values at those steps.
      diverged: whether the parameters became non-finite; from then on the run stopped updating
        and its later records repeat the last finite state.
      diverged_at: the step number :math:`k` at which :math:`\theta_k` would first have been
        non-finite (``-1`` if never).
      params, opt_state: the final (last finite) parameters and optimizer state.
    """

    steps: Int[Array, " R"]
    observables: dict[str, Float[Array, " R"]]
    diverged: Bool[Array, ""]
    diverged_at: Int[Array, ""]
    params: PyTree
    opt_state: PyTree


def _all_finite(tree: PyTree) -> Bool[Array, ""]:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _tree_where(cond: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


def _resolve_observables(
    problem: Problem, observables: Sequence[str] | Mapping[str, Observable] | None
) -> tuple[tuple[str, Observable], ...]:
    table = dict(problem.observables)
    if observables is None:
        return tuple(table.items())
    if isinstance(observables, Mapping):
        for name, fn in observables.items():
            if not callable(fn):
                raise TypeError(f"observable {name!r} must be callable fn(problem, params)")
        return tuple(observables.items())
    if isinstance(observables, str):
        observables = (observables,)
    unknown = [n for n in observables if n not in table]
    if unknown:
        raise ValueError(f"unknown observable(s) {unknown}; problem {problem.name!r} has {list(table)}")
    return tuple((n, table[n]) for n in observables)


def make_step(problem: Problem, optimizer: optax.GradientTransformation, batch_size: int | None) -> Callable:
    r"""One optimizer step on ``problem`` as a pure function of ``(params, opt_state, key)``.

    The gradient is that of the minibatch loss
    :math:`L_\mathcal{B} = \frac{1}{2B}\sum_{a\in\mathcal{B}}\|f_a - y_a\|^2` over :math:`B` examples
    drawn without replacement with ``key`` (all :math:`n` when ``batch_size`` is ``None``). The
    optimizer receives the extra arguments ``predict_fn`` (the model on this batch) and
    ``full_batch``, which :func:`flatter.label_noise` uses; transforms that need none ignore them.
    """
    n = problem.num_examples
    full_batch = batch_size is None or batch_size == n
    tx = optax.with_extra_args_support(optimizer)

    def step(params, opt_state, key):
        if full_batch:
            xb, yb = problem.inputs, problem.targets
        else:
            idx = jax.random.choice(key, n, (batch_size,), replace=False)
            xb, yb = problem.inputs[idx], problem.targets[idx]

        def predict_fn(p):
            return problem.predict(p, xb)

        out, pullback = jax.vjp(predict_fn, params)
        (grads,) = pullback((out - yb) / out.shape[0])
        updates, opt_state = tx.update(grads, opt_state, params, predict_fn=predict_fn, full_batch=full_batch)
        return optax.apply_updates(params, updates), opt_state

    return step


@partial(jax.jit, static_argnames=("optimizer", "batch_size", "record_every", "n_records", "names"))
def _run_chunk(
    problem: Problem,
    carry: tuple,
    *,
    optimizer: optax.GradientTransformation,
    batch_size: int | None,
    record_every: int,
    n_records: int,
    names: tuple[tuple[str, Observable], ...],
):
    step = make_step(problem, optimizer, batch_size)
    full_batch = batch_size is None or batch_size == problem.num_examples

    def one_step(c, _):
        params, opt_state, key, diverged, diverged_at, k = c
        if full_batch:  # no batch to draw: skip the split (RNG is a large part of a cheap step)
            sub = key
        else:
            key, sub = jax.random.split(key)
        new_params, new_opt_state = step(params, opt_state, sub)
        finite = _all_finite(new_params)
        ok = finite & ~diverged
        params = _tree_where(ok, new_params, params)
        opt_state = _tree_where(ok, new_opt_state, opt_state)
        diverged_at = jnp.where(~finite & ~diverged, k + 1, diverged_at)
        return (params, opt_state, key, diverged | ~finite, diverged_at, k + 1), None

    def one_record(c, _):
        c, _ = jax.lax.scan(one_step, c, None, length=record_every)
        obs = {name: fn(problem, c[0]) for name, fn in names}
        return c, (c[5], obs)

    return jax.lax.scan(one_record, carry, None, length=n_records)


def _divisor_at_most(total: int, cap: int) -> int:
    return max(d for d in range(1, min(total, cap) + 1) if total % d == 0)


def simulate(
    problem: Problem,
    optimizer: optax.GradientTransformation,
    params0: Params,
    *,
    steps: int,
    key: PRNGKeyArray,
    record_every: int = 1,
    batch_size: int | None = None,
    observables: Sequence[str] | Mapping[str, Observable] | None = None,
    opt_state: Any = None,
    chunks: int | None = None,
    progress: bool = False,
) -> Trajectory:
    r"""Run ``optimizer`` on ``problem`` for ``steps`` steps and record observables.

    Step :math:`k \to k+1` draws a batch :math:`\mathcal{B}_k` (size ``batch_size``, without
    replacement, from a key split off ``key``; the full data when ``None``), computes the gradient
    of :math:`\frac{1}{2B}\sum_{a\in\mathcal{B}_k}\|f(\theta_k, x_a) - y_a\|^2` and applies
    ``optimizer`` (any optax transform, chained e.g. with :func:`flatter.label_noise`, whose key
    lives in its own state). Observables are recorded at steps :math:`0, r, 2r, \dots,` ``steps``
    with :math:`r` = ``record_every``.

    The loop is a ``jax.lax.scan`` compiled once per (problem, optimizer, shapes); it runs in
    ``chunks`` consecutive pieces (default: about 10 when called eagerly, for the progress bar, and
    1 under ``jit``/``vmap``), which gives bit-identical results. ``simulate`` works under
    ``jax.vmap`` over hyperparameters, keys and initial points: build the optimizer inside the
    vmapped function from traced :math:`\eta, \beta` so that the sweep compiles once.

    A run whose parameters become non-finite stops updating and is flagged
    (``Trajectory.diverged``, ``diverged_at``); it never raises inside a batch.

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> problem = flatter.problems.toy_valley(curvature_slope=0.0)
      >>> traj = flatter.simulate(problem, flatter.heavy_ball(0.5, 0.0), jnp.array([1.0, 0.0]),
      ...                         steps=3, key=jax.random.key(0), observables=["x"])
      >>> print(traj.steps, traj.observables["x"])  # x <- (1 - eta*h) x
      [0 1 2 3] [1.    0.5   0.25  0.125]
    """
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"steps must be a multiple of record_every, got steps={steps}, record_every={record_every}")
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
        if batch_size > problem.num_examples:
            raise ValueError(
                f"batch_size must be in [1, n={problem.num_examples}] for problem {problem.name!r}, got {batch_size}"
            )
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    problem.check_params(params0)
    names = _resolve_observables(problem, observables)
    total = steps // record_every
    eager = all(is_concrete(x) for x in jax.tree.leaves((params0, key)))
    if chunks is None:
        chunks = total // _divisor_at_most(total, max(1, math.ceil(total / 10))) if eager else 1
    chunks = check_positive_int("chunks", chunks)
    if total % chunks:
        raise ValueError(f"chunks must divide the number of records {total}, got {chunks}")

    if opt_state is None:
        opt_state = optimizer.init(params0)
    zero = jnp.zeros([], jnp.int32)
    carry = (params0, opt_state, key, jnp.asarray(False), zero - 1, zero)
    first = {name: fn(problem, params0) for name, fn in names}
    step_list, obs_list = [zero[None]], [jax.tree.map(lambda v: v[None], first)]
    bar = None
    if progress and eager:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"simulate {problem.name}", unit="step")
    for _ in range(chunks):
        carry, (ks, obs) = _run_chunk(
            problem,
            carry,
            optimizer=optimizer,
            batch_size=batch_size,
            record_every=record_every,
            n_records=total // chunks,
            names=names,
        )
        step_list.append(ks)
        obs_list.append(obs)
        if bar is not None:
            bar.update(steps // chunks)
    if bar is not None:
        bar.close()
    params, opt_state, _, diverged, diverged_at, _ = carry
    return Trajectory(
        steps=jnp.concatenate(step_list),
        observables={n: jnp.concatenate([o[n] for o in obs_list]) for n, _ in names},
        diverged=diverged,
        diverged_at=diverged_at,
        params=params,
        opt_state=opt_state,
    )
