"""The named figures of one run, one function per figure (``project_main.ipynb`` and the
README's class-forgetting figures).

Each function takes the ``RunResult`` of ``unlearnlab.experiment.run``, pulls the numbers the
run already computed and draws them with ``run`` and ``weights``, returns the figure and writes
it to ``save`` (a path; the suffix names the format) only when asked. No metric is computed
here: the PCA figure runs the models on test samples to get the features it projects.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import nn

from ..data import stratified_rows
from ..experiment import RunResult
from ..training import predict
from . import run, weights
from .style import ORIGINAL, RUN_TITLES, UNLEARN_LABEL, UNLEARNED


class _Features(nn.Module):
    """``model.features`` as a module, so ``training.predict`` can batch it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.features(x)


def _forgotten_class(result: RunResult) -> int:
    sc = result.scenario
    return sc.forget_class


def _unlearn_label(result: RunResult) -> str:
    target = result.record["params"].get("target")
    if result.record["method"] == "relabel" and target is not None:
        return (f"unlearning (train set, against the relabelled targets: "
                f"{_forgotten_class(result)} counted as {target})")
    return UNLEARN_LABEL


def _phase_label(result: RunResult) -> str:
    frozen = result.record["params"].get("freeze")
    return f"unlearning phase ({', '.join(frozen)} frozen)" if frozen else "unlearning phase"


def _curve_args(result: RunResult) -> dict:
    return {"unlearn_label": _unlearn_label(result), "phase_label": _phase_label(result)}


def accuracy_curves(result: RunResult, save=None) -> Figure:
    """Accuracy per epoch: training (with test accuracy per epoch), then unlearning."""
    final = result.record["models"][UNLEARNED]["test_acc"]
    return run.plot_accuracy(result.histories[ORIGINAL], result.histories["unlearn"],
                           final_test=final, path=save, **_curve_args(result))


def loss_curves(result: RunResult, save=None) -> Figure:
    """Loss per epoch: training (with test loss per epoch), then unlearning."""
    final = result.record["models"][UNLEARNED]["test_loss"]
    return run.plot_loss(result.histories[ORIGINAL], result.histories["unlearn"],
                         final_test=final, path=save, **_curve_args(result))


def training_curves(result: RunResult, save=None) -> Figure:
    """Accuracy and loss per epoch side by side (the README's curves figure)."""
    unlearned = result.record["models"][UNLEARNED]
    return run.plot_curves(result.histories[ORIGINAL], result.histories["unlearn"],
                           final_test_acc=unlearned["test_acc"],
                           final_test_loss=unlearned["test_loss"], path=save,
                           **_curve_args(result))


def confusion_matrices(result: RunResult, save=None) -> Figure:
    """Test-set confusion matrices before / after unlearning and of the retrained model."""
    models = result.record["models"]
    forget = result.record["forget"].replace(":", " ")
    return run.plot_confusion_matrices(
        {title: models[name]["confusion_test"] for name, title in RUN_TITLES.items()},
        labels=result.scenario.dataset.classes, path=save,
        title=f"Test-set confusion matrices, forgetting {forget}")


def per_class_accuracy(result: RunResult, save=None) -> Figure:
    """Per-class test accuracy of the original, unlearned and retrained models."""
    models = result.record["models"]
    return run.plot_per_class_accuracy(
        {name: models[name]["per_class_test_acc"] for name in RUN_TITLES},
        labels=result.scenario.dataset.classes, highlight=_forgotten_class(result), path=save)


def forget_predictions(result: RunResult, save=None) -> Figure:
    """Where each model sends the forgotten test samples (counts per predicted class)."""
    models = result.record["models"]
    return run.plot_forget_predictions(
        {name: models[name]["forget_test_predictions"] for name in RUN_TITLES},
        labels=result.scenario.dataset.classes, highlight=_forgotten_class(result), path=save)


def weight_heatmap(result: RunResult, layer: str = "fc3", save=None) -> Figure:
    """``<layer>.weight`` of the original and unlearned models and its change."""
    before = dict(result.models[ORIGINAL].named_modules())[layer].weight.detach().cpu()
    after = dict(result.models[UNLEARNED].named_modules())[layer].weight.detach().cpu()
    classes = result.scenario.dataset.classes
    rows = classes if before.shape[0] == len(classes) else None
    return weights.plot_weight_heatmaps(
        {f"{ORIGINAL} {layer}.weight": before, f"{UNLEARNED} {layer}.weight": after,
         f"change ({UNLEARNED} − {ORIGINAL}) of {layer}.weight": after - before},
        cbar_labels=["weight", "weight", "change"], row_labels=rows,
        ylabel="output class" if rows else "output unit", path=save)


def pca_features(result: RunResult, max_points: int = 2000, seed: int = 0, save=None) -> Figure:
    """2-D PCA of the penultimate features of test samples before vs after unlearning, fitted
    on the original model's features (at most ``max_points``, a fixed stratified sample)."""
    test = result.scenario.test
    per_class = max(1, max_points // result.scenario.dataset.num_classes)
    rows = stratified_rows(test.y, per_class, seed)
    feats = {RUN_TITLES[name]: predict(_Features(result.models[name]), test.x[rows]).numpy()
             for name in (ORIGINAL, UNLEARNED)}  # predict batches under no_grad
    return run.plot_pca(feats, test.y[rows].numpy(), class_names=result.scenario.dataset.classes,
                        highlight=_forgotten_class(result), path=save,
                        title="Penultimate-layer features of test samples (PCA fitted on the "
                              f"{ORIGINAL} model)")

