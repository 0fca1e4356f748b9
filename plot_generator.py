"""The named figures of the notebooks and the README, one function per figure.

Each function of the first part takes the ``RunResult`` of ``unlearnlab.experiment.run`` (or
of ``specific_sample_unlearning.forget_class``); each ``ensemble_*`` function and those after
it take the ``Comparison`` of ``unlearnlab.compare.compare`` (the netcomp notebooks). They pull
the numbers the run already computed and draw them with ``unlearnlab.plots``, return the
figure and write it to ``save`` (a path; the suffix names the format) only when asked. No
metric is computed here, except the parameter differences that the weight and layer-distance
figures are about (``unlearnlab.metrics.layer_distances``) and means over seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from unlearnlab import plots
from unlearnlab.compare import BASELINES, Comparison
from unlearnlab.data import DIGIT_CLASSES, FASHION_CLASSES, stratified_rows
from unlearnlab.experiment import RunResult
from unlearnlab.forget import forget_class
from unlearnlab.metrics import layer_distances
from unlearnlab.training import predict

# Panel order and titles of the three models in every figure.
MODELS = {"original": "before unlearning (original)", "unlearned": "after unlearning",
          "retrained": "retrained without the forget set (reference)"}


class _Features(nn.Module):
    """``model.features`` as a module, so ``training.predict`` can batch it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.features(x)


def _forgotten_class(result: RunResult) -> int:
    sc = result.scenario
    return forget_class(sc.spec, sc.dataset, sc.config.data_dir)


def _unlearn_label(result: RunResult) -> str:
    target = result.record["params"].get("target")
    if result.record["method"] == "relabel" and target is not None:
        return (f"unlearning (train set, against the relabelled targets: "
                f"{_forgotten_class(result)} counted as {target})")
    return plots.UNLEARN_LABEL


def _phase_label(result: RunResult) -> str:
    frozen = result.record["params"].get("freeze")
    return f"unlearning phase ({', '.join(frozen)} frozen)" if frozen else "unlearning phase"


def _curve_args(result: RunResult) -> dict:
    return {"unlearn_label": _unlearn_label(result), "phase_label": _phase_label(result)}


def accuracy_curves(result: RunResult, save=None) -> Figure:
    """Accuracy per epoch: training (with test accuracy per epoch), then unlearning."""
    final = result.record["models"]["unlearned"]["test_acc"]
    return plots.plot_accuracy(result.histories["original"], result.histories["unlearn"],
                               final_test=final, path=save, **_curve_args(result))


def loss_curves(result: RunResult, save=None) -> Figure:
    """Loss per epoch: training (with test loss per epoch), then unlearning."""
    final = result.record["models"]["unlearned"]["test_loss"]
    return plots.plot_loss(result.histories["original"], result.histories["unlearn"],
                           final_test=final, path=save, **_curve_args(result))


def training_curves(result: RunResult, save=None) -> Figure:
    """Accuracy and loss per epoch side by side (the README's curves figure)."""
    unlearned = result.record["models"]["unlearned"]
    return plots.plot_curves(result.histories["original"], result.histories["unlearn"],
                             final_test_acc=unlearned["test_acc"],
                             final_test_loss=unlearned["test_loss"], path=save,
                             **_curve_args(result))


def confusion_matrices(result: RunResult, save=None) -> Figure:
    """Test-set confusion matrices before / after unlearning and of the retrained model."""
    models = result.record["models"]
    forget = result.record["forget"].replace(":", " ")
    return plots.plot_confusion_matrices(
        {title: models[name]["confusion_test"] for name, title in MODELS.items()},
        labels=result.scenario.dataset.classes, path=save,
        title=f"Test-set confusion matrices, forgetting {forget}")


def per_class_accuracy(result: RunResult, save=None) -> Figure:
    """Per-class test accuracy of the original, unlearned and retrained models."""
    models = result.record["models"]
    return plots.plot_per_class_accuracy(
        {name: models[name]["per_class_test_acc"] for name in MODELS},
        labels=result.scenario.dataset.classes, highlight=_forgotten_class(result), path=save)


def forget_predictions(result: RunResult, save=None) -> Figure:
    """Where each model sends the forgotten test samples (counts per predicted class)."""
    models = result.record["models"]
    return plots.plot_forget_predictions(
        {name: models[name]["forget_test_predictions"] for name in MODELS},
        labels=result.scenario.dataset.classes, highlight=_forgotten_class(result), path=save)


def weight_heatmap(result: RunResult, layer: str = "fc3", save=None) -> Figure:
    """``<layer>.weight`` of the original and unlearned models and its change."""
    before = dict(result.models["original"].named_modules())[layer].weight.detach().cpu()
    after = dict(result.models["unlearned"].named_modules())[layer].weight.detach().cpu()
    classes = result.scenario.dataset.classes
    rows = classes if before.shape[0] == len(classes) else None
    return plots.plot_weight_heatmaps(
        {f"original {layer}.weight": before, f"unlearned {layer}.weight": after,
         f"change (unlearned − original) of {layer}.weight": after - before},
        cbar_labels=["weight", "weight", "change"], row_labels=rows,
        ylabel="output class" if rows else "output unit", path=save)


