"""Small helpers every flatter figure uses: log ticks at the grid's values, censored values as lower bounds."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def grid_ticks(ax, values: Iterable[float]) -> None:
    """Ticks at a log x axis's grid values only, labelled where they cannot collide (no minor labels)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks, labels, last = sorted(values), [], None
    for e in ticks:  # a label only where it cannot collide with the previous one (a factor 1.5 apart)
        labels.append(f"{e:.3g}" if last is None or e / last >= 1.5 else "")
        last = e if labels[-1] else last
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    # Upright when the labels fit side by side (about 6 characters each at 8 pt), tilted only when they would not.
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    shown = [label for label in labels if label]
    tilt = 30 if sum(len(label) for label in shown) * 0.09 > 0.8 * width_in else 0
    ax.set_xticklabels(labels, fontsize=8, rotation=tilt)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def add_caption(fig, text: str, height: float = 0.04) -> None:
    """A caption line (or two) centred under a constrained-layout figure's panels, which keep the rest.

    ``height``: the figure fraction kept free for it at the bottom (0.04 a line, 0.05 two lines at 8 pt).
    """
    fig.text(0.5, 0.005, text, ha="center", va="bottom", fontsize=8)
    fig.get_layout_engine().set(rect=(0, height, 1, 1 - height))


def plain_log_ticks(axis) -> None:
    """A log axis labelled in plain numbers (0.6, 0.8, 1, 2, not 6x10^-1, 10^0, 2x10^0).

    For axes that span about a decade or less, where matplotlib's default labels only a few minor ticks in
    scientific notation: every integer multiple of a power of ten within a decade's span, 1, 2 and 5 per
    decade beyond. ``axis`` is ``ax.xaxis`` or ``ax.yaxis``; call it after the data are drawn.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    low, high = sorted(axis.get_view_interval())
    short = low > 0 and high / low <= 10
    subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0) if short else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def draw_lower_bounds(ax, x, bound, color, **kwargs) -> None:
    """Censored values as lower bounds: hollow markers at ``bound`` with an upward arrow."""
    bound = np.asarray(bound, float)
    ax.errorbar(x, bound, yerr=0.35 * bound, lolims=True, fmt="o", mfc="none", color=color, ms=5, capsize=0, **kwargs)


def agg_pyplot():
    """``matplotlib.pyplot`` on the Agg backend (figures are files; no display is assumed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class LayoutWarning(UserWarning):
    """A figure's text runs off the figure or into another panel (:func:`layout_problems`)."""


def layout_problems(fig, tolerance: float = 1.0) -> list[str]:
    """The texts of ``fig`` that run outside the figure or into the plotting area of a panel they do not belong to.

    Matplotlib's own geometry after a draw: each visible, non-empty text's window extent against the figure's
    bounding box, and against the axes' boxes (a panel's text may cover its own axes, not another's; a
    figure-level text, e.g. a caption, none). ``tolerance`` in pixels. Empty when the layout is clean.

    Examples:
      >>> from flatter.figures._axes import agg_pyplot, layout_problems
      >>> fig, (a, b) = agg_pyplot().subplots(1, 2)
      >>> _ = a.text(0.5, 0.5, "a label far too long for its panel, into the next one", transform=a.transAxes)
      >>> layout_problems(fig)[0].startswith("'a label far too long")
      True
      >>> agg_pyplot().close(fig)
    """
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    axes = [ax for ax in fig.axes if ax.get_visible()]
    undrawn = set()  # tick labels of ticks outside the view: matplotlib keeps them, but does not draw them
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                if loc is None or not low - 1e-9 * abs(high - low) <= loc <= high + 1e-9 * abs(high - low):
                    undrawn.update((id(tick.label1), id(tick.label2)))
    problems = []
    for text in fig.findobj(Text):
        label = text.get_text()
        if not label.strip() or not text.get_visible() or id(text) in undrawn:
            continue
        box = text.get_window_extent(renderer)
        if box.width <= 0 or box.height <= 0:
            continue
        short = repr(label[:40] + ("..." if len(label) > 40 else ""))
        if (
            box.x0 < frame.x0 - tolerance
            or box.y0 < frame.y0 - tolerance
            or box.x1 > frame.x1 + tolerance
            or box.y1 > frame.y1 + tolerance
        ):
            problems.append(f"{short} runs outside the figure")
            continue
        owner = text.axes
        for ax in axes:
            if ax is owner:
                continue
            inner = ax.bbox
            overlap_x = min(box.x1, inner.x1) - max(box.x0, inner.x0)
            overlap_y = min(box.y1, inner.y1) - max(box.y0, inner.y0)
            if overlap_x > tolerance and overlap_y > tolerance:
                problems.append(f"{short} runs into another panel ({ax.get_title()[:30]!r})")
                break
    return problems


def save_figure(fig, path, dpi: int = 130) -> None:
    """Write ``fig`` to ``path`` (parents created) and close it; a :class:`LayoutWarning` names any text that runs
    off the figure or into another panel (:func:`layout_problems`)."""
    import warnings
    from pathlib import Path

    plt = agg_pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    problems = layout_problems(fig)
    plt.close(fig)
    if problems:
        warnings.warn(f"{path.name}: " + "; ".join(problems), LayoutWarning, stacklevel=2)
