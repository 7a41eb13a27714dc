"""The grid of a sweep: labelled axes, one run per point and seed, optimizer variants."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from typing import Any

import numpy as np

from .._simulate import SAMPLINGS
from .._validation import check_choice, check_positive_int, check_range
from ..valley._on_valley import split_on_valley

NOISES = ("gaussian", "flip")
"""Label noise of a sweep: ``gaussian`` (:func:`flatter.label_noise`, scale ``sigmas``) or ``flip``
(:func:`flatter.label_flip`, the flip probability ``sigmas``, for one-hot targets of a classifier)."""

LATER_FIELDS = {"noise": "gaussian", "flow_time": None, "curves": (), "sampling": "without_replacement"}
"""Fields added after the first release, with their defaults: left out of the digest when at the default, so
the results folders of earlier sweeps still resume."""

MINIBATCH_DRAW = "top_k-of-uniforms"
"""How :func:`flatter.draw_batch` draws a batch without replacement, in a minibatch sweep's identity: flatter 0.1's
draw (``sampling="shuffle"``) gave other numbers from the same keys, and its spec has no such entry."""


def drawn_by_shuffle(spec_json: dict) -> bool:
    """Whether a stored spec is a minibatch sweep of flatter 0.1 (no sampling, no minibatch_draw entry): the inverse
    of what :meth:`SweepSpec.to_json` writes for ``sampling="shuffle"``."""
    minibatch = any(b is not None for b in spec_json.get("batch_sizes", [None]))
    return minibatch and "sampling" not in spec_json and "minibatch_draw" not in spec_json


VARIANTS = ("sgdm", "nesterov", "sgd-same-eta", "sgd-eta-eff", "sgdm-no-label-noise", "sngm")
"""Optimizer variants of a sweep point (eta, gamma, C):

- ``sgdm``: label-noise heavy ball with beta = 1 - C eta^gamma;
- ``nesterov``: the same with Nesterov momentum;
- ``sgd-same-eta``: label-noise SGD (beta = 0) at the same eta (docs/theory.md §5 baseline);
- ``sgd-eta-eff``: label-noise SGD at eta_eff = eta / (1 - beta) (the fair baseline of Wang et al.);
- ``sgdm-no-label-noise``: heavy ball with minibatch SGD noise only (needs batch_size < n);
- ``sngm``: label-noise SNGM (:func:`flatter.sngm`, the normalized gradient in the momentum buffer) with the
  same beta: every step has length at most eta / (1 - beta). Its limit along the valley is
  d theta/dt = -(1/4) grad_Gamma log tr Hess L at t = eta_eff^2 k (:func:`flatter.limit.sngm_flow`), so a given
  ``flow_time`` is that flow's time.
