"""The NeurIPS 2023 forget-quality score: hand-derived answers on synthetic confidences, the
logit-scaled confidence against a direct computation, the vectorised scoring against a slow
per-sample transcription of the reference's rules, and bad inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from unlearnlab.errors import ConfigError
from unlearnlab.forget_quality import (
    DELTA,
    EPSILON_CAP,
    bucket_points,
    example_epsilons,
    example_scores,
    final_score,
    forget_quality,
    logit_confidence,
)

# ---------------------------------------------- a slow, literal reading of metric.py's rules


def _literal_double_rates(pos, neg):
    """tpr, fnr, fpr, tnr of every (left, right) pair: "in [left, right]" claims the peakier
    side, which becomes the positive one (the negative side on equal ranges)."""
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    smallest = neg_range if pos_range > neg_range else pos_range
    if pos_range >= neg_range:
        pos, neg = neg, pos
    buffer, width = 2.0, smallest
    lowest, highest = pos.min() + width - buffer, pos.max() + buffer
    rights = np.linspace(lowest, highest, int(np.ceil((highest - lowest) * 100)))
    n_left = int(np.ceil(2 * buffer * 100))
    left = np.concatenate([np.linspace(r - width - buffer, r - width + buffer, n_left)
                           for r in rights])
    right = np.repeat(rights, n_left)

    def inside(c):
        return (left[None, :] <= c[:, None]) & (c[:, None] <= right[None, :])

    return (inside(pos).mean(0), (~inside(pos)).mean(0), inside(neg).mean(0),
            (~inside(neg)).mean(0))


def _literal_single_rates(pos, neg):
    """tpr, fnr, fpr, tnr of every threshold t: "c >= t" claims the positive side."""
    both = np.concatenate([pos, neg])
    t = np.linspace(both.min(), both.max(), int(np.ceil((both.max() - both.min()) * 100)))
    above_pos, above_neg = pos[:, None] >= t[None, :], neg[:, None] >= t[None, :]
    return above_pos.mean(0), (~above_pos).mean(0), above_neg.mean(0), (~above_neg).mean(0)


def literal_epsilons(unlearned, retrained, delta=DELTA):
    retrained_positive = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
    positives = np.where(retrained_positive, retrained, unlearned)
    negatives = np.where(retrained_positive, unlearned, retrained)
    epsilons = []
    for i in range(positives.shape[1]):
        pos, neg = positives[:, i], negatives[:, i]
        pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
        largest = pos_range if pos_range > neg_range else neg_range
        smallest = neg_range if pos_range > neg_range else pos_range
        with np.errstate(invalid="ignore"):
            if smallest / largest < 0.01:
                epsilons.append(50)
                continue
        rates = [_literal_double_rates(pos, neg), _literal_single_rates(pos, neg)]
        tpr, fnr, fpr, tnr = (np.concatenate([d, s]) for d, s in zip(*rates, strict=True))
        eps = np.zeros(tpr.size)
        eps = np.where((fpr + fnr == 0) & (tpr + tnr == 2), np.inf, eps)
        eps = np.where((eps == 0) & (fpr * fnr == 0), np.nan, eps)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns in nanmax
            value = np.clip(np.nanmax([np.log(1 - delta - fpr) - np.log(fnr),
                                       np.log(1 - delta - fnr) - np.log(fpr)], axis=0), 0, None)
        eps = np.where(eps == 0, value, eps)
        kept = eps[~np.isnan(eps)]
        assert kept.size, "no threshold kept"
        epsilons.append(np.max(kept))
    return np.clip(epsilons, 0, 50)


def literal_forget_score(epsilons, n_models):
    max_epsilon = np.ceil(np.log(n_models - 1))
    start, points, buckets = 0.0, 1.0, {}
    while start + 0.5 <= max_epsilon:
        buckets[start] = points
        points /= 2
        start += 0.5
    score = 0.0
    for e in epsilons:
        for start, points in buckets.items():
            if e < start + 0.5:
                score += points
                break
    return score / len(epsilons)


def _random_pairs():
    rng = np.random.default_rng(2023)
    shifted = rng.normal(size=(5, 10)), rng.normal(size=(5, 10)) + np.linspace(0, 4, 10)
    tied = rng.integers(0, 4, size=(2, 6, 10)).astype(float)
    tied[:, 0], tied[:, 1] = 0.0, 3.0  # every column spans 0..3: no side is constant
    scales = rng.normal(size=(4, 10)) * np.geomspace(0.005, 5, 10), rng.normal(size=(4, 10))
    tight = 0.02 * rng.normal(size=(3, 10)), 0.02 * rng.normal(size=(3, 10)) + 0.01
    return [shifted, (tied[0], tied[1]), scales, tight]


@pytest.mark.parametrize("pair", _random_pairs(), ids=["shifted", "tied", "scales", "tight"])
def test_vectorised_epsilons_equal_the_literal_rules(pair):
    unlearned, retrained = pair
    np.testing.assert_array_equal(example_epsilons(unlearned, retrained),
                                  literal_epsilons(unlearned, retrained))


@pytest.mark.parametrize("n_models", [2, 3, 8, 512])
def test_forget_quality_equals_the_literal_buckets(n_models):
    rng = np.random.default_rng(n_models)
    eps = np.concatenate([rng.uniform(0, 8, 200), np.arange(0, 8.5, 0.5), [EPSILON_CAP]])
    assert forget_quality(eps, n_models) == literal_forget_score(eps, n_models)


# ------------------------------------------------------------------- hand-derived answers


def test_identical_distributions_score_one():
    confs = np.random.default_rng(0).normal(size=(5, 20))
    eps = example_epsilons(confs, confs.copy())
    # every rule flags both sides alike (FPR = TPR), so each log ratio is below 0: eps = 0
    np.testing.assert_array_equal(eps, 0.0)
    # eps = 0 lies in the first bucket, worth 1, for every sample
    assert forget_quality(eps, 5) == 1.0


def test_disjoint_distributions_hit_the_cap():
    confs = np.random.default_rng(1).normal(size=(5, 20))
    eps = example_epsilons(confs + 100, confs)
    # a single threshold between the sides has FPR = FNR = 0: eps = inf, capped at 50
    np.testing.assert_array_equal(eps, EPSILON_CAP)
    # 50 is past the last bucket (ceil(ln 4) = 2): every sample scores 0
    assert forget_quality(eps, 5) == 0.0


@pytest.mark.parametrize("peaky_side", ["unlearned", "retrained"])
def test_one_peaky_side_gets_the_cap(peaky_side):
    spread = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    narrow = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0 + 2**-8]])
    pair = (narrow, spread) if peaky_side == "unlearned" else (spread, narrow)
    # ranges 0 and 2**-8 against 2 are below 1 %: the guard gives 50, although every rule
    # here scores 0 or is dropped (any split of the narrow side's 1s splits the other's too)
    np.testing.assert_array_equal(example_epsilons(*pair), EPSILON_CAP)


def test_ties_between_the_sides():
    unlearned = np.array([[0.0], [1.0], [2.0]])
    retrained = np.array([[-5.0], [1.0], [7.0]])
    # equal medians (1): the unlearned side is positive and the peakier one; the best rule is
    # an interval around {1, 2}: TPR = 2/3, FPR = 1/3 (the shared 1), FNR = 1/3, so
    # eps = log(1 - delta - 1/3) - log(1/3) = log(2 - 3 delta); single thresholds all give 0
    expected = math.log(2 - 3 * DELTA)
    assert example_epsilons(unlearned, retrained)[0] == pytest.approx(expected, rel=1e-12)
    assert example_epsilons(retrained, unlearned)[0] == pytest.approx(expected, rel=1e-12)
    # N = 3: buckets [0, 0.5) -> 1 and [0.5, 1) -> 1/2; eps = 0.693 scores 1/2
    assert forget_quality(example_epsilons(unlearned, retrained), 3) == 0.5


def test_swapping_the_sides_keeps_epsilon_when_medians_differ():
    rng = np.random.default_rng(3)
    unlearned, retrained = rng.normal(size=(6, 8)), rng.normal(size=(6, 8)) + 0.7
    # the positive side is chosen by the median, not by the name
    np.testing.assert_array_equal(example_epsilons(unlearned, retrained),
                                  example_epsilons(retrained, unlearned))


def test_two_models_per_side_score_zero():
    # ceil(ln(2 - 1)) = 0: no bucket fits, so any eps scores 0
    assert bucket_points(2).size == 0
    assert forget_quality([0.0, 0.3, 50.0], 2) == 0.0
    # eps itself is defined: each rule flags both sides alike, as for identical distributions
    confs = np.array([[0.0, 3.0], [1.0, 5.0]])
    np.testing.assert_array_equal(example_epsilons(confs, confs.copy()), 0.0)


def test_buckets():
    # N = 3: ceil(ln 2) = 1, buckets starting at 0 and 0.5
    np.testing.assert_array_equal(bucket_points(3), [1.0, 0.5])
    # N = 512: ceil(ln 511) = 7, 14 buckets halving down to 2**-13
    np.testing.assert_array_equal(bucket_points(512), 2.0 ** -np.arange(14))
    # N = 8: ceil(ln 7) = 2, four buckets; a bucket's start belongs to it, 2.0 is past the last
    eps = [0.0, 0.49, 0.5, 1.2, 1.99, 2.0, EPSILON_CAP]
    np.testing.assert_array_equal(example_scores(eps, 8), [1, 1, 0.5, 0.25, 0.125, 0, 0])
    assert forget_quality(eps, 8) == pytest.approx(2.875 / 7)


def test_final_score_scales_forget_quality_by_utility():
    # 0.5 x (0.8 / 1.0) x (0.9 / 0.9)
    assert final_score(0.5, 0.8, 1.0, 0.9, 0.9) == pytest.approx(0.4)
    # percent works as well as fractions: only the ratios count
    assert final_score(1.0, 45.0, 90.0, 30.0, 60.0) == pytest.approx(0.25)


# ------------------------------------------------------------------- logit confidence


def test_logit_confidence_matches_the_softmax_definition():
    rng = np.random.default_rng(4)
    logits, labels = 3 * rng.normal(size=(50, 7)), rng.integers(0, 7, 50)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_true = probs[np.arange(50), labels]
    p_rest = probs.sum(axis=1) - p_true
    expected = np.log(p_true) - np.log(p_rest)
    np.testing.assert_allclose(logit_confidence(logits, labels), expected, rtol=1e-12, atol=1e-12)


def test_logit_confidence_of_extreme_logits():
    logits = np.array([[1000.0, 0.0, 0.0], [1000.0, 0.0, 0.0], [0.0, -800.0, -800.0]])
    labels = np.array([0, 1, 0])
    # z_y - LSE of the others: 1000 - ln 2; 0 - LSE(1000, 0) = -1000; 0 - (-800 + ln 2)
    expected = [1000 - math.log(2), -1000.0, 800 - math.log(2)]
    np.testing.assert_allclose(logit_confidence(logits, labels), expected, rtol=1e-15)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        p_true = probs[np.arange(3), labels]
        naive = np.log(p_true) - np.log(1 - p_true)
    assert not np.isfinite(naive).any()  # exp overflows, or 1 - p rounds to 0


def test_logit_confidence_of_several_models():
    rng = np.random.default_rng(5)
    logits, labels = rng.normal(size=(4, 30, 10)), rng.integers(0, 10, 30)
    confs = logit_confidence(logits, labels)
    assert confs.shape == (4, 30)
    for model in range(4):
        np.testing.assert_array_equal(confs[model], logit_confidence(logits[model], labels))


# ------------------------------------------------------------------- bad inputs

GOOD = np.arange(12, dtype=float).reshape(3, 4)


@pytest.mark.parametrize("unlearned, retrained, match", [
    (GOOD[:2], GOOD, "same shape"),
    (GOOD[:, :3], GOOD, "same shape"),
    (GOOD[:1], GOOD[:1], "models >= 2"),
    (GOOD[0], GOOD[0], "models >= 2"),
    (np.where(GOOD == 5, np.nan, GOOD), GOOD, "NaN or infinity"),
    (GOOD, np.where(GOOD == 5, np.inf, GOOD), "NaN or infinity"),
    (np.ones((3, 1)), np.ones((3, 1)), "no rule"),
])
def test_bad_confidences(unlearned, retrained, match):
    with pytest.raises(ConfigError, match=match) as raised:
        example_epsilons(unlearned, retrained)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("delta", [-1e-5, 1.0, float("nan"), "1e-5"])
def test_bad_delta(delta):
    with pytest.raises(ConfigError, match="delta"):
        example_epsilons(GOOD, GOOD, delta=delta)


@pytest.mark.parametrize("epsilons, n_models, match", [
    ([0.1], 1, "n_models"),
    ([0.1], 2.5, "n_models"),
    ([0.1], True, "n_models"),
    ([], 5, "non-empty"),
    ([[0.1]], 5, "non-empty"),
    ([-0.1], 5, ">= 0"),
    ([float("nan")], 5, ">= 0"),
])
def test_bad_epsilons(epsilons, n_models, match):
    with pytest.raises(ConfigError, match=match):
        forget_quality(epsilons, n_models)


@pytest.mark.parametrize("args, match", [
    ((1.5, 0.9, 0.9, 0.9, 0.9), "forget_quality"),
    ((0.5, 0.9, 0.0, 0.9, 0.9), "retain_acc_retrained is 0"),
    ((0.5, 0.9, 0.9, float("nan"), 0.9), "test_acc must"),
    ((0.5, -0.1, 0.9, 0.9, 0.9), "retain_acc must"),
])
def test_bad_final_score_inputs(args, match):
    with pytest.raises(ConfigError, match=match):
        final_score(*args)


@pytest.mark.parametrize("logits, labels, match", [
    (np.zeros((3, 1)), np.zeros(3, dtype=int), "at least 2 classes"),
    (np.zeros(3), np.zeros(3, dtype=int), "shape"),
    (np.zeros((3, 4)), np.zeros(3), "integer"),
    (np.zeros((3, 4)), np.zeros(2, dtype=int), "integer"),
    (np.zeros((3, 4)), np.array([0, 4, 1]), r"\[0, 4\)"),
    (np.full((3, 4), np.inf), np.zeros(3, dtype=int), "NaN or infinity"),
])
def test_bad_logits(logits, labels, match):
    with pytest.raises(ConfigError, match=match):
        logit_confidence(logits, labels)
