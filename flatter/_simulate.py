"""Discrete simulation of any optax optimizer on a Problem: one jitted scan, run in chunks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ._precision import full_precision
from ._problem import Observable, Params, Problem
from ._progress import keep_alive, tick_in_program
from ._structural_jit import structural_compile, structural_jit
from ._validation import check_choice, check_key, check_positive_int, is_concrete
from .transforms._label_flip import LabelFlipState, draw_label_flip
from .transforms._label_noise import (
    LabelNoiseState,
    check_full_batch_mode,
    draw_label_noise,
    leading_label_noise,
    leading_state,
)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["steps", "observables", "diverged", "diverged_at", "params", "opt_state"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Trajectory:
    r"""The result of :func:`simulate` (a pytree, so it stacks under ``jax.vmap``).

    Attributes:
      steps: the step numbers :math:`k` of the records, ``(R,)``, starting at 0.
      observables: ``name -> (R,)`` values at those steps.
      diverged: whether the parameters became non-finite. A diverged run is rolled back, at the end
        of the record in which it diverged, to its state at the previous record, and its later
        records repeat that state (the step itself carries no per-step mask).
      diverged_at: the step number :math:`k` of the first non-finite :math:`\theta_k` (``-1`` if
        never). Exact when non-finite parameters give non-finite outputs (every parameter reaches the
        model's outputs, as in all built-in problems): it is read off the residual that each step
        computes anyway. A non-finite state that the outputs do not show is caught at the next
        record, and ``diverged_at`` is then that record's step.
      params, opt_state: the final parameters and optimizer state (for a diverged run: at the last
        record before it diverged).
    """

    steps: Int[Array, "*runs R"]  # *runs: the leading axes of trajectories stacked by vmap
    observables: dict[str, Float[Array, "*runs R"]]
    diverged: Bool[Array, "*runs"]
    diverged_at: Int[Array, "*runs"]
    params: PyTree
    opt_state: PyTree


def _all_finite(tree: PyTree) -> Bool[Array, ""]:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


DENSE_JACOBIAN_LIMIT = 50_000_000
"""The most Jacobian entries (outputs x parameters) the default ``trace_hessian`` record may form."""


def _check_dense_default(problem: Problem, params0: Params, observables) -> None:
    """``observables=None`` records every observable; refuse when that includes a dense Jacobian of a network."""
    if (
        observables is not None
        or "trace_hessian" not in problem.observable_names
        or problem.trace_hessian_fn is not None
    ):
        return
    entries = problem.targets.size * sum(np.size(x) for x in jax.tree.leaves(params0))
    if entries > DENSE_JACOBIAN_LIMIT:
        raise ValueError(
            f"observables=None records every observable of problem {problem.name!r}, including trace_hessian, "
            f"which forms the dense Jacobian ({entries:.2e} entries > {DENSE_JACOBIAN_LIMIT:.0e}); pass "
            "observables=[...] by name, and for the curvature flatter.curvature.hutchinson_observable(...)"
        )


def _tree_where(cond: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


SAMPLINGS = ("without_replacement", "with_replacement", "shuffle")
"""How a step draws its minibatch of :math:`B` of the :math:`n` examples (see :func:`draw_batch`)."""


def draw_batch(key: PRNGKeyArray, n: int, batch_size: int, sampling: str = "without_replacement") -> Int[Array, " B"]:
    r"""The indices of one minibatch: :math:`B` of :math:`0, \dots, n-1`, uniformly.

    - ``"without_replacement"`` (the default, the theory's minibatch): a uniform :math:`B`-subset, the
      indices of the :math:`B` largest of :math:`n` i.i.d. uniforms (``jax.lax.top_k``, a partial sort).
      That is 10x cheaper than ``jax.random.choice(key, n, (B,), replace=False)``, which shuffles all
      :math:`n` (0.05 against 0.55 ms per draw at n = 2000, B = 200 on CPU). Uniforms of the default float
      dtype: in float32 (2^23 values) two of them tie at the subset's boundary with probability about
      n / 2^23 per draw, where the lower index is taken; in float64 never in practice.
    - ``"shuffle"``: the same law as ``"without_replacement"`` by flatter 0.1's draw,
      ``jax.random.choice(key, n, (B,), replace=False)`` (a shuffle of all :math:`n`): other numbers from
      the same keys, 10x slower; it reproduces, and resumes, the minibatch sweeps of flatter 0.1.
    - ``"with_replacement"``: :math:`B` independent uniform indices, ``jax.random.randint``, :math:`O(B)`.
      The label noise is drawn per slot of the batch, so at an interpolating point (where the
      minibatch gradient is label noise only) the noise covariance
      :math:`\frac{\sigma^2}{B}\,\frac1n J^\top J` is the same as without replacement: the limit
      dynamics and its :math:`B` do not change. Off the valley the minibatch gradient's own covariance
      is larger by :math:`(n-1)/(n-B)`.

    Examples:
      >>> import jax
      >>> from flatter import draw_batch
      >>> idx = draw_batch(jax.random.key(0), 10, 10)
      >>> print(sorted(idx.tolist()))  # without replacement: all 10 once
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      >>> print(draw_batch(jax.random.key(0), 10, 4, "with_replacement").shape)
      (4,)
    """
    check_choice("sampling", sampling, SAMPLINGS)
    n, batch_size = check_positive_int("n", n), check_positive_int("batch_size", batch_size)
    if sampling != "with_replacement" and batch_size > n:
        raise ValueError(f"batch_size must be <= n = {n} to draw without replacement, got {batch_size}")
    if sampling == "with_replacement":
        return jax.random.randint(key, (batch_size,), 0, n)
    if sampling == "shuffle":
        return jax.random.choice(key, n, (batch_size,), replace=False)
    return jax.lax.top_k(jax.random.uniform(key, (n,)), batch_size)[1]


def make_step(
    problem: Problem,
    optimizer: optax.GradientTransformation,
    batch_size: int | None,
    sampling: str = "without_replacement",
) -> Callable:
    r"""One optimizer step on ``problem`` as a pure function of ``(params, opt_state, key)``.

    The gradient is that of the minibatch loss
    :math:`L_\mathcal{B} = \frac{1}{2B}\sum_{a\in\mathcal{B}}\|f_a - y_a\|^2` over :math:`B` examples
    drawn with ``key`` by :func:`draw_batch` (without replacement by default, ``sampling``; all
    :math:`n` when ``batch_size`` is ``None``):
    :math:`g = \frac1B J_\mathcal{B}^\top r_\mathcal{B}` with :math:`r = f - y` (for
    ``loss="cross_entropy"``, :math:`r = \mathrm{softmax}(f) - y`), by one forward pass and
    one pullback (the problem's closed-form :attr:`Problem.pullback` when it has one, autodiff
    otherwise). The optimizer receives the extra arguments ``predict_fn`` (the model on this batch)
    and ``full_batch``, which :func:`flatter.label_noise` uses; transforms that need none ignore them.

    **Label noise in one pass.** When the optimizer starts with :func:`flatter.label_noise` (see
    :func:`flatter.leading_label_noise`), the step draws that transform's perturbation
    :math:`\sigma\zeta` from its state and differentiates at the noised labels directly,

    .. math::

        \tilde g = \frac1B J_\mathcal{B}^\top (r_\mathcal{B} - \sigma\zeta),

    then calls the optimizer with ``folded_label_noise`` (the transform's state after that draw),
    which the transform adopts instead of drawing again: the update of the composable two-pass
    transform (to rounding) at the cost of one pass. :func:`flatter.label_flip` first in the
    optimizer is folded the same way: the step differentiates at the flipped labels
    (``folded_label_flip``). Every transform also receives the extra argument ``targets`` (the
    batch's targets).
    """
    check_choice("sampling", sampling, SAMPLINGS)
    step = _make_step(problem, optimizer, batch_size, sampling)

    def public_step(params, opt_state, key):
        params, opt_state, _ = step(params, opt_state, key)
        return params, opt_state

    return public_step


def _make_step(
    problem: Problem,
    optimizer: optax.GradientTransformation,
    batch_size: int | None,
    sampling: str = "without_replacement",
) -> Callable:
    """:func:`make_step` that also returns whether this step's residual :math:`r(\\theta_k)` was finite."""
    n = problem.num_examples
    full_batch = batch_size is None or batch_size == n
    tx = optax.with_extra_args_support(optimizer)

    def step(params, opt_state, key):
        if full_batch:
            xb, yb = problem.inputs, problem.targets
        else:
            idx = draw_batch(key, n, batch_size, sampling)
            xb, yb = problem.inputs[idx], problem.targets[idx]

        def predict_fn(p):
            return problem.predict(p, xb)

        if problem.pullback is None:
            out, pullback = jax.vjp(predict_fn, params)
        else:
            out = predict_fn(params)
            pullback = lambda cotangent: (problem.pullback(params, xb, cotangent),)
        flip_state = leading_state(opt_state, LabelFlipState)
        labels = yb
        if flip_state is not None:  # differentiate at this step's flipped labels directly (one pass)
            labels, flip_state = draw_label_flip(flip_state, yb)
        residual = problem.output_gradient(out, labels)  # f - y for the squared loss
        noise_state = leading_label_noise(opt_state)
        if noise_state is not None:
            check_full_batch_mode(noise_state.config.mode, full_batch)
            noise, noise_state = draw_label_noise(noise_state, out)
            residual = residual - noise
        (grads,) = pullback(residual.astype(out.dtype))  # float64 noise on a float32 model (jax_enable_x64)
        # 1/m after the pullback, not on the residual: measured ~10% faster on CPU (XLA fuses it into the update).
        grads = jax.tree.map(lambda g: g / out.shape[0], grads)
        updates, opt_state = tx.update(
            grads,
            opt_state,
            params,
            predict_fn=predict_fn,
            full_batch=full_batch,
            targets=yb,
            folded_label_noise=noise_state,
            folded_label_flip=flip_state,
            gradient=grads,  # so a label perturbation after a transform that changes it can refuse (not first)
        )
        return optax.apply_updates(params, updates), opt_state, jnp.all(jnp.isfinite(out))

    return step


def _step_function(optimizer: optax.GradientTransformation, batch_size: int | None, sampling: str) -> Callable:
    """``(problem, carry) -> carry``: one step, with the divergence bookkeeping of the carry."""

    def one_step(problem: Problem, c: tuple) -> tuple:
        step = _make_step(problem, optimizer, batch_size, sampling)
        params, opt_state, key, diverged, diverged_at, k = c
        if batch_size is None or batch_size == problem.num_examples:  # no batch to draw: skip the split
            sub = key  # (RNG is a large part of a cheap step)
        else:
            key, sub = jax.random.split(key)
        params, opt_state, finite = step(params, opt_state, sub)
        # theta_k is non-finite iff its outputs are (for any model whose parameters all reach the outputs):
        # checked on the residual the step computed anyway, so the check costs no pass over the parameters.
        diverged_at = jnp.where(~finite & ~diverged, k, diverged_at)
        return params, opt_state, key, diverged | ~finite, diverged_at, k + 1

    return one_step


def _record_function(names: tuple[tuple[str, Observable], ...]) -> Callable:
    """``(problem, carry, start) -> (carry, (k, observables))``: close a record that began at ``start``."""

    def end_record(problem: Problem, c: tuple, start: tuple):
        params, opt_state, key, diverged, diverged_at, k = c
        # Once per record: a non-finite state the residual did not reveal, and the rollback of a diverged run
        # to the last record before it diverged (so records, fits and final params stay finite).
        hidden = ~_all_finite(params) & ~diverged
        diverged_at = jnp.where(hidden, k, diverged_at)
        diverged = diverged | hidden
        params, opt_state = _tree_where(diverged, start, (params, opt_state))
        c = (params, opt_state, key, diverged, diverged_at, k)
        return c, (k, {name: fn(problem, params) for name, fn in names})

    return end_record


def _chunk_function(
    optimizer: optax.GradientTransformation,
    batch_size: int | None,
    sampling: str,
    record_every: int | Int[Array, ""],
    n_records: int,
    names: tuple[tuple[str, Observable], ...],
    heartbeat: bool = False,
) -> Callable:
    """``(problem, carry) -> (carry, (steps, observables))``: ``n_records`` records of ``record_every`` steps;
    with ``heartbeat`` each record ticks the host (:func:`flatter._progress.tick`: a sweep's progress bar)."""
    one_step = _step_function(optimizer, batch_size, sampling)
    end_record = _record_function(names)

    def run(problem: Problem, carry: tuple):
        def one_record(c, index):
            start = c[:2]
            # fori_loop: a scan for a static record_every, a while loop for a traced one (one compile, any horizon).
            c = jax.lax.fori_loop(0, record_every, lambda _, c: one_step(problem, c), c)
            if heartbeat:  # the record index is the same for every run: under vmap, once per record (and device)
                tick_in_program(index)
            return end_record(problem, c, start)

        # Without a heartbeat the loop is the plain one (no index input): the hot path is unchanged.
        return jax.lax.scan(one_record, carry, jnp.arange(n_records) if heartbeat else None, length=n_records)

    return run


def _host_loop_chunk(
    optimizer: optax.GradientTransformation,
    batch_size: int | None,
    sampling: str,
    record_every: int,
    n_records: int,
    names: tuple[tuple[str, Observable], ...],
) -> Callable:
    """:func:`_chunk_function` with the steps driven from Python: one compiled call per step and per record."""
    one_step = _step_function(optimizer, batch_size, sampling)
    end_record = _record_function(names)

    def run(problem: Problem, carry: tuple):
        step = structural_compile(one_step, problem, carry)  # traced once per chunk, compiled once per program
        record = structural_compile(end_record, problem, carry, carry[:2])
        ks, obs = [], []
        for _ in range(n_records):
            start = carry[:2]
            for _ in range(record_every):
                carry = step(problem, carry)
            carry, (k, o) = record(problem, carry, start)
            ks.append(k)
            obs.append(o)
        return carry, (jnp.stack(ks), {name: jnp.stack([o[name] for o in obs]) for name, _ in names})

    return run


def loops_are_slow(problem: Problem, params: PyTree) -> bool:  # arrays or their jax.ShapeDtypeStruct
    """Whether this model's steps must be driven from the host: any model with a convolution.

    XLA runs the gradient of a convolution inside a while loop far slower than the same gradient
    compiled alone, on CPU (about 40x; jax-ml/jax#12868; ResNet-18 here: two steps in a ``scan`` 12 s,
    unrolled 0.3 s) and on GPU too (ResNet-18 at batch 256 on one H200: 7.8 steps/s in ``simulate``'s
    loop, 119 steps/s one jitted step per call; ``benchmarks/network_steps.py cifar10 paper``). So
    :func:`simulate` and the sweeps drive such a model's steps from Python, one compiled call per
    step (the same numbers). Models without convolutions keep the compiled loop, where it is faster.
    """
    jaxpr = jax.make_jaxpr(problem.predict)(params, problem.inputs[:1])
    return "conv_general_dilated" in str(jaxpr)


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
    sampling: str = "without_replacement",
    observables: Sequence[str] | Mapping[str, Observable] | None = None,
    opt_state: Any = None,
    chunks: int | None = None,
    progress: bool = False,
) -> Trajectory:
    r"""Run ``optimizer`` on ``problem`` for ``steps`` steps and record observables.

    Step :math:`k \to k+1` draws a batch :math:`\mathcal{B}_k` (size ``batch_size``, without
    replacement unless ``sampling="with_replacement"``, see :func:`draw_batch`, from a key split off
    ``key``; the full data when ``None``), computes the gradient
    of :math:`\frac{1}{2B}\sum_{a\in\mathcal{B}_k}\|f(\theta_k, x_a) - y_a\|^2` and applies
    ``optimizer`` (any optax transform, chained e.g. with :func:`flatter.label_noise`, whose key
    lives in its own state). Observables are recorded at steps :math:`0, r, 2r, \dots,` ``steps``
    with :math:`r` = ``record_every``.

    The loop is a ``jax.lax.scan`` compiled once per (problem, optimizer, shapes); it runs in
    ``chunks`` consecutive pieces (default: about 10 when called eagerly, for the progress bar, and
    1 under ``jit``/``vmap``), which gives bit-identical results. ``simulate`` works under
    ``jax.vmap`` over hyperparameters, keys and initial points: build the optimizer inside the
    vmapped function from traced :math:`\eta, \beta` so that the sweep compiles once.

    A run whose parameters become non-finite is flagged (``Trajectory.diverged``, ``diverged_at``)
    and its records keep the last finite record; it never raises inside a batch.

    Called eagerly, the chunk is compiled once per *program* (see
    :func:`flatter._structural_jit.structural_jit`): a Python loop that builds a fresh optimizer for
    each hyperparameter value compiles once, as long as the values enter as arrays (flatter's
    transforms convert their numeric hyperparameters to arrays).

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
    check_choice("sampling", sampling, SAMPLINGS)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    check_key("key", key)
    problem.check_params(params0)
    names = problem.resolve_observables(observables)
    _check_dense_default(problem, params0, observables)
    total = steps // record_every
    eager = all(is_concrete(x) for x in jax.tree.leaves((params0, key)))
    if chunks is None:
        chunks = total // _divisor_at_most(total, max(1, math.ceil(total / 10))) if eager else 1
    chunks = check_positive_int("chunks", chunks)
    if total % chunks:
        raise ValueError(f"chunks must divide the number of records {total}, got {chunks}")

    carry, step_list, obs_list = _start(problem, optimizer, params0, key, opt_state, names)
    bar = None
    if progress and eager:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"simulate {problem.name}", unit="step")
    host = eager and loops_are_slow(problem, params0)
    chunk = (_host_loop_chunk if host else _chunk_function)(
        optimizer, batch_size, sampling, record_every, total // chunks, names
    )
    with keep_alive(bar):  # the first chunk compiles before the bar can move
        for _ in range(chunks):
            # Eager calls compile once per program (not per optimizer object); under jit/vmap the caller compiles.
            with full_precision():
                if host:
                    carry, (ks, obs) = chunk(problem, carry)
                else:
                    carry, (ks, obs) = structural_jit(chunk, problem, carry) if eager else chunk(problem, carry)
            step_list.append(ks)
            obs_list.append(obs)
            if bar is not None:
                bar.update(steps // chunks)
    if bar is not None:
        bar.close()
    return _trajectory(carry, step_list, obs_list, names)


def simulate_records(
    problem: Problem,
    optimizer: optax.GradientTransformation,
    params0: Params,
    *,
    key: PRNGKeyArray,
    record_every: int | Int[Array, ""],
    n_records: int,
    batch_size: int | None = None,
    sampling: str = "without_replacement",
    observables: Sequence[str] | Mapping[str, Observable] | None = None,
    heartbeat: bool = False,
) -> Trajectory:
    """:func:`simulate` for ``n_records`` records of ``record_every`` steps, traceable with a traced ``record_every``.

    The building block of sweeps: inside ``jit``/``vmap`` the number of steps between records is an
    input of the compiled program, not a constant, so one compile serves every horizon of a sweep.
    No validation or chunking (the caller validates once); ``heartbeat`` ticks the host at every
    record (:func:`flatter._progress.listening` hears it), for a progress bar inside a long compiled call.
    """
    names = problem.resolve_observables(observables)
    carry, step_list, obs_list = _start(problem, optimizer, params0, key, None, names)
    chunk = _chunk_function(optimizer, batch_size, sampling, record_every, n_records, names, heartbeat)
    carry, (ks, obs) = chunk(problem, carry)
    return _trajectory(carry, step_list + [ks], obs_list + [obs], names)


def _check_noise_placement(problem: Problem, opt_state) -> None:
    """Refuse label noise where it is not the exact gradient at noised labels the docstrings promise."""

    def holds(tree, cls) -> bool:
        is_state = lambda x: isinstance(x, cls)
        return any(map(is_state, jax.tree.leaves(tree, is_leaf=is_state)))

    if problem.loss_kind == "cross_entropy" and holds(opt_state, LabelNoiseState):
        raise ValueError(
            f"label_noise perturbs regression labels (the squared loss); problem {problem.name!r} has "
            "loss='cross_entropy': use label_flip, which flips class labels"
        )
    # optax.chain's state is a tuple in chain order. Noise after an optimizer with state (heavy_ball, sngm,
    # adam) acts on its update, not on the gradient: an unscaled noise term. A stateless transform before it
    # is caught while the step is traced (check_receives_gradient: only optax.identity passes the gradient on).
    if type(opt_state) is tuple and len(opt_state) > 1:
        for cls, name in ((LabelNoiseState, "label_noise"), (LabelFlipState, "label_flip")):
            at = next((i for i, part in enumerate(opt_state) if holds(part, cls)), None)
            if at and jax.tree.leaves(opt_state[:at]):
                raise ValueError(
                    f"{name} must come first in optax.chain: it turns the gradient into the gradient at noised "
                    f"labels, so the optimizer after it scales the noise (e.g. optax.chain({name}(...), "
                    "heavy_ball(eta, beta)))"
                )


def _start(problem, optimizer, params0, key, opt_state, names):
    if opt_state is None:
        opt_state = optimizer.init(params0)
    else:  # a state of another optimizer or other params would fail deep inside the scan
        want = jax.eval_shape(optimizer.init, params0)
        got_shapes = [jnp.shape(x) for x in jax.tree.leaves(opt_state)]
        want_shapes = [x.shape for x in jax.tree.leaves(want)]
        if jax.tree.structure(opt_state) != jax.tree.structure(want) or got_shapes != want_shapes:
            raise ValueError(
                "opt_state must be optimizer.init(params0)'s structure (a state of this optimizer for these "
                f"params): expected {jax.tree.structure(want)} with leaf shapes {want_shapes}, got "
                f"{jax.tree.structure(opt_state)} with {got_shapes}"
            )
    _check_noise_placement(problem, opt_state)
    zero = jnp.zeros([], jnp.int32)
    carry = (params0, opt_state, key, jnp.asarray(False), zero - 1, zero)
    first = {name: fn(problem, params0) for name, fn in names}
    return carry, [zero[None]], [jax.tree.map(lambda v: v[None], first)]


def _trajectory(carry, step_list, obs_list, names) -> Trajectory:
    params, opt_state, _, diverged, diverged_at, _ = carry
    return Trajectory(
        steps=jnp.concatenate(step_list),
        observables={n: jnp.concatenate([o[n] for o in obs_list]) for n, _ in names},
        diverged=diverged,
        diverged_at=diverged_at,
        params=params,
        opt_state=opt_state,
    )
