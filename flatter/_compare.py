"""Discrete SGDM with label noise against its limit on the valley, on one model and one time axis."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ._problem import Observable, Params, Problem
from ._simulate import simulate_records
from ._structural_jit import structural_jit
from ._validation import check_momentum, check_positive, check_positive_int
from .limit._dynamics import label_noise_flow
from .limit._integrate import integrate
from .transforms._heavy_ball import heavy_ball
from .transforms._label_noise import label_noise
from .valley._projection import project


class Comparison(NamedTuple):
    r"""Seed-averaged discrete observable and its limit prediction on common axes.

    ``steps`` (optimizer steps) and ``t`` (:math:`= \eta_\mathrm{eff}^2\,k`) index the records;
    ``discrepancy = |discrete_mean - limit|`` with ``discrepancy_stderr`` the standard error of the
    seed mean; ``max_discrepancy`` is its largest value over the records. Runs that diverged are
    left out of the mean and counted in ``diverged`` (all diverged: the mean is NaN, and
    ``max_discrepancy`` is ``inf``). ``limit_error`` estimates the limit path's own integration error
    by step doubling (``|limit - limit at twice the step| / 3``, Richardson's estimate of the error of a
    second-order scheme at the finer step), and ``limit_substeps`` is the number of projected Heun steps between
    records that was needed to bring it below a tenth of the discrepancy (or the cap). ``also`` holds one
    Comparison per further observable asked for, read on the same runs and limit paths.
    """

    observable: str
    eta: float
    beta: float
    steps: Float[Array, " R"]
    t: Float[Array, " R"]
    discrete: Float[Array, "seeds R"]
    discrete_mean: Float[Array, " R"]
    discrete_stderr: Float[Array, " R"]
    limit: Float[Array, " R"]
    discrepancy: Float[Array, " R"]
    discrepancy_stderr: Float[Array, " R"]
    diverged: int
    limit_error: Float[Array, " R"]
    limit_substeps: int
    also: Mapping[str, Comparison] = MappingProxyType({})

    @property
    def max_discrepancy(self) -> float:
        worst = float(jnp.max(self.discrepancy))
        return worst if np.isfinite(worst) else float("inf")


def compare(
    problem: Problem,
    params0: Params,
    *,
    eta: float,
    beta: float,
    sigma: float,
    t1: float,
    key: PRNGKeyArray,
    seeds: int = 16,
    batch_size: int | None = None,
    records: int = 50,
    observable: str = "trace_hessian",
    also: Sequence[str] | Mapping[str, Observable] = (),
    limit_substeps: int = 2,
    max_limit_substeps: int = 256,
) -> Comparison:
    r"""Run label-noise SGDM (``seeds`` runs, vmapped) and the label-noise limit flow from one point.

    The start is ``params0`` projected onto Γ. Discrete: :math:`K = t_1/\eta_\mathrm{eff}^2` steps of
    ``optax.chain(label_noise(sigma), heavy_ball(eta, beta))`` with minibatches of ``batch_size``
    (full batch with every label noised when ``None``, so :math:`B = n`). Limit:
    :func:`flatter.limit.label_noise_flow` with the same :math:`\sigma, B`, integrated to
    :math:`t_1` with ``limit_substeps`` projected Heun steps between records (second order: diffrax's ``Heun``
    ending every step on Γ, :class:`flatter.limit.ProjectedSolver`), doubled (up to
    ``max_limit_substeps``) until the step-doubling estimate of its error is below a tenth of the
    discrepancy it is compared with, so that the reported discrepancy is the discrete dynamics'
    and not the integrator's. Both are recorded at ``records + 1`` common times
    :math:`t_j = \eta_\mathrm{eff}^2 k_j`. ``also`` names further observables (the problem's, or a mapping of
    name to function) read on the same runs and paths, each returned as its own Comparison in
    ``Comparison.also`` (the step is refined for ``observable`` alone). Several step sizes:
    :func:`compare_step_sizes` (one limit path serves them all).

    Which reading: the limit theorem is about :math:`\Phi(\theta_k)`, the point of Γ below the iterate. An
    observable with a normal gradient (:math:`\mathrm{tr}\nabla^2L` on a generic valley, on a network) read at
    the iterate also carries the normal fluctuations' offset, and the part of it from normal modes of curvature
    :math:`h < \eta_\mathrm{eff}/t_1` (not relaxed by :math:`t_1`) does not shrink with :math:`\eta_\mathrm{eff}`;
    read it on the valley (``observable="trace_hessian@valley"``, :func:`flatter.valley.on_valley`) to see the
    :math:`O(\eta_\mathrm{eff})` convergence, and ride the iterate's reading along in ``also`` (docs/theory.md §2.1).

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> c = flatter.compare(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]), eta=0.002, beta=0.9, sigma=1.0,
      ...                     t1=0.5, key=jax.random.key(0), seeds=8, records=5, observable="y")
      >>> print(c.t.shape, bool(c.max_discrepancy < 0.02))  # y(t) = exp(-t/2) both ways, within O(eta_eff)
      (6,) True
    """
    check_positive("eta", eta)
    (comparison,) = compare_step_sizes(
        problem, params0, etas=(eta,), beta=beta, sigma=sigma, t1=t1, key=key, seeds=seeds, batch_size=batch_size,
        records=records, observable=observable, also=also, limit_substeps=limit_substeps,
        max_limit_substeps=max_limit_substeps,
    )  # fmt: skip
    return comparison


def compare_step_sizes(
    problem: Problem,
    params0: Params,
    *,
    etas: Sequence[float],
    beta: float,
    sigma: float,
    t1: float,
    key: PRNGKeyArray,
    seeds: int = 16,
    batch_size: int | None = None,
    records: int = 50,
    observable: str = "trace_hessian",
    also: Sequence[str] | Mapping[str, Observable] = (),
    limit_substeps: int = 2,
    max_limit_substeps: int = 256,
) -> tuple[Comparison, ...]:
    r""":func:`compare` at each step size of ``etas`` (same ``beta``, ``key`` and start), for a convergence plot.

    The limit flow does not depend on :math:`\eta`: step sizes whose records fall at the same times
    :math:`t_j` (:math:`t_1/\eta_\mathrm{eff}^2` a multiple of ``records``, as when :math:`\eta` is halved) share
    one limit path, refined until its error is below a tenth of the smallest discrepancy among them. The discrete
    runs of every :math:`\eta` are one compiled program (:math:`\eta`, :math:`\beta` and the record interval are
    its inputs). Each Comparison equals :func:`compare` at its :math:`\eta` except where the shared path was
    refined further for a smaller discrepancy.

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> comps = flatter.compare_step_sizes(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]),
      ...                                    etas=[0.04, 0.02], beta=0.0, sigma=1.0, t1=2.0, key=jax.random.key(0),
      ...                                    seeds=64, records=10, observable="y")
      >>> print([c.eta for c in comps], bool(jnp.all(comps[0].limit == comps[1].limit)))
      [0.04, 0.02] True
    """
    if len(etas) < 1:
        raise ValueError("etas must hold at least one step size")
    for eta in etas:
        check_positive("etas", eta)
    check_momentum("beta", beta)
    check_positive("t1", t1)
    problem.check_params(params0)
    seeds = check_positive_int("seeds", seeds)
    records = check_positive_int("records", records)
    start = project(problem, params0)
    batch = problem.num_examples if batch_size is None else batch_size
    mode = "all" if batch_size is None else "minibatch"
    read = dict(problem.resolve_observables([observable]))
    extra = dict(problem.resolve_observables(also)) if also else {}
    if observable in extra:
        raise ValueError(f"also must not repeat observable={observable!r}")
    read.update(extra)

    def run(k, eta, beta, every):  # eta, beta and the record interval are inputs: one compile serves every eta
        k_noise, k_sim = jax.random.split(k)
        tx = optax.chain(label_noise(sigma, key=k_noise, mode=mode), heavy_ball(eta, beta))
        traj = simulate_records(
            problem, tx, start, key=k_sim, record_every=every, n_records=records, batch_size=batch_size,
            observables=read,
        )  # fmt: skip
        return traj.steps, traj.observables, traj.diverged

    runs = jax.vmap(run, (0, None, None, None))
    discrete = []
    for eta in etas:
        eta_eff = eta / (1 - beta)
        record_every = max(1, max(records, int(round(t1 / eta_eff**2))) // records)
        hyper = (jnp.asarray(eta, float), jnp.asarray(beta, float), jnp.asarray(record_every, jnp.int32))
        steps, observed, diverged = structural_jit(runs, jax.random.split(key, seeds), *hyper)
        observed = {name: v[~np.asarray(diverged)] for name, v in observed.items()}
        interval = float(f"{record_every * eta_eff**2:.12g}")  # eta = 0.002 and 0.001 at beta = 0.9: both 0.1
        discrete.append((eta, steps[0], interval, observed, int(np.sum(diverged))))

    flow = label_noise_flow(problem, sigma=sigma, batch_size=batch)

    def limit_path(interval, substeps):
        dt = interval / substeps
        sol = integrate(
            problem, flow, start, t1=records * substeps * dt, dt=dt, save_every=substeps, observables=read,
            method="diffrax",
        )  # fmt: skip
        return sol.observables

    def refined(interval, means):  # means: the discrete means this path is compared with
        coarse, substeps = limit_path(interval, limit_substeps), limit_substeps
        while True:
            fine = limit_path(interval, 2 * substeps)
            substeps *= 2
            error = jnp.abs(fine[observable] - coarse[observable]) / 3  # Heun: error(h) ~ 4 error(h/2)
            gaps = [float(jnp.max(jnp.abs(mean - fine[observable]))) for mean in means]
            if float(jnp.max(error)) <= 0.1 * min(gaps, default=np.inf) or 2 * substeps > max_limit_substeps:
                return coarse, fine, substeps
            coarse = fine

    paths = {}
    for interval in dict.fromkeys(interval for _, _, interval, _, _ in discrete):  # each record interval once
        means = [o[observable].mean(0) for _, _, i, o, _ in discrete if i == interval and o[observable].shape[0]]
        paths[interval] = refined(interval, means)

    def comparison(name, eta, steps, interval, observed, diverged):
        coarse, fine, substeps = paths[interval]
        values, limit = observed[name], fine[name]
        kept = values.shape[0]
        mean = values.mean(0) if kept else jnp.full_like(limit, jnp.nan)
        stderr = values.std(0, ddof=1) / math.sqrt(kept) if kept > 1 else jnp.zeros_like(limit)
        error = jnp.abs(limit - coarse[name]) / 3
        t = steps * (eta / (1 - beta)) ** 2
        return Comparison(
            name, eta, beta, steps.astype(float), t, values, mean, stderr, limit, jnp.abs(mean - limit), stderr,
            diverged, error, substeps,
        )  # fmt: skip

    return tuple(
        comparison(observable, *d)._replace(also=MappingProxyType({name: comparison(name, *d) for name in extra}))
        for d in discrete
    )


OBSERVABLE_LABELS = {
    "trace_hessian": r"$\mathrm{tr}\,\nabla^2 L$",
    "trace": r"$\mathrm{tr}\,\nabla^2 L$",
    "loss": r"loss $L$",
    "recovery_error": r"$\|UU^\top - X^*\|_F / \|X^*\|_F$",
}
"""How figures name flatter's observables (others keep their own names)."""


