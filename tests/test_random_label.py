"""Random relabelling (``random_label``) and the feature-scenario refinement it shares with
``salun``, on synthetic data."""

from __future__ import annotations

import pytest
import torch
from support import FORGET, make_task, unlearn

from unlearnlab.errors import ConfigError
from unlearnlab.methods import create, get_method
from unlearnlab.methods import random_label as random_label_module
from unlearnlab.methods.random_label import random_other_labels
from unlearnlab.training import predict


def test_random_other_labels_are_never_the_true_label_and_cover_the_others():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(500)
    t = random_other_labels(y, 10, gen)
    assert (t != y).all() and t.min() >= 0 and t.max() <= 9
    for c in range(10):  # every other class is drawn for each true class
        assert set(t[y == c].tolist()) == set(range(10)) - {c}
    with pytest.raises(ConfigError, match="at least 2 classes"):
        random_other_labels(y[:3] * 0, 1, gen)


def test_random_label_trains_on_wrong_forget_labels_mixed_with_retain(cnn, cnn_data,
                                                                      monkeypatch):
    seen = {}
    real_fit = random_label_module.fit

    def spy(model, x, y, **kw):
        seen["x"], seen["y"] = x.clone(), y.clone()
        return real_fit(model, x, y, **kw)

    monkeypatch.setattr(random_label_module, "fit", spy)
    task = make_task(cnn_data)
    method, _ = unlearn("random_label", cnn, task, forget_samples=10, retain_ratio=2.5)
    assert method.mix == {"forget": 10, "retain": 25}
    x, y = seen["x"], seen["y"]
    assert len(y) == 35
    assert (y[:10] != FORGET).all(), "a forget sample kept its true label"
    assert (y[10:] != FORGET).all() and len(y[10:]) == 25
    # the retain part keeps its true labels: match each image back to the retain set
    for xi, yi in zip(x[10:], y[10:], strict=True):
        hit = (task.retain_x == xi).flatten(1).all(1)
        assert task.retain_y[hit].unique().tolist() == [yi.item()]
    for xi in x[:10]:  # and the first part really is forget data
        assert (task.forget_x == xi).flatten(1).all(1).any()


def test_random_label_forgets_the_class(cnn, cnn_data):
    test = cnn_data.test
    f = test.y == FORGET
    assert (predict(cnn, test.x).argmax(1)[f] == FORGET).float().mean() > 0.8
    _, out = unlearn("random_label", cnn, make_task(cnn_data), epochs=3, batch_size=16, lr=3e-3,
                     retain_ratio=3.0)
    after = predict(out, test.x).argmax(1)
    assert (after[f] == FORGET).float().mean() < 0.3
    assert (after[~f] == test.y[~f]).float().mean() > 0.8


@pytest.mark.parametrize("name", ["random_label", "salun"])
def test_feature_scenarios_get_a_milder_relabelling(name):
    cls = get_method(name)
    mild = create(cls, dataset="fashion_mnist", scenario="feature")
    default = create(cls, dataset="fashion_mnist", scenario="class")
    assert mild.params["forget_samples"] < default.params["forget_samples"]
    assert mild.params["retain_ratio"] > default.params["retain_ratio"]
    assert mild.params["lr"] < default.params["lr"]
