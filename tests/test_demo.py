"""``unlearnlab.demo``: the lines the demo prints around the run's summary."""

from __future__ import annotations

from unlearnlab import demo

LABELS = [str(c) for c in range(10)]


def test_prediction_shares_lists_the_largest_classes_first():
    counts = [0, 0, 5, 939, 0, 4, 0, 0, 10, 0]  # 958 test sixes
    assert demo.prediction_shares(counts, LABELS) == "3 98 %, 8 1 %, …"
    assert demo.prediction_shares([50, 0, 0, 0, 50, 0, 0, 0, 0, 0], LABELS) == "0 50 %, 4 50 %"
    assert demo.prediction_shares([0] * 10, LABELS) == "no predictions"


def test_where_the_forgotten_sixes_went_sits_beside_the_retrained_answer():
    record = {"forget": "class:6", "models": {
        "unlearned": {"forget_test_predictions": [0, 0, 0, 9, 0, 0, 0, 0, 1, 0]},
        "retrained": {"forget_test_predictions": [4, 0, 0, 0, 1, 3, 0, 0, 2, 0]}}}
    assert demo.where_forgotten_went(record, LABELS) == (
        "forgotten sixes (test set) now predicted as: 3 90 %, 8 10 % "
        "(retrained model: 0 40 %, 5 30 %, 8 20 %, 4 10 %)")
    record["models"]["unlearned"] = None
    assert "now predicted as: n/a (the method diverged)" in demo.where_forgotten_went(record,
                                                                                       LABELS)


def test_a_named_class_is_quoted():
    record = {"forget": "class:6", "models": {
        "unlearned": {"forget_test_predictions": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]},
        "retrained": {"forget_test_predictions": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]}}}
    labels = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
              "Bag", "Boot"]
    assert demo.where_forgotten_went(record, labels).startswith(
        "forgotten 'Shirt' images (test set) now predicted as: Dress 100 %")


def test_each_mia_score_of_the_record_gets_one_line():
    record = {"models": {"original": {"mia_efficacy": 0.1, "mia_loss": 0.5}, "unlearned": None}}
    lines = demo.mia_lines(record)
    assert len(lines) == 2
    assert lines[0].strip().startswith("efficacy:") and lines[1].strip().startswith("loss:")
