"""The verdicts against retraining (``unlearnlab.verdict``) on hand-made numbers: the avg |z|,
the z-score's floor and every flag, each with its answer worked out by hand."""

from __future__ import annotations

import math

import pytest

from unlearnlab.errors import ConfigError
from unlearnlab.verdict import (
    GAP_KEYS,
    SPREAD_Z,
    Z_FLOOR,
    avg_abs_z,
    ensemble_flags,
    forgetting_key,
    guard_flags,
    retrained_avg_abs_z,
    z_score,
)

# A retrained ensemble: mean and std (ddof 1) per key. Retain train accuracy has no spread
# (the floor applies); forget test accuracy spreads 2 points, retain test accuracy 0.1 points.
MEAN = {"forget_train_acc": 0.52, "forget_test_acc": 0.40, "retain_train_acc": 0.99,
        "retain_test_acc": 0.97, "mia_efficacy": 0.60}
STD = {"forget_train_acc": 0.01, "forget_test_acc": 0.02, "retain_train_acc": 0.0,
       "retain_test_acc": 0.001, "mia_efficacy": 0.10}


def test_z_score_divides_by_the_std_or_the_floor():
    assert z_score(0.9, 0.8, 0.05) == pytest.approx(2.0)
    assert Z_FLOOR == 1e-3  # 0.1 points
    assert z_score(0.8015, 0.8, 0.0) == pytest.approx(1.5)  # 0.15 points / 0.1 points
    assert z_score(0.8015, 0.8, 0.0005) == pytest.approx(1.5)  # a spread under the floor
    assert z_score(0.8, 0.8, 0.0) == 0.0


def test_z_score_is_none_without_a_value_mean_or_spread():
    assert z_score(None, 0.8, 0.1) is None
    assert z_score(0.8, None, 0.1) is None
    assert z_score(0.8, math.nan, 0.1) is None
    assert z_score(0.8, 0.8, math.nan) is None  # one retrained model: no spread
    assert z_score(0.8, 0.8, None) is None


def test_avg_abs_z_is_the_mean_of_the_absolute_z_scores():
    # z: forget train (0.50 - 0.52) / 0.01 = -2; forget test 0; retain train
    # (0.9905 - 0.99) / floor 0.001 = +0.5; retain test (0.968 - 0.97) / 0.001 = -2;
    # MIA 0. Mean of |z| = (2 + 0 + 0.5 + 2 + 0) / 5 = 0.9.
    model = {"forget_train_acc": 0.50, "forget_test_acc": 0.40, "retain_train_acc": 0.9905,
             "retain_test_acc": 0.968, "mia_efficacy": 0.60}
    assert avg_abs_z(model, MEAN, STD) == pytest.approx(0.9)
    assert avg_abs_z(MEAN, MEAN, STD) == 0.0  # the ensemble's mean itself


def test_avg_abs_z_averages_over_the_keys_present():
    # Random forgetting: no forget test accuracy; without MIA efficacy as well, the mean runs
    # over three keys: (|-2| + |+0.5| + |-2|) / 3 = 1.5.
    model = {"forget_train_acc": 0.50, "forget_test_acc": None, "retain_train_acc": 0.9905,
             "retain_test_acc": 0.968}
    mean = {**MEAN, "forget_test_acc": None}
    assert avg_abs_z(model, mean, STD) == pytest.approx(1.5)
    assert avg_abs_z({}, MEAN, STD) is None


def test_avg_abs_z_needs_a_spread():
    one_model = dict.fromkeys(GAP_KEYS, math.nan)  # std (ddof 1) of a single value
    assert avg_abs_z({**MEAN, "retain_test_acc": 0.5}, MEAN, one_model) is None


def test_a_retain_accuracy_far_below_in_points_collapses_whatever_the_spread():
    # 12 points below with a spread of 5 points: z = -2.4, inside 3 sigma, but the model no
    # longer does its job.
    std = {**STD, "retain_test_acc": 0.05}
    assert ensemble_flags({**MEAN, "retain_test_acc": 0.85}, MEAN, std) == ["collapse"]
    # 9 points below is no collapse; with that spread it is no damage either (z = -1.8).
    assert ensemble_flags({**MEAN, "retain_test_acc": 0.88}, MEAN, std) == []


def test_a_retain_accuracy_far_below_in_sigma_is_retain_damage():
    # The example: a spread of 0.1 points, 0.7 points below: z = -7.
    assert ensemble_flags({**MEAN, "retain_test_acc": 0.963}, MEAN, STD) == ["retain_damage"]
    # 0.2 points below (z = -2) is within retraining's spread; above is never flagged.
    assert ensemble_flags({**MEAN, "retain_test_acc": 0.968}, MEAN, STD) == []
    assert ensemble_flags({**MEAN, "retain_test_acc": 0.99}, MEAN, STD) == []
    # A collapse 20 points below is also far outside the spread: both flags.
    assert ensemble_flags({**MEAN, "retain_test_acc": 0.77}, MEAN, STD) == [
        "collapse", "retain_damage"]