def plot_comparison(
    comparison: Comparison, ax=None, *, color: str = "C0", label: str | None = None, ylabel: str | None = None
):
    """Overlay the discrete mean ± 2 standard errors (band) on the limit curve (dashed), against t.

    ``ylabel``: the axis label (default: the observable as :data:`OBSERVABLE_LABELS` names it).
    """
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    t = np.asarray(comparison.t)
    mean, se = np.asarray(comparison.discrete_mean), np.asarray(comparison.discrete_stderr)
    label = label or rf"SGDM-LN $\eta$={comparison.eta:g}, $\beta$={comparison.beta:g}"
    ax.fill_between(t, mean - 2 * se, mean + 2 * se, color=color, alpha=0.25, lw=0)
    ax.plot(t, mean, color=color, lw=1.2, label=label)
    ax.plot(t, np.asarray(comparison.limit), color="k", ls="--", lw=1.2)
    ax.set_xlabel(r"$t = \eta_\mathrm{eff}^2\,k$")
    ax.set_ylabel(ylabel or OBSERVABLE_LABELS.get(comparison.observable, comparison.observable))
    return ax


class DiscrepancyOrder(NamedTuple):
    r"""The order :math:`q` of :math:`\max_t|\text{discrete} - \text{limit}| \propto \eta_\mathrm{eff}^q`.

    ``eta_eff`` and ``discrepancy`` (the largest over the records) and its ``stderr`` per comparison;
    ``resolved`` marks the points above the noise floor (discrepancy > 2 standard errors), the only ones the
    fit uses; ``interval`` is the 68 % range of the order over a parametric bootstrap of the resolved
    discrepancies (``nan`` where fewer than two points are resolved).
    """

    order: float
    interval: tuple[float, float]
    eta_eff: np.ndarray
    discrepancy: np.ndarray
    stderr: np.ndarray
    resolved: np.ndarray

    def __str__(self) -> str:
        lo, hi = self.interval
        dropped = int(np.sum(~self.resolved))
        floor = f"; {dropped} point(s) at the noise floor left out" if dropped else ""
        return f"order {self.order:.2f} [{lo:.2f}, {hi:.2f}] over {int(np.sum(self.resolved))} step sizes{floor}"


