r"""What a scaling sweep says: the exponents :math:`\alpha(\gamma)`, :math:`\gamma^*(\eta)` and the regime.

:func:`summarize` is what ``flatter scaling`` prints and draws, as a function of any sweep's results, a
user's own problem included::

    results = flatter.sweep.run_sweep(spec, "out", problem=problem)
    summary = flatter.sweep.summarize(results)
    print(summary.table())
    flatter.figures.scaling_figure(results, summary).savefig("scaling.png")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np

from ._fit import OptimalGamma, PowerLawFit
from ._grid import SweepSpec
from ._predict import PredictedScaling
from ._results import SweepResults

UNDETERMINED_SE = 0.15
"""An exponent whose standard error exceeds this is *undetermined*: printed as such, drawn hollow and grey with
its whole interval, and no fit line is drawn through it."""

CRITERIA = ("settle", "first")
"""The two convergence times of every run: the last crossing into the criterion, and the first passage."""


def is_determined(alpha: float, se: float) -> bool:
    """Whether a fitted exponent means something: finite, with a standard error at most :data:`UNDETERMINED_SE`."""
    return bool(np.isfinite(alpha) and np.isfinite(se) and se <= UNDETERMINED_SE)


def predicted_alpha(variant: str, gamma: float) -> float:
    r"""The :math:`\eta\to0` exponent a variant is expected to show: :math:`2-2\gamma` below 2/3 and
    :math:`\gamma` above for the momentum variants (:func:`flatter.timescales.alpha`), 2 for SGD at the same
    :math:`\eta`, NaN where the theory gives none."""
    from ..timescales import alpha

    if variant in ("sgdm", "nesterov", "sngm"):
        return float(alpha(gamma))
    if variant == "sgd-same-eta":
        return 2.0
    return float("nan")


@dataclasses.dataclass(frozen=True)
class ExponentRow:
    r"""One fitted exponent: ``T = A eta^-alpha`` for a variant, a gamma and a criterion.

    ``fit`` is the :class:`~flatter.sweep.PowerLawFit` (its ``alpha``, ``alpha_se``, bootstrap ``ci``,
    ``prefactor``, the per-eta ``medians`` and how many etas were ``dropped`` as censored); ``etas`` the sweep's.
    """

    variant: str
    gamma: float
    criterion: str
    fit: PowerLawFit
    etas: tuple[float, ...]

    @property
    def alpha(self) -> float:
        return self.fit.alpha

    @property
    def se(self) -> float:
        return self.fit.alpha_se

    @property
    def determined(self) -> bool:
        """Finite, with a standard error at most :data:`UNDETERMINED_SE`."""
        return is_determined(self.alpha, self.se)

    @property
    def predicted(self) -> float:
        return predicted_alpha(self.variant, self.gamma)

    def to_json(self) -> dict:
        return {
            "variant": self.variant,
            "gamma": self.gamma,
            "criterion": self.criterion,
            **self.fit.summary(),
            "determined": self.determined,
            "predicted": self.predicted,
            "etas": list(self.etas),
        }


@dataclasses.dataclass(frozen=True)
class GammaStar:
    r""":math:`\gamma^*(\eta)` of one sweep: the vertex of :math:`\log T` over the gamma grid, per eta.

    ``fit`` is the :class:`~flatter.sweep.OptimalGamma` (``gamma``/``ci`` at the smallest eta, ``per_eta`` and
    ``per_eta_ci`` in the order of ``etas``); ``gammas`` the grid, whose edges make a vertex a bound.
    """

    fit: OptimalGamma
    etas: tuple[float, ...]
    gammas: tuple[float, ...]

    @property
    def gamma(self) -> float:
        return self.fit.gamma

    @property
    def eta(self) -> float:
        return float(min(self.etas))

    @property
    def at_edge(self) -> bool:
        """Whether gamma* at the smallest eta sits on the grid's edge (so it is a bound, not a value)."""
        return bool(np.isclose(self.gamma, min(self.gammas)) or np.isclose(self.gamma, max(self.gammas)))

    def to_json(self) -> dict:
        return {**self.fit.summary(self.etas), "gammas": list(self.gammas), "at_edge": self.at_edge}