def test_forget_accuracy_below_the_spread_is_over_forgetting_above_it_under_forgetting():
    # forget test: mean 40 %, std 2 points. 30 %: z = -5; 50 %: z = +5; 35 %: z = -2.5.
    assert ensemble_flags({**MEAN, "forget_test_acc": 0.30}, MEAN, STD) == ["over_forgetting"]
    assert ensemble_flags({**MEAN, "forget_test_acc": 0.50}, MEAN, STD) == ["under_forgetting"]
    assert ensemble_flags({**MEAN, "forget_test_acc": 0.35}, MEAN, STD) == []


def test_exactly_three_sigma_is_not_flagged():
    # 0.125 - 0.5 = -0.375 = -3 x 0.125 exactly in binary floating point.
    mean, std = {"forget_test_acc": 0.5}, {"forget_test_acc": 0.125}
    assert SPREAD_Z == 3.0
    assert ensemble_flags({"forget_test_acc": 0.125}, mean, std) == []
    assert ensemble_flags({"forget_test_acc": 0.12}, mean, std) == ["over_forgetting"]
    assert ensemble_flags({"forget_test_acc": 0.875}, mean, std) == []
    assert ensemble_flags({"forget_test_acc": 0.88}, mean, std) == ["under_forgetting"]


def test_class_forgetting_zero_spread_reads_through_the_floor():
    # Every retrained model scores 0 % on the forgotten class: std 0, the floor 0.1 points.
    # 0.4 % left (about 4 of 958 test sixes) is z = +4; 0.2 % is z = +2.
    mean, std = {**MEAN, "forget_test_acc": 0.0}, {**STD, "forget_test_acc": 0.0}
    assert ensemble_flags({**mean, "forget_test_acc": 0.004}, mean, std) == ["under_forgetting"]
    assert ensemble_flags({**mean, "forget_test_acc": 0.002}, mean, std) == []


def test_random_forgetting_reads_the_forget_train_accuracy():
    # No forget test split: the forgetting flags read forget train accuracy instead.
    # Retrained: 97.9 % +- 0.2; the original's 99.8 % is z = +9.5, forgetting nothing.
    mean = {"forget_train_acc": 0.979, "forget_test_acc": None, "retain_test_acc": 0.98}
    std = {"forget_train_acc": 0.002, "forget_test_acc": None, "retain_test_acc": 0.001}
    assert forgetting_key(mean) == "forget_train_acc"
    assert forgetting_key({**mean, "forget_test_acc": math.nan}) == "forget_train_acc"
    model = {"forget_train_acc": 0.998, "forget_test_acc": None, "retain_test_acc": 0.98}
    assert ensemble_flags(model, mean, std) == ["under_forgetting"]
    assert ensemble_flags({**model, "forget_train_acc": 0.95}, mean, std) == ["over_forgetting"]
    assert ensemble_flags({**model, "forget_train_acc": 0.98}, mean, std) == []


def test_feature_forgetting_reads_the_forget_test_accuracy():
    assert forgetting_key(MEAN) == "forget_test_acc"
    # forget train far off (z = +20) but forget test at the mean: not flagged.
    assert ensemble_flags({**MEAN, "forget_train_acc": 0.72}, MEAN, STD) == []


def test_one_retrained_model_raises_only_the_collapse():
    no_spread = dict.fromkeys(GAP_KEYS, math.nan)
    model = {**MEAN, "retain_test_acc": 0.85, "forget_test_acc": 0.0}
    assert ensemble_flags(model, MEAN, no_spread) == ["collapse"]


def test_a_records_guard_flags_stay_in_points():
    """A single run's record has one retrained model: its flags are the 10-point guards."""
    reference = {"retain_test_acc": 0.97, "forget_test_acc": 0.40}
    assert guard_flags({"retain_test_acc": 0.963, "forget_test_acc": 0.35}, reference) == []
    assert guard_flags({"retain_test_acc": 0.86, "forget_test_acc": 0.29}, reference) == [
        "collapse", "over_forgetting"]
    assert guard_flags({"retain_test_acc": 0.97, "forget_test_acc": 0.51}, reference) == [
        "under_forgetting"]
    assert guard_flags({"retain_test_acc": 0.97, "forget_test_acc": 0.50}, reference) == []
    # random forgetting has no forget test split: the forget train accuracy is read
    random_reference = {"retain_test_acc": 0.98, "forget_train_acc": 0.98}
    assert guard_flags({"retain_test_acc": 0.98, "forget_train_acc": 0.87},
                       random_reference) == ["over_forgetting"]


def test_a_retrained_models_expected_avg_abs_z_depends_on_the_seeds():
    # z = sqrt(1 + 1/N) t(N - 1): N = 3 gives sqrt(4/3) E|t(2)| = sqrt(4/3) sqrt(2) = sqrt(8/3);
    # N = 5 gives sqrt(6/5) E|t(4)| = sqrt(6/5) x 1; many seeds give E|Z| = sqrt(2/pi).
    assert retrained_avg_abs_z(3) == pytest.approx(math.sqrt(8 / 3))
    assert retrained_avg_abs_z(5) == pytest.approx(math.sqrt(6 / 5))
    assert retrained_avg_abs_z(100_000) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-4)
    assert retrained_avg_abs_z(2) == math.inf  # t(1) has no mean
    for seeds in (1, 0, True, 2.0):
        with pytest.raises(ConfigError, match="seeds must be an integer of at least 2"):
            retrained_avg_abs_z(seeds)