"""


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """Everything that defines a sweep; its hash names the results, so a changed spec never resumes.

    Axes (a run per combination and seed): ``variants``, ``gammas``, ``Cs``, ``etas``, ``sigmas``,
    ``batch_sizes``; ``seeds`` runs each; beta = 1 - C eta^gamma (``gamma = 0, C = 1``: plain SGD). The convergence
    criterion is ``observable`` crossing ``threshold`` (``below``; with ``relative_threshold``, ``threshold``
    times the observable's value at the start). Horizons are ``horizon_factor``
    times the predicted settling steps (at least ``min_steps``), rounded up to a power of two times
    ``records`` so that a handful of compiled step counts serve the whole grid.

    The prediction comes from the label-noise flow integrated from the start point (squared loss,
    a model small enough for its Jacobian); give ``flow_time`` instead (the time
    :math:`t^* = \\eta_\\mathrm{eff}^2 k` the criterion takes, e.g. from a pilot run) for networks,
    cross-entropy or label flips: horizons are then ``horizon_factor`` x
    :math:`(t^*/\\eta_\\mathrm{eff}^2 + 5/(1-\\beta))`. ``noise`` picks the label noise (:data:`NOISES`);
    ``curves`` names observables whose every record is kept (``curve_<name>`` in the results, for
    figures of the trajectories and criteria computed afterwards). ``sampling`` is how a step draws
    its minibatch of ``batch_sizes`` (:data:`flatter.SAMPLINGS`; :func:`flatter.draw_batch`): without
    replacement by default, ``"with_replacement"`` for an O(B) draw on networks (the same limit dynamics),
    ``"shuffle"`` for flatter 0.1's draw (its minibatch sweeps load and resume as that).

    ``label_noise_mode`` says which labels a full-batch step (``batch_sizes`` None) noises: ``"one"`` (the
    default) one uniformly drawn label per step, scaled so that the noise is one-sample label-noise SGD's
    (:math:`B = 1`); ``"all"`` or ``"minibatch"`` every label (:math:`B = n`). A minibatch step noises the
    labels of its batch (:math:`B` = its size) in every mode. :func:`flatter.transforms.label_noise_batch`
    is that rule, and the optimizer, the horizons, the predictor and :math:`\\kappa` all read it.
    """

    problem: str
    problem_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    variants: tuple[str, ...] = ("sgdm",)
    gammas: tuple[float, ...] = (2 / 3,)
    Cs: tuple[float, ...] = (1.0,)
    etas: tuple[float, ...] = (1e-2,)
    sigmas: tuple[float, ...] = (1.0,)
    batch_sizes: tuple[int | None, ...] = (None,)
    label_noise_mode: str = "one"
    seeds: int = 8
    observable: str = "recovery_error"
    threshold: float = 0.2
    below: bool = True
    relative_threshold: bool = False
    horizon_factor: float = 3.0
    min_steps: int = 256
    max_steps: int = 2**22
    records: int = 256
    phase1: bool = True
    seed: int = 0
    problem_digest: str | None = None
    noise: str = "gaussian"
    flow_time: float | None = None
    curves: tuple[str, ...] = ()
    sampling: str = "without_replacement"

    def __post_init__(self):
        # Everything is checked here, before a folder is touched or anything is traced.
        if not isinstance(self.problem, str):
            raise TypeError(
                f"problem must be the name of a registered problem (or use SweepSpec.for_problem), got {self.problem!r}"
            )
        if self.problem_digest is None:
            check_choice("problem", self.problem, tuple(_registry()))
        elif not isinstance(self.problem_digest, str):
            raise TypeError(f"problem_digest must be a string (see SweepSpec.for_problem), got {self.problem_digest!r}")
        if not isinstance(self.problem_kwargs, dict):
            raise TypeError(f"problem_kwargs must be a dict of keyword arguments, got {self.problem_kwargs!r}")
        if isinstance(self.curves, str) or not isinstance(self.curves, tuple | list):
            raise TypeError(f"curves must be a sequence of observable names, got {self.curves!r}")
        object.__setattr__(self, "curves", tuple(self.curves))
        check_choice("noise", self.noise, NOISES)
        check_choice("sampling", self.sampling, SAMPLINGS)
        if self.flow_time is not None:
            check_range("flow_time", self.flow_time, lower=0.0, lower_inclusive=False)
            object.__setattr__(self, "flow_time", float(self.flow_time))
        for name in ("variants", "gammas", "Cs", "etas", "sigmas", "batch_sizes"):
            value = getattr(self, name)
            if isinstance(value, str | bytes) or not isinstance(value, tuple | list | np.ndarray):
                raise TypeError(f"{name} must be a sequence (a tuple or a list), got {value!r}")
            value = tuple(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else tuple(value)
            object.__setattr__(self, name, value)
            if len(value) == 0:
                raise ValueError(f"{name} must not be empty")
            if len(set(value)) != len(value):
                raise ValueError(f"{name} must not repeat a value, got {value}")
        for v in self.variants:
            check_choice("variants", v, VARIANTS)
        check_range("etas", self.etas, lower=0.0, lower_inclusive=False)
        check_range("gammas", self.gammas, lower=0.0)
        check_range("Cs", self.Cs, lower=0.0, lower_inclusive=False)
        check_range("sigmas", self.sigmas, lower=0.0, upper=1.0 if self.noise == "flip" else None)
        check_range("horizon_factor", self.horizon_factor, lower=1.0)
        check_range("threshold", self.threshold)
        check_choice("label_noise_mode", self.label_noise_mode, ("minibatch", "all", "one"))
        check_positive_int("seeds", self.seeds)
        check_positive_int("records", self.records)
        check_positive_int("min_steps", self.min_steps)
        check_positive_int("max_steps", self.max_steps)
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps must be <= max_steps, got min_steps={self.min_steps} > {self.max_steps}")
        if self.records > self.max_steps:  # a horizon is records * 2^k steps: at least records
            raise ValueError(f"records must be <= max_steps, got records={self.records} > {self.max_steps}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("below", "relative_threshold", "phase1"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for b in self.batch_sizes:
            if b is not None:
                check_positive_int("batch_sizes", b)
        for g, C, eta in itertools.product(self.gammas, self.Cs, self.etas):
            if not 0 < C * eta**g <= 1:
                raise ValueError(f"1 - beta = C*eta**gamma must be in (0, 1]: C={C}, eta={eta}, gamma={g}")
        if self.problem_digest is not None:
            return  # a user's Problem: run_sweep checks the observable and batch sizes against it
        observables, n = _problem_facts(self.problem, json.dumps(self.problem_kwargs, sort_keys=True))
        self.check_against(observables, n)

    def check_against(self, observables: tuple[str, ...], n: int) -> None:
        """Raise unless the observable exists and the batch sizes fit a problem with these facts."""
        if split_on_valley(self.observable)[0] not in observables:
            raise ValueError(
                f"observable must be one of the problem's observables {list(observables)} (or one of them read "
                f"on the valley, '<name>@valley'), got {self.observable!r}"
            )
        unknown = [c for c in self.curves if split_on_valley(c)[0] not in observables]
        if unknown:
            raise ValueError(f"curves must be observables of the problem {list(observables)}, got {unknown}")
        for b in self.batch_sizes:
            if b is not None and b > n:
                raise ValueError(f"batch_sizes must be in [1, n={n}] for problem {self.problem!r}, got {b}")
        if "sgdm-no-label-noise" in self.variants and any(b is None or b >= n for b in self.batch_sizes):
            raise ValueError(
                "variants 'sgdm-no-label-noise' needs minibatch noise: every batch_sizes entry must be below "
                f"n={n}, got {self.batch_sizes}"
            )

    @classmethod
    def for_problem(cls, problem: Any, **fields: Any) -> SweepSpec:
        """A spec for a user's own :class:`flatter.Problem` (from a predict function or an nnx module).

        The spec records the problem's name and a digest of its data (:func:`problem_digest`), so the
        results folder can tell it from any other problem; pass the same problem to
        :func:`flatter.sweep.run_sweep` (``problem=``). Everything else is as for a registered
        problem, and the observable and batch sizes are checked against this problem now.

        Examples:
          >>> import jax.numpy as jnp, flatter
          >>> problem = flatter.Problem(lambda w, x: x @ (w * w), jnp.eye(2), jnp.ones(2), name="quadratic")
          >>> spec = flatter.sweep.SweepSpec.for_problem(problem, observable="loss", threshold=1e-3, phase1=False)
          >>> print(spec.problem, len(spec.problem_digest))
          quadratic 16
        """
        if "problem" in fields or "problem_kwargs" in fields or "problem_digest" in fields:
            raise TypeError("for_problem takes the problem itself: drop problem, problem_kwargs and problem_digest")
        spec = cls(problem=problem.name, problem_digest=problem_digest(problem), **fields)
        spec.check_against(problem.observable_names, problem.num_examples)
        return spec

    @property
    def axes(self) -> dict[str, tuple]:
        return {
            "variant": self.variants,
            "gamma": self.gammas,
            "C": self.Cs,
            "eta": self.etas,
            "sigma": self.sigmas,
            "batch_size": self.batch_sizes,
            "seed": tuple(range(self.seeds)),
        }

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    def to_json(self) -> dict:
        fields = dataclasses.asdict(self)
        if fields["problem_digest"] is None:  # registered problems keep the digests they always had
            del fields["problem_digest"]
        for name, default in LATER_FIELDS.items():
            if fields[name] == default or (name == "curves" and not fields[name]):
                del fields[name]
        if any(b is not None for b in self.batch_sizes):
            # The draw's algorithm decides the numbers: flatter 0.1 drew without replacement by a shuffle and wrote
            # no sampling; today's draw (top_k) is marked, so the two never share a digest.
            if self.sampling == "without_replacement":
                fields["minibatch_draw"] = MINIBATCH_DRAW
            elif self.sampling == "shuffle":
                del fields["sampling"]
        return json.loads(json.dumps(fields))

    @classmethod
    def from_json(cls, spec_json: dict) -> SweepSpec:
        """The spec that :meth:`to_json` wrote (lists back to tuples; flatter 0.1's minibatch specs as ``shuffle``)."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in spec_json.items() if k != "minibatch_draw"}
        if drawn_by_shuffle(spec_json):
            fields["sampling"] = "shuffle"
        return cls(**fields)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def points(self) -> dict[str, np.ndarray]:
        """Flat arrays over all runs (C order over the axes): the coordinates and the hyperparameters."""
        grids = np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij")
        idx = {name: g.reshape(-1) for name, g in zip(self.axes, grids, strict=True)}
        out: dict[str, np.ndarray] = {f"{k}_index": v for k, v in idx.items()}
        variant = np.array(self.variants)[idx["variant"]]
        gamma = np.array(self.gammas, float)[idx["gamma"]]
        C = np.array(self.Cs, float)[idx["C"]]
        eta = np.array(self.etas, float)[idx["eta"]]
        beta = 1.0 - C * eta**gamma
        step_eta = np.where(variant == "sgd-eta-eff", eta / (1 - beta), eta)
        step_beta = np.where(np.isin(variant, ["sgd-same-eta", "sgd-eta-eff"]), 0.0, beta)
        out.update(
            variant=variant,
            gamma=gamma,
            C=C,
            eta=eta,
            beta=beta,
            step_eta=step_eta,
            step_beta=step_beta,
            sigma=np.array(self.sigmas, float)[idx["sigma"]],
            batch_size=np.array([-1 if b is None else b for b in self.batch_sizes])[idx["batch_size"]],
            seed=idx["seed"],
            run=np.arange(int(np.prod(self.shape))),
        )
        return out


def _registry() -> dict:
    from ..problems import PROBLEMS

    return PROBLEMS


@functools.lru_cache(maxsize=32)
def _problem_facts(name: str, kwargs_json: str) -> tuple[tuple[str, ...], int]:
    """The observable names and the number of examples of a registered problem (built once per kwargs)."""
    from ..problems import make_problem

    problem = make_problem(name, **json.loads(kwargs_json))
    return problem.observable_names, problem.num_examples


def problem_digest(problem: Any) -> str:
    """A digest of a Problem's name, loss, observables and data arrays (its identity in a spec).

    The model itself enters the results folder's identity through :func:`start_digest`, which ``run_sweep``
    checks against what the folder holds.
    """
    digest = hashlib.sha256()
    digest.update(f"{problem.name}|{getattr(problem, 'loss_kind', 'squared')}|{problem.observable_names}".encode())
    for leaf in (problem.inputs, problem.targets, problem.test_inputs, problem.test_targets):
        if leaf is not None:
            array = np.asarray(leaf)
            digest.update(f"{array.shape}{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def start_digest(problem: Any, params0: Any) -> str:
    """A digest of what decides a user problem's numbers beyond its data: the model and the start point.

    The model is the jaxpr of ``predict`` at ``params0`` and the data's shapes and the jaxpr of every
    observable, each with its closed-over constants (weights a model captures count; the problem's own data
    arrays are in :func:`problem_digest`); the start is ``params0``'s leaves. ``run_sweep`` records it in the
    folder and refuses results of another model or start (``w**4`` for ``w*w``, another ``params0``).
    """
    import jax

    data_ids = {id(a) for a in (problem.inputs, problem.targets, problem.test_inputs, problem.test_targets)}
    digest = hashlib.sha256()

    def add_jaxpr(closed) -> None:
        digest.update(str(closed.jaxpr).encode())
        for const in closed.consts:
            if id(const) not in data_ids:
                add_array(const)

    def add_array(leaf) -> None:
        array = np.asarray(leaf)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())

    add_jaxpr(jax.make_jaxpr(problem.predict)(params0, problem.inputs))
    for name, fn in problem.observables:
        digest.update(name.encode())
        add_jaxpr(jax.make_jaxpr(lambda p, fn=fn: fn(problem, p))(params0))
    for leaf in jax.tree.leaves(params0):
        add_array(leaf)
    return digest.hexdigest()[:16]
