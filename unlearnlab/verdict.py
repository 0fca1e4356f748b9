"""How an unlearned model is judged against retraining without the forget set.

Against the retrained **ensemble** (``compare``, ``bench``): the primary verdict is
``avg_abs_z``, the mean over ``GAP_KEYS`` of |z|, where z = (value − retrained mean) /
max(retrained std, ``Z_FLOOR``) places a value in the ensemble's spread (``z_score``); a
method "lies on average k σ from retraining", to be read against ``retrained_avg_abs_z``,
what a model retrained independently would score. ``ensemble_flags`` flags a run by the same
spread (``SPREAD_Z``) and by one absolute usability guard (``COLLAPSE_GAP``). The average gap
in accuracy/MIA points (``avg_gap``, SalUn's "Avg. Gap") is kept as a secondary number.

Against one retrained model (a single run's record, ``experiment.run_method``): there is no
spread, so a record carries ``avg_gap`` and the point guards of ``guard_flags``.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError

# SalUn's "Avg. Gap" (Fan et al. 2024, Table 1): UA (forget accuracy), RA, TA and MIA-Efficacy,
# plus the forget-test accuracy that feature forgetting is judged by. TA is the retain part of
# the test set, as SalUn drops the forgotten class from it.
GAP_KEYS = ("forget_train_acc", "forget_test_acc", "retain_train_acc", "retain_test_acc",
            "mia_efficacy")

# The smallest spread a z-score divides by: 0.1 points. Only a retrained ensemble pinned at a
# bound spreads less (0 % on a forgotten class, MIA efficacy 1.000 on every seed); there a
# zero std would make any difference infinite. 0.1 points is about one sample of the smallest
# whole-class test split (MNIST's 958 test sixes), so one sample off reads as about 1 sigma.
Z_FLOOR = 1e-3

# How many retrained standard deviations away a value is flagged (``ensemble_flags``): beyond
# 3 sigma lies 0.3 % of a normal distribution, so a retrained model would hardly ever be there.
SPREAD_Z = 3.0

# Guards in accuracy fractions: how far below the retrained reference a value may fall before
# it is flagged, whatever the spread.
COLLAPSE_GAP = 0.10        # retain test accuracy: the model no longer does its job
OVER_FORGETTING_GAP = 0.10  # forget accuracy, in a single run's record only
UNDER_FORGETTING_GAP = 0.10  # forget accuracy above the reference, in a record only


def avg_gap(model: dict, reference: dict) -> float | None:
    """Mean of |model[k] - reference[k]| over ``GAP_KEYS`` present in both (fractions; x100
    for points). A model compared with itself has gap 0."""
    gaps = [abs(model[k] - reference[k]) for k in GAP_KEYS
            if model.get(k) is not None and reference.get(k) is not None]
    return float(np.mean(gaps)) if gaps else None


def z_score(value: float | None, mean: float | None, std: float | None,
            floor: float = Z_FLOOR) -> float | None:
    """(value - mean) / max(std, floor): where ``value`` lies in the retrained ensemble's
    spread, ``std`` its standard deviation (ddof 1). None when the value or the mean is
    missing or the std is unknown (None or NaN: one retrained model has no spread)."""
    if value is None or mean is None or not math.isfinite(mean):
        return None
    if std is None or not math.isfinite(std):
        return None
    return (value - mean) / max(std, floor)


def avg_abs_z(model: dict, mean: dict, std: dict, floor: float = Z_FLOOR) -> float | None:
    """The primary verdict: the mean of |``z_score``(model[k], mean[k], std[k])| over the
    ``GAP_KEYS`` where it is defined (``mean``, ``std``: the retrained ensemble's mean and std,
    ddof 1, per key). Read it as "on average this many retrained standard deviations from
    retraining": 0 is the ensemble's mean; an independently retrained model scores about
    ``retrained_avg_abs_z(N)`` (1.10 with 5 seeds). None when no key has a z-score (one
    retrained model)."""
    zs = [z_score(model.get(k), mean.get(k), std.get(k), floor) for k in GAP_KEYS]
    zs = [abs(z) for z in zs if z is not None]
    return float(np.mean(zs)) if zs else None


def retrained_avg_abs_z(seeds: int) -> float:
    """The expected avg |z| of a model retrained independently of an ensemble of ``seeds``
    retrained models: the reference a method's avg |z| is read against. For a normally spread
    metric (and no floor) z = sqrt(1 + 1/N) t with t Student-distributed with v = N - 1 degrees
    of freedom, as the mean and std are estimated from N models, so
    E|z| = sqrt(1 + 1/N) sqrt(v) Gamma((v - 1)/2) / (sqrt(pi) Gamma(v/2)): 1.63 at N = 3,
    1.10 at 5, 0.92 at 10, tending to sqrt(2/pi) = 0.80. Infinite at N = 2 (t with one degree
    of freedom has no mean: the spread of two models is too poorly known)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(f"seeds must be an integer of at least 2 (one retrained model has no "
                          f"spread), got {seeds!r}")
    if seeds == 2:
        return math.inf
    v = seeds - 1
    mean_abs_t = math.sqrt(v) * math.exp(math.lgamma((v - 1) / 2) - math.lgamma(v / 2)) \
        / math.sqrt(math.pi)
    return math.sqrt(1 + 1 / seeds) * mean_abs_t


