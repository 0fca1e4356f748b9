"""The lab with a user's own dataset (tensors), architecture and metric, end to end through the
Python API, on small synthetic data (docs/extending.md)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_split
from torch import nn

from unlearnlab import metrics
from unlearnlab.config import RunConfig
from unlearnlab.data import list_datasets, register_tensors
from unlearnlab.errors import ConfigError, DataError
from unlearnlab.experiment import run
from unlearnlab.models import create_model, list_models, register_model


@register_model("tiny_mlp", epochs=2, batch_size=32, lr=3e-3)
class TinyMLP(nn.Module):
    """A user's architecture: 28x28 inputs, one hidden layer of 32 units."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.hidden = nn.Linear(in_channels * 28 * 28, 32)
        self.out = nn.Linear(32, num_classes)

    def features(self, x):
        return torch.relu(self.hidden(x.flatten(1)))

    def forward(self, x):
        return self.out(self.features(x))


def forget_confidence(out, model: str) -> dict:
    """A user's metric: mean softmax confidence of ``model`` on the forget-train samples."""
    probs = torch.softmax(out.logits[model]["forget_train"].double(), 1)
    return {"forget_confidence": float(probs.max(1).values.mean())}


@pytest.fixture
def own_metric():
    """Registered for one test only: every other test sees the built-in metrics."""
    metrics.register_metric("forget_confidence", columns=("forget_confidence",))(
        forget_confidence)
    yield
    metrics.METRICS.pop("forget_confidence")


@pytest.fixture(scope="module")
def toy():
    gen = torch.Generator().manual_seed(0)
    train, test = make_split(400, gen), make_split(100, gen)
    return register_tensors("toy", (train.x, train.y), (test.x, test.y), replace=True,
                            default_arch={"class": "tiny_mlp", "feature": "tiny_mlp"})


def test_own_dataset_architecture_and_metric_run_end_to_end(toy, own_metric, tmp_path):
    assert "toy" in list_datasets() and "tiny_mlp" in list_models()
    cfg = RunConfig(dataset="toy", forget="class:3", method="finetune", data_dir=str(tmp_path),
                    metrics=["mia_efficacy", "forget_confidence"])
    record = run(cfg).record
    assert record["arch"] == "tiny_mlp" and record["recipe"]["epochs"] == 2
    assert record["sizes"]["forget_train"] == int((toy.train.y == 3).sum())
    models = record["models"]
    assert models["retrained"]["forget_test_acc"] < 0.2 < models["original"]["forget_test_acc"]
    assert all(0 < models[r]["forget_confidence"] <= 1 for r in models)
    # The same run again is served from the cache, with the same numbers.
    again = run(cfg).record
    assert again["models"] == record["models"]
    assert again["seconds"]["original"] == record["seconds"]["original"]


def test_other_tensors_under_the_same_name_are_never_served_from_the_cache(toy, tmp_path):
    cfg = RunConfig(dataset="toy", forget="class:3", method="finetune", data_dir=str(tmp_path),
                    metrics=["mia_efficacy"])
    first = run(cfg).record
    gen = torch.Generator().manual_seed(1)
    train, test = make_split(400, gen), make_split(100, gen)
    register_tensors("toy", (train.x, train.y), (test.x, test.y), replace=True,
                     default_arch={"class": "tiny_mlp"})
    try:
        second = run(cfg).record
        assert second["data_checksum"] != first["data_checksum"]
        assert second["models"]["original"] != first["models"]["original"]
    finally:
        register_tensors("toy", (toy.train.x, toy.train.y), (toy.test.x, toy.test.y),
                         replace=True, default_arch={"class": "tiny_mlp", "feature": "tiny_mlp"})


def test_registry_errors_name_the_problem():
    with pytest.raises(ConfigError, match="already registered"):
        register_tensors("mnist", (torch.rand(4, 1, 28, 28), torch.arange(4)),
                         (torch.rand(4, 1, 28, 28), torch.arange(4)))
    with pytest.raises(DataError, match="pixel values must lie in"):
        register_tensors("bad", (torch.rand(4, 1, 28, 28) * 255, torch.arange(4)),
                         (torch.rand(4, 1, 28, 28), torch.arange(4)))
    with pytest.raises(DataError, match="int64 vector"):
        register_tensors("bad", (torch.rand(4, 1, 28, 28), torch.arange(4).float()),
                         (torch.rand(4, 1, 28, 28), torch.arange(4)))
    with pytest.raises(ConfigError, match="already registered"):
        register_model("mlp", epochs=1, batch_size=1, lr=1.0)(TinyMLP)
    with pytest.raises(ConfigError, match="features"):
        register_model("nofeatures", epochs=1, batch_size=1, lr=1.0)(nn.Linear)
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        RunConfig(dataset="nope") and run(RunConfig(dataset="nope"))
    assert create_model("tiny_mlp").out.out_features == 10
