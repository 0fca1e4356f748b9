"""Freeze-and-relabel class forgetting (``relabel``), on synthetic data."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from support import FORGET, make_task, unlearn
from support import weights as state

from unlearnlab.errors import ConfigError
from unlearnlab.methods.relabel import Relabel
from unlearnlab.models import create_model
from unlearnlab.training import fit, predict, seed_everything


@pytest.fixture(scope="module")
def trained_mlp_a(cnn_data):
    """An MLP trained like ``trained_cnn`` (relabel's default freezes all its layers)."""
    seed_everything(0)
    model = create_model("mlp")
    fit(model, cnn_data.train.x, cnn_data.train.y, epochs=3, batch_size=64, lr=3e-3, seed=0)
    return model


def test_relabel_forgets_the_class_and_keeps_the_rest(cnn, cnn_data):
    test = cnn_data.test
    before = predict(cnn, test.x).argmax(1)
    f = test.y == FORGET
    assert (before[f] == FORGET).float().mean() > 0.8, "the original should know the class"
    _, out = unlearn("relabel", cnn, make_task(cnn_data), target=3, epochs=3, batch_size=16,
                     lr=5e-3)
    after = predict(out, test.x).argmax(1)
    assert (after[f] == FORGET).float().mean() < 0.2
    assert (after[f] == 3).float().mean() > 0.8  # relabelled as the target
    assert (after[~f] == test.y[~f]).float().mean() > 0.8


def test_relabel_freezes_the_named_layers(cnn, cnn_data):
    before = state(cnn)
    _, out = unlearn("relabel", cnn, make_task(cnn_data), freeze=["fc1", "conv2"])
    after = state(out)
    for key in before:
        frozen = key.startswith(("fc1.", "conv2.", "norm."))
        assert torch.equal(after[key], before[key]) == frozen, key


def test_relabel_default_freezes_fc1_and_fc2(cnn, cnn_data):
    before = state(cnn)
    method = Relabel()
    seed_everything(0)
    out = method.unlearn(cnn, make_task(cnn_data))
    after = state(out)
    for key in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(after[key], before[key]), key
    for key in ("conv1.weight", "conv2.weight", "fc3.weight"):
        assert not torch.equal(after[key], before[key]), key
    assert len(method.history) == method.params["epochs"] == 1
    assert math.isfinite(method.history[0]["loss"])


def test_relabel_params_merge_defaults():
    m = Relabel({"target": 5})
    assert m.params == {**Relabel.defaults, "target": 5}


@pytest.mark.parametrize("target", [-1, 10, 12])
def test_relabel_target_not_a_class(cnn, cnn_data, target):
    with pytest.raises(ConfigError, match=f"target {target} is not a class 0-9"):
        unlearn("relabel", cnn, make_task(cnn_data), target=target)


def test_relabel_target_is_the_forgotten_class(cnn, cnn_data):
    with pytest.raises(ConfigError, match=f"target {FORGET} is the forgotten class"):
        unlearn("relabel", cnn, make_task(cnn_data), target=FORGET)


def test_relabel_unknown_layer(cnn, cnn_data):
    with pytest.raises(ConfigError, match="no layer 'fc9'.*conv1, conv2, fc1, fc2, fc3"):
        unlearn("relabel", cnn, make_task(cnn_data), freeze=["fc1", "fc9"])


def test_relabel_freezing_everything_is_a_config_error(trained_mlp_a, cnn_data):
    """The MLP has only fc1 and fc2, so relabel's default freeze leaves nothing to train
    (the default configuration of feature forgetting on MNIST / Fashion-MNIST)."""
    mlp = copy.deepcopy(trained_mlp_a)
    with pytest.raises(ConfigError, match="leaves no trainable parameter"):
        unlearn("relabel", mlp, make_task(cnn_data, arch="mlp"))
    _, out = unlearn("relabel", mlp, make_task(cnn_data, arch="mlp"), freeze=["fc1"])
    assert torch.equal(out.fc1.weight, mlp.fc1.weight)
    assert not torch.equal(out.fc2.weight, mlp.fc2.weight)


@pytest.mark.parametrize(("key", "value"), [
    ("epochs", 0), ("epochs", -1), ("batch_size", 0), ("lr", 0.0), ("lr", -1e-3),
    ("lr", float("nan")), ("lr", float("inf")),
])
def test_relabel_rejects_invalid_hyperparameters(key, value):
    """Zero epochs would silently return the original; the others crashed inside torch."""
    with pytest.raises(ConfigError, match=rf"relabel.*\b{key}\b"):
        Relabel({key: value})