def forgetting_key(mean: dict) -> str:
    """The accuracy the forgetting flags read: ``forget_test_acc`` where the retrained
    ensemble has one (class and feature forgetting: unseen samples of what was forgotten),
    else ``forget_train_acc`` (random forgetting: the test split holds no forget sample)."""
    value = mean.get("forget_test_acc")
    return "forget_test_acc" if value is not None and math.isfinite(value) else \
        "forget_train_acc"


def ensemble_flags(model: dict, mean: dict, std: dict) -> list[str]:
    """Flags of one unlearned model against the retrained ensemble (``mean``, ``std``: its
    mean and std, ddof 1, per key), in this order:

    - ``collapse``: retain test accuracy more than ``COLLAPSE_GAP`` (10 points) below the
      retrained mean, whatever the spread: the model no longer does its job;
    - ``retain_damage``: retain test accuracy more than ``SPREAD_Z`` (3) sigma below the
      retrained mean: damage retraining would not do;
    - ``over_forgetting``: the forget accuracy (``forgetting_key``) more than 3 sigma below the
      retrained mean: it forgot more than retraining would;
    - ``under_forgetting``: the forget accuracy more than 3 sigma above the retrained mean: it
      keeps accuracy on the forget set that retraining would not have.

    The sigma flags need a spread (two retrained models or more); with one they are not
    raised, as ``z_score`` is None."""
    flags = []
    retain, retain_mean = model.get("retain_test_acc"), mean.get("retain_test_acc")
    if retain is not None and retain_mean is not None and retain < retain_mean - COLLAPSE_GAP:
        flags.append("collapse")
    z_retain = z_score(retain, retain_mean, std.get("retain_test_acc"))
    if z_retain is not None and z_retain < -SPREAD_Z:
        flags.append("retain_damage")
    key = forgetting_key(mean)
    z_forget = z_score(model.get(key), mean.get(key), std.get(key))
    if z_forget is not None and z_forget < -SPREAD_Z:
        flags.append("over_forgetting")
    if z_forget is not None and z_forget > SPREAD_Z:
        flags.append("under_forgetting")
    return flags


def flag_counts_text(counts: dict[str, int], total: int, unit: str) -> str:
    """The flags raised at least once, each with how many of the ``total`` runs raised it,
    e.g. ``collapse (2 of 5 seeds), retain-damage (1 of 5 seeds)`` (``unit``: "seeds",
    "runs"); empty when none was."""
    return ", ".join(f"{name.replace('_', '-')} ({int(n)} of {int(total)} {unit})"
                     for name, n in counts.items() if n)


def guard_flags(unlearned: dict, reference: dict) -> list[str]:
    """Flags of a single run's record against its one retrained model (no spread to judge
    by), in points: ``collapse`` (retain test accuracy more than ``COLLAPSE_GAP`` below),
    ``over_forgetting`` and ``under_forgetting`` (forget accuracy, ``forgetting_key``, more
    than ``OVER_FORGETTING_GAP`` below or ``UNDER_FORGETTING_GAP`` above: a forgetting that did
    not happen). ``compare`` and ``bench`` replace them with ``ensemble_flags``."""
    flags = []
    if unlearned["retain_test_acc"] < reference["retain_test_acc"] - COLLAPSE_GAP:
        flags.append("collapse")
    key = forgetting_key(reference)
    forget, ref = unlearned.get(key), reference.get(key)
    if forget is not None and ref is not None:
        if forget < ref - OVER_FORGETTING_GAP:
            flags.append("over_forgetting")
        elif forget > ref + UNDER_FORGETTING_GAP:
            flags.append("under_forgetting")
    return flags