def regime_text(kappa: float | None, overshoot: float | None, zeta: float | None = None) -> str:
    """Which side of the regime map a run is on at gamma = 2/3 (theory/regime_map.py).

    The side is read off the predicted overshoot T_settle/T_first (above 1.05: underdamped), the dynamics to the
    end; ``zeta`` (:func:`flatter.limit.damping_ratio` from the valley's curvature at the start, critical at 1) is
    printed beside it, and where the two disagree the text says so: the curvature of tr at the start does not hold
    along the way (matrix sensing: zeta = 0.7 at the start, no overshoot predicted).
    """
    shown = "n/a" if kappa is None else f"{kappa:.3g}"
    ratio = f"predicted T_settle/T_first = {overshoot:.2f}" if overshoot is not None else "no prediction"
    under = overshoot is not None and np.isfinite(overshoot) and overshoot > 1.05
    number = f"kappa = {shown}; {ratio}"
    if zeta is not None:
        number = f"damping ratio at the start zeta = {zeta:.3g}, critical 1; " + number
        if (zeta < 1.0) != under:
            number += "; the start's zeta says otherwise: tr's curvature there does not hold along the way"
    if under:
        return (
            f"underdamped along the valley at gamma = 2/3 ({number}): the overshoot that penalizes gamma > 2/3 is there"
        )
    return (
        f"overdamped along the valley at gamma = 2/3 ({number}): no overshoot, so no penalty above 2/3 from the "
        "valley dynamics; gamma* -> 2/3 only logarithmically in eta"
    )


def regime_label(kappa: float | None, overshoot: float | None, zeta: float | None = None) -> str:
    """:func:`regime_text` in a few words: the side of the regime map, zeta at the start and kappa."""
    shown = "n/a" if kappa is None else f"{kappa:.3g}"
    numbers = f"kappa = {shown}" if zeta is None else f"zeta at the start = {zeta:.3g}, kappa = {shown}"
    return regime_text(kappa, overshoot, zeta).split(" at gamma = 2/3 (")[0] + f" ({numbers})"