def discrepancy_order(comparisons: Sequence[Comparison], *, resamples: int = 2000, seed: int = 0) -> DiscrepancyOrder:
    r"""Fit :math:`\log \max_t|\text{discrete}-\text{limit}| = q\,\log\eta_\mathrm{eff} + c` over comparisons at
    several step sizes (least squares on the log-log plot, as diffrax's SDE convergence tests do).

    A point whose largest discrepancy is within 2 standard errors of the seed mean is at the noise floor: it
    measures the seeds, not the step size, and is left out of the fit (and reported). The interval resamples
    each resolved discrepancy as Normal(value, stderr) at its worst record and refits (``resamples`` times,
    ``seed`` fixed: same numbers on every run).

    Examples:
      >>> import jax, jax.numpy as jnp, flatter
      >>> comps = [flatter.compare(flatter.problems.toy_valley(), jnp.array([0.0, 1.0]), eta=eta, beta=0.0,
      ...                          sigma=1.0, t1=2.0, key=jax.random.key(0), seeds=256, records=10, observable="y")
      ...          for eta in (0.04, 0.02, 0.01)]
      >>> fit = flatter.discrepancy_order(comps)
      >>> print(bool(0.7 < fit.order < 1.3), fit.resolved.tolist())
      True [True, True, True]
    """
    if len(comparisons) < 2:
        raise ValueError(f"comparisons must hold at least 2 step sizes, got {len(comparisons)}")
    eta_eff = np.array([c.eta / (1 - c.beta) for c in comparisons])
    worst = [int(np.argmax(np.asarray(c.discrepancy))) for c in comparisons]
    err = np.array([float(c.discrepancy[i]) for c, i in zip(comparisons, worst, strict=True)])
    se = np.array([float(c.discrepancy_stderr[i]) for c, i in zip(comparisons, worst, strict=True)])
    resolved = np.isfinite(err) & (err > 2 * se)
    if resolved.sum() < 2:
        nan = float("nan")
        return DiscrepancyOrder(nan, (nan, nan), eta_eff, err, se, resolved)
    x = np.log(eta_eff[resolved])
    order = float(np.polyfit(x, np.log(err[resolved]), 1)[0])
    rng = np.random.default_rng(seed)
    draws = err[resolved] + se[resolved] * rng.standard_normal((resamples, int(resolved.sum())))
    draws = np.log(np.maximum(draws, 1e-3 * err[resolved]))  # a draw below zero is a tiny discrepancy
    slopes = np.polyfit(x, draws.T, 1)[0]
    lo, hi = np.percentile(slopes, [16, 84])
    return DiscrepancyOrder(order, (float(lo), float(hi)), eta_eff, err, se, resolved)
