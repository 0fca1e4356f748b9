"""Notebook conveniences: re-exports of the package's helpers, the quick-mode switch and a
summary table of a run's record. No training or metric code lives here."""

from __future__ import annotations

import os

import pandas as pd

from unlearnlab.data import load_dataset
from unlearnlab.methods import list_methods
from unlearnlab.training import pick_device, seed_everything

__all__ = ["list_methods", "load_dataset", "pick_device", "quick_mode", "seed_everything",
           "show_table"]

# Row order and labels of the summary table: the record's keys, already computed by the run.
_ROWS = {"test_acc": "test accuracy", "forget_test_acc": "forget test accuracy",
         "retain_test_acc": "retain test accuracy", "forget_train_acc": "forget train accuracy"}
_MODELS = ("original", "unlearned", "retrained")


def quick_mode() -> bool:
    """True when the environment asks for quick mode (``UNLEARNLAB_QUICK=1``, as CI sets)."""
    return os.environ.get("UNLEARNLAB_QUICK") == "1"


def show_table(record: dict, classes=None) -> pd.DataFrame:
    """The three models of ``record`` side by side (columns: original, unlearned, retrained),
    accuracies in percent: overall, forget and retain test accuracy, forget train accuracy,
    then the test accuracy of each class (named by ``classes`` when given)."""
    models = record["models"]
    names = [m for m in _MODELS if m in models] + [m for m in models if m not in _MODELS]
    columns = {}
    for name in names:
        m = models[name]
        values = {label: m[key] for key, label in _ROWS.items()}
        for c, acc in enumerate(m["per_class_test_acc"]):
            values[f"class {classes[c] if classes is not None else c}"] = acc
        columns[name] = values
    table = pd.DataFrame(columns).astype(float).mul(100).round(2)
    table.columns.name = "accuracy (%)"
    return table
