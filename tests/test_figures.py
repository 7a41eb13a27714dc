"""Figures: a gamma* at the grid's edge is drawn as a bound, and the layout check catches text off its panel."""

import warnings

import numpy as np
import pytest

import flatter
from flatter.figures._axes import agg_pyplot
from flatter.sweep import PredictedScaling, ScalingSummary


def predicted(gamma_star):
    gammas = (0.5, 0.6, 2 / 3, 0.75, 0.85)
    etas = np.array([0.01, 0.004, 0.0016])
    return PredictedScaling(
        gammas=gammas, etas=etas, settle=np.ones((5, 3)), first=np.ones((5, 3)), gamma_star=np.asarray(gamma_star),
        gamma_star_ci=np.stack([np.asarray(gamma_star) - 0.02, np.asarray(gamma_star) + 0.02], axis=1), kappa=0.1,
        overshoot=1.0, model_evaluations=1, wall_seconds=0.0,
    )  # fmt: skip


def test_a_predicted_gamma_star_at_the_grid_edge_is_a_caret_not_a_point_on_the_line():
    summary = ScalingSummary("toy", (), None, 0.1, {}, {}, predicted=predicted([0.85, 0.7, 0.5]))
    fig, ax = agg_pyplot().subplots()
    flatter.figures.gamma_star(ax, summary)
    line = next(li for li in ax.get_lines() if li.get_label() == "predicted (reduced SDE)")
    y = np.asarray(line.get_ydata(), float)
    assert np.isnan(y[0]) and y[1] == pytest.approx(0.7) and np.isnan(y[2])  # the edges are not joined as values
    markers = {li.get_marker(): np.asarray(li.get_ydata(), float).tolist() for li in ax.get_lines()}
    assert markers["^"] == [0.85] and markers["v"] == [0.5]  # >= the top edge, <= the bottom one
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("a bound" in t for t in labels) and "predicted 95% band" in labels
    agg_pyplot().close(fig)


def test_save_figure_warns_about_text_that_runs_into_another_panel(tmp_path):
    fig, (a, b) = agg_pyplot().subplots(1, 2)
    a.plot([1, 2])
    b.plot([1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flatter.figures.save_figure(fig, tmp_path / "clean.png")  # a clean layout: no warning
    fig, (a, b) = agg_pyplot().subplots(1, 2)
    a.text(0.6, 0.5, "an annotation far too long for its own panel", transform=a.transAxes)
    with pytest.warns(flatter.figures.LayoutWarning, match="runs into another panel"):
        flatter.figures.save_figure(fig, tmp_path / "bad.png")
    fig = agg_pyplot().figure()
    fig.text(0.8, 0.5, "a caption that runs off the right edge")
    with pytest.warns(flatter.figures.LayoutWarning, match="runs outside the figure"):
        flatter.figures.save_figure(fig, tmp_path / "off.png")


def test_a_predicted_band_reaching_the_grid_edge_is_drawn_open_there_and_not_joined_across_etas():
    pred = predicted([0.7, 0.66, 0.7])
    pred.gamma_star_ci[1] = (0.63, 0.85)  # the bootstrap's vertices reached the top edge at the middle eta
    summary = ScalingSummary("toy", (), None, 0.1, {}, {}, predicted=pred)
    fig, ax = agg_pyplot().subplots()
    flatter.figures.gamma_star(ax, summary)
    open_end = [li for li in ax.get_lines() if "open past the grid's edge" in str(li.get_label())]
    assert len(open_end) == 1 and open_end[0].get_marker() == "^"
    assert np.asarray(open_end[0].get_xdata()).tolist() == [0.004] and open_end[0].get_ydata().tolist() == [0.85]
    # One bar per eta (a band filled between etas would draw values nobody predicted).
    (bars,) = [c for c in ax.collections if c.get_label() == "predicted 95% band"]
    assert len(bars.get_segments()) == 3
    agg_pyplot().close(fig)
