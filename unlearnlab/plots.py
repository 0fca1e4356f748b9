"""Figures of an unlearning run, drawn from numbers that were already computed.

Every ``plot_*`` function takes plain values (history lists, matrices, per-class lists, feature
arrays, or the per-(model, seed) table of an ensemble comparison), draws on the given
``ax``/``axes`` or on a new figure, and returns the ``matplotlib.figure.Figure``. Nothing here
computes a metric: the only arithmetic is scaling to percent, the aggregation over seeds that a
figure shows (box, mean ± std), the difference of two confusion matrices that a panel shows and,
in ``plot_pca``, the 2-D projection that is the figure itself. A file is written only when
``path`` is given, atomically (``store.atomic_path``), in the format its suffix names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from .store import atomic_path

# One colour per model role, the same in every figure.
MODEL_COLORS = {"original": "tab:blue", "unlearned": "tab:red", "retrained": "tab:green"}
TRAIN_COLOR, TEST_COLOR, UNLEARN_COLOR = "tab:blue", "tab:orange", "tab:red"
UNLEARN_LABEL = "unlearning (train set, against the relabelled targets)"


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Figure:
    """Write ``fig`` to ``path`` atomically (temporary file beside it, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return fig


def _axes(ax, figsize) -> tuple[Figure, plt.Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _axes_row(axes, n: int, panel_size: tuple[float, float], **kw) -> tuple[Figure, list]:
    if axes is None:
        fig, axes = plt.subplots(1, n, figsize=(panel_size[0] * n, panel_size[1]),
                                 layout="constrained", squeeze=False, **kw)
        return fig, list(axes[0])
    axes = list(np.ravel(axes))
    if len(axes) != n:
        raise ValueError(f"expected {n} axes, got {len(axes)}")
    return axes[0].figure, axes


def _finish(fig: Figure, path) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _values(history: Sequence[Mapping], key: str, scale: float) -> tuple[list, list]:
    """Epoch positions and scaled values of ``key``, skipping epochs without it."""
    pairs = [(i, scale * h[key]) for i, h in enumerate(history) if h.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _legend_below(ax, ncol: int = 2) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize="small",
              frameon=False)


def _legend_right(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


# --- training and unlearning curves -----------------------------------------------------------

def plot_phase_curves(history: Sequence[Mapping], unlearn_history: Sequence[Mapping],
                      metric: str = "acc", *, final_test: float | None = None,
                      unlearn_label: str = UNLEARN_LABEL, phase_label: str = "unlearning phase",
                      title: str | None = None, legend: bool = True, ax=None,
                      path=None) -> Figure:
    """One metric per epoch over both phases on one axis: the training epochs, then the
    unlearning epochs (shaded).

    ``history``: the original model's epochs ``{epoch, loss, acc, test_loss, test_acc}``;
    ``unlearn_history``: the unlearning epochs ``{epoch, loss, acc}``, whose accuracy and loss
    are measured against the method's (relabelled) targets, which ``unlearn_label`` says;
    ``final_test``: the unlearned model's test value, drawn at the last unlearning epoch.
    ``metric`` is ``"acc"`` (drawn in percent) or ``"loss"`` (mean cross-entropy).
    """
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss', got '{metric}'")
    fig, ax = _axes(ax, (7.5, 4.8))
    scale = 100.0 if metric == "acc" else 1.0
    n_train, n_unlearn = len(history), len(unlearn_history)
    x, y = _values(history, metric, scale)
    ax.plot([i + 1 for i in x], y, "o-", color=TRAIN_COLOR,
            label="training (train set, true labels)")
    x, y = _values(history, f"test_{metric}", scale)
    if x:
        ax.plot([i + 1 for i in x], y, "s:", color=TEST_COLOR,
                label="test set after each training epoch")
    x, y = _values(unlearn_history, metric, scale)
    if x:
        ax.plot([n_train + i + 1 for i in x], y, "D--", color=UNLEARN_COLOR, label=unlearn_label)
    if n_unlearn:
        ax.axvspan(n_train + 0.5, n_train + n_unlearn + 0.5, color="0.9", zorder=0,
                   label=phase_label)
    if final_test is not None and n_unlearn:
        ax.plot([n_train + n_unlearn], [scale * final_test], "*", color=TEST_COLOR,
                markersize=14, markeredgecolor="k", label="test set after unlearning (true labels)")
    ticks = [f"train {h.get('epoch', i + 1)}" for i, h in enumerate(history)]
    ticks += [f"unlearn {h.get('epoch', i + 1)}" for i, h in enumerate(unlearn_history)]
    ax.set_xticks(range(1, len(ticks) + 1), ticks)
    ax.set_xlim(0.5, len(ticks) + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)" if metric == "acc" else "mean cross-entropy loss")
    default = "Accuracy per epoch" if metric == "acc" else "Loss per epoch"
    ax.set_title(title or f"{default}: training, then unlearning")
    ax.grid(alpha=0.3)
    if legend:
        _legend_below(ax)
    return _finish(fig, path)


def plot_accuracy(history, unlearn_history, *, final_test=None, ax=None, path=None,
                  **kw) -> Figure:
    """Accuracy per epoch of both phases (see ``plot_phase_curves``)."""
    return plot_phase_curves(history, unlearn_history, "acc", final_test=final_test, ax=ax,
                             path=path, **kw)


def plot_loss(history, unlearn_history, *, final_test=None, ax=None, path=None, **kw) -> Figure:
    """Loss per epoch of both phases (see ``plot_phase_curves``)."""
    return plot_phase_curves(history, unlearn_history, "loss", final_test=final_test, ax=ax,
                             path=path, **kw)


def plot_curves(history, unlearn_history, *, final_test_acc=None, final_test_loss=None,
                axes=None, path=None, **kw) -> Figure:
    """Accuracy and loss per epoch side by side, with one legend below both."""
    fig, (left, right) = _axes_row(axes, 2, (7.0, 4.6))
    plot_accuracy(history, unlearn_history, final_test=final_test_acc, ax=left, legend=False,
                  **kw)
    plot_loss(history, unlearn_history, final_test=final_test_loss, ax=right, legend=False, **kw)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=3,
               fontsize="small", frameon=False)
    return _finish(fig, path)


# --- confusion matrices -----------------------------------------------------------------------

def plot_confusion_matrix(matrix, *, labels: Sequence[str] | None = None, title: str | None = None,
                          vmax: float | None = None, cbar: bool = True, ax=None,
                          path=None) -> Figure:
    """Heatmap of a confusion matrix of counts (rows: true label, columns: predicted label).
    Integer counts are printed as such; other values (e.g. mean counts over seeds) rounded."""
    fig, ax = _axes(ax, (6.5, 5.5))
    matrix = np.asarray(matrix)
    ticks = list(labels) if labels is not None else "auto"
    fmt = "d" if np.issubdtype(matrix.dtype, np.integer) else ".0f"
    sns.heatmap(matrix, annot=True, fmt=fmt, cmap="Blues", vmin=0, vmax=vmax, cbar=cbar,
                square=True, xticklabels=ticks, yticklabels=ticks, annot_kws={"size": 7.5},
                ax=ax)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    if labels is not None and max(len(str(s)) for s in labels) > 2:
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
        ax.tick_params(axis="y", labelrotation=0)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def plot_confusion_matrices(matrices: Mapping[str, object], *, labels=None, title=None,
                            axes=None, path=None) -> Figure:
    """A row of confusion matrices (e.g. before / after unlearning / retrained), titled by the
    keys of ``matrices``, on one colour scale with one colour bar."""
    fig, axes = _axes_row(axes, len(matrices), (6.0, 5.4))
    vmax = max(np.asarray(m).max() for m in matrices.values())
    for i, (ax, (name, matrix)) in enumerate(zip(axes, matrices.items(), strict=True)):
        plot_confusion_matrix(matrix, labels=labels, title=name, vmax=vmax,
                              cbar=i == len(axes) - 1, ax=ax)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# --- per-class bars ---------------------------------------------------------------------------

def _grouped_bars(ax, values: Mapping[str, Sequence], labels, highlight, highlight_label,
                  scale: float, fmt: str) -> None:
    n_classes = len(next(iter(values.values())))
    width = 0.8 / len(values)
    positions = np.arange(n_classes)
    if highlight is not None:
        ax.axvspan(highlight - 0.5, highlight + 0.5, color="0.9", zorder=0, label=highlight_label)
    for i, (name, vals) in enumerate(values.items()):
        heights = np.array([np.nan if v is None else scale * v for v in vals], dtype=float)
        offset = (i - (len(values) - 1) / 2) * width
        ax.bar(positions + offset, heights, width, label=name, color=MODEL_COLORS.get(name))
        if highlight is not None and np.isfinite(heights[highlight]):
            ax.annotate(format(heights[highlight], fmt), (highlight + offset, heights[highlight]),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(positions, list(labels) if labels is not None else [str(c) for c in positions])
    if labels is not None and max(len(str(s)) for s in labels) > 2:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.5, n_classes - 0.5)
    ax.grid(axis="y", alpha=0.3)


def plot_per_class_accuracy(per_class: Mapping[str, Sequence[float | None]], *,
                            labels: Sequence[str] | None = None, highlight: int | None = None,
                            title: str = "Test accuracy per class", ax=None,
                            path=None) -> Figure:
    """Grouped bars of per-class test accuracy (fractions, drawn in percent), one group per
    class and one bar per model (the keys of ``per_class``). ``highlight`` shades one class
    (the forgotten one) and prints its values."""
    fig, ax = _axes(ax, (10, 4.8))
    _grouped_bars(ax, per_class, labels, highlight, "forgotten class", 100.0, ".1f")
    ax.set_ylim(0, 108)
    ax.set_xlabel("true class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    _legend_right(ax)
    return _finish(fig, path)


def plot_forget_predictions(counts: Mapping[str, Sequence[int]], *,
                            labels: Sequence[str] | None = None, highlight: int | None = None,
                            title: str = "Predictions on the forgotten test samples", ax=None,
                            path=None) -> Figure:
    """Grouped bars: how many forgotten test samples each model predicts as each class."""
    fig, ax = _axes(ax, (10, 4.8))
    _grouped_bars(ax, counts, labels, highlight, "true class of the forgotten samples", 1.0, ".0f")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("number of forgotten test samples")
    ax.set_title(title)
    _legend_right(ax)
    return _finish(fig, path)


# --- weights ----------------------------------------------------------------------------------

def plot_weight_heatmap(weight, *, title: str | None = None, vmax: float | None = None,
                        row_labels: Sequence[str] | None = None, xlabel: str = "input unit",
                        ylabel: str = "output unit", cbar_label: str = "weight", ax=None,
                        path=None) -> Figure:
    """Heatmap of a 2-D weight matrix (rows: output units), coolwarm, centred at 0 on a
    symmetric scale (``vmax`` or the largest absolute weight)."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"a weight heatmap needs a 2-D matrix, got shape {weight.shape}")
    fig, ax = _axes(ax, (12, max(3.0, min(10.0, 0.3 * weight.shape[0] + 1.5))))
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
    return _finish(fig, path)


def plot_weight_heatmaps(weights: Mapping[str, object], *, title: str | None = None,
                         cbar_labels: Sequence[str] | None = None, axes=None, path=None,
                         **kw) -> Figure:
    """Weight heatmaps stacked vertically, titled by the keys of ``weights`` (colour bars
    labelled by ``cbar_labels``); each panel has its own symmetric colour scale."""
    if axes is None:
        first = np.asarray(next(iter(weights.values())))
        height = max(2.5, min(8.0, 0.3 * first.shape[0] + 1.2))
        fig, axes = plt.subplots(len(weights), 1, figsize=(12, height * len(weights)),
                                 layout="constrained", squeeze=False)
        axes = list(axes[:, 0])
    fig = axes[0].figure
    cbar_labels = cbar_labels or ["weight"] * len(weights)
    for ax, (name, weight), label in zip(axes, weights.items(), cbar_labels, strict=True):
        plot_weight_heatmap(weight, title=name, cbar_label=label, ax=ax, **kw)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# --- features ---------------------------------------------------------------------------------

def plot_pca(features: Mapping[str, object], labels, *, class_names: Sequence[str] | None = None,
             highlight: int | None = None, title: str | None = None, axes=None,
             path=None) -> Figure:
    """2-D PCA scatter of feature vectors (N x D each), one panel per entry of ``features``,
    coloured by ``labels``. The PCA is fitted once, on the first entry, and every entry is
    projected with it, so all panels share the same axes. ``highlight`` draws one class on top
    with black edges."""
    from sklearn.decomposition import PCA

    labels = np.asarray(labels)
    names = list(features)
    pca = PCA(n_components=2, svd_solver="full").fit(np.asarray(features[names[0]]))
    fig, axes = _axes_row(axes, len(names), (6.0, 5.6), sharex=True, sharey=True)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10")
    ratio = pca.explained_variance_ratio_
    for ax, name in zip(axes, names, strict=True):
        points = pca.transform(np.asarray(features[name]))
        for c in classes:
            sel = labels == c
            emphasised = c == highlight
            ax.scatter(points[sel, 0], points[sel, 1], s=18 if emphasised else 7,
                       color=cmap(int(c) % 10), alpha=0.9 if emphasised else 0.6,
                       edgecolors="k" if emphasised else "none", linewidths=0.4,
                       zorder=3 if emphasised else 2,
                       label=str(class_names[c]) if class_names is not None else str(c))
        ax.set_title(name if name != names[0] else
                     f"{name}\n(PCA fitted here: {100 * ratio.sum():.0f}% of its variance)")
        ax.set_xlabel("Principal Component 1")
        ax.set_ylabel("Principal Component 2")
        ax.grid(alpha=0.3)
    handles, texts = axes[0].get_legend_handles_labels()
    if highlight is not None:
        texts = [f"{t} (forgotten)" if c == highlight else t for t, c in zip(texts, classes,
                                                                            strict=True)]
    fig.legend(handles, texts, loc="outside right center", title="true label",
               markerscale=2, fontsize="small")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# --- ensembles (``compare.Comparison``) -----------------------------------------------------
#
# The functions below draw the ensemble comparison: one value per (model, seed). They take the
# comparison's per-(model, seed) table (``rows``: a ``model`` and a ``seed`` column plus the
# metric columns that ``evaluation.evaluate`` names), its histories, KL matrices, per-tensor
# distances and confusion matrices. Aggregation over seeds (box, mean, std) is part of drawing.

BASELINE_COLORS = {"untrained": "0.6", "trained": "tab:blue", "retrained": "tab:green"}
METHOD_COLORS = {"gradient_ascent": "tab:orange", "gemu": "tab:purple", "gefeu": "tab:red",
                 "relabel": "tab:brown"}
_EXTRA_COLORS = ("tab:pink", "tab:olive", "tab:cyan", "goldenrod", "navy", "teal")
# Subsets of a split, in drawing order, and the columns that hold them ("{split}" is train or
# test; the first column present is used). "retain" is everything outside the forget set.
ACC_SUBSETS = {"all": ("{split}_acc", "all_{split}_acc"), "retain": ("retain_{split}_acc",),
               "forget": ("forget_{split}_acc",), "rest of class": ("class_rest_{split}_acc",),
               "other classes": ("other_classes_{split}_acc",)}
LOSS_SUBSETS = {"all": ("all_{split}_loss", "{split}_loss"), "forget": ("forget_{split}_loss",),
                "rest of class": ("class_rest_{split}_loss",),
                "other classes": ("other_classes_{split}_loss",)}
KL_DEFINITION = "KL(P_row ‖ P_col)"


def _lighter(color, amount: float = 0.45):
    from matplotlib.colors import to_rgb

    return tuple(c + (1 - c) * amount for c in to_rgb(color))


def ensemble_palette(models: Sequence[str]) -> dict[str, object]:
    """One colour per model name, the same in every ensemble figure: fixed colours for the
    baselines and the known methods, ``"<method> (<variant>)"`` in a lighter shade of its
    method's colour, anything else from a fixed cycle."""
    palette, extra = {}, iter(_EXTRA_COLORS * 4)
    for name in models:
        base = name.split(" (")[0]
        if name in BASELINE_COLORS or name in METHOD_COLORS:
            palette[name] = BASELINE_COLORS.get(name) or METHOD_COLORS[name]
        elif base != name and base in METHOD_COLORS:
            palette[name] = _lighter(METHOD_COLORS[base])
        else:
            palette[name] = next(extra)
    return palette


def _model_order(rows, models: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(rows["model"]))
    if models is not None:
        return [m for m in models if m in present]
    baselines = [m for m in BASELINE_COLORS if m in present]
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
    ``metric`` ``"acc"`` is drawn in percent on 0-100; ``"loss"`` (mean cross-entropy) gets
    no fixed range, and a log axis when ``log`` is True, or, with ``log=None``, when its
    values span more than two decades.
    """
    data = subset_values(rows, split, metric)
    order = _model_order(data, models)
    data = data[data["model"].isin(order)]
    subsets = list(dict.fromkeys(data["subset"]))
    palette = ensemble_palette(order)
    fig, ax = _axes(ax, (max(7.0, 0.32 * len(subsets) * len(order) + 3.0), 4.6))
    sns.boxplot(data=data, x="subset", y="value", hue="model", order=subsets, hue_order=order,
                palette=palette, showfliers=False, linewidth=1.0, width=0.8, ax=ax)
    sns.stripplot(data=data, x="subset", y="value", hue="model", order=subsets,
                  hue_order=order, palette={m: "0.15" for m in order}, dodge=True, size=3,
                  alpha=0.75, jitter=0.08, legend=False, ax=ax)
    if metric == "acc":
        ax.set_ylim(-3, 103)
        ax.set_ylabel(f"{split} accuracy (%)")
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
        ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", frameon=False)
    elif ax.get_legend() is not None:
        ax.get_legend().remove()
    return _finish(fig, path)


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
    return _finish(axes[0].figure, path)


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
    fig, (acc_ax, loss_ax) = _axes_row(axes, 2, (6.4, 4.4))
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
    return _finish(fig, path)


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
    fig, ax = _axes(ax, (1.25 * n + 3.2, 1.0 * n + 2.2))
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
    return _finish(fig, path)


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
    (the keys of ``changes``, e.g. "retrained − trained"), on one shared colour scale.

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
    fig, axes = _axes_row(axes, len(mats), (5.2, height))
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
    return _finish(fig, path)


def plot_layer_distances(distances: Mapping[str, Mapping[str, object]], *,
                         reference: str = "trained", p: int = 2, title: str | None = None,
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
    fig, ax = _axes(ax, (8.5, height))
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
    _legend_right(ax)
    return _finish(fig, path)


def plot_confusion_vs_reference(matrices: Mapping[str, object], *,
                                reference: str = "retrained", compared: str | None = None,
                                labels: Sequence[str] | None = None, title: str | None = None,
                                axes=None, path=None) -> Figure:
    """Confusion matrices (rows: true label, columns: predicted; e.g. mean counts over seeds)
    of each model in ``matrices`` on one colour scale, plus the difference ``compared`` −
    ``reference`` (default: the last entry minus "retrained") on a diverging colour map
    centred at 0: red cells are predicted more often than by the reference, blue less."""
    names = list(matrices)
    compared = compared or names[-1]
    if reference not in matrices or compared not in matrices:
        raise ValueError(f"need '{reference}' and '{compared}' among {names}")
    n_panels = len(names) + 1
    if axes is None:
        ncols = 2 if n_panels == 4 else n_panels
        nrows = int(np.ceil(n_panels / ncols))
        fig, grid = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 5.4 * nrows),
                                 layout="constrained", squeeze=False)
        axes = list(grid.ravel())
        for extra in axes[n_panels:]:
            extra.remove()
        axes = axes[:n_panels]
    axes = list(np.ravel(axes))
    if len(axes) != n_panels:
        raise ValueError(f"expected {n_panels} axes, got {len(axes)}")
    fig = axes[0].figure
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
    return _finish(fig, path)
