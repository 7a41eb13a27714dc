"""`Problem`: one model, its data and its squared loss, shared by the discrete and continuum code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree, Scalar

from ._validation import check_finite

TRACE_CHUNK_ENTRIES = 16_000_000
"""Jacobian entries (examples x outputs per example x parameters) per chunk where flatter sums over examples
(:meth:`Problem.gauss_newton_trace`, :func:`flatter.valley.gauss_newton_trace_gradient_flat`): 64 MB in float32."""

Params = PyTree[Float[Array, "..."]]
Observable = Callable[["Problem", Params], Scalar]


def _loss(problem: Problem, params: Params) -> Scalar:
    return problem.loss_of_outputs(problem.outputs(params), problem.targets)


def _test_loss(problem: Problem, params: Params) -> Scalar:
    return problem.test_loss(params)


def _accuracy(problem: Problem, params: Params) -> Scalar:
    return problem.accuracy(params)


def _test_accuracy(problem: Problem, params: Params) -> Scalar:
    return problem.accuracy(params, problem.test_inputs, problem.test_targets)


def _one_hot(targets: Array) -> bool:
    """Whether ``targets`` are one-hot class vectors (n, K >= 2): every row a unit vector of 0s and a 1."""
    if targets.ndim != 2 or targets.shape[1] < 2 or isinstance(targets, jax.core.Tracer):
        return False
    t = np.asarray(targets)
    return bool(np.all((t == 0) | (t == 1)) and np.all(t.sum(axis=1) == 1))


LOSSES = ("squared", "cross_entropy")


def _trace_hessian(problem: Problem, params: Params) -> Scalar:
    return problem.gauss_newton_trace(params)


class Problem(eqx.Module):
    r"""A regression problem :math:`f(\theta, x) \approx y` with the squared loss.

    .. math::

        r(\theta) = f(\theta, X) - y, \qquad
        L(\theta) = \frac{1}{2n}\sum_{a=1}^n \|f(\theta, x_a) - y_a\|^2

    Its zero-loss set :math:`\Gamma = \{\theta: r(\theta) = 0\}` is the valley of minimizers; on
    :math:`\Gamma` the Hessian is the Gauss-Newton matrix :math:`\nabla^2 L = J^\top J/n` with
    :math:`J = \partial_\theta r`, so :math:`\mathrm{tr}\nabla^2 L = \|J\|_F^2/n`
    (:meth:`gauss_newton_trace`). A Problem is an ``equinox.Module``: the data are its array fields
    (pytree leaves), the model, the observables and the settings are static fields, so it can be passed
    through ``jax.jit`` and ``jax.vmap``.

    Args:
      predict: ``predict(params, inputs) -> outputs`` with ``outputs.shape == targets.shape``; any
        pure JAX function (see :meth:`from_flax` for a flax ``nnx`` module).
      inputs: training inputs, leading axis of length :math:`n`.
      targets: training targets, leading axis of length :math:`n`.
      test_inputs, test_targets: optional held-out data (both or neither).
      observables: extra named scalars ``fn(problem, params)`` recorded by :func:`flatter.simulate`,
        in addition to ``loss``, ``trace_hessian`` and (with test data) ``test_loss``.
      extras: arrays the observables need (e.g. the ground truth), stored as pytree leaves.
      trace_hessian: optional closed form of :math:`\mathrm{tr}(J^\top J)/n` replacing the generic
        Jacobian computation.
      pullback: optional closed form of the vector-Jacobian product of the model,
        ``pullback(params, inputs, cotangent) -> grads`` with :math:`\partial_\theta\langle
        \text{cotangent}, f(\theta, \text{inputs})\rangle`; :func:`flatter.make_step` uses it for the
        gradient instead of ``jax.vjp`` (a fused fast path; everything else uses autodiff).
      init_params: optional ``init_params(key) -> params``, the problem's standard initialization.
      name: a label used in results and figures.
      loss: ``"squared"`` (the default; everything in flatter applies) or ``"cross_entropy"`` (softmax
        cross-entropy on one-hot or soft targets of shape ``(n, classes)``, with ``accuracy``
        observables; the valley machinery, which needs a zero-loss set, does not apply).
      eval_batch_size: evaluations of the model on a whole dataset (:meth:`outputs`, the ``loss``,
        ``accuracy``, ``test_loss`` and ``test_accuracy`` observables, :meth:`accuracy`,
        :meth:`test_loss`) run in chunks of this many examples, one chunk's activations in memory at
        a time (a ``lax.map``; the last chunk padded with the first examples, whose outputs are
        dropped). ``None``: one call on all examples; a ResNet-18 on the 50,000 CIFAR-10 images needs
        ~80 GiB at once. What is differentiated (:meth:`loss`, :meth:`residuals`) stays one call:
        chunk a full-batch gradient with :func:`flatter.full_batch_gradient`'s ``batch_size``.

    Examples:
      >>> import jax.numpy as jnp, flatter
      >>> X = jnp.array([[1.0, 0.0], [0.0, 2.0]]); y = jnp.array([1.0, 2.0])
      >>> problem = flatter.Problem(lambda w, x: x @ w, X, y)
      >>> print(problem.loss(jnp.zeros(2)), problem.gauss_newton_trace(jnp.zeros(2)))
      1.25 2.5
    """

    inputs: Array
    targets: Array
    test_inputs: Array | None
    test_targets: Array | None
    extras: dict[str, Array]
    predict: Callable[[Params, Array], Array] = eqx.field(static=True)
    observables: tuple[tuple[str, Observable], ...] = eqx.field(static=True)
    trace_hessian_fn: Callable[[Problem, Params], Scalar] | None = eqx.field(static=True)
    pullback: Callable[[Params, Array, Array], Params] | None = eqx.field(static=True)
    init_params_fn: Callable[[Any], Params] | None = eqx.field(static=True)
    name: str = eqx.field(static=True)
    loss_kind: str = eqx.field(static=True)
    eval_batch_size: int | None = eqx.field(static=True)

    def __init__(
        self,
        predict: Callable[[Params, Array], Array],
        inputs: ArrayLike,
        targets: ArrayLike,
        *,
        test_inputs: ArrayLike | None = None,
        test_targets: ArrayLike | None = None,
        observables: Mapping[str, Observable] | None = None,
        extras: Mapping[str, ArrayLike] | None = None,
        trace_hessian: Callable[[Problem, Params], Scalar] | None = None,
        pullback: Callable[[Params, Array, Array], Params] | None = None,
        init_params: Callable[[Any], Params] | None = None,
        name: str = "custom",
        loss: str = "squared",
        eval_batch_size: int | None = None,
    ):
        if not callable(predict):
            raise TypeError(f"predict must be a callable predict(params, inputs), got {predict!r}")
        inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
        if inputs.ndim == 0 or targets.ndim == 0:
            raise ValueError("inputs and targets must have a leading example axis")
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"inputs and targets must have the same number of examples, got "
                f"inputs.shape={inputs.shape} and targets.shape={targets.shape}"
            )
        check_finite("inputs", inputs)
        check_finite("targets", targets)
        if (test_inputs is None) != (test_targets is None):
            raise ValueError("test_inputs and test_targets must be given together")
        if test_inputs is not None:
            test_inputs, test_targets = jnp.asarray(test_inputs), jnp.asarray(test_targets)
            check_finite("test_inputs", test_inputs)
            check_finite("test_targets", test_targets)
            if test_inputs.shape[0] != test_targets.shape[0]:
                raise ValueError(
                    f"test_inputs and test_targets must have the same number of examples, got "
                    f"{test_inputs.shape} and {test_targets.shape}"
                )
            if test_inputs.shape[1:] != inputs.shape[1:] or test_targets.shape[1:] != targets.shape[1:]:
                raise ValueError(
                    f"test data must match the training data per example: inputs {inputs.shape[1:]} vs "
                    f"{test_inputs.shape[1:]}, targets {targets.shape[1:]} vs {test_targets.shape[1:]}"
                )
        self.predict = predict
        self.inputs, self.targets = inputs, targets
        self.test_inputs, self.test_targets = test_inputs, test_targets
        self.extras = dict(extras or {})
        self.name = name
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))}, got {loss!r}")
        if loss == "cross_entropy" and targets.ndim != 2:
            raise ValueError(
                f"targets must be one-hot (or soft) class vectors of shape (n, classes) for loss='cross_entropy', "
                f"got shape {targets.shape} (use jax.nn.one_hot(labels, classes))"
            )
        self.loss_kind = loss
        if eval_batch_size is not None and (
            isinstance(eval_batch_size, bool) or int(eval_batch_size) != eval_batch_size or eval_batch_size < 1
        ):
            raise ValueError(f"eval_batch_size must be a positive integer or None, got {eval_batch_size!r}")
        self.eval_batch_size = None if eval_batch_size is None else int(eval_batch_size)
        self.trace_hessian_fn = trace_hessian
        if pullback is not None and not callable(pullback):
            raise TypeError(f"pullback must be a callable pullback(params, inputs, cotangent), got {pullback!r}")
        self.pullback = pullback
        self.init_params_fn = init_params
        obs: dict[str, Observable] = {"loss": _loss}
        # A classifier: cross-entropy, or the squared loss on one-hot targets (where the theory applies directly).
        classifier = loss == "cross_entropy" or _one_hot(targets)
        if loss == "squared":  # tr(J^T J)/n is the Hessian's trace on the valley of a squared loss only
            obs["trace_hessian"] = _trace_hessian
        if classifier:
            obs["accuracy"] = _accuracy
        if test_inputs is not None:
            obs["test_loss"] = _test_loss
            if classifier:
                obs["test_accuracy"] = _test_accuracy
        for key, fn in (observables or {}).items():
            if not callable(fn):
                raise TypeError(f"observable {key!r} must be callable fn(problem, params)")
            obs[key] = fn
        self.observables: tuple[tuple[str, Observable], ...] = tuple(obs.items())

    def __repr__(self) -> str:
        names = ", ".join(k for k, _ in self.observables)
        return f"Problem(name={self.name!r}, n={self.num_examples}, observables=[{names}])"

    # -- construction helpers -------------------------------------------------------------------
    @classmethod
    def from_flax(cls, module: Any, inputs: Array, targets: Array, **kwargs) -> tuple[Problem, Params]:
        """Build a Problem from a flax ``nnx`` module; returns ``(problem, params)``.

        The module is split once into its graph definition, its ``nnx.Param`` leaves and the rest;
        ``predict(params, x) = nnx.merge(graphdef, params, rest)(x)`` is pure, so it works under
        ``jax.grad``, ``jax.vmap`` and the valley computations.
        """
        from flax import nnx

        if not isinstance(module, nnx.Module):
            raise TypeError(
                f"module must be a flax nnx.Module (e.g. flatter.models.MLP(...)), got {type(module).__name__}; "
                "for a linen module or a plain function, build Problem(predict, inputs, targets) directly"
            )
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)

        def predict(p, x):
            return nnx.merge(graphdef, p, rest)(x)

        return cls(predict, inputs, targets, **kwargs), params

    # -- model and loss -------------------------------------------------------------------------
    def init_params(self, key: Any) -> Params:
        """The problem's standard initial parameters (raises if it has none)."""
        if self.init_params_fn is None:
            raise ValueError(f"problem {self.name!r} has no init_params; pass params explicitly")
        return self.init_params_fn(key)

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def observable_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.observables)

    def with_data(self, inputs: Array, targets: Array) -> Problem:
        """The same problem (model, loss, observables, test data) on other training examples.

        Works on traced arrays (inside ``jit``): the copy is rebuilt from the pytree, not checked again,
        so ``inputs``/``targets`` must match the training data per example.
        """
        return eqx.tree_at(lambda problem: (problem.inputs, problem.targets), self, (inputs, targets))

    def check_params(self, params: Params) -> None:
        """Raise ``ValueError`` unless ``params`` fit: the structure and shapes of the problem's
        ``init_params`` (when it has one) and ``predict(params, inputs)`` of the targets' shape."""
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
                raise ValueError(
                    f"params must be floating-point arrays (gradients need them), got dtype {jnp.result_type(leaf)} "
                    f"at params{jax.tree_util.keystr(path)}; e.g. jnp.asarray(params, float)"
                )
        if self.init_params_fn is not None:
            try:
                want = jax.eval_shape(self.init_params_fn, jax.random.key(0))
            except Exception:  # an init that needs more than a key: fall back to the output check
                want = None
            if want is not None:
                got_tree, want_tree = jax.tree.structure(params), jax.tree.structure(want)
                got = [np.shape(x) for x in jax.tree.leaves(params)]
                expected = [x.shape for x in jax.tree.leaves(want)]
                if got_tree != want_tree or got != expected:
                    raise ValueError(
                        f"params do not fit problem {self.name!r}: expected leaves of shapes {expected} "
                        f"({want_tree}), got {got} ({got_tree})"
                    )
        try:
            out = jax.eval_shape(self.predict, params, self.inputs)
        except Exception as err:  # the model's own error, reworded with context
            raise ValueError(f"predict(params, inputs) failed for the given params: {err}") from err
        if getattr(out, "shape", None) != self.targets.shape:
            raise ValueError(
                f"predict(params, inputs) has shape {getattr(out, 'shape', None)} but targets have "
                f"shape {self.targets.shape}: params do not fit this problem"
            )

    def minibatches(self, batch_size: int | None) -> tuple[Array, Array]:
        """(inputs, targets) split into consecutive equal minibatches, a leading axis in front.

        ``None`` (or ``batch_size >= n``) gives one batch of all :math:`n` examples; otherwise
        ``batch_size`` must divide :math:`n`, so that every example counts exactly once.
        """
        n = self.num_examples
        if batch_size is None or batch_size >= n:
            return self.inputs[None], self.targets[None]
        if n % batch_size:
            raise ValueError(f"batch_size must divide n={n} so that every example counts once, got {batch_size}")
        shape = (n // batch_size, batch_size)
        return self.inputs.reshape(shape + self.inputs.shape[1:]), self.targets.reshape(shape + self.targets.shape[1:])

    def outputs(self, params: Params, inputs: Array | None = None) -> Array:
        r""":math:`f(\theta, X)` on the training inputs unless others are given, in chunks of
        ``eval_batch_size`` examples when there are more (the same numbers, less memory)."""
        inputs = self.inputs if inputs is None else inputs
        chunk, n = self.eval_batch_size, inputs.shape[0]
        if chunk is None or n <= chunk:
            return self.predict(params, inputs)
        # Pad with copies of real examples, not zeros: a constant image makes GroupNorm's variance 0, and
        # second derivatives through it are inf; 0 * inf = NaN would leak into a Hessian-vector product.
        pad = -n % chunk
        padded = jnp.concatenate([inputs, inputs[:pad]]) if pad else inputs
        out = jax.lax.map(lambda x: self.predict(params, x), padded.reshape((-1, chunk) + inputs.shape[1:]))
        return out.reshape((-1,) + out.shape[2:])[:n]

    def residuals(self, params: Params, inputs: Array | None = None, targets: Array | None = None):
        """:math:`f(\\theta, X) - y`, with the training data unless others are given."""
        inputs = self.inputs if inputs is None else inputs
        targets = self.targets if targets is None else targets
        return self.predict(params, inputs) - targets

    def residual_vector(self, params: Params) -> Float[Array, " N"]:
        """The residuals flattened to one vector (length :math:`n\\times` outputs per example)."""
        return self.residuals(params).reshape(-1)

    def loss(self, params: Params, inputs: Array | None = None, targets: Array | None = None) -> Scalar:
        """The mean loss over the given examples (the training data by default).

        Squared: :math:`\\frac{1}{2m}\\sum_a \\|f(\\theta, x_a) - y_a\\|^2`; cross-entropy:
        :math:`-\\frac1m\\sum_a \\sum_k y_{ak}\\log\\mathrm{softmax}(f_a)_k` with one-hot (or soft) targets.
        """
        inputs = self.inputs if inputs is None else inputs
        targets = self.targets if targets is None else targets
        return self.loss_of_outputs(self.predict(params, inputs), targets)

    def loss_of_outputs(self, outputs: Array, targets: Array) -> Scalar:
        """The mean loss of given model outputs (:meth:`loss` without the model call)."""
        if self.loss_kind == "cross_entropy":
            return -jnp.sum(targets * jax.nn.log_softmax(outputs)) / outputs.shape[0]
        return 0.5 * jnp.sum((outputs - targets) ** 2) / outputs.shape[0]

    def output_gradient(self, outputs: Array, targets: Array) -> Array:
        """:math:`\\partial \\ell/\\partial f` per example: :math:`f - y` (squared) or
        :math:`\\mathrm{softmax}(f)\\sum_k y_k - y` (cross-entropy); the gradient is its pullback / m."""
        if self.loss_kind == "cross_entropy":
            return jax.nn.softmax(outputs) * jnp.sum(targets, axis=-1, keepdims=True) - targets
        return outputs - targets

    def accuracy(self, params: Params, inputs: Array | None = None, targets: Array | None = None) -> Scalar:
        """The fraction of examples whose largest output is the target's class (argmax of the targets)."""
        inputs = self.inputs if inputs is None else inputs
        targets = self.targets if targets is None else targets
        return jnp.mean(jnp.argmax(self.outputs(params, inputs), -1) == jnp.argmax(targets, -1))

    def test_loss(self, params: Params) -> Scalar:
        """The same loss on the held-out data (an evaluation: chunked by ``eval_batch_size``)."""
        if self.test_inputs is None:
            raise ValueError(f"problem {self.name!r} has no test data")
        return self.loss_of_outputs(self.outputs(params, self.test_inputs), self.test_targets)

    def gauss_newton_trace(self, params: Params) -> Scalar:
        """:math:`\\mathrm{tr}(J^\\top J)/n`: equal to :math:`\\mathrm{tr}\\nabla^2 L` on the valley."""
        if self.loss_kind != "squared":
            raise ValueError(
                "gauss_newton_trace is tr(J^T J)/n, the Hessian's trace on the valley of a squared loss; for "
                f"loss={self.loss_kind!r} use flatter.curvature.hutchinson_trace"
            )
        if self.trace_hessian_fn is not None:
            return self.trace_hessian_fn(self, params)
        inputs, weights = self.example_chunks(sum(leaf.size for leaf in jax.tree.leaves(params)))
        # One chunk's Jacobian at a time: memory is a chunk's, not the N x p Jacobian's.
        squares = jax.lax.map(lambda chunk: self.squared_jacobian(params, *chunk), (inputs, weights))
        return jnp.sum(squares) / self.num_examples

    def squared_jacobian(self, params: Params, inputs: Array, weights: Array) -> Scalar:
        r""":math:`\sum_a w_a \|\partial_\theta f(\theta, x_a)\|_F^2` over a chunk of inputs (one Jacobian of the
        chunk's outputs): the summand of :meth:`gauss_newton_trace` and of its gradient over chunks."""
        jac = jax.jacrev(lambda p: self.predict(p, inputs))(params)
        leaves = jax.tree.leaves(jac)
        return sum(
            jnp.sum(weights.astype(leaf.dtype).reshape((-1,) + (1,) * (leaf.ndim - 1)) * leaf**2) for leaf in leaves
        )

    def example_chunks(self, num_params: int) -> tuple[Array, Array]:
        """The training inputs in chunks whose Jacobian has at most ``TRACE_CHUNK_ENTRIES`` entries (examples x
        outputs per example x ``num_params``), the last padded with repeats of the last example, and the weights
        (1, or 0 for the padding) that count each example once: shapes ``(chunks, size, ...)`` and
        ``(chunks, size)``. One chunk when the whole Jacobian fits."""
        n = self.num_examples
        per_example = max(1, self.targets.size // n)
        size = max(1, min(n, TRACE_CHUNK_ENTRIES // (per_example * num_params)))
        chunks = -(-n // size)
        index = jnp.arange(chunks * size)
        inputs = self.inputs[jnp.minimum(index, n - 1)].reshape((chunks, size) + self.inputs.shape[1:])
        return inputs, (index < n).astype(jnp.result_type(self.targets, float)).reshape(chunks, size)

    def resolve_observables(
        self, observables: Sequence[str] | Mapping[str, Observable] | str | None
    ) -> tuple[tuple[str, Observable], ...]:
        """``(name, fn)`` pairs for ``observables``: the problem's own by name, all of them for ``None``, or a
        mapping of new ones ``fn(problem, params)`` as given (what :func:`flatter.simulate` and the limit
        integrators record). A name with the suffix ``"@valley"`` is that observable read on the valley
        (:func:`flatter.valley.on_valley`). Unknown names raise ``ValueError`` listing the problem's."""
        from .valley._on_valley import on_valley, split_on_valley

        table = dict(self.observables)
        if observables is None:
            return tuple(table.items())
        if isinstance(observables, Mapping):
            for name, fn in observables.items():
                if not callable(fn):
                    raise TypeError(f"observable {name!r} must be callable fn(problem, params)")
            return tuple(observables.items())
        if isinstance(observables, str):
            observables = (observables,)
        unknown = [n for n in observables if split_on_valley(n)[0] not in table]
        if unknown:
            raise ValueError(
                f"unknown observable(s) {unknown}; problem {self.name!r} has {list(table)} (each also as "
                "'<name>@valley', read on the valley)"
            )
        resolved = []
        for name in observables:
            base, projected = split_on_valley(name)
            resolved.append((name, on_valley(table[base]) if projected else table[base]))
        return tuple(resolved)

    def observe(self, params: Params, names: Sequence[str] | None = None) -> dict[str, Scalar]:
        """Evaluate the named observables (all of them by default) at ``params``."""
        return {name: fn(self, params) for name, fn in self.resolve_observables(names)}
