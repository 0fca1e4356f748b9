"""How an unlearned model is judged against the model retrained without the forget set: the
average gap (SalUn's "Avg. Gap"), the place of a value in the retrained ensemble's spread
(z-score) and the guard flags (collapse, over-forgetting)."""

from __future__ import annotations

import math

import numpy as np

# SalUn's "Avg. Gap" (Fan et al. 2024, Table 1): UA (forget accuracy), RA, TA and MIA-Efficacy,
# plus the forget-test accuracy that feature forgetting is judged by. TA is the retain part of
# the test set, as SalUn drops the forgotten class from it.
GAP_KEYS = ("forget_train_acc", "forget_test_acc", "retain_train_acc", "retain_test_acc",
            "mia_efficacy")


def avg_gap(model: dict, reference: dict) -> float | None:
    """Mean of |model[k] - reference[k]| over ``GAP_KEYS`` present in both (fractions; x100
    for points). A model compared with itself has gap 0."""
    gaps = [abs(model[k] - reference[k]) for k in GAP_KEYS
            if model.get(k) is not None and reference.get(k) is not None]
    return float(np.mean(gaps)) if gaps else None


def z_score(value: float | None, mean: float, std: float, floor: float = 1e-3) -> float | None:
    """(value - mean) / max(std, floor): where ``value`` lies in the retrained ensemble's
    spread; the floor keeps a zero-spread ensemble from giving infinities."""
    if value is None or mean is None or not math.isfinite(mean):
        return None
    return (value - mean) / max(std if math.isfinite(std) else 0.0, floor)


# Guards: how far below the retrained reference an unlearned model may fall (in accuracy
# fractions) before it is flagged.
COLLAPSE_GAP = 0.10        # retain test accuracy: the model no longer does its job
OVER_FORGETTING_GAP = 0.10  # forget test accuracy: it forgot more than retraining would


def guard_flags(unlearned: dict, reference: dict) -> list[str]:
    """Flags of one unlearned model against a reference (a retrained model's evaluation, or the
    retrained ensemble's means): ``collapse`` and ``over_forgetting``."""
    flags = []
    if unlearned["retain_test_acc"] < reference["retain_test_acc"] - COLLAPSE_GAP:
        flags.append("collapse")
    forget, ref = unlearned.get("forget_test_acc"), reference.get("forget_test_acc")
    if forget is not None and ref is not None and forget < ref - OVER_FORGETTING_GAP:
        flags.append("over_forgetting")
    return flags
