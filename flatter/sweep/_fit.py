"""Power-law fits with honest error bars: T = A eta^-alpha, the optimal gamma, C* against sigma."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .._validation import check_range


class PowerLawFit(NamedTuple):
    r"""Fit of :math:`\log T = \log A - \alpha\log\eta` to the per-:math:`\eta` medians over seeds.

    ``alpha_se``: the standard error from the linearized (OLS) covariance; ``ci``: a 95% bootstrap
    interval over seeds (seeds resampled with replacement within each :math:`\eta`). ``used`` marks
    the :math:`\eta` whose median is known and positive; the others are left out, counted in ``dropped``,
    and ``status`` says why, per :math:`\eta`: ``"censored"`` (more than half the seeds did not meet the
    criterion within the horizon), ``"diverged"`` (more than half diverged), ``"unfinished"`` (a seed has
    no result yet) or ``"at start"`` (the median run met the criterion at step 0, so its time carries no
    rate). ``alpha`` is NaN when fewer than 3 points remain, and ``reason`` then says why.
    """

    alpha: float
    alpha_se: float
    prefactor: float
    ci: tuple[float, float]
    used: np.ndarray
    dropped: int
    medians: np.ndarray
    status: tuple[str, ...] = ()
    reason: str = ""

    def dropped_note(self) -> str:
        """The dropped etas by cause, e.g. ``"eta dropped: 2 censored, 1 diverged"`` (empty when none was)."""
        parts = [f"{self.status.count(k)} {k}" for k in DROP_REASONS if k in self.status]
        return "eta dropped: " + ", ".join(parts) if parts else ""

    def summary(self) -> dict:
        """A JSON-ready record of the fit (the bootstrap interval as ``ci``, the censored etas as ``dropped_etas``)."""
        return {
            "alpha": self.alpha,
            "se": self.alpha_se,
            "ci": list(self.ci),
            "prefactor": self.prefactor,
            "dropped_etas": self.dropped,
            "status": list(self.status),
            "reason": self.reason,
            "medians": self.medians.tolist(),
        }


DROP_REASONS = ("censored", "diverged", "unfinished", "at start")


def _eta_status(times: np.ndarray, censored: np.ndarray, diverged: np.ndarray, medians: np.ndarray) -> tuple:
    seeds = times.shape[1]
    status = []
    for t, c, d, m in zip(times, censored, diverged, medians, strict=True):
        if np.any(np.isnan(t) & ~c):
            status.append("unfinished")
        elif 2 * d.sum() > seeds:
            status.append("diverged")
        elif not np.isfinite(m):
            status.append("censored")
        elif m <= 0:
            status.append("at start")
        else:
            status.append("used")
    return tuple(status)


def _median_or_nan(times: np.ndarray, censored: np.ndarray) -> np.ndarray:
    # A censored time is a lower bound: the median is known only if fewer than half are censored.
    med = np.median(np.where(censored, np.inf, times), axis=-1)
    return np.where(np.isfinite(med), med, np.nan)


def _ols(x, y):
    A = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(x) - 2, 1)
    cov = (resid @ resid / dof) * np.linalg.inv(A.T @ A)
    return coef, np.sqrt(np.diag(cov))


def power_law(etas, times, censored=None, *, diverged=None, n_boot: int = 1000, seed: int = 0) -> PowerLawFit:
    """Fit ``times[i, s]`` (eta index i, seed s) to :math:`A\\eta^{-\\alpha}`.

    ``censored`` marks lower bounds (the criterion not met within the horizon), ``diverged`` the runs that
    blew up (censored too, and reported apart); a NaN time that is not censored is a run without a result yet.
    The etas must be distinct and positive, the times non-negative.

    Examples:
      >>> import numpy as np, flatter
      >>> etas = np.array([1e-3, 1e-2, 1e-1])
      >>> times = 5.0 * etas[:, None] ** -0.5 * np.exp(0.01 * np.random.default_rng(0).normal(size=(3, 8)))
      >>> print(round(flatter.sweep.power_law(etas, times).alpha, 2))
      0.5
    """
    etas = np.asarray(etas, float)
    times = np.asarray(times, float)
    check_range("etas", etas, lower=0.0, lower_inclusive=False)
    if etas.ndim != 1 or etas.size < 3:
        raise ValueError(f"etas must be a 1-D sequence of at least 3 learning rates to fit a power law, got {etas}")
    if times.ndim != 2 or times.shape[0] != etas.size:
        raise ValueError(f"times must have shape (len(etas), seeds) = ({etas.size}, S), got {times.shape}")
    if np.unique(etas).size != etas.size:
        raise ValueError(f"etas must be distinct (a repeated eta is not a new point of the fit), got {etas}")
    censored = np.zeros_like(times, bool) if censored is None else np.asarray(censored, bool)
    if censored.shape != times.shape:
        raise ValueError(f"censored must have the shape of times {times.shape}, got {censored.shape}")
    diverged = np.zeros_like(times, bool) if diverged is None else np.asarray(diverged, bool)
    if diverged.shape != times.shape:
        raise ValueError(f"diverged must have the shape of times {times.shape}, got {diverged.shape}")
    if np.any(times < 0):
        raise ValueError(f"times must be >= 0 (steps to meet the criterion), got min {np.nanmin(times):g}")
    censored = censored | diverged
    medians = _median_or_nan(np.where(np.isnan(times) & ~censored, np.inf, times), censored)
    status = _eta_status(times, censored, diverged, medians)
    used = np.array([s == "used" for s in status])
    medians = np.where(used | np.isfinite(medians), medians, np.nan)
    nan = float("nan")
    if used.sum() < 3:
        unfit = PowerLawFit(nan, nan, nan, (nan, nan), used, int((~used).sum()), medians, status)
        note = unfit.dropped_note()
        reason = f"not fitted: {int(used.sum())} of {etas.size} eta usable, 3 needed" + (f"; {note}" if note else "")
        return unfit._replace(reason=reason)
    x, y = np.log(etas[used]), np.log(medians[used])
    coef, se = _ols(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    t_used, c_used = times[used], censored[used]
    for _ in range(n_boot):
        pick = rng.integers(0, times.shape[1], size=t_used.shape)
        med = _median_or_nan(np.take_along_axis(t_used, pick, 1), np.take_along_axis(c_used, pick, 1))
        if np.all(np.isfinite(med)) and np.all(med > 0):
            boots.append(-np.polyfit(x, np.log(med), 1)[0])
    ci = tuple(np.percentile(boots, [2.5, 97.5]).tolist()) if boots else (nan, nan)
    return PowerLawFit(
        float(-coef[1]), float(se[1]), float(np.exp(coef[0])), ci, used, int((~used).sum()), medians, status
    )


def vertex(xs, ys) -> float:
    """Minimum of the parabola through the lowest point and its two neighbours (argmin at an edge)."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    i = int(np.nanargmin(ys))
    if i == 0 or i == len(xs) - 1 or not np.all(np.isfinite(ys[i - 1 : i + 2])):
        return float(xs[i])
    a, b, _ = np.polyfit(xs[i - 1 : i + 2], ys[i - 1 : i + 2], 2)
    return float(np.clip(-b / (2 * a), xs[i - 1], xs[i + 1])) if a > 0 else float(xs[i])


