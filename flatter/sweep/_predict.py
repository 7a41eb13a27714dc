"""The reduced-SDE prediction of a sweep: T(gamma, eta) and gamma*(eta), on the sweep's grid and below it."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from .._io import save_json
from .._validation import check_positive_int
from ..limit import coupling_at_two_thirds
from ..limit._regime import damping_ratio
from ..timescales import predict_grid
from ..transforms import label_noise_batch
from ..valley._descent_curvature import descent_geometry
from ._fit import optimal_gamma
from ._grid import SweepSpec, start_digest
from ._run import prepare, resolved_threshold

PREDICTOR_VERSION = 6
"""Bumped when the predictor's numbers change, so stored predictions of an older one are recomputed."""

FLOOR_MARGIN = 0.5
"""How far the criterion's threshold must sit beyond the observable's predicted noise floor: for a criterion
``observable < threshold``, the floor at most ``threshold / (1 + FLOOR_MARGIN)``, two thirds of it. Closer, whether
a run counts as settled is decided by the noise around the floor, not by the motion along the valley."""


class PredictedScaling(NamedTuple):
    """The predictor's view of a sweep (SGDM, the spec's first C, sigma and batch size).

    ``etas``: the spec's etas, then ``extra_decades`` decades further down (two points per decade);
    ``settle[g, i]``: median predicted settling steps (``inf`` where censored or unstable);
    ``gamma_star``/``gamma_star_ci``: per eta, the vertex of log T over gamma with a 95% bootstrap
    interval over the predictor's paths (the estimator :func:`optimal_gamma` applies to simulations);
    ``kappa``: :math:`\\sigma^2/(4BC^3)`, the coupling at gamma = 2/3; ``overshoot``: predicted
    T_settle / T_first at gamma = 2/3 and the smallest eta (1: the motion along the valley settles
    without overshooting, the overdamped side of the regime map, where no penalty above 2/3 is expected
    at finite eta). ``floor[g, i]``: the criterion's observable where the predicted paths rest at the end of
    their horizon, the median over the paths that settled (NaN where none did): the noise floor that
    :meth:`floor_problems` compares with ``threshold``. ``curvature``: :math:`\\lambda`, the curvature of
    :math:`\\mathrm{tr}\\nabla^2L` along the valley at the start in the drift's direction
    (:func:`flatter.valley.descent_geometry`), so that :attr:`zeta` is the regime number.
    """

    gammas: tuple[float, ...]
    etas: np.ndarray
    settle: np.ndarray
    first: np.ndarray
    gamma_star: np.ndarray
    gamma_star_ci: np.ndarray
    kappa: float
    overshoot: float
    model_evaluations: int
    wall_seconds: float
    floor: np.ndarray | None = None
    threshold: float | None = None
    below: bool = True
    curvature: float | None = None

    @property
    def zeta(self) -> float | None:
        r"""The damping ratio :math:`1/(2\sqrt{\kappa\lambda})` at gamma = 2/3 (:func:`flatter.limit.damping_ratio`;
        below 1: underdamped), None without the curvature."""
        if self.curvature is None:
            return None
        return damping_ratio(self.kappa, self.curvature)

    def floor_problems(self, margin: float = FLOOR_MARGIN, etas=None) -> list[tuple[float, float, float]]:
        """The grid points ``(gamma, eta, floor)`` whose noise floor comes within ``margin`` of the threshold.

        ``etas``: the etas to check (default: all of the prediction's). Empty when the criterion is clear of
        the floor everywhere; then a settling time measures the motion along the valley.
        """
        if self.floor is None or self.threshold is None:
            return []
        keep = np.ones(self.etas.size, bool) if etas is None else np.isin(self.etas, np.asarray(etas, float))
        limit = self.threshold / (1 + margin) if self.below else self.threshold * (1 + margin)
        bad = (self.floor > limit) if self.below else (self.floor < limit)
        return [
            (float(self.gammas[g]), float(self.etas[i]), float(self.floor[g, i]))
            for g, i in zip(*np.nonzero(bad & keep[None, :]), strict=True)
        ]

    def criterion_check(self, etas=None) -> str | None:
        """One line: whether the threshold clears the noise floor at every grid point (at ``etas``), and if not
        where it does not and which threshold would (None without a floor)."""
        if self.floor is None or self.threshold is None:
            return None
        problems = self.floor_problems(etas=etas)
        if not problems:
            return (
                f"criterion check: the threshold {self.threshold:.3g} clears the predicted noise floor at every grid "
                f"point (its median at most {np.nanmax(self.floor):.3g})"
            )
        where = ", ".join(f"({g:.3g}, {e:g})" for g, e, _ in problems)
        return (
            f"criterion check: the threshold {self.threshold:.3g} sits within the predicted noise floor (its "
            f"median up to {max(f for _, _, f in problems):.3g}) at (gamma, eta) = {where}; there a settling time "
            f"is set by the transverse noise, not by the motion along the valley; a threshold beyond "
            f"{self.suggested_threshold():.3g} clears it"
        )

    def suggested_threshold(self, margin: float = FLOOR_MARGIN) -> float | None:
        """The nearest threshold (two significant digits, rounded away from the floor) clear of every floor."""
        if self.floor is None or not np.isfinite(self.floor).any():
            return None
        worst = np.nanmax(self.floor) * (1 + margin) if self.below else np.nanmin(self.floor) / (1 + margin)
        worst *= (1 + 1e-9) if self.below else (1 - 1e-9)  # strictly beyond: rounding must not land on the limit
        scale = 10.0 ** (np.floor(np.log10(abs(worst))) - 1) if worst != 0 else 1.0
        return float((np.ceil if self.below else np.floor)(worst / scale) * scale)

    @classmethod
    def from_summary(cls, record: dict) -> PredictedScaling:
        """The prediction back from its :meth:`summary` (``None`` times are ``inf``: censored or unstable)."""

        def times(values):
            return np.array([[np.inf if v is None else v for v in row] for row in values], float)

        return cls(
            gammas=tuple(record["gammas"]),
            etas=np.asarray(record["etas"], float),
            settle=times(record["T_settle"]),
            first=times(record["T_first"]),
            gamma_star=np.asarray(record["per_eta"], float),
            gamma_star_ci=np.asarray(record["per_eta_ci"], float),
            kappa=float(record["kappa_two_thirds"]),
            overshoot=float(record["overshoot_two_thirds"]),
            model_evaluations=int(record["model_evaluations"]),
            wall_seconds=float(record["wall_seconds"]),
            floor=None
            if record.get("floor") is None
            else np.array([[np.nan if v is None else v for v in row] for row in record["floor"]], float),
            threshold=record.get("threshold"),
            below=bool(record.get("below", True)),
            curvature=record.get("curvature_two_thirds"),
        )

    def summary(self) -> dict:
        return {
            "method": "reduced SDE (flatter.timescales.predict_grid)",
            "gammas": list(self.gammas),
            "etas": self.etas.tolist(),
            "T_settle": np.where(np.isfinite(self.settle), self.settle, None).tolist(),
            "T_first": np.where(np.isfinite(self.first), self.first, None).tolist(),
            "per_eta": self.gamma_star.tolist(),
            "per_eta_ci": self.gamma_star_ci.tolist(),
            "kappa_two_thirds": self.kappa,
            "overshoot_two_thirds": self.overshoot,
            "model_evaluations": self.model_evaluations,
            "wall_seconds": self.wall_seconds,
            "floor": None if self.floor is None else np.where(np.isfinite(self.floor), self.floor, None).tolist(),
            "threshold": self.threshold,
            "below": self.below,
            "curvature_two_thirds": self.curvature,
            "zeta_two_thirds": self.zeta,
        }