def pca_features(result: RunResult, max_points: int = 2000, seed: int = 0, save=None) -> Figure:
    """2-D PCA of the penultimate features of test samples before vs after unlearning, fitted
    on the original model's features (at most ``max_points``, a fixed stratified sample)."""
    test = result.scenario.test
    per_class = max(1, max_points // result.scenario.dataset.num_classes)
    rows = stratified_rows(test.y, per_class, seed)
    feats = {MODELS[name]: predict(_Features(result.models[name]), test.x[rows]).numpy()
             for name in ("original", "unlearned")}  # predict batches under no_grad
    return plots.plot_pca(feats, test.y[rows].numpy(), class_names=result.scenario.dataset.classes,
                          highlight=_forgotten_class(result), path=save,
                          title="Penultimate-layer features of test samples (PCA fitted on the "
                                "original model)")


# --- ensembles: figures of a ``compare.Comparison`` ------------------------------------------

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
    return plots.plot_accuracy_boxes(cmp.rows, _splits(split), path=save,
                                     title=f"Ensemble accuracy: {scenario}" if scenario else None)


def ensemble_loss_boxes(cmp: Comparison, split: str = "test", save=None) -> Figure:
    """Mean cross-entropy per subset, one box per model type over the seeds (no fixed
    range; a log axis when the losses span more than two decades)."""
    scenario = _scenario(cmp)
    return plots.plot_loss_boxes(cmp.rows, _splits(split), path=save,
                                 title=f"Ensemble loss: {scenario}" if scenario else None)


def ensemble_training_curves(cmp: Comparison, save=None) -> Figure:
    """Test (and running train) accuracy and loss per epoch of the trained and retrained
    ensembles, mean ± std over the seeds."""
    seeds = sorted(cmp.histories)
    histories = {role: [cmp.histories[s][role] for s in seeds]
                 for role in ("trained", "retrained")}
    return plots.plot_ensemble_curves(histories, path=save,
                                      title="Training of the trained and retrained ensembles")


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
    return plots.plot_kl_heatmap(names, mean, std=std if len(seeds) > 1 else None, path=save,
                                 data=f"the forget training set ({len(seeds)} seeds{note})")


def _first_linear(model: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if isinstance(m, nn.Linear))


def weight_change_heatmap(cmp: Comparison, seed: int = 0, layer: str | None = None,
                          save=None) -> Figure:
    """|Δ| of ``<layer>.weight`` (default: the first linear layer, fc1 as in the thesis)
    between the trained model of ``seed`` and its retrained model and each method's result.
    Trained and retrained start from the same initialisation (same seed)."""
    models = cmp.models[seed]
    layer = layer or _first_linear(models["trained"])
    before = dict(models["trained"].named_modules())[layer].weight.detach().cpu().numpy()
    changes = {}
    for name in ("retrained", *(m for m in models if m not in BASELINES)):
        after = dict(models[name].named_modules())[layer].weight.detach().cpu().numpy()
        changes[f"{name} − trained"] = np.abs(after - before)
    return plots.plot_weight_change(changes, layer=f"{layer}.weight", path=save,
                                    title=f"|Δ {layer}.weight| against the trained model "
                                          f"(seed {seed}; shared log colour scale)")


def layer_distance_bars(cmp: Comparison, p: int = 2, save=None) -> Figure:
    """Per parameter tensor, the Lp distance (``metrics.layer_distances``) of the retrained
    model and of each method's result to the trained model of the same seed; bars: mean over
    seeds, dots: seeds, log axis."""
    distances: dict[str, dict[str, list[float]]] = {}
    for seed in sorted(cmp.models):
        models = cmp.models[seed]
        for name in ("retrained", *(m for m in models if m not in BASELINES)):
            per_tensor = layer_distances(models["trained"], models[name], p=p)
            for tensor, value in per_tensor.items():
                distances.setdefault(name, {}).setdefault(tensor, []).append(value)
    return plots.plot_layer_distances(distances, reference="trained", p=p, path=save)


def confusion_vs_retrained(cmp: Comparison, method: str, save=None) -> Figure:
    """Test-set confusion matrices of the trained, retrained and ``method``-unlearned models
    (mean counts over seeds) and the difference unlearned − retrained."""
    records = [r for r in cmp.records if r["method"] == method]
    if not records:
        raise ValueError(f"the comparison has no records of method '{method}'; it has "
                         f"{', '.join(_methods(cmp)) or 'none'}")
    records = [r for r in records if r["models"]["unlearned"] is not None]
    if not records:
        raise ValueError(f"every run of method '{method}' diverged: no unlearned model to show")
    roles = {"trained": "original", "retrained": "retrained", method: "unlearned"}
    matrices = {name: np.mean([r["models"][role]["confusion_test"] for r in records], axis=0)
                for name, role in roles.items()}
    record = records[0]
    return plots.plot_confusion_vs_reference(
        matrices, reference="retrained", compared=method, path=save,
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
    return plots.plot_accuracy_boxes(preset_rows(cmp, other, variant), _splits(split),
                                     path=save, title=f"Lab defaults vs {variant}: {scenario}")
