"""Every figure the CLI draws, as functions of a results object (and an ``ax``), for a notebook's own sweep.

``scaling_figure(results, summary)`` is ``flatter scaling``'s figure, ``large_batch_figure(cells, summary, ...)``
``flatter large-batch``'s; its panels are :func:`settling_times`,
:func:`exponents` and :func:`gamma_star`. Matplotlib runs on the Agg backend.
"""

from ._axes import (
    LayoutWarning as LayoutWarning,
    add_caption as add_caption,
    draw_lower_bounds as draw_lower_bounds,
    grid_ticks as grid_ticks,
    layout_problems as layout_problems,
    plain_log_ticks as plain_log_ticks,
    save_figure as save_figure,
)
from ._large_batch import large_batch_figure as large_batch_figure
from ._networks import curves as curves, network_figure as network_figure
from ._scaling import (
    exponents as exponents,
    gamma_star as gamma_star,
    scaling_figure as scaling_figure,
    settling_times as settling_times,
)

__all__ = [
    "LayoutWarning",
    "add_caption",
    "layout_problems",
    "curves",
    "network_figure",
    "large_batch_figure",
    "draw_lower_bounds",
    "grid_ticks",
    "plain_log_ticks",
    "save_figure",
    "exponents",
    "gamma_star",
    "scaling_figure",
    "settling_times",
]
