"""Figures of the NeurIPS 2023 forget-quality score (``unlearnlab forget-quality`` bundles): the
per-example eps of each method beside the ``retrain`` and ``original`` references, and F per
method.

``load_studies`` reads the bundles of one scenario and one N (``record.json`` through
``bundle.read_record``, ``forget_quality.npz``), checked whole before anything is drawn. The plot
functions take the per-example eps by name and N; the bars they draw are the buckets F is
computed from (``bucket_counts``: ``forget_quality.example_scores``, nothing re-derived), so a
panel's F is the sum of its bar heights times the bucket points. Definitions of eps, the buckets
and F: ``unlearnlab/forget_quality.py`` and docs/metrics.md ("Forget quality (NeurIPS 2023)").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import bundle, ensemble, forget_quality
from ..errors import BundleError, ConfigError
from .base import axes_grid, finish, new_axes
from .style import ORIGINAL, RETRAINED, ROLE_COLORS, ensemble_palette

RETRAIN, NO_UNLEARNING = ensemble.REFERENCES  # "retrain", "original"
# The references drawn in every panel, in the colours of the models they consist of.
REFERENCE_COLORS = {RETRAIN: ROLE_COLORS[RETRAINED], NO_UNLEARNING: ROLE_COLORS[ORIGINAL]}
REFERENCE_LABELS = {RETRAIN: "retrain (ceiling: N more retrained models)",
                    NO_UNLEARNING: "original (floor: no unlearning)"}
# Record keys that name a study's scenario; bundles drawn together agree on all of them.
SCENARIO_KEYS = ("dataset", "arch", "forget", "seed", "quick", "forget_samples")
# Gap, in eps units, between the last bucket and the bar of the samples past it (0 points):
# that bar is not a 0.5-wide range of eps.
PAST_GAP = 0.25
F_TOLERANCE = 1e-12  # as ``rescore``


def bucket_counts(epsilons, n_models: int) -> np.ndarray:
    """How many samples fall in each bucket of ``forget_quality.bucket_points(n_models)`` (eps
    in [0, 0.5), [0.5, 1), ...), then how many lie past the last bucket (0 points): an int
    array of length buckets + 1. The buckets are read from ``example_scores`` (each bucket has
    its own power-of-two points), so F = sum(counts[:-1] * points) / samples exactly."""
    points = forget_quality.bucket_points(n_models)
    scores = forget_quality.example_scores(epsilons, n_models)
    return np.array([int(np.count_nonzero(scores == p)) for p in points]
                    + [int(np.count_nonzero(scores == 0))])


def _bucket_edges(n_models: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The eps edges of the buckets, and the x span of the bar past them."""
    n_buckets = forget_quality.bucket_points(n_models).size
    edges = forget_quality.BUCKET_WIDTH * np.arange(n_buckets + 1)
    start = edges[-1] + PAST_GAP
    return edges, (start, start + forget_quality.BUCKET_WIDTH)


def _panel_order(epsilons: Mapping[str, np.ndarray], n_models: int) -> tuple[list[str], dict]:
    """The references first, then the methods by F, highest first (ties by name); and F of
    each."""
    missing = [r for r in (RETRAIN, NO_UNLEARNING) if r not in epsilons]
    if missing:
        raise ValueError(f"no per-example eps of the reference {missing[0]!r}: pass the "
                         f"{' and '.join(REFERENCE_LABELS)} studies with the methods")
    scores = {name: forget_quality.forget_quality(eps, n_models)
              for name, eps in epsilons.items()}
    methods = sorted((m for m in epsilons if m not in REFERENCE_LABELS),
                     key=lambda m: (-scores[m], m))
    return [RETRAIN, NO_UNLEARNING, *methods], scores


def _method_palette(methods: Sequence[str]) -> dict:
    """``style.ensemble_palette`` over the names in alphabetical order, so that a method keeps
    its colour whatever its rank and in both figures."""
    return ensemble_palette(sorted(methods))


def _points_label(n_models: int) -> str:
    top = forget_quality.BUCKET_WIDTH * forget_quality.bucket_points(n_models).size
    return (f"per-example ε in 0.5-wide buckets worth 1, ½, ¼, … points; ε ≥ {top:g} "
            "(hatched bar) scores 0")


