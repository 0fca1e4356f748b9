"""Architectures: output and feature shapes, parameter counts of the published models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlab.errors import ConfigError
from unlearnlab.models import create_model, list_models, recipe_for

# Parameter counts stated by the seed (cnn) and the thesis (mlp, convnet on RGB input).
PARAM_COUNTS = {("cnn", 1): 429_258, ("mlp", 1): 636_010, ("convnet", 3): 242_122}
FEATURE_DIMS = {"cnn": 64, "mlp": 800, "convnet": 128}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_three_architectures():
    assert {"cnn", "mlp", "convnet"} <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels", [1, 3])
def test_logits_shape(name, channels):
    torch.manual_seed(0)
    model = create_model(name, in_channels=channels).eval()
    x = torch.rand(5, channels, 28, 28)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # logits, not probabilities: rows do not sum to one
    assert not torch.allclose(out.sum(1), torch.ones(5))


@pytest.mark.parametrize("name", list_models())
def test_num_classes_sets_output_width(name):
    model = create_model(name, in_channels=1, num_classes=4)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 4)


@pytest.mark.parametrize(("name", "channels"), sorted(PARAM_COUNTS))
def test_parameter_counts(name, channels):
    assert n_params(create_model(name, in_channels=channels)) == PARAM_COUNTS[name, channels]


@pytest.mark.parametrize("name", list_models())
def test_features_feed_the_last_layer(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=1).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert feats.shape == (3, head.in_features)
    if name in FEATURE_DIMS:
        assert feats.shape[1] == FEATURE_DIMS[name]
    assert (feats >= 0).all()  # post-ReLU activations
    torch.testing.assert_close(head(feats), logits)


@pytest.mark.parametrize("name", list_models())
def test_same_seed_same_init(name):
    torch.manual_seed(1)
    a = create_model(name)
    torch.manual_seed(1)
    b = create_model(name)
    torch.manual_seed(2)
    c = create_model(name)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    assert any(not torch.equal(va, vc) for va, vc in zip(a.state_dict().values(),
                                                         c.state_dict().values(), strict=True))


def test_cnn_normalisation_is_part_of_the_checkpoint():
    state = create_model("cnn").state_dict()
    assert state["norm.mean"].item() == pytest.approx(0.1307)
    assert state["norm.std"].item() == pytest.approx(0.3081)


def test_unknown_architecture():
    with pytest.raises(ConfigError, match="unknown architecture 'resnet'"):
        create_model("resnet")


@pytest.mark.parametrize("name,channels", [("cnn", 1), ("convnet", 3)])
def test_pooling_before_relu_is_bitwise_the_seeds_order(name, channels, monkeypatch):
    """``pool_relu`` pools before the ReLU for speed; outputs and every gradient must equal, bit
    for bit, those of the seeds' order relu -> pool, so cached models stay valid."""
    from unlearnlab import models

    def run():
        torch.manual_seed(0)
        model = create_model(name, channels)
        x = torch.randn(16, channels, 28, 28)  # negative inputs too: all-negative windows
        loss = nn.functional.cross_entropy(model(x), torch.arange(16) % 10)
        loss.backward()
        return [model(x).detach(), *(p.grad for p in model.parameters())]

    lab = run()
    monkeypatch.setattr(models, "pool_relu",
                        lambda x: nn.functional.max_pool2d(torch.relu(x), 2))
    seed_order = run()
    assert all(torch.equal(a, b) for a, b in zip(lab, seed_order, strict=True))


def test_recipes_are_registered_with_their_architectures():
    assert recipe_for("cnn").epochs == 3 and recipe_for("cnn").batch_size == 64
    assert recipe_for("cnn", epochs=1).epochs == 1
    assert recipe_for("cnn", oversample=(6, 10)).to_dict()["oversample"] == [6, 10]
    with pytest.raises(ConfigError, match="unknown architecture 'resnet'"):
        recipe_for("resnet")
