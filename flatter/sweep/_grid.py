"""The grid of a sweep: labelled axes, one run per point and seed, optimizer variants."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int, check_range

VARIANTS = ("sgdm", "nesterov", "sgd-same-eta", "sgd-eta-eff", "sgdm-no-label-noise")
"""Optimizer variants of a sweep point (eta, gamma, C):

- ``sgdm``: label-noise heavy ball with beta = 1 - C eta^gamma;
- ``nesterov``: the same with Nesterov momentum;
- ``sgd-same-eta``: label-noise SGD (beta = 0) at the same eta (THEORY §5 baseline);
- ``sgd-eta-eff``: label-noise SGD at eta_eff = eta / (1 - beta) (the fair baseline of Wang et al.);
- ``sgdm-no-label-noise``: heavy ball with minibatch SGD noise only (needs batch_size < n).
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

    def __post_init__(self):
        for v in self.variants:
            check_choice("variant", v, VARIANTS)
        for name in ("gammas", "Cs", "etas", "sigmas"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"{name} must not be empty")
        check_range("etas", np.asarray(self.etas), lower=0.0, lower_inclusive=False)
        check_range("gammas", np.asarray(self.gammas), lower=0.0)
        check_range("Cs", np.asarray(self.Cs), lower=0.0, lower_inclusive=False)
        check_range("sigmas", np.asarray(self.sigmas), lower=0.0)
        check_range("horizon_factor", self.horizon_factor, lower=1.0)
        check_choice("label_noise_mode", self.label_noise_mode, ("minibatch", "all", "one"))
        check_positive_int("seeds", self.seeds)
        check_positive_int("records", self.records)
        for b in self.batch_sizes:
            if b is not None:
                check_positive_int("batch_sizes", b)
        for g, C, eta in itertools.product(self.gammas, self.Cs, self.etas):
            if not 0 < C * eta**g <= 1:
                raise ValueError(f"1 - beta = C*eta**gamma must be in (0, 1]: C={C}, eta={eta}, gamma={g}")

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
        return json.loads(json.dumps(dataclasses.asdict(self)))

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