class OptimalGamma(NamedTuple):
    """The optimal gamma: per eta, the vertex of log(median T) over gamma, with 95% bootstrap intervals.

    ``gamma``/``ci`` are those of the smallest eta (the most asymptotic, docs/theory.md §1.7: gamma*(eta) -> 2/3 as
    eta decreases); ``per_eta``/``per_eta_ci`` follow the etas in the order given; ``alpha_vertex`` is the
    vertex of the fitted alpha(gamma) (NaN when a fit failed or with fewer than three etas).
    """

    gamma: float
    ci: tuple[float, float]
    per_eta: np.ndarray
    per_eta_ci: np.ndarray
    alpha_vertex: float

    def summary(self, etas) -> dict:
        """A JSON-ready record of this result for the ``etas`` it was computed on (smallest first in ``eta``)."""
        return {
            "gamma": self.gamma,
            "ci": list(self.ci),
            "eta": float(min(etas)),
            "per_eta": self.per_eta.tolist(),
            "per_eta_ci": self.per_eta_ci.tolist(),
            "etas": list(etas),
            "alpha_vertex": self.alpha_vertex,
        }


def optimal_gamma(gammas, etas, times, censored=None, *, n_boot: int = 500, seed: int = 0) -> OptimalGamma:
    """gamma* from ``times[g, i, s]`` (gamma, eta, seed), with bootstrap intervals over seeds.

    Examples:
      >>> import numpy as np, flatter
      >>> gammas, etas = np.array([0.5, 2 / 3, 0.85]), np.array([1e-3, 1e-2])
      >>> times = 100 * etas[None, :, None] ** -flatter.timescales.alpha(gammas)[:, None, None] * np.ones((3, 2, 4))
      >>> print(round(flatter.sweep.optimal_gamma(gammas, etas, times).gamma, 2))  # the parabola through alpha's V
      0.7
    """
    gammas, etas = np.asarray(gammas, float), np.asarray(etas, float)
    times = np.asarray(times, float)
    if gammas.ndim != 1 or gammas.size < 2 or np.unique(gammas).size != gammas.size:
        raise ValueError(f"gammas must be a 1-D sequence of at least 2 distinct values, got {gammas}")
    check_range("etas", etas, lower=0.0, lower_inclusive=False)
    if etas.ndim != 1 or np.unique(etas).size != etas.size:
        raise ValueError(f"etas must be a 1-D sequence of distinct learning rates, got {etas}")
    if times.ndim != 3 or times.shape[:2] != (gammas.size, etas.size):
        raise ValueError(
            f"times must have shape (len(gammas), len(etas), seeds) = ({gammas.size}, {etas.size}, S), got "
            f"{times.shape}"
        )
    if np.any(times < 0):
        raise ValueError(f"times must be >= 0 (steps to meet the criterion), got min {np.nanmin(times):g}")
    censored = np.zeros_like(times, bool) if censored is None else np.asarray(censored, bool)
    if censored.shape != times.shape:
        raise ValueError(f"censored must have the shape of times {times.shape}, got {censored.shape}")

    def vertices(t, c):
        med = _median_or_nan(t, c)  # (gamma, eta); censored medians are unknown, hence excluded
        return np.array(
            [
                vertex(gammas, np.where(np.isfinite(med[:, i]), np.log(med[:, i]), np.inf))
                if np.any(np.isfinite(med[:, i]))
                else np.nan
                for i in range(len(etas))
            ]
        )

    per_eta = vertices(times, censored)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, times.shape[-1], size=times.shape)
        boots.append(vertices(np.take_along_axis(times, pick, -1), np.take_along_axis(censored, pick, -1)))
    with warnings.catch_warnings():  # an eta with no vertex in any resample has no interval: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        per_eta_ci = np.nanpercentile(np.array(boots), [2.5, 97.5], axis=0).T
    alpha_vertex = float("nan")  # a power law needs three etas
    if len(etas) >= 3:
        alphas = [power_law(etas, times[g], censored[g], n_boot=0).alpha for g in range(len(gammas))]
        alpha_vertex = vertex(gammas, alphas) if np.all(np.isfinite(alphas)) else float("nan")
    k = int(np.argmin(etas))
    return OptimalGamma(float(per_eta[k]), tuple(per_eta_ci[k].tolist()), per_eta, per_eta_ci, alpha_vertex)


def optimal_C(Cs, times, censored=None) -> float:
    """C* minimizing the median time (parabolic vertex in log C)."""
    Cs = np.asarray(Cs, float)
    times = np.asarray(times, float)
    censored = np.zeros_like(times, bool) if censored is None else np.asarray(censored, bool)
    med = _median_or_nan(times, censored)
    return float(np.exp(vertex(np.log(Cs), np.log(med))))
