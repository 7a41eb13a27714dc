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
    ax.set_xticklabels(labels, fontsize=7, rotation=30)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


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


def save_figure(fig, path, dpi: int = 130) -> None:
    """Write ``fig`` to ``path`` (parents created) and close it."""
    from pathlib import Path

    plt = agg_pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
