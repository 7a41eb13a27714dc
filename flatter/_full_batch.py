"""Phase 1 for networks: full-batch gradient descent to a fitted training set, and checkpoints of its result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._io import UNREADABLE_FILE_ERRORS, save_arrays
from ._precision import full_precision
from ._problem import Params, Problem
from ._progress import keep_alive
from ._validation import check_momentum, check_positive, check_positive_int


class FitInfo(NamedTuple):
    """What :func:`fit_training_set` did: steps taken, final loss and training accuracy, and success."""

    steps: int
    loss: float
    accuracy: float
    converged: bool


def full_batch_gradient(problem: Problem, params: Params, batch_size: int | None = None) -> Params:
    r"""The gradient of the mean loss over all :math:`n` examples, accumulated over minibatches.

    :math:`\nabla L = \sum_b \frac{|b|}{n}\nabla L_b` over consecutive minibatches of ``batch_size``
    (which must divide :math:`n`), summed in a ``lax.map`` so that memory holds one minibatch's
    activations: the full-batch gradient of a network that does not fit in memory at once.
    """
    xs, ys = problem.minibatches(batch_size)
    if xs.shape[0] == 1:
        return jax.grad(problem.loss)(params)
    share = xs.shape[1] / problem.num_examples
    grads = jax.lax.map(lambda b: jax.grad(lambda p: problem.loss(p, b[0], b[1]))(params), (xs, ys))
    return jax.tree.map(lambda g: jnp.sum(g, axis=0) * share, grads)


def fit_training_set(
    problem: Problem,
    params: Params,
    *,
    learning_rate: float,
    momentum: float = 0.0,
    batch_size: int | None = None,
    target_accuracy: float = 1.0,
    tol: float = 1e-8,
    max_steps: int = 10_000,
    check_every: int = 50,
    progress: bool = False,
) -> tuple[Params, FitInfo]:
    r"""Full-batch heavy ball, :math:`v \leftarrow \beta v + \nabla L`, :math:`\theta \leftarrow \theta - \eta v`,
    until the training set is fitted.

    Fitted means training accuracy :math:`\ge` ``target_accuracy`` for ``loss="cross_entropy"``
    (Damian et al. train to 100%), and loss :math:`\le` ``tol`` for the squared loss (where
    :func:`flatter.interpolate`'s Gauss-Newton is usually the better phase 1). The gradient is
    :func:`full_batch_gradient` (accumulated over minibatches of ``batch_size``). Steps run in
    blocks of ``check_every`` (one compiled call per step); the criterion is checked between blocks, so the result may
    overshoot it by less than a block. With ``progress`` a tqdm bar counts the steps against ``max_steps`` and
    shows the loss (and accuracy) after each block.
    """
    check_positive("learning_rate", learning_rate)
    check_momentum("momentum", momentum)
    max_steps = check_positive_int("max_steps", max_steps)
    check_every = check_positive_int("check_every", check_every)
    problem.check_params(params)
    classification = problem.loss_kind == "cross_entropy"

    @jax.jit
    def step(state):
        p, v = state
        g = full_batch_gradient(problem, p, batch_size)
        v = jax.tree.map(lambda a, b: momentum * a + b, v, g)
        return jax.tree.map(lambda a, b: a - learning_rate * b, p, v), v

    def block(state):
        # Steps from Python, not a scan: XLA:CPU runs convolution gradients inside loops ~40x slower
        # (flatter.loops_are_slow); a full-batch step is long enough that the dispatch costs nothing.
        for _ in range(check_every):
            state = step(state)
        return state

    names = ["loss", "accuracy"] if classification else ["loss"]
    observe = jax.jit(lambda q, p: q.observe(p, names))  # the observables: chunked by eval_batch_size

    def fitted(p) -> tuple[bool, float, float]:
        values = observe(problem, p)
        loss = float(values["loss"])
        accuracy = float(values["accuracy"]) if classification else float("nan")
        return (accuracy >= target_accuracy) if classification else (loss <= tol), loss, accuracy

    state = (params, jax.tree.map(jnp.zeros_like, params))
    steps = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, unit="step", desc="phase 1 (full batch)")
    with full_precision(), keep_alive(bar):  # the first block compiles before the bar can move
        done, loss, accuracy = fitted(state[0])
        while not done and steps < max_steps:
            state = block(state)
            steps += check_every
            done, loss, accuracy = fitted(state[0])
            if bar is not None:
                bar.update(check_every)
                bar.set_postfix(loss=f"{loss:.3g}", **({"accuracy": f"{accuracy:.3f}"} if classification else {}))
    if bar is not None:
        bar.close()
    return state[0], FitInfo(steps, loss, accuracy, bool(done))


def save_checkpoint(path: str | Path, params: Params, **meta: Any) -> None:
    """Write ``params`` (any pytree of arrays) and JSON metadata to one self-describing ``.npz``, atomically.

    Each leaf is stored under its key path (``jax.tree_util.keystr``); ``meta`` (e.g. the phase-1
    settings, accuracy, data source) is stored as JSON. The file follows the umask.
    """
    leaves = jax.tree_util.tree_leaves_with_path(params)
    arrays = {f"param:{jax.tree_util.keystr(k)}": np.asarray(v) for k, v in leaves}
    save_arrays(path, meta_json=np.array(json.dumps(meta)), **arrays)


def checkpoint_meta(path: str | Path) -> dict:
    """The JSON metadata of a :func:`save_checkpoint` file, without reading its parameters (to compare settings
    before loading a checkpoint whose leaves may have other shapes)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return json.loads(str(f["meta_json"])) if "meta_json" in f.files else {}
    except UNREADABLE_FILE_ERRORS as err:
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); delete it to recompute it"
        ) from None


def load_checkpoint(path: str | Path, like: Params) -> tuple[Params, dict]:
    """Read a :func:`save_checkpoint` file into the structure of ``like``; returns ``(params, meta)``.

    Every leaf of ``like`` must be in the file with the same shape: anything else is an error naming
    the file and the leaf.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {k: f[k] for k in f.files}
    except UNREADABLE_FILE_ERRORS as err:
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); delete it to recompute it"
        ) from None
    leaves = []
    for key, leaf in jax.tree_util.tree_leaves_with_path(like):
        name = f"param:{jax.tree_util.keystr(key)}"
        if name not in stored or stored[name].shape != np.shape(leaf):
            raise ValueError(f"{path} has no leaf {jax.tree_util.keystr(key)} of shape {np.shape(leaf)}")
        leaves.append(jnp.asarray(stored[name], dtype=jnp.asarray(leaf).dtype))
    meta = json.loads(str(stored["meta_json"])) if "meta_json" in stored else {}
    return jax.tree.unflatten(jax.tree.structure(like), leaves), meta
