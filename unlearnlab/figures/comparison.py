"""The named figures of an ensemble comparison, one function per figure (the netcomp
notebooks and the thesis figures).

Each function takes the ``Comparison`` of ``unlearnlab.compare.compare``, pulls the numbers it
already computed and draws them with ``ensemble`` and ``weights``, returns the figure and
writes it to ``save`` (a path; the suffix names the format) only when asked. No metric is
computed here, except the parameter differences that the weight and layer-distance figures are
about (``unlearnlab.metrics.layer_distances``) and means over seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from ..compare import BASELINES, Comparison
from ..data import DIGIT_CLASSES, FASHION_CLASSES
from ..metrics import layer_distances
from . import ensemble, weights
from .style import ORIGINAL, RETRAINED, UNLEARNED

SPLITS = {"train": ("train",), "test": ("test",), "both": ("train", "test")}


def _splits(split: str) -> tuple[str, ...]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    return SPLITS[split]


def _methods(cmp: Comparison) -> list[str]:
    return [m for m in dict.fromkeys(cmp.rows["model"]) if m not in BASELINES]


def _scenario(cmp: Comparison) -> str:
    """"<dataset>, forgetting <spec>" from the records (empty without a method)."""
    if not cmp.records:
        return ""
    record = cmp.records[0]
    return f"{record['dataset']}, forgetting {record['forget']}"


def _class_names(dataset: str) -> tuple[str, ...]:
    return FASHION_CLASSES if dataset == "fashion_mnist" else DIGIT_CLASSES


def ensemble_accuracy_boxes(cmp: Comparison, split: str = "test", save=None) -> Figure:
    """Accuracy per subset (all / retain / forget / rest of class / other classes), one box
    per model type over the seeds; ``split`` is "train", "test" or "both" (two panels)."""
    scenario = _scenario(cmp)
    return ensemble.plot_accuracy_boxes(
        cmp.rows, _splits(split), path=save,
        title=f"Ensemble accuracy: {scenario}" if scenario else None)


def ensemble_loss_boxes(cmp: Comparison, split: str = "test", save=None) -> Figure:
    """Mean cross-entropy per subset, one box per model type over the seeds (no fixed
    range; a log axis when the losses span more than two decades)."""
    scenario = _scenario(cmp)
    return ensemble.plot_loss_boxes(cmp.rows, _splits(split), path=save,
                                    title=f"Ensemble loss: {scenario}" if scenario else None)


def ensemble_training_curves(cmp: Comparison, save=None) -> Figure:
    """Test (and running train) accuracy and loss per epoch of the trained and retrained
    ensembles, mean ± std over the seeds."""
    seeds = sorted(cmp.histories)
    histories = {role: [cmp.histories[s][role] for s in seeds]
                 for role in (ORIGINAL, RETRAINED)}
    return ensemble.plot_ensemble_curves(histories, path=save,
                                         title=f"Training of the {ORIGINAL} and {RETRAINED} "
                                               "ensembles")


def kl_heatmap(cmp: Comparison, save=None) -> Figure:
    """The KL matrix of all models on the forget training set, mean ± std over seeds; entry
    [row, col] = mean KL(P_row ‖ P_col) (the thesis's heatmaps held the transpose)."""
    seeds = sorted(cmp.kl)
    names = cmp.kl[seeds[0]][0]
    stack = np.stack([cmp.kl[s][1] for s in seeds])
    with warnings.catch_warnings():  # a model that diverged in every seed has only NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(stack, axis=0), np.nanstd(stack, axis=0)
    diverged = np.isnan(stack).any(axis=(1, 2)).sum()
    note = f", {diverged} with a diverged run left out" if diverged else ""
    return ensemble.plot_kl_heatmap(names, mean, std=std if len(seeds) > 1 else None,
                                    path=save,
                                    data=f"the forget training set ({len(seeds)} seeds{note})")


def _first_linear(model: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if isinstance(m, nn.Linear))


def weight_change_heatmap(cmp: Comparison, seed: int = 0, layer: str | None = None,
                          save=None) -> Figure:
    """|Δ| of ``<layer>.weight`` (default: the first linear layer, fc1 as in the thesis)
    between the trained model of ``seed`` and its retrained model and each method's result.
    Trained and retrained start from the same initialisation (same seed)."""
    models = cmp.models[seed]
    layer = layer or _first_linear(models[ORIGINAL])
    before = dict(models[ORIGINAL].named_modules())[layer].weight.detach().cpu().numpy()
    changes = {}
    for name in (RETRAINED, *(m for m in models if m not in BASELINES)):
        after = dict(models[name].named_modules())[layer].weight.detach().cpu().numpy()
        changes[f"{name} − {ORIGINAL}"] = np.abs(after - before)
    return weights.plot_weight_change(changes, layer=f"{layer}.weight", path=save,
                                      title=f"|Δ {layer}.weight| against the {ORIGINAL} model "
                                            f"(seed {seed}; shared log colour scale)")


def layer_distance_bars(cmp: Comparison, p: int = 2, save=None) -> Figure:
    """Per parameter tensor, the Lp distance (``metrics.layer_distances``) of the retrained
    model and of each method's result to the trained model of the same seed; bars: mean over
    seeds, dots: seeds, log axis."""
    distances: dict[str, dict[str, list[float]]] = {}
    for seed in sorted(cmp.models):
        models = cmp.models[seed]
        for name in (RETRAINED, *(m for m in models if m not in BASELINES)):
            per_tensor = layer_distances(models[ORIGINAL], models[name], p=p)
            for tensor, value in per_tensor.items():
                distances.setdefault(name, {}).setdefault(tensor, []).append(value)
    return weights.plot_layer_distances(distances, reference=ORIGINAL, p=p, path=save)


def confusion_vs_retrained(cmp: Comparison, method: str, save=None) -> Figure:
    """Test-set confusion matrices of the trained, retrained and ``method``-unlearned models
    (mean counts over seeds) and the difference unlearned − retrained."""
    records = [r for r in cmp.records if r["method"] == method]
    if not records:
        raise ValueError(f"the comparison has no records of method '{method}'; it has "
                         f"{', '.join(_methods(cmp)) or 'none'}")
    records = [r for r in records if r["models"][UNLEARNED] is not None]
    if not records:
        raise ValueError(f"every run of method '{method}' diverged: no unlearned model to show")
    roles = {ORIGINAL: ORIGINAL, RETRAINED: RETRAINED, method: UNLEARNED}
    matrices = {name: np.mean([r["models"][role]["confusion_test"] for r in records], axis=0)
                for name, role in roles.items()}
    record = records[0]
    return ensemble.plot_confusion_vs_reference(
        matrices, reference=RETRAINED, compared=method, path=save,
        labels=_class_names(record["dataset"]),
        title=f"Test-set confusion matrices, {record['dataset']}, forgetting "
              f"{record['forget']} (mean counts over {len(records)} seeds)")


def preset_rows(cmp: Comparison, other: Comparison, variant: str = "thesis preset"):
    """The rows of ``cmp`` plus the method rows of ``other`` renamed "<method> (<variant>)"
    (the baselines of both are the same cached models)."""
    extra = other.rows[~other.rows["model"].isin(BASELINES)].copy()
    extra["model"] = extra["model"] + f" ({variant})"
    return pd.concat([cmp.rows, extra], ignore_index=True)


def preset_accuracy_boxes(cmp: Comparison, other: Comparison, split: str = "test",
                          variant: str = "thesis preset", save=None) -> Figure:
    """Accuracy per subset of the baselines and each method with the lab's defaults next to
    the same method with another preset (lighter shade)."""
    scenario = _scenario(cmp)
    return ensemble.plot_accuracy_boxes(preset_rows(cmp, other, variant), _splits(split),
                                        path=save, title=f"Lab defaults vs {variant}: {scenario}")
