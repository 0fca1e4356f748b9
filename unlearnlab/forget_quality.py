"""The forget-quality score of the NeurIPS 2023 Machine Unlearning Challenge: how well, sample by
sample, an attacker tells N unlearned models from N models retrained without the forget set.

Source: Triantafillou et al. 2024, "Are we making progress in unlearning? Findings from the first
NeurIPS unlearning competition" (arXiv:2406.09073), and its scoring code, ``metric.py`` and
``main.py`` of ``google-deepmind/unlearning_evaluation`` (commit ffae0ff).

Definition, for each forget-train sample i:

1. Each model gives the sample its logit-scaled confidence c = log p_y - log(1 - p_y)
   (:func:`logit_confidence`), so sample i has N unlearned and N retrained confidences.
2. The side with the larger median confidence is the positive side (the unlearned one on a
   tie). Two families of decision rules guess the side of one confidence:
   - single threshold t: "positive" when c >= t, for t on an even grid of ceil(100 * range)
     points from the smallest to the largest of the 2N confidences;
   - double threshold l <= c <= r: "the peakier side" (the smaller range; the negative side on
     a tie), for r on an even grid of ceil(100 * (hi - lo)) points over [lo, hi] =
     [min + width - 2, max + 2] of the peakier side (width: its range) and, for each r, l on
     400 even points over [r - width - 2, r - width + 2].
3. Each rule's false-positive and false-negative rates over the N + N confidences give
   eps = max(0, log(1 - delta - FPR) - log FNR, log(1 - delta - FNR) - log FPR), delta = 1e-5
   (a side of this max that is log of a negative number does not count). A rule with
   FPR = FNR = 0 separates the sides perfectly: eps = inf. A rule with exactly one of FPR, FNR
   zero is dropped (too few models to estimate it). The sample's eps is the largest over the
   rules kept, capped at 50 (:func:`example_epsilons`).
4. "Peaky" guard: when one side's range is below 1 % of the other's, eps = 50 outright (a
   distribution that narrow betrays the unlearning even if the grids miss it).
5. eps falls in a bucket [0, 0.5), [0.5, 1), ... worth 1, 1/2, 1/4, ... points; only the buckets
   that end at or below ceil(ln(N - 1)) exist (so N = 2 scores 0) and eps past them scores 0
   (:func:`bucket_points`, :func:`example_scores`). F is the mean over the samples
   (:func:`forget_quality`): 1 when no sample can be told from retraining.
6. Final score = F x (retain acc / retrained retain acc) x (test acc / retrained test acc), the
   accuracies being means over the N models of each side (:func:`final_score`).

Deviations from ``metric.py``, one line each:
- vectorised NumPy on the CPU: rule counts by binary search on sorted confidences instead of
  tiled comparisons on the GPU; same grids (NumPy ``linspace``), same <= / >= comparisons.
- rates, eps and the single-threshold grid in float64 (there float32), so eps agrees to float32
  rounding (~1e-7) and a bucket can differ only for an eps that close to a multiple of 0.5.
- the confidence is exact from the logits (there each probability gets + 1e-45, which caps it
  near +-103.6 and clips where a float32 probability underflows).
- a sample that no rule of the grids can split raises ``ConfigError`` (there an assertion).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from unlearnlab.errors import ConfigError

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100    # grid points per unit of confidence, both rule families
DOUBLE_RULE_BUFFER = 2.0     # how far the double rule's thresholds reach past the peakier side
PEAKY_RATIO = 0.01           # range ratio under which eps is the cap outright
BUCKET_WIDTH = 0.5


def logit_confidence(logits, labels) -> np.ndarray:
    """log p_y - log(1 - p_y) of each row of ``logits`` (shape (S, C), or (N, S, C) for N models)
    for the true classes ``labels`` (S integers), as float64 of shape (S,) or (N, S).

    With p = softmax(z): log p_y = z_y - LSE(z) and log(1 - p_y) = LSE_{j != y}(z_j) - LSE(z),
    so the score is z_y - LSE_{j != y}(z_j): no probability is rounded, no exp overflows.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim not in (2, 3) or z.shape[-1] < 2:
        raise ConfigError(f"logits must have shape (samples, classes) or (models, samples, "
                          f"classes) with at least 2 classes, got shape {z.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.shape != z.shape[-2:-1]:
        raise ConfigError(f"labels must be {z.shape[-2]} integer class indices (one per logits "
                          f"row), got dtype {y.dtype} and shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[-1]):
        raise ConfigError(f"labels must lie in [0, {z.shape[-1]}), got {y.min()}..{y.max()}")
    if not np.isfinite(z).all():
        raise ConfigError("logits contain NaN or infinity; score the model's finite outputs")
    index = np.broadcast_to(y, z.shape[:-1])[..., None]
    true_logit = np.take_along_axis(z, index, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, index, -np.inf, axis=-1)
    top = others.max(axis=-1, keepdims=True)  # finite: at least one other class
    return true_logit - (top[..., 0] + np.log(np.exp(others - top).sum(axis=-1)))


def example_epsilons(unlearned, retrained, delta: float = DELTA) -> np.ndarray:
    """Per-sample eps (steps 2-4 of the module docstring) from two (N, S) arrays of
    confidences: N unlearned and N retrained models, S forget samples, column i of both the
    same sample. Returns float64 of shape (S,), in [0, 50]."""
    unlearned, retrained = _confidence_pair(unlearned, retrained)
    if not (isinstance(delta, numbers.Real) and 0 <= delta < 1):
        raise ConfigError(f"delta must be a number in [0, 1), got {delta!r}")
    retrained_positive = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
    positive = np.where(retrained_positive, retrained, unlearned)
    negative = np.where(retrained_positive, unlearned, retrained)
    spread_pos = positive.max(axis=0) - positive.min(axis=0)
    spread_neg = negative.max(axis=0) - negative.min(axis=0)
    # Both sides constant is 0 / 0 = NaN, which is not below the ratio: the rules decide.
    with np.errstate(invalid="ignore"):
        peaky = np.minimum(spread_pos, spread_neg) / np.maximum(spread_pos, spread_neg) \
            < PEAKY_RATIO
    table = _epsilon_table(unlearned.shape[0], float(delta))
    epsilons = np.full(unlearned.shape[1], EPSILON_CAP)
    for i in np.flatnonzero(~peaky):
        epsilons[i] = _sample_epsilon(positive[:, i], negative[:, i], table, i)
    return epsilons


def bucket_points(n_models: int) -> np.ndarray:
    """Points of the eps buckets [0, 0.5), [0.5, 1), ...: 1, 1/2, 1/4, ... for each bucket that
    ends at or below ceil(ln(n_models - 1)), the largest eps N + N models can resolve (none for
    N = 2). An eps past the last bucket scores 0."""
    _check_model_count(n_models)
    top = math.ceil(math.log(n_models - 1))
    return np.ldexp(1.0, -np.arange(int(top / BUCKET_WIDTH)))


def example_scores(epsilons, n_models: int) -> np.ndarray:
    """The points of each sample's eps (:func:`bucket_points`), float64 of shape (S,)."""
    eps = np.asarray(epsilons, dtype=np.float64)
    if eps.ndim != 1 or eps.size == 0:
        raise ConfigError(f"epsilons must be a non-empty 1-D array, got shape {eps.shape}")
    if not (np.isfinite(eps).all() and (eps >= 0).all()):
        raise ConfigError("epsilons must be finite and >= 0; pass example_epsilons' output")
    points = bucket_points(n_models)
    bucket = np.floor(eps / BUCKET_WIDTH)
    scores = np.zeros_like(eps)
    inside = bucket < points.size
    scores[inside] = points[bucket[inside].astype(np.int64)]
    return scores


def forget_quality(epsilons, n_models: int) -> float:
    """F: the mean of :func:`example_scores` over the forget samples, in [0, 1]."""
    scores = example_scores(epsilons, n_models)
    return math.fsum(scores) / scores.size  # exact: the points are powers of two


def final_score(forget_quality: float, retain_acc: float, retain_acc_retrained: float,
                test_acc: float, test_acc_retrained: float) -> float:
    """F x (retain_acc / retain_acc_retrained) x (test_acc / test_acc_retrained): accuracies are
    means over each side's N models, in one unit (fractions or percent) on both sides."""
    if not (isinstance(forget_quality, numbers.Real) and 0 <= forget_quality <= 1):
        raise ConfigError(f"forget_quality must be in [0, 1], got {forget_quality!r}")
    accuracies = {"retain_acc": retain_acc, "retain_acc_retrained": retain_acc_retrained,
                  "test_acc": test_acc, "test_acc_retrained": test_acc_retrained}
    for name, value in accuracies.items():
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite accuracy >= 0, got {value!r}")
    for name in ("retain_acc_retrained", "test_acc_retrained"):
        if accuracies[name] == 0:
            raise ConfigError(f"{name} is 0, so the utility ratio is undefined; check that the "
                              f"retrained models were evaluated")
    return float(forget_quality * (retain_acc / retain_acc_retrained)
                 * (test_acc / test_acc_retrained))


def _check_model_count(n_models) -> None:
    if isinstance(n_models, bool) or not isinstance(n_models, numbers.Integral) or n_models < 2:
        raise ConfigError(f"n_models must be an integer >= 2 (models per side), got {n_models!r}")


def _confidence_pair(unlearned, retrained) -> tuple[np.ndarray, np.ndarray]:
    pair = np.asarray(unlearned, dtype=np.float64), np.asarray(retrained, dtype=np.float64)
    for name, side in zip(("unlearned", "retrained"), pair, strict=True):
        if side.ndim != 2 or side.shape[0] < 2 or side.shape[1] < 1:
            raise ConfigError(f"{name} confidences must have shape (models >= 2, samples >= 1), "
                              f"got {side.shape}")
        if not np.isfinite(side).all():
            raise ConfigError(f"{name} confidences contain NaN or infinity; compute them with "
                              f"logit_confidence from finite logits")
    if pair[0].shape != pair[1].shape:
        raise ConfigError(f"unlearned {pair[0].shape} and retrained {pair[1].shape} confidences "
                          f"must have the same shape: N models each, on the same samples")
    return pair


def _epsilon_table(n_models: int, delta: float) -> np.ndarray:
    """eps of a rule by (a, b): a of the N positive-side confidences and b of the N negative-side
    ones predicted positive. NaN marks a rule that is dropped."""
    a, b = np.meshgrid(np.arange(n_models + 1), np.arange(n_models + 1), indexing="ij")
    fnr = (n_models - a) / n_models
    fpr = b / n_models
    with np.errstate(divide="ignore", invalid="ignore"):
        # fmax skips a NaN side (log of a negative rate); both NaN stays NaN and is dropped.
        table = np.fmax(np.log(1 - delta - fpr) - np.log(fnr),
                        np.log(1 - delta - fnr) - np.log(fpr))
        table = np.maximum(table, 0.0)
    table[fpr * fnr == 0] = np.nan
    table[fpr + fnr == 0] = np.inf
    return table


def _count_between(sorted_values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """How many of ``sorted_values`` satisfy low <= v <= high, elementwise over the bounds."""
    count = np.searchsorted(sorted_values, high, side="right") \
        - np.searchsorted(sorted_values, low, side="left")
    return np.maximum(count, 0)  # low > high holds nothing


def _sample_epsilon(positive: np.ndarray, negative: np.ndarray, table: np.ndarray,
                    index: int) -> float:
    n_models = positive.size
    # Double threshold: the interval claims the peakier side (the negative one on a tie).
    if positive.max() - positive.min() >= negative.max() - negative.min():
        peaked, other = negative, positive
    else:
        peaked, other = positive, negative
    width = peaked.max() - peaked.min()
    low = peaked.min() + width - DOUBLE_RULE_BUFFER
    high = peaked.max() + DOUBLE_RULE_BUFFER
    right = np.linspace(low, high, int(np.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    n_left = int(np.ceil(2 * DOUBLE_RULE_BUFFER * THRESHOLDS_PER_UNIT))
    left = np.linspace(right - width - DOUBLE_RULE_BUFFER, right - width + DOUBLE_RULE_BUFFER,
                       n_left)
    double = table[_count_between(np.sort(peaked), left, right),
                   _count_between(np.sort(other), left, right)]
    # Single threshold: c >= t claims the positive side (the larger median).
    both = np.concatenate([positive, negative])
    grid = np.linspace(both.min(), both.max(),
                       int(np.ceil((both.max() - both.min()) * THRESHOLDS_PER_UNIT)))
    single = table[n_models - np.searchsorted(np.sort(positive), grid, side="left"),
                   n_models - np.searchsorted(np.sort(negative), grid, side="left")]
    kept = np.concatenate([double.ravel(), single])
    kept = kept[~np.isnan(kept)]
    if kept.size == 0:
        raise ConfigError(f"sample {index}: no rule of the 0.01-step grids splits its 2N "
                          f"confidences (they vary by less than the step), so eps is undefined; "
                          f"score models trained from different seeds")
    return min(float(kept.max()), EPSILON_CAP)