def predict_spec(
    spec: SweepSpec,
    problem=None,
    params0=None,
    *,
    extra_decades: int = 2,
    seeds: int = 16,
    resolution: int = 32,
    store: str | Path | None = None,
    progress: bool = False,
) -> PredictedScaling:
    """Predict a sweep's SGDM grid with :func:`flatter.timescales.predict_grid`.

    ``problem``/``params0`` as for :func:`flatter.sweep.run_sweep` (a registered problem is built from
    the spec; phase 1 runs when the spec says so). The criterion (observable, threshold, relative or
    not) is the sweep's. Costs ``model_evaluations`` force evaluations, independent of 1/eta.

    ``store``: a folder (the sweep's own) that keeps the prediction as ``prediction-<key>.json``, the key a
    digest of the spec, the start and the arguments; a later call with the same ones reads it back and
    computes nothing. ``progress``: a bar over the grid's points.
    """
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"spec must be a flatter.sweep.SweepSpec, got {type(spec).__name__}")
    if isinstance(extra_decades, bool) or not isinstance(extra_decades, int) or extra_decades < 0:
        raise ValueError(f"extra_decades must be an integer >= 0, got {extra_decades!r}")
    seeds = check_positive_int("seeds", seeds)
    resolution = check_positive_int("resolution", resolution)
    start = time.perf_counter()
    path = None
    if store is not None:
        path = (
            Path(store) / f"prediction-{_prediction_key(spec, problem, params0, extra_decades, seeds, resolution)}.json"
        )
        stored = _read_prediction(path)
        if stored is not None:
            return stored
    prediction = _predict(spec, problem, params0, extra_decades, seeds, resolution, progress, start)
    if path is not None:
        save_json(
            path, {"description": "flatter.sweep.predict_spec of the sweep in this folder", **prediction.summary()}
        )
    return prediction


