"""``unlearnlab demo`` (``make demo``): seed A's experiment (C. Fabbri 2024) — MNIST with class
6 over-represented ten times, forgotten by relearning every 6 as a 3 (the ``relabel`` method),
next to the model retrained without any 6 — with what a first-time reader needs around the run's
summary: how long it takes, what each MIA number means, the figures and where the forgotten
sixes went.

The run is ``experiment.run`` on ``demo_config``, nothing more: the demo's numbers are those of
``unlearnlab run --forget class:6 --method relabel --set target=3 --oversample 6:10``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import RunConfig
from .experiment import RunResult

FORGET_CLASS, TARGET_CLASS, OVERSAMPLE = 6, 3, 10
# docs/demo.md: measured cold (both models trained) with OMP_NUM_THREADS=1 on the 2 shared
# cores of the development machine; warm runs load both models from <data root>/models.
EXPECTED_TIME = ("about 15 minutes the first time on 2 busy CPU cores (it trains two CNNs, on "
                 "113,000 and 54,000 images), about a minute once its models are cached")
# What each MIA score of the summary says, in one line (scores are on the forget-train set).
MIA_MEANINGS = {
    "efficacy": "efficacy: share of the forgotten training images an SVC attack calls "
                "'never trained on' (SalUn); compare with the retrained model's, not with 1",
    "entropy": "entropy: share of them a logistic attack on prediction entropy calls "
               "'trained on'; compare with the retrained model's",
    "loss": "loss: how well the per-sample loss tells forgotten training images from unseen "
            "test ones (cross-validated accuracy); 0.5 = cannot tell, as for a model that never "
            "saw them",
}
# Plural names of the digit classes, for "where the forgotten sixes went".
DIGIT_PLURALS = ("zeros", "ones", "twos", "threes", "fours", "fives", "sixes", "sevens",
                 "eights", "nines")


def demo_config(dataset: str = "mnist", quick: bool = False,
                data_dir: str | None = None) -> RunConfig:
    """The demo's run: class 6 over-represented x10, relearnt as 3, cached models reused."""
    return RunConfig(dataset=dataset, forget=f"class:{FORGET_CLASS}", method="relabel",
                     params={"target": TARGET_CLASS}, oversample=(FORGET_CLASS, OVERSAMPLE),
                     quick=quick, data_dir=data_dir)


def prediction_shares(counts, labels, top: int = 4, min_share: float = 0.01) -> str:
    """``counts`` (predictions per class) as the ``top`` most predicted classes with their
    share, e.g. ``3 95 %, 5 2 %, 8 1 %``; classes under ``min_share`` are left out and
    "…" marks that some were."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total == 0:
        return "no predictions"
    order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] / total >= min_share]
    shown = order[:top]
    text = ", ".join(f"{labels[c]} {100 * counts[c] / total:.0f} %" for c in shown)
    return text + (", …" if counts.sum() > counts[shown].sum() else "")


def where_forgotten_went(record: dict, labels) -> str:
    """One line: the classes the unlearned model predicts for the forgotten class's test
    images, next to the retrained model's answer (the reference)."""
    models = record["models"]
    forgotten = int(record["forget"].split(":")[1])
    name = labels[forgotten]
    noun = (DIGIT_PLURALS[forgotten] if str(name) == str(forgotten) and forgotten < 10
            else f"'{name}' images")
    line = f"forgotten {noun} (test set) now predicted as: "
    if models.get("unlearned") is None:
        line += "n/a (the method diverged)"
    else:
        line += prediction_shares(models["unlearned"]["forget_test_predictions"], labels)
    return (line + " (retrained model: "
            + prediction_shares(models["retrained"]["forget_test_predictions"], labels) + ")")


def mia_lines(record: dict) -> list[str]:
    """One line per MIA score the summary printed, saying what it measures."""
    present = {key for m in record["models"].values() if m for key in m}
    return [f"  {meaning}" for key, meaning in MIA_MEANINGS.items() if f"mia_{key}" in present]


def write_figures(result: RunResult, out: Path) -> list[Path]:
    """The class-forgetting figures and the record into ``out`` (created)."""
    from .figures.assets import write_class_forgetting

    out.mkdir(parents=True, exist_ok=True)
    return write_class_forgetting(result, out)
