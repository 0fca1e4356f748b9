"""Figures of one unlearning run, drawn from numbers that were already computed.

Every ``plot_*`` function takes plain values (history lists, matrices, per-class lists or
feature arrays), draws on the given ``ax``/``axes`` or on a new figure, and returns the
``matplotlib.figure.Figure``. Nothing here computes a metric: the only arithmetic is scaling to
percent and, in ``plot_pca``, the 2-D projection that is the figure itself. A file is written
only when ``path`` is given (``base.finish``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from .base import axes_row, finish, legend_below, legend_right, new_axes
from .style import ROLE_COLORS, TEST_COLOR, TRAIN_COLOR, UNLEARN_COLOR, UNLEARN_LABEL


def _values(history: Sequence[Mapping], key: str, scale: float) -> tuple[list, list]:
    """Epoch positions and scaled values of ``key``, skipping epochs without it."""
    pairs = [(i, scale * h[key]) for i, h in enumerate(history) if h.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


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
    fig, ax = new_axes(ax, (7.5, 4.8))
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
        legend_below(ax)
    return finish(fig, path)


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
    fig, (left, right) = axes_row(axes, 2, (7.0, 4.6))
    plot_accuracy(history, unlearn_history, final_test=final_test_acc, ax=left, legend=False,
                  **kw)
    plot_loss(history, unlearn_history, final_test=final_test_loss, ax=right, legend=False, **kw)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=3,
               fontsize="small", frameon=False)
    return finish(fig, path)


# --- confusion matrices -----------------------------------------------------------------------

def plot_confusion_matrix(matrix, *, labels: Sequence[str] | None = None, title: str | None = None,
                          vmax: float | None = None, cbar: bool = True, ax=None,
                          path=None) -> Figure:
    """Heatmap of a confusion matrix of counts (rows: true label, columns: predicted label).
    Integer counts are printed as such; other values (e.g. mean counts over seeds) rounded."""
    fig, ax = new_axes(ax, (6.5, 5.5))
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
    return finish(fig, path)


def plot_confusion_matrices(matrices: Mapping[str, object], *, labels=None, title=None,
                            axes=None, path=None) -> Figure:
    """A row of confusion matrices (e.g. before / after unlearning / retrained), titled by the
    keys of ``matrices``, on one colour scale with one colour bar."""
    fig, axes = axes_row(axes, len(matrices), (6.0, 5.4))
    vmax = max(np.asarray(m).max() for m in matrices.values())
    for i, (ax, (name, matrix)) in enumerate(zip(axes, matrices.items(), strict=True)):
        plot_confusion_matrix(matrix, labels=labels, title=name, vmax=vmax,
                              cbar=i == len(axes) - 1, ax=ax)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


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
        ax.bar(positions + offset, heights, width, label=name, color=ROLE_COLORS.get(name))
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
    fig, ax = new_axes(ax, (10, 4.8))
    _grouped_bars(ax, per_class, labels, highlight, "forgotten class", 100.0, ".1f")
    ax.set_ylim(0, 108)
    ax.set_xlabel("true class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    legend_right(ax)
    return finish(fig, path)


def plot_forget_predictions(counts: Mapping[str, Sequence[int]], *,
                            labels: Sequence[str] | None = None, highlight: int | None = None,
                            title: str = "Predictions on the forgotten test samples", ax=None,
                            path=None) -> Figure:
    """Grouped bars: how many forgotten test samples each model predicts as each class."""
    fig, ax = new_axes(ax, (10, 4.8))
    _grouped_bars(ax, counts, labels, highlight, "true class of the forgotten samples", 1.0, ".0f")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("number of forgotten test samples")
    ax.set_title(title)
    legend_right(ax)
    return finish(fig, path)


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
    fig, axes = axes_row(axes, len(names), (6.0, 5.6), sharex=True, sharey=True)
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
    return finish(fig, path)