@dataclasses.dataclass(frozen=True)
class ScalingSummary:
    r"""The summary of one or more scaling sweeps, as ``flatter scaling`` prints and draws it.

    ``rows``: an :class:`ExponentRow` per (variant, gamma, criterion) of every sweep; ``gamma_star``: the
    :class:`GammaStar` of SGDM on the sweep with the most gammas (at least two), None without one;
    ``kappa``: the along-valley coupling at gamma = 2/3 (:func:`flatter.limit.coupling_at_two_thirds`) of that
    sweep; ``censored`` and ``diverged``: run counts per variant (settling not reached within the horizon;
    non-finite parameters, masked), ``at_start`` (the criterion met at step 0) and ``unfinished`` (no result
    yet); ``predicted``: the reduced SDE's :class:`~flatter.sweep.PredictedScaling` when asked for.
    """

    problem: str
    rows: tuple[ExponentRow, ...]
    gamma_star: GammaStar | None
    kappa: float | None
    censored: dict[str, int]
    diverged: dict[str, int]
    predicted: PredictedScaling | None = None
    at_start: dict[str, int] = dataclasses.field(default_factory=dict)
    unfinished: dict[str, int] = dataclasses.field(default_factory=dict)

    def row(self, variant: str, gamma: float, criterion: str = "settle") -> ExponentRow:
        """The exponent of ``variant`` at ``gamma`` (nearest on the grid within 1e-6) for ``criterion``."""
        for r in self.rows:
            if r.variant == variant and r.criterion == criterion and abs(r.gamma - gamma) < 1e-6:
                return r
        have = sorted({(r.variant, round(r.gamma, 4)) for r in self.rows})
        raise KeyError(f"no exponent for variant={variant!r}, gamma={gamma}, criterion={criterion!r}; have {have}")

    @property
    def regime(self) -> str | None:
        """The regime text of the prediction (None without one)."""
        if self.predicted is None:
            return None
        return regime_text(self.predicted.kappa, self.predicted.overshoot, self.predicted.zeta)

    def headline(self) -> str | None:
        """The job's result in one line: the measured gamma* at the smallest eta with its 95% interval, the
        predicted one with its band, the paper's 2/3 and the regime (None without a gamma*).

        A gamma* on the gamma grid's edge is a bound (``>= 0.850, at the grid's edge``), measured or predicted.
        """
        gs = self.gamma_star
        if gs is None:
            return None
        lo, hi = gs.fit.ci
        refused = self.floor_problems(smallest_eta=True)
        if refused:
            where = ", ".join(f"{g:.3g}" for g in sorted({g for g, _, _ in refused}))
            return (
                f"headline: no gamma* measured: the criterion's threshold {self.predicted.threshold:.3g} sits within "
                f"the predicted noise floor at gamma = {where} (eta = {gs.eta:g}), where a settling time is the "
                f"transverse noise's, not the valley's (the table's gamma* = {gs.gamma:.3f} is that artefact); a "
                f"threshold beyond {self.predicted.suggested_threshold():.3g} clears it"
            )
        if gs.at_edge:
            measured = f"measured gamma* {gamma_text(gs.gamma, gs.gammas)} (at the gamma grid's edge, a bound)"
        else:
            measured = f"measured gamma* = {gs.gamma:.3f} {interval_text(lo, hi, gs.gammas, 3)}"
        parts = [f"{measured} at eta = {gs.eta:g}"]
        pred = self.predicted
        if pred is not None:
            i = int(np.argmin(np.abs(np.log(pred.etas) - np.log(gs.eta))))
            g, (a, b) = pred.gamma_star[i], pred.gamma_star_ci[i]
            text = gamma_text(g, pred.gammas)
            edge = text.startswith(("<=", ">="))
            band = interval_text(a, b, pred.gammas)
            parts.append(f"predicted {text} {band}" + (" (at the grid's edge, a bound)" if edge else ""))
        parts.append("paper 2/3 (as eta -> 0)")
        if pred is not None:
            parts.append("regime: " + regime_label(pred.kappa, pred.overshoot, pred.zeta))
        return "headline: " + "; ".join(parts)

    def floor_problems(self, smallest_eta: bool = False) -> list[tuple[float, float, float]]:
        """The grid points ``(gamma, eta, floor)`` of the gamma* sweep where the criterion sits within the predicted
        noise floor (:meth:`PredictedScaling.floor_problems`; empty without a prediction). ``smallest_eta``: only
        at the eta gamma* is read at."""
        if self.predicted is None or self.gamma_star is None:
            return []
        etas = [self.gamma_star.eta] if smallest_eta else self.gamma_star.etas
        return self.predicted.floor_problems(etas=etas)

    def criterion_check(self) -> str | None:
        """One line: whether the criterion's threshold clears the predicted noise floor at every grid point."""
        if self.predicted is None or self.gamma_star is None:
            return None
        return self.predicted.criterion_check(etas=self.gamma_star.etas)

    def to_json(self) -> dict:
        """A JSON-ready record (what ``summary.json`` holds), self-describing: rows are records, not keys."""
        return {
            "problem": self.problem,
            "alpha": [r.to_json() for r in self.rows],
            "gamma_star": None if self.gamma_star is None else self.gamma_star.to_json(),
            "kappa_two_thirds": self.kappa,
            "censored": dict(self.censored),
            "diverged": dict(self.diverged),
            "at_start": dict(self.at_start),
            "unfinished": dict(self.unfinished),
            "predicted": None if self.predicted is None else self.predicted.summary(),
            "regime": self.regime,
            "headline": self.headline(),
            "criterion_check": self.criterion_check(),
            "undetermined_se": UNDETERMINED_SE,
        }

    def table(self, columns: Sequence[str] | None = None) -> str:
        """The alpha(gamma) table, gamma* with its intervals, the prediction and the regime, as the CLI prints.

        By default settling in full and first passage beside it; ``columns`` names the criteria to show in full
        instead (an undetermined exponent marked ``*``), e.g. ``("settle", "accuracy_plateau")``.
        """
        if columns is not None:
            return self._criteria_table(tuple(columns))
        lines = [
            f"alpha in T ~ eta^-alpha, {self.problem} (settling / first passage; +- linearized s.e., "
            "[95% bootstrap CI])",
            f"{'variant':<14} {'gamma':>6} {'predicted':>9}  {'alpha_settle':>26}  {'alpha_first':>14}",
        ]
        for row in self.rows:
            if row.criterion != "settle":
                continue
            first = self.row(row.variant, row.gamma, "first")
            ci = row.fit.ci
            settle = f"{row.alpha:.2f} +- {row.se:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if np.isfinite(row.alpha) else "-"
            first_text = f"{first.alpha:6.2f} +- {first.se:.2f}" if np.isfinite(first.alpha) else f"{'-':>14}"
            note = f"  ({row.fit.reason or row.fit.dropped_note()})" if row.fit.dropped or row.fit.reason else ""
            if np.isfinite(row.alpha) and not row.determined:
                note += f"  undetermined (s.e. > {UNDETERMINED_SE})"
            lines.append(f"{row.variant:<14} {row.gamma:6.3f} {row.predicted:9.2f}  {settle:>26}  {first_text}{note}")
        gs = self.gamma_star
        if gs is not None:
            lo, hi = gs.fit.ci
            lines += [
                "",
                f"gamma* = argmin_gamma T_settle at the smallest eta = {gs.eta:g} (parabolic vertex, SGDM): "
                f"{gs.gamma:.3f}  95% bootstrap CI {interval_text(lo, hi, gs.gammas, 3)}" + _edge_note(gs),
                "gamma*(eta): "
                + ", ".join(
                    f"{e:g}: {gamma_text(g, gs.gammas)} {interval_text(a, b, gs.gammas)}"
                    for e, g, (a, b) in zip(gs.etas, gs.fit.per_eta, gs.fit.per_eta_ci, strict=True)
                ),
                f"vertex of alpha_settle(gamma): {gs.fit.alpha_vertex:.3f}",
            ]
            if self.kappa is not None:
                lines.append(
                    f"along-valley coupling at gamma = 2/3: kappa = sigma^2/(4 B C^3) = {self.kappa:.3g} "
                    "(eta cancels there; gamma* -> 2/3 only as eta -> 0, with finite-eta corrections)"
                )
        pred = self.predicted
        if pred is not None:
            per = ", ".join(
                f"{e:g}: {gamma_text(g, pred.gammas)} {interval_text(a, b, pred.gammas)}"
                for e, g, (a, b) in zip(pred.etas, pred.gamma_star, pred.gamma_star_ci, strict=True)
            )
            if ">=" in per or "<=" in per:
                per += " (>= / <=: at the gamma grid's edge, a bound)"
            lines.append(f"predicted gamma*(eta) (reduced SDE, {pred.model_evaluations} force evaluations): {per}")
            lines.append(f"regime: {self.regime}")
            check = self.criterion_check()
            if check is not None:
                lines.append(check)
        lines.append(f"censored runs (settling not reached within the horizon): {self.censored}")
        lines.append(f"  of which diverged (non-finite parameters, masked): {self.diverged}")
        if any(self.at_start.values()):
            lines.append(f"met at step 0 (no rate in their time): {self.at_start}")
        if any(self.unfinished.values()):
            lines.append(f"unfinished runs (no result yet): {self.unfinished}")
        return "\n".join(lines)

    def _criteria_table(self, columns: tuple[str, ...]) -> str:
        head = "".join(f"  {'alpha (' + c + ')':>30}" for c in columns)
        lines = [
            f"alpha in T ~ eta^-alpha, {self.problem} (+- linearized s.e. [95% bootstrap CI]; * undetermined: s.e. > "
            f"{UNDETERMINED_SE})",
            f"{'variant':<14} {'gamma':>6} {'predicted':>9}{head}",
        ]
        for row in self.rows:
            if row.criterion != columns[0]:
                continue
            cells = "".join(f"  {_exponent_text(self.row(row.variant, row.gamma, c)):>30}" for c in columns)
            lines.append(f"{row.variant:<14} {row.gamma:6.3f} {row.predicted:9.2f}{cells}")
        gs = self.gamma_star
        if gs is not None:
            lo, hi = gs.fit.ci
            lines.append(
                f"gamma* (vertex of log T_{columns[0]} over gamma at eta = {gs.eta:g}) = {gs.gamma:.3f}  95% bootstrap "
                f"CI {interval_text(lo, hi, gs.gammas, 3)}; vertex of alpha(gamma): {gs.fit.alpha_vertex:.3f}"
                + _edge_note(gs)
            )
        return "\n".join(lines)


