"""Figures of a model's parameters: weight heatmaps of one layer, the absolute change of a layer
between two models, and the per-tensor distance of models to a reference.

Like every plot function of the package, each takes values that were already computed (weight
matrices, changes, distances), draws on the given ``ax``/``axes`` or a new figure, returns the
Figure and writes a file only when ``path`` is given (``base.finish``). The arithmetic is the
one the figure shows: absolute values, and the mean over seeds of a distance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from .base import axes_row, finish, legend_right, new_axes
from .style import ORIGINAL, ensemble_palette


def plot_weight_heatmap(weight, *, title: str | None = None, vmax: float | None = None,
                        row_labels: Sequence[str] | None = None, xlabel: str = "input unit",
                        ylabel: str = "output unit", cbar_label: str = "weight", ax=None,
                        path=None) -> Figure:
    """Heatmap of a 2-D weight matrix (rows: output units), coolwarm, centred at 0 on a
    symmetric scale (``vmax`` or the largest absolute weight)."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"a weight heatmap needs a 2-D matrix, got shape {weight.shape}")
    fig, ax = new_axes(ax, (12, max(3.0, min(10.0, 0.3 * weight.shape[0] + 1.5))))
    vmax = float(np.abs(weight).max()) if vmax is None else vmax
    step = max(1, weight.shape[1] // 16)
    sns.heatmap(weight, cmap="coolwarm", center=0, vmin=-vmax, vmax=vmax, ax=ax,
                xticklabels=step, yticklabels=list(row_labels) if row_labels is not None else 1,
                cbar_kws={"label": cbar_label, "pad": 0.01})
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return finish(fig, path)


def plot_weight_heatmaps(weights: Mapping[str, object], *, title: str | None = None,
                         cbar_labels: Sequence[str] | None = None, axes=None, path=None,
                         **kw) -> Figure:
    """Weight heatmaps stacked vertically, titled by the keys of ``weights`` (colour bars
    labelled by ``cbar_labels``). Panels with the same colour-bar label (e.g. the weights
    before and after unlearning) share one symmetric colour scale, the largest absolute value
    among them, so that equal colours mean equal weights; a panel with a label of its own
    (e.g. the change) gets its own scale."""
    if axes is None:
        first = np.asarray(next(iter(weights.values())))
        height = max(2.5, min(8.0, 0.3 * first.shape[0] + 1.2))
        fig, axes = plt.subplots(len(weights), 1, figsize=(12, height * len(weights)),
                                 layout="constrained", squeeze=False)
        axes = list(axes[:, 0])
    fig = axes[0].figure
    cbar_labels = cbar_labels or ["weight"] * len(weights)
    scales: dict[str, float] = {}
    for weight, label in zip(weights.values(), cbar_labels, strict=True):
        scales[label] = max(scales.get(label, 0.0), float(np.abs(np.asarray(weight)).max()))
    for ax, (name, weight), label in zip(axes, weights.items(), cbar_labels, strict=True):
        plot_weight_heatmap(weight, title=name, cbar_label=label, ax=ax,
                            **{"vmax": scales[label], **kw})
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def _as_matrix(weight) -> tuple[np.ndarray, str]:
    """A weight as a 2-D matrix (rows: output units) and the meaning of its columns."""
    weight = np.asarray(weight, dtype=float)
    if weight.ndim == 2:
        return weight, "input feature"
    if weight.ndim > 2:  # a convolution: out_channels x (in_channels * kernel positions)
        return weight.reshape(weight.shape[0], -1), "input channel × kernel position"
    return weight.reshape(-1, 1), "—"


def plot_weight_change(changes: Mapping[str, object], *, layer: str = "weight",
                       log: bool = True, title: str | None = None, axes=None,
                       path=None) -> Figure:
    """Heatmaps of the absolute weight change |Δ| of one layer, one panel per comparison
    (the keys of ``changes``, e.g. "retrained − <original model>"), on one shared colour scale.

    For an ``nn.Linear`` weight the rows are the output units and the columns the input
    features (PyTorch's [out, in] layout; the thesis swapped the two axis labels); a
    convolution's kernel is flattened per output channel. ``log`` draws the colours on a log
    scale (from 1e-4 of the largest change up), so small and large changes both show.
    """
    from matplotlib.colors import LogNorm, Normalize

    mats = {name: _as_matrix(w) for name, w in changes.items()}
    if not mats:
        raise ValueError("no weight changes to draw")
    first = next(iter(mats.values()))[0]
    height = 4.2 if first.shape[0] >= 32 else 2.8
    fig, axes = axes_row(axes, len(mats), (5.2, height))
    vmax = max(float(np.abs(m).max()) for m, _ in mats.values()) or 1.0
    if log:
        positive = [np.abs(m)[np.abs(m) > 0] for m, _ in mats.values()]
        smallest = min((float(p.min()) for p in positive if p.size), default=vmax)
        norm = LogNorm(vmin=max(smallest, vmax * 1e-4), vmax=vmax, clip=True)
    else:
        norm = Normalize(vmin=0.0, vmax=vmax)
    cmap = plt.get_cmap("magma_r").copy()
    cmap.set_bad(cmap(0.0))  # exact zeros (frozen weights) in the colour of "no change"
    image = None
    for ax, (name, (matrix, columns)) in zip(axes, mats.items(), strict=True):
        image = ax.imshow(np.abs(matrix), aspect="auto", cmap=cmap, norm=norm,
                          interpolation="antialiased")
        unchanged = " (unchanged)" if not np.any(matrix) else ""
        ax.set_title(name + unchanged, fontsize="medium")
        ax.set_xlabel(f"{columns} (column of {layer})")
        ax.set_ylabel(f"output unit (row of {layer})")
    fig.colorbar(image, ax=axes, label="|Δ weight|" + (" (log scale)" if log else ""),
                 shrink=0.9, pad=0.01)
    fig.suptitle(title or f"Absolute change of {layer}")
    return finish(fig, path)


def plot_layer_distances(distances: Mapping[str, Mapping[str, object]], *,
                         reference: str = ORIGINAL, p: int = 2, title: str | None = None,
                         ax=None, path=None) -> Figure:
    """Horizontal grouped bars on a log x axis: the distance per parameter tensor between the
    ``reference`` model and each compared model (the keys of ``distances``).

    ``distances[name][tensor]`` is one value or one value per seed; the bar is the mean and
    the seeds are dots. An unchanged tensor (distance 0) cannot be drawn on a log axis and is
    labelled "0" instead.
    """
    names = list(distances)
    tensors = list(dict.fromkeys(t for d in distances.values() for t in d))
    palette = ensemble_palette(names)
    height = max(3.0, 0.24 * len(tensors) * len(names) + 1.8)
    fig, ax = new_axes(ax, (8.5, height))
    width = 0.8 / len(names)
    positions = np.arange(len(tensors))
    positive = [float(v) for d in distances.values() for vals in d.values()
                for v in np.atleast_1d(vals) if v > 0]
    floor = min(positive) / 3 if positive else 1e-3
    n_seeds = 1
    for i, name in enumerate(names):
        offset = (i - (len(names) - 1) / 2) * width
        values = [np.atleast_1d(np.asarray(distances[name].get(t, np.nan), dtype=float))
                  for t in tensors]
        n_seeds = max(n_seeds, max(len(v) for v in values))
        means = np.array([np.nanmean(v) for v in values])
        ax.barh(positions + offset, means, width, left=0, color=palette[name], label=name)
        for y, vals, mean in zip(positions + offset, values, means, strict=True):
            if len(vals) > 1:
                ax.plot(vals[vals > 0], np.full((vals > 0).sum(), y), "o", color="0.15",
                        markersize=2.5, zorder=3)
            if mean == 0:
                ax.annotate("0 (unchanged)", (floor, y), xytext=(2, 0),
                            textcoords="offset points", va="center", fontsize=7)
    ax.set_xscale("log")
    if positive:
        ax.set_xlim(left=floor * 0.8)
    ax.set_yticks(positions, tensors)
    ax.invert_yaxis()  # the first layer on top
    ax.set_ylim(len(tensors) - 0.5, -0.5)
    norm = {1: "₁", 2: "₂"}.get(p, f"_{p}")
    ax.set_xlabel(f"‖θ_model − θ_{reference}‖{norm} of each parameter tensor (log scale)")
    ax.set_ylabel("parameter tensor")
    ax.grid(axis="x", which="major", alpha=0.3)
    seeds = f"mean over {n_seeds} seeds, dots: seeds" if n_seeds > 1 else "one seed"
    ax.set_title(title or f"Layer-wise L{p} distance to the {reference} model ({seeds})")
    legend_right(ax)
    return finish(fig, path)