def _prediction_key(spec: SweepSpec, problem, params0, extra_decades: int, seeds: int, resolution: int) -> str:
    """What a stored prediction depends on: the spec, a user's model and start, and the predictor's arguments."""
    start = None
    if spec.problem_digest is not None and problem is not None:
        start = start_digest(problem, problem.init_params(jax.random.key(spec.seed)) if params0 is None else params0)
    text = json.dumps([spec.digest, start, extra_decades, seeds, resolution, PREDICTOR_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_prediction(path: Path) -> PredictedScaling | None:
    """A stored prediction, or None when there is none (an unreadable one is recomputed and replaced)."""
    try:
        return PredictedScaling.from_summary(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _predict(spec, problem, params0, extra_decades, seeds, resolution, progress, start) -> PredictedScaling:
    problem, params0 = prepare(spec, problem, params0)
    threshold = resolved_threshold(problem, params0, spec)
    etas = np.array(sorted(spec.etas, reverse=True), float)
    if extra_decades:
        below = etas.min() * np.geomspace(10 ** (-0.5), 10.0**-extra_decades, 2 * extra_decades)
        etas = np.concatenate([etas, below])
    gammas = np.array(spec.gammas, float)
    g, e = np.meshgrid(gammas, etas, indexing="ij")
    C, sigma = spec.Cs[0], spec.sigmas[0]
    batch = int(label_noise_batch(spec.label_noise_mode, spec.batch_sizes[0], problem.num_examples))
    grid = predict_grid(
        problem,
        params0,
        eta=e,
        beta=np.where(g > 0, 1 - C * e**g, 0.0),
        sigma=sigma,
        batch_size=batch,
        observable=spec.observable,
        threshold=threshold,
        seeds=seeds,
        resolution=resolution,
        progress=progress,
    )
    samples = grid.settle_samples.reshape(g.shape + (seeds,))
    censored = ~np.isfinite(samples)
    opt = optimal_gamma(gammas, etas, np.where(censored, 0.0, samples), censored)
    k = int(np.argmin(np.abs(gammas - 2 / 3)))
    first, settle = grid.first.reshape(g.shape), grid.settle.reshape(g.shape)
    # Settled paths only: a censored path's end is still on its way, not at rest.
    ends = np.where(censored, np.nan, grid.end_values.reshape(g.shape + (seeds,)))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no settled path (or an unstable point): NaN
        floor = np.nanmedian(ends, axis=-1)
    return PredictedScaling(
        gammas=tuple(gammas.tolist()),
        etas=etas,
        settle=settle,
        first=first,
        gamma_star=opt.per_eta,
        gamma_star_ci=opt.per_eta_ci,
        kappa=float(coupling_at_two_thirds(sigma, C, batch)),
        overshoot=float(settle[k, -1] / first[k, -1]),
        model_evaluations=grid.model_evaluations,
        wall_seconds=time.perf_counter() - start,
        floor=floor,
        threshold=float(threshold),
        below=spec.below,
        curvature=descent_geometry(problem, params0).curvature,
    )