def plot_epsilon_histograms(epsilons: Mapping[str, Sequence[float]], n_models: int, *,
                            ncols: int = 3, title: str | None = None, axes=None,
                            path=None) -> Figure:
    """One panel per study: the share of forget samples in each eps bucket that F is computed
    from (``bucket_counts``), the samples past the last bucket as a separate bar on the right.
    The first two panels are the references ``retrain`` and ``original``; every other panel
    is a method (by F, highest first), filled, with both references drawn over it as outlines.
    Each panel's title gives its F. All panels share their axes.

    ``epsilons``: per-example eps by name (``retrain``, ``original`` and method names), all
    of the same forget samples scored with ``n_models`` models per side (``load_studies``).
    ``ValueError`` when a reference is missing or the studies differ in their samples.
    """
    if len({np.shape(eps) for eps in epsilons.values()}) > 1:
        raise ValueError("the studies have different numbers of forget samples: draw the "
                         "studies of one scenario")
    order, scores = _panel_order(epsilons, n_models)
    edges, past = _bucket_edges(n_models)
    shares = {name: 100 * bucket_counts(epsilons[name], n_models) / np.size(epsilons[name])
              for name in order}
    fig, axes = axes_grid(axes, len(order), ncols, (3.3, 2.6), sharey=True)
    palette = {**_method_palette(order[2:]), **REFERENCE_COLORS}
    for ax, name in zip(axes, order, strict=True):
        share = shares[name]
        ax.bar(edges[:-1], share[:-1], width=np.diff(edges), align="edge",
               color=palette[name], alpha=0.75, edgecolor="0.25", linewidth=0.4)
        ax.bar(past[0], share[-1], width=past[1] - past[0], align="edge",
               color=palette[name], alpha=0.75, edgecolor="0.25", linewidth=0.4, hatch="//")
        for reference, color in REFERENCE_COLORS.items():
            if reference == name:
                continue
            ax.stairs(shares[reference][:-1], edges, color=color, linewidth=1.4)
            ax.stairs(shares[reference][-1:], past, color=color, linewidth=1.4)
        ax.set_title(f"{name}: F {scores[name]:.3f}", fontsize="medium")
        ax.set_xticks([*edges[::2], np.mean(past)],
                      [f"{e:g}" for e in edges[::2]] + [f"≥{edges[-1]:g}"])
        ax.set_xlim(edges[0] - 0.1, past[1] + 0.1)
        ax.grid(axis="y", alpha=0.3)
    handles = [Line2D([], [], color=REFERENCE_COLORS[r], linewidth=1.4,
                      label=f"{REFERENCE_LABELS[r]}, F {scores[r]:.3f}")
               for r in REFERENCE_COLORS]
    handles.append(Patch(facecolor="white", edgecolor="0.25", hatch="//",
                         label="past the last bucket (0 points)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small",
               frameon=False, title=_points_label(n_models), title_fontsize="small")
    fig.supylabel("forget samples (%)", fontsize="small")
    fig.suptitle(title or f"Per-example ε, {n_models} models per side (outlines: the "
                          "references)")
    return finish(fig, path)


def plot_forget_quality_bars(epsilons: Mapping[str, Sequence[float]], n_models: int, *,
                             title: str | None = None, ax=None, path=None) -> Figure:
    """F of each method as a horizontal bar (highest on top), the ``retrain`` ceiling and the
    ``original`` floor as vertical lines. Same input as ``plot_epsilon_histograms``."""
    order, scores = _panel_order(epsilons, n_models)
    methods = order[2:]
    if not methods:
        raise ValueError("no method besides the references: pass at least one method's study")
    fig, ax = new_axes(ax, (6.0, max(2.4, 0.36 * len(methods) + 1.4)))
    palette = _method_palette(methods)
    positions = np.arange(len(methods))
    ax.barh(positions, [scores[m] for m in methods], 0.7,
            color=[palette[m] for m in methods], edgecolor="0.25", linewidth=0.5)
    for y, method in zip(positions, methods, strict=True):
        ax.annotate(f"{scores[method]:.3f}", (scores[method], y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)
    for reference, color in REFERENCE_COLORS.items():
        ax.axvline(scores[reference], color=color, linestyle="--", linewidth=1.4,
                   label=f"{REFERENCE_LABELS[reference]}, F {scores[reference]:.3f}")
    ax.set_yticks(positions, methods)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xlim(0, 1.15 * max(scores.values()) or 1.0)
    ax.set_xlabel("forget quality F (higher: closer to retraining)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or f"Forget quality F, {n_models} models per side", fontsize="medium")
    return finish(fig, path)


# --- reading bundles --------------------------------------------------------------------------

def _bundle_error(folder: Path, problem: str,
                  fix: str = "run `unlearnlab forget-quality` again") -> BundleError:
    return BundleError(f"bundle '{folder}': {problem}; {fix}")


def _label(record: dict) -> str:
    """The method's name, with its preset when that is not the default one."""
    preset = record.get("preset")
    return record["method"] if preset in (None, "default") else f"{record['method']} ({preset})"


def read_study_record(folder: str | Path) -> dict:
    """The ``record.json`` of a forget-quality bundle, its keys checked: ``ConfigError`` for a
    folder that is not a forget-quality bundle, ``BundleError`` for a damaged record."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"'{folder}' is not a folder: pass the bundle folders written by "
                          "`unlearnlab forget-quality`")
    if not (folder / bundle.RECORD).is_file():
        raise ConfigError(f"'{folder}' holds no {bundle.RECORD}: pass the bundle folders "
                          "written by `unlearnlab forget-quality`")
    record = bundle.read_record(folder)
    if record.get("kind") != "forget_quality":
        raise ConfigError(f"'{folder}' is not a forget-quality bundle (its {bundle.RECORD} "
                          f"has kind {record.get('kind')!r}): pass the bundle folders written "
                          "by `unlearnlab forget-quality`")
    for key in ("method", "dataset", "arch", "forget"):
        if not isinstance(record.get(key), str):
            raise _bundle_error(folder, f"{bundle.RECORD}: {key!r} is not a name")
    for key in ("models", "forget_samples", "seed"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bundle_error(folder, f"{bundle.RECORD}: {key!r} is not a count")
    for key in ("forget_quality", "final_score"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bundle_error(folder, f"{bundle.RECORD}: {key!r} is not a number")
    return record


def _read_arrays(folder: Path, record: dict) -> dict[str, np.ndarray]:
    try:
        with np.load(folder / ensemble.ARRAYS, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("epsilons", "retrained_confidence")}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise _bundle_error(folder, f"{ensemble.ARRAYS} cannot be read ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    shape = (record["models"], record["forget_samples"])
    if arrays["epsilons"].shape != shape[1:] or arrays["retrained_confidence"].shape != shape:
        raise _bundle_error(folder, f"{ensemble.ARRAYS} does not hold eps of shape {shape[1:]} "
                            f"and retrained confidences of shape {shape}, as {bundle.RECORD} "
                            "says")
    try:
        quality = forget_quality.forget_quality(arrays["epsilons"], record["models"])
    except ConfigError as exc:
        raise _bundle_error(folder, f"{ensemble.ARRAYS}: {exc}") from exc
    if not math.isclose(quality, record["forget_quality"], rel_tol=0, abs_tol=F_TOLERANCE):
        raise _bundle_error(folder, f"{bundle.RECORD} says F {record['forget_quality']!r} but "
                            f"its eps give {quality!r}", "check it with `unlearnlab rescore`")
    return arrays


def load_studies(folders: Sequence[str | Path]) -> dict:
    """The forget-quality bundles ``folders`` (each a folder written by ``unlearnlab
    forget-quality``) of one scenario and one N, with both references:

    ``{"scenario": {key: value of SCENARIO_KEYS}, "models": N, "epsilons": {name: eps},
    "records": {name: record}, "folders": {name: Path}}``, the names being the methods' (with
    their preset when not the default one). Every record is checked before any array is read,
    and every bundle before anything is returned; a one-line ``ConfigError`` names the bundle,
    the problem and the fix: not a forget-quality bundle, damaged, another scenario or N than
    the first bundle, a method twice, a reference missing, or scored against other retrained
    models than the first bundle (the same scenario trained with other options).
    """
    folders = [Path(f) for f in folders]
    if not folders:
        raise ConfigError("no bundle given: pass the folders written by `unlearnlab "
                          "forget-quality`")
    records = {}
    paths = {}
    first_folder, first = folders[0], None
    for folder in folders:
        record = read_study_record(folder)
        first = first or record
        for key in SCENARIO_KEYS:
            if record.get(key) != first.get(key):
                raise ConfigError(f"bundles '{first_folder}' and '{folder}' are of different "
                                  f"scenarios ({key} {first.get(key)!r} and "
                                  f"{record.get(key)!r}): draw one scenario per figure")
        if record["models"] != first["models"]:
            raise ConfigError(f"bundles '{first_folder}' and '{folder}' have different N "
                              f"({first['models']} and {record['models']} models per side): "
                              "draw one N per figure")
        name = _label(record)
        if name in records:
            raise ConfigError(f"bundles '{paths[name]}' and '{folder}' are both of {name!r}: "
                              "pass one bundle per method")
        records[name], paths[name] = record, folder
    for reference in REFERENCE_LABELS:
        if reference not in records:
            raise ConfigError(f"no {reference!r} bundle among the {len(folders)} given: run "
                              f"`unlearnlab forget-quality --method {reference}` with the "
                              "same options and pass its folder too")
    epsilons, retrained = {}, None
    for name, folder in paths.items():
        arrays = _read_arrays(folder, records[name])
        if retrained is None:
            retrained = arrays["retrained_confidence"]
        elif not np.allclose(arrays["retrained_confidence"], retrained, rtol=1e-4, atol=1e-4):
            # The record does not name every training option (--epochs, --train-per-class),
            # but the shared retrained side does: the same scenario scores the same models.
            raise ConfigError(f"bundles '{first_folder}' and '{folder}' score against "
                              "different retrained models (their retrained confidences "
                              "differ): they come from different scenarios or training "
                              "options; draw one scenario per figure")
        epsilons[name] = arrays["epsilons"]
    return {"scenario": {key: first[key] for key in SCENARIO_KEYS}, "models": first["models"],
            "epsilons": epsilons, "records": records, "folders": paths}


def scenario_title(studies: Mapping) -> str:
    """``dataset / arch / forget spec (samples) / seed S``, with `` / quick`` in quick mode."""
    s = studies["scenario"]
    return (f"{s['dataset']} / {s['arch']} / forget {s['forget']} ({s['forget_samples']} "
            f"samples) / seed {s['seed']}{' / quick' if s['quick'] else ''}")
