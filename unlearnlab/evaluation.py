"""Per-model evaluation for the JSON record: accuracies on the forget and retain parts of each
split, per-class accuracy and the confusion matrix, all from one batched prediction pass.
How an evaluation is judged against retraining is ``verdict``'s concern."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from torch import nn

from .data import Split


def accuracy(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float | None:
    """Fraction of correct predictions (within ``mask``); None when nothing is selected."""
    if mask is not None:
        pred, y = pred[mask], y[mask]
    return None if len(y) == 0 else (pred == y).sum().item() / len(y)


def mean_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> float | None:
    """True per-sample mean cross-entropy (the thesis divided a sum of batch means by N)."""
    return None if len(y) == 0 else nn.functional.cross_entropy(logits, y).item()


def evaluate_logits(logits: dict[str, torch.Tensor], train: Split, test: Split,
                    masks: dict[str, torch.Tensor], num_classes: int = 10,
                    forget_class: int | None = None) -> dict:
    """The record entry of one model, from its logits on the whole ``train`` and ``test``
    splits: the contract keys plus test loss and train accuracy. An accuracy over no sample is
    None: ``forget_test_acc`` under random forgetting, whose test split holds no forget sample
    (its ``forget_test_predictions`` are then all zero).

    With ``forget_class`` (feature forgetting) it adds the four-way split of each split:
    the forget subset, ``class_rest`` (the rest of its class), ``other_classes`` and all,
    with accuracy and mean cross-entropy (``*_loss``) for each. Class and random forgetting
    pass None: a whole class has no rest, random samples no one class.
    """
    out = {}
    for name, split in (("train", train), ("test", test)):
        pred = logits[name].argmax(1)
        out[f"forget_{name}_acc"] = accuracy(pred, split.y, masks[name])
        out[f"retain_{name}_acc"] = accuracy(pred, split.y, ~masks[name])
        out[f"{name}_acc"] = accuracy(pred, split.y)
        if forget_class is not None:
            in_class = split.y == forget_class
            groups = {"forget": masks[name], "class_rest": in_class & ~masks[name],
                      "other_classes": ~in_class, "all": torch.ones_like(in_class)}
            for group, mask in groups.items():
                out[f"{group}_{name}_acc"] = accuracy(pred, split.y, mask)
                out[f"{group}_{name}_loss"] = mean_cross_entropy(logits[name][mask], split.y[mask])
    pred = logits["test"].argmax(1)
    labels = list(range(num_classes))
    out["test_loss"] = mean_cross_entropy(logits["test"], test.y)
    out["per_class_test_acc"] = [accuracy(pred, test.y, test.y == c) for c in labels]
    out["confusion_test"] = confusion_matrix(test.y.numpy(), pred.numpy(), labels=labels).tolist()
    forget_pred = pred[masks["test"]].numpy()
    out["forget_test_predictions"] = np.bincount(forget_pred, minlength=num_classes).tolist()
    return out
