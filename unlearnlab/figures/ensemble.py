"""Figures of an ensemble comparison (``compare.Comparison``): one value per (model, seed).

The functions take the comparison's per-(model, seed) table (``rows``: a ``model`` and a
``seed`` column plus the metric columns that ``evaluation.evaluate`` names), its histories, KL
matrices and confusion matrices, draw on the given ``ax``/``axes`` or a new figure, return the
Figure and write a file only when ``path`` is given (``base.finish``). Nothing here computes a
metric: aggregation over seeds (box, mean, std) and the difference of two confusion matrices
that a panel shows are part of drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from ..compare import BASELINES
from .base import axes_grid, axes_row, finish, new_axes
from .run import plot_confusion_matrix
from .style import RETRAINED, UNTRAINED, ensemble_palette

# Subsets of a split, in drawing order, and the columns that hold them ("{split}" is train or
# test; the first column present is used). "retain" is everything outside the forget set.
ACC_SUBSETS = {"all": ("{split}_acc", "all_{split}_acc"), "retain": ("retain_{split}_acc",),
               "forget": ("forget_{split}_acc",), "rest of class": ("class_rest_{split}_acc",),
               "other classes": ("other_classes_{split}_acc",)}
LOSS_SUBSETS = {"all": ("all_{split}_loss", "{split}_loss"), "forget": ("forget_{split}_loss",),
                "rest of class": ("class_rest_{split}_loss",),
                "other classes": ("other_classes_{split}_loss",)}
KL_DEFINITION = "KL(P_row ‖ P_col)"
UNTRAINED_LABEL = f"{UNTRAINED} (mean over seeds)"


def _model_order(rows, models: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(rows["model"]))
    if models is not None:
        return [m for m in models if m in present]
    baselines = [m for m in BASELINES if m in present]
    return baselines + [m for m in present if m not in baselines]


def subset_values(rows, split: str, metric: str = "acc"):
    """Long-form table (model, seed, subset, value) of one split's accuracies (in percent) or
    losses per subset, for the subsets whose column is present and not all missing."""
    import pandas as pd

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got '{split}'")
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss', got '{metric}'")
    subsets, scale = (ACC_SUBSETS, 100.0) if metric == "acc" else (LOSS_SUBSETS, 1.0)
    frames = []
    for label, candidates in subsets.items():
        column = next((c.format(split=split) for c in candidates
                       if c.format(split=split) in rows
                       and rows[c.format(split=split)].notna().any()), None)
        if column is not None:
            frames.append(pd.DataFrame({"model": rows["model"].to_numpy(),
                                        "seed": rows["seed"].to_numpy(), "subset": label,
                                        "value": scale * rows[column].astype(float).to_numpy()}))
    if not frames:
        raise ValueError(f"no {split} {metric} columns in the table")
    return pd.concat(frames, ignore_index=True).dropna(subset=["value"])


def plot_subset_boxes(rows, split: str = "test", metric: str = "acc", *,
                      models: Sequence[str] | None = None, log: bool | None = None,
                      title: str | None = None, legend: bool = True, ax=None,
                      path=None) -> Figure:
    """Box plots per subset (x: all / retain / forget / rest of class / other classes, as far
    as present) with one box per model (hue) over the seeds, and each seed as a dot.

    ``rows``: one row per (model, seed) with the metric columns of ``evaluation.evaluate``.
    ``metric`` ``"acc"`` is drawn in percent, the axis spanning the boxes' values (within
    0-100); the untrained model, near chance, is drawn as a dashed line at its mean over the
    seeds instead of a box, and labelled at the axis's foot where it lies below it, so that it
    does not squeeze every other box into a line. ``"loss"`` (mean cross-entropy) gets no
    fixed range, and a log axis when ``log`` is True, or, with ``log=None``, when its values
    span more than two decades.
    """
    data = subset_values(rows, split, metric)
    order = _model_order(data, models)
    data = data[data["model"].isin(order)]
    subsets = list(dict.fromkeys(data["subset"]))
    palette = ensemble_palette(order)
    lines = None
    if metric == "acc" and UNTRAINED in order and len(order) > 1:
        lines = data[data["model"] == UNTRAINED].groupby("subset")["value"].mean()
        order = [m for m in order if m != UNTRAINED]
        data = data[data["model"] != UNTRAINED]
    fig, ax = new_axes(ax, (max(7.0, 0.32 * len(subsets) * len(order) + 3.0), 4.6))
    sns.boxplot(data=data, x="subset", y="value", hue="model", order=subsets, hue_order=order,
                palette=palette, showfliers=False, linewidth=1.0, width=0.8, ax=ax)
    sns.stripplot(data=data, x="subset", y="value", hue="model", order=subsets,
                  hue_order=order, palette={m: "0.15" for m in order}, dodge=True, size=3,
                  alpha=0.75, jitter=0.08, legend=False, ax=ax)
    if metric == "acc":
        low, high = _accuracy_range(data["value"])
        ax.set_ylim(low, high)
        ax.set_ylabel(f"{split} accuracy (%)")
        if lines is not None:
            _untrained_lines(ax, lines, subsets, low, palette[UNTRAINED])
    else:
        positive = data["value"][data["value"] > 0]
        if log is None:
            log = len(positive) > 0 and positive.max() / positive.min() > 100
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(f"{split} mean cross-entropy" + (" (log scale)" if log else ""))
    for x in range(len(subsets) - 1):
        ax.axvline(x + 0.5, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlabel("subset")
    ax.grid(axis="y", alpha=0.3)
    seeds = data.groupby("model")["seed"].nunique()
    n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    what = "Accuracy" if metric == "acc" else "Loss"
    ax.set_title(title or f"{what} per subset, {split} split ({n} seeds per box)")
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        if lines is not None:
            from matplotlib.lines import Line2D

            handles.insert(0, Line2D([], [], color=palette[UNTRAINED], linestyle="--"))
            labels.insert(0, UNTRAINED_LABEL)
        ax.legend(handles, labels, title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", frameon=False)
    elif ax.get_legend() is not None:
        ax.get_legend().remove()
    return finish(fig, path)


def _accuracy_range(values) -> tuple[float, float]:
    """The y range of accuracy boxes: their values with a margin, within -3..103."""
    low, high = float(values.min()), float(values.max())
    pad = max(2.0, 0.08 * (high - low))
    return max(-3.0, low - pad), min(103.0, high + pad)


def _untrained_lines(ax, means, subsets: Sequence[str], low: float, color) -> None:
    """The untrained model's mean per subset as a dashed line across the subset's slot; a mean
    below the axis is written at its foot instead."""
    for x, subset in enumerate(subsets):
        if subset not in means.index:
            continue
        mean = float(means[subset])
        if mean >= low:
            ax.hlines(mean, x - 0.42, x + 0.42, colors=[color], linestyles="--", linewidth=1.5,
                      zorder=4)
        else:
            ax.annotate(f"{UNTRAINED}: {mean:.0f} % ↓", (x, low), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom",
                        fontsize="x-small", color="0.3")


def _subset_panels(rows, metric: str, splits: Sequence[str], models, title, axes, path,
                   **kw) -> Figure:
    splits = [splits] if isinstance(splits, str) else list(splits)
    if axes is None:
        order = _model_order(rows, models)
        width = max(7.0, 0.32 * 5 * len(order) + 3.0)
        fig, axes = plt.subplots(len(splits), 1, figsize=(width, 4.2 * len(splits)),
                                 layout="constrained", squeeze=False, sharex=True)
        axes = list(axes[:, 0])
    axes = list(np.ravel(axes))
    if len(axes) != len(splits):
        raise ValueError(f"expected {len(splits)} axes, got {len(axes)}")
    for i, (ax, split) in enumerate(zip(axes, splits, strict=True)):
        plot_subset_boxes(rows, split, metric, models=models, legend=i == 0, ax=ax, **kw)
    if title:
        axes[0].figure.suptitle(title)
    return finish(axes[0].figure, path)


def plot_accuracy_boxes(rows, splits: Sequence[str] | str = ("train", "test"), *,
                        models: Sequence[str] | None = None, title: str | None = None,
                        axes=None, path=None) -> Figure:
    """Accuracy box plots per subset (see ``plot_subset_boxes``), one panel per split
    (stacked: train above test by default)."""
    return _subset_panels(rows, "acc", splits, models, title, axes, path)


def plot_loss_boxes(rows, splits: Sequence[str] | str = ("train", "test"), *,
                    models: Sequence[str] | None = None, log: bool | None = None,
                    title: str | None = None, axes=None, path=None) -> Figure:
    """Loss (mean cross-entropy) box plots per subset, one panel per split, without a fixed
    range (the thesis clipped its loss plots to 0-1)."""
    return _subset_panels(rows, "loss", splits, models, title, axes, path, log=log)


def _epoch_stats(histories: Sequence[Sequence[Mapping]], key: str, scale: float):
    """Per epoch: (epochs, mean, std, n) of ``key`` over the seeds' histories."""
    values: dict[int, list[float]] = {}
    for history in histories:
        for i, h in enumerate(history):
            if h.get(key) is not None:
                values.setdefault(int(h.get("epoch", i + 1)), []).append(scale * h[key])
    epochs = sorted(values)
    mean = np.array([np.mean(values[e]) for e in epochs])
    std = np.array([np.std(values[e]) for e in epochs])  # population std, as the tables
    return epochs, mean, std