def gamma_text(gamma: float, grid) -> str:
    """A gamma* as printed: a value inside the grid, a bound (``>= 0.850``) at its edge, where the vertex of
    log T over gamma is only known to lie beyond the grid."""
    grid = np.asarray(grid, float)
    if not np.isfinite(gamma):
        return "nan"
    if np.isclose(gamma, grid.max()):
        return f">= {gamma:.3f}"
    if np.isclose(gamma, grid.min()):
        return f"<= {gamma:.3f}"
    return f"{gamma:.3f}"


def interval_text(low: float, high: float, grid, digits: int = 2) -> str:
    """A gamma* interval as printed, ``[0.63, 0.69]``; an end on the grid's edge is open, ``[0.63, >= 0.85]``:
    the bootstrap's vertex reached the edge there, so the interval only says it lies beyond."""
    grid = np.asarray(grid, float)

    def end(value: float) -> str:
        if np.isfinite(value) and np.isclose(value, grid.max()):
            return f">= {value:.{digits}f}"
        if np.isfinite(value) and np.isclose(value, grid.min()):
            return f"<= {value:.{digits}f}"
        return f"{value:.{digits}f}"

    return f"[{end(low)}, {end(high)}]"


def _edge_note(gs: GammaStar) -> str:
    return "  (at the gamma grid's edge: a bound, not a value)" if gs.at_edge else ""


