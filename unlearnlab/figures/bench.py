"""Figures of a saved benchmark: the leaderboard's avg |z| to retrain, the confusion matrices of
every method against retraining, and the per-sample losses behind the loss MIA.

The plot functions take values that were already computed (``bench_records.load_bench`` reads
them), draw on the given ``ax``/``axes`` or a new figure, return the Figure and write a file
only when ``path`` is given (``base.finish``). The arithmetic they do is the one the figure
shows: the mean ± std over seeds of avg |z|, the difference of two mean confusion matrices and,
in ``plot_mia_distributions``, the per-sample losses that the loss attack itself reads
(``mia.loss``). Each raises ``ValueError`` when it has nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import mia
from ..compare import FLAGS
from ..metrics import Outputs
from ..verdict import retrained_avg_abs_z
from .base import axes_grid, axes_row, finish
from .bench_records import method_order
from .style import MIA_SETS, ORIGINAL, RETRAINED, ROLE_COLORS, UNLEARNED, ensemble_palette

# Short marks of the run flags next to a bar (one per ``compare.FLAGS``).
FLAG_MARKS = {"collapse": "C", "retain_damage": "R", "over_forgetting": "O",
              "under_forgetting": "U", "diverged": "D"}
FLAG_LEGEND = ("flagged run (C collapse, R retain damage, O over-forgetting, U under-forgetting, "
               "D diverged)")
FLAG_HATCH = "///"


def _seed_count(rows: pd.DataFrame) -> str:
    if "seed" not in rows or rows.empty:
        return ""
    n = rows.groupby("method")["seed"].nunique()
    if n.min() == n.max():
        return f" ({n.min()} seed{'s' if n.min() > 1 else ''})"
    return f" ({n.min()}-{n.max()} seeds)"


def plot_gap_bars(leaderboard_rows: pd.DataFrame, *, scenarios: Sequence[str] | None = None,
                  methods: Sequence[str] | None = None, title: str | None = None, axes=None,
                  path=None) -> Figure:
    """Horizontal bars of each method's avg |z| to the retrained ensemble (``z_gap``: in
    retrained standard deviations, mean ± std over seeds, each seed a dot) on a log axis, as
    the values span from below 1 to hundreds; one panel per scenario, the methods in the same
    order in every panel: the leaderboard's ranking, best on top. With 3 seeds or more a dotted
    line marks where an independently retrained model lies on average
    (``verdict.retrained_avg_abs_z``: 1.10 with 5 seeds). A bench of one seed has no spread
    (every ``z_gap`` is NaN): the bars then show the average gap in points, which ranks such a
    leaderboard, and the axis and title say so.

    ``leaderboard_rows``: ``leaderboard.csv`` (columns scenario, method, seed, z_gap, avg_gap
    and the flags of ``compare.FLAGS``). A bar is hatched when a run of that method in that
    scenario was flagged, and the flags are counted beside it (``FLAG_MARKS``); "n/a" marks a
    method that was not run on a scenario.
    """
    rows = pd.DataFrame(leaderboard_rows)
    if rows.empty:
        raise ValueError("no leaderboard rows to draw: pass leaderboard.csv of a bench run")
    missing = {"scenario", "method", "z_gap", "avg_gap"} - set(rows)
    if missing:
        raise ValueError(f"the leaderboard rows lack the columns {sorted(missing)}")
    in_sigma = bool(rows["z_gap"].notna().any())
    column, scale = ("z_gap", 1.0) if in_sigma else ("avg_gap", 100.0)
    scenarios = list(scenarios or dict.fromkeys(rows["scenario"]))
    order = method_order(rows)
    if methods is not None:
        order = [m for m in order if m in set(methods)]
    rows = rows[rows["method"].isin(order) & rows["scenario"].isin(scenarios)]
    if rows.empty:
        raise ValueError("none of the chosen methods ran on the chosen scenarios")
    height = max(2.6, 0.34 * len(order) + 1.6)
    fig, axes = axes_row(axes, len(scenarios), (3.6, height), sharey=True)
    palette = ensemble_palette(order)
    positions = np.arange(len(order))
    values = scale * rows[column].astype(float).dropna()
    seeds = rows["seed"].nunique() if "seed" in rows else 0
    reference = retrained_avg_abs_z(seeds) if in_sigma and seeds > 2 else None
    # A log axis needs a positive left edge: below the smallest value and the reference.
    low = min(0.1, 0.5 * float(values[values > 0].min())) if (values > 0).any() else 0.1
    high = max([10 * low, *values])
    for ax, scenario in zip(axes, scenarios, strict=True):
        here = rows[rows["scenario"] == scenario]
        for y, method in zip(positions, order, strict=True):
            runs = here[here["method"] == method]
            if runs.empty:
                ax.annotate("n/a", (low, y), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7, color="0.5")
                continue
            zs = scale * runs[column].astype(float).dropna().to_numpy()
            counts = {f: int(runs[f].astype(bool).sum()) for f in FLAGS if f in runs}
            marks = " ".join(f"{FLAG_MARKS[f]}×{n}" for f, n in counts.items() if n)
            if zs.size:
                mean, std = zs.mean(), zs.std()  # population std, as the tables
                ax.barh(y, mean - low, 0.7, left=low, color=palette[method], edgecolor="0.25",
                        linewidth=0.5, hatch=FLAG_HATCH if marks else None)
                ax.errorbar(mean, y, xerr=std if zs.size > 1 else None, color="0.1",
                            capsize=2.5, fmt="none", linewidth=0.9)
                ax.plot(zs, np.full(zs.size, y), "o", color="0.1", markersize=2.2, zorder=3)
                end = max(mean + std, zs.max())
            else:
                end = low
                marks = marks or "diverged"
            if marks:
                ax.annotate(marks, (end, y), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=6.5, color="tab:red")
        ax.set_title(f"{scenario}{_seed_count(here)}", fontsize="medium")
        ax.set_xscale("log")
        ax.set_xlim(low, 4 * high)  # room for the flag marks
        if reference is not None:
            ax.axvline(reference, color="0.4", linestyle=":", linewidth=0.9)
        ax.set_xlabel("avg |z| to retrain (σ, log scale)" if in_sigma else
                      "avg gap to retrain (pts, log scale)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(positions, order)  # shown on the first panel of a shared row
        ax.set_ylim(len(order) - 0.5, -0.5)  # the best method on top
    handles = [Patch(facecolor="white", edgecolor="0.25", hatch=FLAG_HATCH, label=FLAG_LEGEND)]
    fig.legend(handles=handles, loc="outside lower center", fontsize="small", frameon=False)
    dotted = "" if reference is None else \
        f"; dotted: a retrained model's, {reference:.2f} at {seeds} seeds"
    default = (f"Avg |z| to the retrained ensemble (σ; mean ± std over seeds, dots: seeds"
               f"{dotted}; lower is better)" if in_sigma else
               "Average gap to the retrained model in points (one seed: no spread to measure "
               "σ by; lower is better)")
    fig.suptitle(title or default)
    return finish(fig, path)


# --- confusion matrices -----------------------------------------------------------------------

def _mean_confusion(records: Sequence[Mapping], model: str) -> np.ndarray:
    return np.mean([np.asarray(r["models"][model]["confusion_test"], dtype=float)
                    for r in records], axis=0)


def plot_confusion_delta(records_by_method: Mapping[str, Sequence[Mapping]], *,
                         methods: Sequence[str] | None = None,
                         labels: Sequence[str] | None = None, ncols: int = 4,
                         title: str | None = None, axes=None, path=None) -> Figure:
    """Per method, the mean test confusion matrix of its unlearned models minus the mean of
    the retrained models of the same seeds (rows: true label, columns: predicted label), on
    one diverging colour scale centred at 0 shared by all panels: red cells are predicted more
    often than retraining would, blue less. One panel per method (``methods``: which, in that
    order; default all), ``ncols`` panels per row.

    ``records_by_method``: the JSON records of one scenario by method (``load_bench``'s
    ``records``), each with ``models.unlearned`` and ``models.retrained.confusion_test``;
    runs that diverged (no unlearned model) are left out.
    """
    methods = list(methods or records_by_method)
    if not methods:
        raise ValueError("no records to draw: pass the records of at least one method")
    unknown = [m for m in methods if m not in records_by_method]
    if unknown:
        raise ValueError(f"no records of {unknown}; have {list(records_by_method)}")
    diffs, seeds = {}, {}
    for method in methods:
        ok = [r for r in records_by_method[method] if r["models"].get(UNLEARNED)]
        seeds[method] = len(ok)
        if ok:
            diffs[method] = _mean_confusion(ok, UNLEARNED) - _mean_confusion(ok, RETRAINED)
    if not any(records_by_method[m] for m in methods):
        raise ValueError("the records hold no runs")
    fig, axes = axes_grid(axes, len(methods), ncols, (3.7, 3.5))
    limit = max((float(np.abs(d).max()) for d in diffs.values()), default=0.0) or 1.0
    ticks = list(labels) if labels is not None else "auto"
    image = None
    for ax, method in zip(axes, methods, strict=True):
        if method not in diffs:
            ax.set_axis_off()
            why = "diverged on every seed" if records_by_method[method] else "no run"
            ax.set_title(f"{method}\n({why})", fontsize="medium")
            continue
        diff = diffs[method]
        annot = np.where(np.rint(diff) == 0, "", np.vectorize(lambda v: f"{v:+.0f}")(diff))
        sns.heatmap(diff, annot=annot, fmt="", cmap="RdBu_r", center=0, vmin=-limit,
                    vmax=limit, square=True, cbar=False, xticklabels=ticks, yticklabels=ticks,
                    annot_kws={"size": 6}, ax=ax)
        image = ax.collections[0]
        ax.set_title(f"{method} ({seeds[method]} seed{'s' if seeds[method] > 1 else ''})",
                     fontsize="medium")
        ax.set_xlabel("predicted label", fontsize="small")
        ax.set_ylabel("true label", fontsize="small")
        ax.tick_params(labelsize=6.5)
        ax.tick_params(axis="y", labelrotation=0)
        if labels is not None and max(len(str(s)) for s in labels) > 2:
            plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, pad=0.01,
                     label="mean count: unlearned − retrained")
    fig.suptitle(title or "Test confusion matrix: unlearned − retrained (mean over seeds)")
    return finish(fig, path)


# --- membership inference ---------------------------------------------------------------------

def plot_mia_distributions(outputs: Outputs, *,
                           models: Sequence[str] = (ORIGINAL, RETRAINED, UNLEARNED),
                           scores: Mapping[str, float | None] | None = None, bins: int = 30,
                           title: str | None = None, axes=None, path=None) -> Figure:
    """Distributions of the per-sample cross-entropy (log axis) on the forget-train samples
    and on the forget-test samples, one panel per model: the picture behind the loss MIA,
    whose attacker tells the two sets apart by this loss alone. The original model saw the
    forget-train samples, so their losses sit lower; a model that forgot them (like the
    retrained one, which never saw them) shows the two sets on top of each other.

    ``outputs``: a bundle's ``Outputs`` (``logits[model][set]``, ``labels[set]``); models
    without logits are left out. ``scores``: optional value per model printed in its title
    (e.g. the record's ``mia_loss`` accuracy, 0.5 = chance).
    """
    sets = list(MIA_SETS)
    if any(s not in outputs.labels for s in sets):
        raise ValueError(f"the outputs lack the probe sets {sets}")
    present = [m for m in models if all(s in outputs.logits.get(m, {}) for s in sets)]
    if not present:
        raise ValueError(f"none of the models {list(models)} has logits on {sets}")
    losses = {m: {s: mia.loss(outputs.logits[m][s], outputs.labels[s]) for s in sets}
              for m in present}
    if all(v.size == 0 for per_set in losses.values() for v in per_set.values()):
        raise ValueError("the forget sets are empty")
    # A per-sample loss can be ~0 for a confident prediction; floor it for the log axis.
    values = np.concatenate([v for per_set in losses.values() for v in per_set.values()])
    floor = max(float(values[values > 0].min()) if (values > 0).any() else 1e-6, 1e-6)
    top = max(float(values.max()), floor * 10)
    edges = np.logspace(np.log10(floor), np.log10(top), bins + 1)
    fig, axes = axes_row(axes, len(present), (4.2, 3.4), sharex=True, sharey=True)
    for ax, model in zip(axes, present, strict=True):
        for s in sets:
            label, color = MIA_SETS[s]
            vals = np.clip(losses[model][s], floor, None)
            if not vals.size:
                continue
            weights = np.full(vals.size, 1 / vals.size)  # each set sums to 1: sizes differ
            ax.hist(vals, bins=edges, weights=weights, histtype="stepfilled", alpha=0.35,
                    color=color, label=f"{label}, n={vals.size}")
            ax.hist(vals, bins=edges, weights=weights, histtype="step", color=color,
                    linewidth=1.2)
            ax.axvline(np.median(vals), color=color, linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("per-sample cross-entropy (log scale)")
        ax.grid(alpha=0.3)
        score = (scores or {}).get(model)
        suffix = "" if score is None else f"\nloss-MIA accuracy {score:.2f} (0.5 = chance)"
        ax.set_title(f"{model}{suffix}", fontsize="medium", color=ROLE_COLORS.get(model, "k"))
    axes[0].set_ylabel("fraction of the set's samples")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize="small", frameon=False)
    fig.suptitle(title or "Per-sample loss on the forget set (dashed: medians)")
    return finish(fig, path)