def plot_ensemble_curves(histories: Mapping[str, Sequence[Sequence[Mapping]]], *,
                         include_train: bool = True, title: str | None = None, axes=None,
                         path=None) -> Figure:
    """Accuracy and loss per training epoch of each ensemble (e.g. trained and retrained):
    the mean over seeds as a line with a band of ± one (population) standard deviation.

    ``histories``: per ensemble, one history per seed, each a list of epochs
    ``{epoch, loss, acc, test_loss, test_acc}``. Test values are solid; with
    ``include_train`` the running training-set values of each epoch are dashed.
    """
    fig, (acc_ax, loss_ax) = axes_row(axes, 2, (6.4, 4.4))
    palette = ensemble_palette(list(histories))
    keys = [("test_", "-", "o", "test")]
    if include_train:
        keys.append(("", "--", "s", "train"))
    what = {"test": "test set after the epoch", "train": "training batches during the epoch"}
    all_epochs: set[int] = set()
    for ax, metric, scale in ((acc_ax, "acc", 100.0), (loss_ax, "loss", 1.0)):
        for name, runs in histories.items():
            for prefix, style, marker, split in keys:
                epochs, mean, std = _epoch_stats(runs, prefix + metric, scale)
                if not epochs:
                    continue
                all_epochs.update(epochs)
                color = palette[name]
                ax.plot(epochs, mean, linestyle=style, marker=marker, color=color,
                        markerfacecolor=color if split == "test" else "white",
                        label=f"{name}: {what[split]} ({len(runs)} seeds)")
                ax.fill_between(epochs, mean - std, mean + std, color=color,
                                alpha=0.2 if split == "test" else 0.1, linewidth=0)
                if len(epochs) == 1:  # a band needs two epochs: draw the spread as a bar
                    ax.errorbar(epochs, mean, yerr=std, color=color, capsize=4, fmt="none")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ticks = sorted(all_epochs)
    for ax in (acc_ax, loss_ax):
        if ticks:
            step = max(1, len(ticks) // 12)
            ax.set_xticks(ticks[::step])
            ax.set_xlim(ticks[0] - 0.5, ticks[-1] + 0.5)
    acc_ax.set_ylabel("accuracy (%)")
    loss_ax.set_ylabel("mean cross-entropy")
    acc_ax.set_title("Accuracy per epoch (mean ± std over seeds)")
    loss_ax.set_title("Loss per epoch (mean ± std over seeds)")
    fig.legend(*acc_ax.get_legend_handles_labels(), loc="outside lower center",
               ncol=2, fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def plot_kl_heatmap(names: Sequence[str], matrix, *, std=None, data: str = "the forget set",
                    title: str | None = None, vmax: float | None = None, ax=None,
                    path=None) -> Figure:
    """Annotated heatmap ('Reds') of a KL matrix with entry [i, j] = mean KL(P_i ‖ P_j):
    rows are the first argument P, columns the second Q. With ``std`` (same shape) each cell
    also shows ± its standard deviation over seeds; NaN cells are blank, marked "n/a"."""
    matrix = np.asarray(matrix, dtype=float)
    n = len(names)
    if matrix.shape != (n, n):
        raise ValueError(f"a KL matrix over {n} models must be {n}x{n}, got {matrix.shape}")
    fig, ax = new_axes(ax, (1.25 * n + 3.2, 1.0 * n + 2.2))
    annot = np.vectorize(lambda v: f"{v:.2f}")(matrix)
    if std is not None:
        std = np.asarray(std, dtype=float)
        annot = np.array([[f"{matrix[i, j]:.2f}\n± {std[i, j]:.2f}" for j in range(n)]
                          for i in range(n)])
    annot = np.where(np.isnan(matrix), "n/a", annot)  # e.g. a run that diverged
    sns.heatmap(matrix, annot=annot, fmt="", cmap="Reds", vmin=0, vmax=vmax, square=True,
                xticklabels=list(names), yticklabels=list(names), linewidths=0.5,
                linecolor="white", annot_kws={"size": 8 if std is None else 7.5},
                cbar_kws={"label": "mean KL divergence (nats)"}, ax=ax)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_xlabel("column model: Q (second argument)")
    ax.set_ylabel("row model: P (first argument)")
    ax.set_title(title or f"Mean {KL_DEFINITION} on {data}")
    return finish(fig, path)


def plot_confusion_vs_reference(matrices: Mapping[str, object], *,
                                reference: str = RETRAINED, compared: str | None = None,
                                labels: Sequence[str] | None = None, title: str | None = None,
                                axes=None, path=None) -> Figure:
    """Confusion matrices (rows: true label, columns: predicted; e.g. mean counts over seeds)
    of each model in ``matrices`` on one colour scale, plus the difference ``compared`` −
    ``reference`` (default: the last entry minus the retrained model) on a diverging colour map
    centred at 0: red cells are predicted more often than by the reference, blue less."""
    names = list(matrices)
    compared = compared or names[-1]
    if reference not in matrices or compared not in matrices:
        raise ValueError(f"need '{reference}' and '{compared}' among {names}")
    n_panels = len(names) + 1
    fig, axes = axes_grid(axes, n_panels, 2 if n_panels == 4 else n_panels, (6.2, 5.4))
    vmax = max(float(np.asarray(m).max()) for m in matrices.values())
    for ax, name in zip(axes, names, strict=False):
        plot_confusion_matrix(matrices[name], labels=labels, title=name, vmax=vmax, ax=ax)
    diff = np.asarray(matrices[compared], dtype=float) - np.asarray(matrices[reference],
                                                                    dtype=float)
    limit = float(np.abs(diff).max()) or 1.0
    annot = np.where(np.rint(diff) == 0, "", np.vectorize(lambda v: f"{v:+.0f}")(diff))
    ax = axes[-1]
    ticks = list(labels) if labels is not None else "auto"
    sns.heatmap(diff, annot=annot, fmt="", cmap="RdBu_r", center=0, vmin=-limit, vmax=limit,
                square=True, xticklabels=ticks, yticklabels=ticks, annot_kws={"size": 7.5},
                cbar_kws={"label": "difference in count"}, ax=ax)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    if labels is not None and max(len(str(s)) for s in labels) > 2:
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
        ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(f"{compared} − {reference}")
    if title:
        fig.suptitle(title)
    return finish(fig, path)
