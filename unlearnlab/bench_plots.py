"""Figures of a saved benchmark (``unlearnlab bench --out DIR``), and the loader that reads one.

``load_bench`` reads what the bench wrote (``leaderboard.csv``, ``leaderboard.md``, each
scenario's ``results.csv``, ``kl.json`` and per-(method, seed) records) into plain pandas tables
and dicts; ``load_outputs`` reads one record's bundle (its per-sample logits). Nothing is
recomputed: a notebook or script loads once and hands the values to the ``plot_*`` functions.

The plot functions follow the rules of ``unlearnlab.plots``: they take values that were already
computed, draw on the given ``ax``/``axes`` or a new figure, return the Figure and write a file
only when ``path`` is given (atomically). The arithmetic they do is the one the figure shows: the
mean ± std over seeds of a gap, the difference of two mean confusion matrices and, in
``plot_mia_distributions``, the per-sample losses that the loss attack itself reads
(``mia.loss``). Each raises ``ValueError`` when it has nothing to draw.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import bundle, mia
from .bench import leaderboard
from .compare import FLAGS
from .data import DIGIT_CLASSES, FASHION_CLASSES
from .errors import ConfigError
from .forget import parse_forget
from .metrics import Outputs
from .plots import MODEL_COLORS, _axes_row, _finish, ensemble_palette

LEADERBOARD_CSV, LEADERBOARD_MD = "leaderboard.csv", "leaderboard.md"
# Short marks of the run flags next to a bar: C collapse, O over-forgetting, D diverged.
FLAG_MARKS = {"collapse": "C", "over_forgetting": "O", "diverged": "D"}
FLAG_HATCH = "///"
MIA_SETS = {"forget_train": ("forget-train (seen by the original model)", "tab:purple"),
            "forget_test": ("forget-test (never trained on)", "tab:gray")}


# --- loading ----------------------------------------------------------------------------------

def load_bench(folder: str | Path, *, outputs: bool = False) -> dict:
    """Everything ``unlearnlab bench --out folder`` wrote, as plain tables and dicts:

    ``{"dir": Path, "rows": DataFrame (leaderboard.csv: one row per scenario, method, seed),
    "markdown": str | None (leaderboard.md), "scenarios": {name: scenario}}``, the scenarios in
    leaderboard order, each ``{"dataset", "forget", "feature" (bool: part of a class),
    "classes" (class names), "rows" (results.csv, baselines included, or None), "kl" (kl.json or
    None), "records": {method: [record, ...] by seed}}``. With ``outputs``, each scenario also
    gets ``"outputs": {method: {seed: Outputs}}`` from the records' bundles (all of them: this
    reads every ``outputs.npz``; ``load_outputs`` reads one).
    """
    folder = Path(folder)
    csv = folder / LEADERBOARD_CSV
    if not csv.is_file():
        raise ConfigError(f"'{folder}' holds no {LEADERBOARD_CSV}: pass the --out folder of a "
                          "finished `unlearnlab bench` run")
    rows = pd.read_csv(csv)
    markdown = folder / LEADERBOARD_MD
    bench = {"dir": folder, "rows": rows,
             "markdown": markdown.read_text() if markdown.is_file() else None, "scenarios": {}}
    for name in dict.fromkeys(rows["scenario"]):
        scenario = _load_scenario(folder / name)
        if outputs:
            scenario["outputs"] = {method: {r["seed"]: load_outputs(r) for r in records
                                            if r.get("bundle")}
                                   for method, records in scenario["records"].items()}
        bench["scenarios"][name] = scenario
    return bench


def _load_scenario(folder: Path) -> dict:
    if not folder.is_dir():
        raise ConfigError(f"the leaderboard names scenario '{folder.name}' but '{folder}' is "
                          "missing: copy the whole bench folder")
    records: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*_seed*.json")):
        record = json.loads(path.read_text())
        records.setdefault(record["method"], []).append(record)
    if not records:
        raise ConfigError(f"'{folder}' holds no <method>_seed<s>.json record")
    for method in records:
        records[method].sort(key=lambda r: r["seed"])
    first = next(iter(records.values()))[0]
    results, kl = folder / "results.csv", folder / "kl.json"
    return {"dataset": first["dataset"], "forget": first["forget"],
            "feature": parse_forget(first["forget"]).is_feature,
            "classes": FASHION_CLASSES if first["dataset"] == "fashion_mnist" else DIGIT_CLASSES,
            "rows": pd.read_csv(results) if results.is_file() else None,
            "kl": json.loads(kl.read_text()) if kl.is_file() else None, "records": records}


def load_outputs(record: Mapping) -> Outputs:
    """The per-sample logits and labels of one run, from the bundle its record names."""
    path = record.get("bundle")
    if not path:
        raise ConfigError(f"the record of {record.get('method')} (seed {record.get('seed')}) "
                          "names no bundle: it predates bundles or its run diverged")
    return bundle.load(Path(path))[1]


def ranked_methods(bench: Mapping, scenario: str | None = None) -> list[str]:
    """Method names by their mean gap to retrain (best first), over every scenario or in one;
    methods whose gap is undefined on some run (diverged) come last."""
    rows = bench["rows"]
    if scenario is not None:
        rows = rows[rows["scenario"] == scenario]
    return _method_order(rows)


def pick_run(bench: Mapping, scenario: str, method: str | None = None,
             seed: int | None = None) -> dict:
    """The record of one run of ``scenario``: ``method`` (default: the best-ranked method
    there with a run that did not diverge) at ``seed`` (default: its first such seed)."""
    if scenario not in bench["scenarios"]:
        raise ConfigError(f"no scenario '{scenario}' in the bench; have "
                          f"{', '.join(bench['scenarios'])}")
    records = bench["scenarios"][scenario]["records"]
    candidates = [method] if method is not None else ranked_methods(bench, scenario)
    for name in candidates:
        if name not in records:
            raise ConfigError(f"no run of '{name}' in scenario '{scenario}'; have "
                              f"{', '.join(records)}")
        runs = [r for r in records[name] if r["models"].get("unlearned") is not None
                and (seed is None or r["seed"] == seed)]
        if runs:
            return runs[0]
    which = "any method" if method is None else f"'{method}'"
    raise ConfigError(f"scenario '{scenario}' has no finished run of {which}"
                      + ("" if seed is None else f" at seed {seed}"))


def loss_mia_scores(record: Mapping) -> dict[str, float | None]:
    """The loss-MIA accuracy of each model of a record (for ``plot_mia_distributions``)."""
    return {model: (values or {}).get("mia_loss") for model, values in record["models"].items()}


def feature_scenarios(bench: Mapping) -> list[str]:
    """The scenarios that forget part of a class (the thesis's feature forgetting)."""
    return [name for name, s in bench["scenarios"].items() if s["feature"]]


# --- gap to retrain ---------------------------------------------------------------------------

def _method_order(rows: pd.DataFrame) -> list[str]:
    """The leaderboard's ranking (``bench.leaderboard``): mean gap over seeds per scenario,
    then over scenarios; a method with a diverged run ranks last."""
    defaults = {"speedup": np.nan, **dict.fromkeys(FLAGS, False)}
    rows = rows.assign(**{c: v for c, v in defaults.items() if c not in rows})
    return list(leaderboard(rows).index)


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
    """Horizontal bars of each method's average gap to the retrained ensemble (in points:
    mean ± std over seeds, each seed a dot), one panel per scenario, the methods in the same
    order in every panel: best overall gap on top (the leaderboard's ranking).

    ``leaderboard_rows``: ``leaderboard.csv`` (columns scenario, method, seed, avg_gap and the
    flags collapse, over_forgetting, diverged). A bar is hatched when a run of that method in
    that scenario was flagged, and the flags are counted beside it (C collapse,
    O over-forgetting, D diverged); "n/a" marks a method that was not run on a scenario.
    """
    rows = pd.DataFrame(leaderboard_rows)
    if rows.empty:
        raise ValueError("no leaderboard rows to draw: pass leaderboard.csv of a bench run")
    missing = {"scenario", "method", "avg_gap"} - set(rows)
    if missing:
        raise ValueError(f"the leaderboard rows lack the columns {sorted(missing)}")
    scenarios = list(scenarios or dict.fromkeys(rows["scenario"]))
    order = _method_order(rows)
    if methods is not None:
        order = [m for m in order if m in set(methods)]
    rows = rows[rows["method"].isin(order) & rows["scenario"].isin(scenarios)]
    if rows.empty:
        raise ValueError("none of the chosen methods ran on the chosen scenarios")
    height = max(2.6, 0.34 * len(order) + 1.6)
    fig, axes = _axes_row(axes, len(scenarios), (3.6, height), sharey=True)
    palette = ensemble_palette(order)
    positions = np.arange(len(order))
    limit = np.nanmax([1.0, 100 * float(rows["avg_gap"].max(skipna=True))])
    for ax, scenario in zip(axes, scenarios, strict=True):
        here = rows[rows["scenario"] == scenario]
        for y, method in zip(positions, order, strict=True):
            runs = here[here["method"] == method]
            if runs.empty:
                ax.annotate("n/a", (0, y), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7, color="0.5")
                continue
            gaps = 100 * runs["avg_gap"].astype(float).dropna().to_numpy()
            counts = {f: int(runs[f].astype(bool).sum()) for f in FLAGS if f in runs}
            marks = " ".join(f"{FLAG_MARKS[f]}×{n}" for f, n in counts.items() if n)
            if gaps.size:
                mean, std = gaps.mean(), gaps.std()  # population std, as the tables
                ax.barh(y, mean, 0.7, color=palette[method], edgecolor="0.25", linewidth=0.5,
                        hatch=FLAG_HATCH if marks else None)
                ax.errorbar(mean, y, xerr=std if gaps.size > 1 else None, color="0.1",
                            capsize=2.5, fmt="none", linewidth=0.9)
                ax.plot(gaps, np.full(gaps.size, y), "o", color="0.1", markersize=2.2,
                        zorder=3)
                end = max(mean + std, gaps.max())
            else:
                end = 0.0
                marks = marks or "diverged"
            if marks:
                ax.annotate(marks, (end, y), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=6.5, color="tab:red")
        ax.set_title(f"{scenario}{_seed_count(here)}", fontsize="medium")
        ax.set_xlim(0, 1.28 * limit)
        ax.set_xlabel("avg gap to retrain (pts)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(positions, order)  # shown on the first panel of a shared row
        ax.set_ylim(len(order) - 0.5, -0.5)  # the best method on top
    handles = [Patch(facecolor="white", edgecolor="0.25", hatch=FLAG_HATCH,
                     label="flagged run (C collapse, O over-forgetting, D diverged)")]
    fig.legend(handles=handles, loc="outside lower center", fontsize="small", frameon=False)
    fig.suptitle(title or "Average gap to the retrained ensemble (mean ± std over seeds, "
                          "dots: seeds; lower is better)")
    return _finish(fig, path)


# --- confusion matrices -----------------------------------------------------------------------

def _mean_confusion(records: Sequence[Mapping], model: str) -> np.ndarray:
    return np.mean([np.asarray(r["models"][model]["confusion_test"], dtype=float)
                    for r in records], axis=0)


def _grid(axes, n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list]:
    if axes is None:
        ncols = min(ncols, n)
        nrows = int(np.ceil(n / ncols))
        fig, grid = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                                 layout="constrained", squeeze=False)
        axes = list(grid.ravel())
        for extra in axes[n:]:
            extra.remove()
        return fig, axes[:n]
    axes = list(np.ravel(axes))
    if len(axes) != n:
        raise ValueError(f"expected {n} axes, got {len(axes)}")
    return axes[0].figure, axes


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
        ok = [r for r in records_by_method[method] if r["models"].get("unlearned")]
        seeds[method] = len(ok)
        if ok:
            diffs[method] = _mean_confusion(ok, "unlearned") - _mean_confusion(ok, "retrained")
    if not any(records_by_method[m] for m in methods):
        raise ValueError("the records hold no runs")
    fig, axes = _grid(axes, len(methods), ncols, (3.7, 3.5))
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
    return _finish(fig, path)


# --- membership inference ---------------------------------------------------------------------

def plot_mia_distributions(outputs: Outputs, *,
                           models: Sequence[str] = ("original", "retrained", "unlearned"),
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
    fig, axes = _axes_row(axes, len(present), (4.2, 3.4), sharex=True, sharey=True)
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
        ax.set_title(f"{model}{suffix}", fontsize="medium", color=MODEL_COLORS.get(model, "k"))
    axes[0].set_ylabel("fraction of the set's samples")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize="small", frameon=False)
    fig.suptitle(title or "Per-sample loss on the forget set (dashed: medians)")
    return _finish(fig, path)
