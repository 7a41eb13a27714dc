"""The reduced-SDE prediction of a sweep: T(gamma, eta) and gamma*(eta), on the sweep's grid and below it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import check_positive_int
from ..limit import coupling_at_two_thirds
from ..timescales import predict_grid
from ..transforms import label_noise_batch
from ._fit import optimal_gamma
from ._grid import SweepSpec
from ._run import prepare, resolved_threshold


class PredictedScaling(NamedTuple):
    """The predictor's view of a sweep (SGDM, the spec's first C, sigma and batch size).

    ``etas``: the spec's etas, then ``extra_decades`` decades further down (two points per decade);
    ``settle[g, i]``: median predicted settling steps (``inf`` where censored or unstable);
    ``gamma_star``/``gamma_star_ci``: per eta, the vertex of log T over gamma with a 95% bootstrap
    interval over the predictor's paths (the estimator :func:`optimal_gamma` applies to simulations);
    ``kappa``: :math:`\\sigma^2/(4BC^3)`, the coupling at gamma = 2/3; ``overshoot``: predicted
    T_settle / T_first at gamma = 2/3 and the smallest eta (1: the motion along the valley settles
    without overshooting, the overdamped side of the regime map, where no penalty above 2/3 is expected
    at finite eta).
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
        }


def predict_spec(
    spec: SweepSpec,
    problem=None,
    params0=None,
    *,
    extra_decades: int = 2,
    seeds: int = 16,
    resolution: int = 32,
) -> PredictedScaling:
    """Predict a sweep's SGDM grid with :func:`flatter.timescales.predict_grid` (one compile for the grid).

    ``problem``/``params0`` as for :func:`flatter.sweep.run_sweep` (a registered problem is built from
    the spec; phase 1 runs when the spec says so). The criterion (observable, threshold, relative or
    not) is the sweep's. Costs ``model_evaluations`` force evaluations, independent of 1/eta.
    """
    import time

    if not isinstance(spec, SweepSpec):
        raise TypeError(f"spec must be a flatter.sweep.SweepSpec, got {type(spec).__name__}")
    if isinstance(extra_decades, bool) or not isinstance(extra_decades, int) or extra_decades < 0:
        raise ValueError(f"extra_decades must be an integer >= 0, got {extra_decades!r}")
    seeds = check_positive_int("seeds", seeds)
    resolution = check_positive_int("resolution", resolution)
    start = time.perf_counter()
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
    )
    samples = grid.settle_samples.reshape(g.shape + (seeds,))
    censored = ~np.isfinite(samples)
    opt = optimal_gamma(gammas, etas, np.where(censored, 0.0, samples), censored)
    k = int(np.argmin(np.abs(gammas - 2 / 3)))
    first, settle = grid.first.reshape(g.shape), grid.settle.reshape(g.shape)
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
    )
