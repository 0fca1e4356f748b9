"""Writing a figure, and the axes helpers every plot function shares.

A plot function draws on the ``ax``/``axes`` it is given or on a new figure (``new_axes``,
``axes_row``, ``axes_grid``) and ends with ``finish``, which writes the figure only when a
``path`` is given, atomically (``outputs.atomic_path``), in the format its suffix names.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..outputs import atomic_path


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Figure:
    """Write ``fig`` to ``path`` atomically (temporary file beside it, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return fig


def finish(fig: Figure, path) -> Figure:
    """``fig``, written to ``path`` first when one is given."""
    if path is not None:
        save_figure(fig, path)
    return fig


def new_axes(ax, figsize) -> tuple[Figure, plt.Axes]:
    """``ax`` and its figure, or a new figure of ``figsize`` with one axes."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def axes_row(axes, n: int, panel_size: tuple[float, float], **kw) -> tuple[Figure, list]:
    """``axes`` (which must be ``n``) and their figure, or a new row of ``n`` panels."""
    if axes is None:
        fig, axes = plt.subplots(1, n, figsize=(panel_size[0] * n, panel_size[1]),
                                 layout="constrained", squeeze=False, **kw)
        return fig, list(axes[0])
    axes = list(np.ravel(axes))
    if len(axes) != n:
        raise ValueError(f"expected {n} axes, got {len(axes)}")
    return axes[0].figure, axes


def axes_grid(axes, n: int, ncols: int, panel: tuple[float, float],
              **kw) -> tuple[Figure, list]:
    """``axes`` (which must be ``n``) and their figure, or a new grid of ``n`` panels with
    ``ncols`` per row (the unused cells of the last row removed; ``kw`` go to
    ``plt.subplots``, e.g. ``sharex``/``sharey``)."""
    if axes is None:
        ncols = min(ncols, n)
        nrows = int(np.ceil(n / ncols))
        fig, grid = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                                 layout="constrained", squeeze=False, **kw)
        axes = list(grid.ravel())
        for extra in axes[n:]:
            extra.remove()
        return fig, axes[:n]
    axes = list(np.ravel(axes))
    if len(axes) != n:
        raise ValueError(f"expected {n} axes, got {len(axes)}")
    return axes[0].figure, axes


def legend_below(ax, ncol: int = 2) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize="small",
              frameon=False)


def legend_right(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