def _exponent_text(row: ExponentRow) -> str:
    lo, hi = row.fit.ci
    if not np.isfinite(row.alpha):
        return row.fit.reason.removeprefix("not fitted: ").split("; ")[0] or "not fitted"
    mark = "*" if not row.determined else ""
    return f"{row.alpha:.2f} +- {row.se:.2f} [{lo:.2f}, {hi:.2f}]{mark}"


def _kappa(spec: SweepSpec) -> float | None:
    """The coupling at gamma = 2/3 for the spec's first C, sigma and batch size (None if n is unknown)."""
    from ..limit import coupling_at_two_thirds
    from ..transforms import label_noise_batch
    from ._grid import _problem_facts

    if spec.problem_digest is not None:  # a user's problem: n is not in the spec
        if spec.label_noise_mode != "one" or spec.batch_sizes[0] is not None:
            return None
        n = 1
    else:
        n = _problem_facts(spec.problem, json.dumps(spec.problem_kwargs, sort_keys=True))[1]
    return float(
        coupling_at_two_thirds(
            spec.sigmas[0], spec.Cs[0], label_noise_batch(spec.label_noise_mode, spec.batch_sizes[0], n)
        )
    )


def summarize(
    results: SweepResults | Sequence[SweepResults],
    *,
    predicted: PredictedScaling | None = None,
    problem: str | None = None,
    criteria: Sequence[str] = CRITERIA,
    **coords,
) -> ScalingSummary:
    r"""The exponents of every variant and gamma, :math:`\gamma^*(\eta)` and the coupling, of one or more sweeps.

    Every axis but gamma, eta and seed must have one value or be fixed by ``coords`` (``C=0.5``). ``predicted``
    (from :func:`flatter.sweep.predict_spec`) adds the predicted band and the regime. ``criteria``: the
    convergence times fitted (:attr:`SweepResults.criteria`; gamma* is read from the first).

    Examples:
      ``summary = flatter.sweep.summarize(flatter.sweep.load("out/sweep")); print(summary.table())``. The
      README's notebook does this on a user's own problem, and ``tests/test_sweep.py`` runs it verbatim (a
      sweep is too long for a doctest).
    """
    all_results = [results] if isinstance(results, SweepResults) else list(results)
    if not all_results:
        raise ValueError("results must hold at least one SweepResults")
    rows: list[ExponentRow] = []
    censored: dict[str, int] = {}
    diverged: dict[str, int] = {}
    at_start: dict[str, int] = {}
    unfinished: dict[str, int] = {}
    star_from: SweepResults | None = None
    for res in all_results:
        spec = res.spec
        for variant in spec.variants:
            for criterion in criteria:
                for g in spec.gammas:
                    fit = res.power_law(variant, g, criterion, **coords)
                    rows.append(ExponentRow(variant, float(g), criterion, fit, tuple(spec.etas)))
            sel = res.sel(variant=variant)
            censored[variant] = censored.get(variant, 0) + int(sel["censored_settle"].sum())
            diverged[variant] = diverged.get(variant, 0) + int(sel["diverged"].sum())
            met = ~sel["censored_settle"] & (sel["T_settle"] == 0)
            at_start[variant] = at_start.get(variant, 0) + int(met.sum())
            todo = ~sel["censored_settle"] & np.isnan(sel["T_settle"])
            unfinished[variant] = unfinished.get(variant, 0) + int(todo.sum())
        if "sgdm" in spec.variants and len(spec.gammas) >= 2:
            if star_from is None or len(spec.gammas) > len(star_from.spec.gammas):
                star_from = res
    gamma_star = kappa = None
    if star_from is not None:
        spec = star_from.spec
        fit = star_from.optimal_gamma("sgdm", criteria[0], **coords)
        gamma_star = GammaStar(fit, tuple(spec.etas), tuple(spec.gammas))
        kappa = _kappa(spec)
    return ScalingSummary(
        problem=problem or all_results[0].spec.problem,
        rows=tuple(rows),
        gamma_star=gamma_star,
        kappa=kappa,
        censored=censored,
        diverged=diverged,
        predicted=predicted,
        at_start=at_start,
        unfinished=unfinished,
    )
