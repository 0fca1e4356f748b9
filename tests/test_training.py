"""Seeded training on tensors: learning, divergence detection, prediction, reproducibility, and
models trained together as one batched model (``batched_training``) against ``fit``."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset

from unlearnlab.batched_training import fit_ensemble
from unlearnlab.errors import ConfigError, DivergenceError
from unlearnlab.evaluation import mean_cross_entropy
from unlearnlab.models import create_model
from unlearnlab.training import (
    SGD_MOMENTUM,
    Recipe,
    adam,
    fit,
    make_optimizer,
    pick_device,
    predict,
    seed_everything,
)


@pytest.fixture(scope="module")
def data():
    return make_dataset(n_train=300, n_test=100, seed=1)


def new(arch="mlp", seed=0):
    seed_everything(seed)
    return create_model(arch)


def test_fit_lowers_the_loss_on_a_separable_task(data):
    model = new()
    before = mean_cross_entropy(predict(model, data.train.x), data.train.y)
    history = fit(model, data.train.x, data.train.y, epochs=3, batch_size=32, lr=1e-3, seed=0)
    after_logits = predict(model, data.train.x)
    after = mean_cross_entropy(after_logits, data.train.y)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    assert after < before / 4
    assert (after_logits.argmax(1) == data.train.y).float().mean() > 0.95
    test_pred = predict(model, data.test.x).argmax(1)
    assert (test_pred == data.test.y).float().mean() > 0.9  # generalises, not memorised
    assert not model.training  # fit leaves the model in eval mode


def test_history_reports_the_true_mean_loss_and_accuracy(data):
    """With lr=0 nothing changes, so the epoch loss must equal the per-sample mean
    cross-entropy over all samples, although the last batch is smaller (300 = 4 * 64 + 44)."""
    model = new()
    logits = predict(model, data.train.x)
    history = fit(model, data.train.x, data.train.y, epochs=1, batch_size=64, lr=0.0, seed=0)
    assert history[0]["loss"] == pytest.approx(mean_cross_entropy(logits, data.train.y),
                                               rel=1e-5)
    acc = (logits.argmax(1) == data.train.y).float().mean().item()
    assert history[0]["acc"] == pytest.approx(acc)


def test_on_epoch_metrics_are_logged(data):
    calls = []

    def on_epoch(model):
        calls.append(model.training)
        return {"probe": len(calls)}

    history = fit(new(), data.train.x, data.train.y, epochs=2, batch_size=100, lr=1e-3, seed=0,
                  on_epoch=on_epoch)
    assert [h["probe"] for h in history] == [1, 2]


def test_fit_only_trains_the_given_parameters(data):
    model = new()
    fc1 = model.fc1.weight.detach().clone()
    fc2 = model.fc2.weight.detach().clone()
    fit(model, data.train.x, data.train.y, epochs=1, batch_size=64, lr=1e-3, seed=0,
        params=list(model.fc2.parameters()))
    assert torch.equal(model.fc1.weight, fc1)
    assert not torch.equal(model.fc2.weight, fc2)


@pytest.mark.parametrize(("arch", "lr"), [("mlp", 1e30), ("cnn", 1e6)])
def test_huge_learning_rate_raises_divergence(data, arch, lr):
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        fit(new(arch), data.train.x, data.train.y, epochs=3, batch_size=32, lr=lr, seed=0)


def test_nan_input_raises_divergence(data):
    x = data.train.x.clone()
    x[7, 0, 3, 3] = float("nan")
    with pytest.raises(DivergenceError, match="epoch 1"):
        fit(new(), x, data.train.y, epochs=2, batch_size=64, lr=1e-3, seed=0)


@pytest.mark.parametrize("name,channels", [("mlp", 1), ("convnet", 3), ("cnn", 1)])
def test_predict_default_batch_gives_the_same_logits_bit_for_bit(name, channels):
    """The per-architecture default batch (64 or 512) changes no logit against batch 128."""
    torch.manual_seed(0)
    model = create_model(name, channels)
    x = torch.rand(1500, channels, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(predict(model, x), predict(model, x, batch_size=128))


def test_predict_shape_and_mode(data):
    model = new("cnn")
    model.train()
    out = predict(model, data.test.x, batch_size=33)
    assert out.shape == (len(data.test), 10) and out.dtype == torch.float32
    assert model.training, "predict must restore the previous mode"
    torch.testing.assert_close(out, predict(model, data.test.x, batch_size=4096))
    assert predict(model, data.test.x[:0]).shape == (0, 10)


def test_predict_has_no_grad(data):
    out = predict(new(), data.test.x[:5])
    assert not out.requires_grad


def test_seed_everything_makes_two_fits_identical(data):
    def train(seed):
        model = new("cnn", seed)
        fit(model, data.train.x, data.train.y, epochs=1, batch_size=64, lr=1e-3, seed=seed)
        return model.state_dict()

    a, b, c = train(0), train(0), train(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_fit_seed_controls_the_order(data):
    """Same initial weights, different data order -> different weights."""
    a, b = new(), new()
    fit(a, data.train.x, data.train.y, epochs=1, batch_size=64, lr=1e-3, seed=0)
    fit(b, data.train.x, data.train.y, epochs=1, batch_size=64, lr=1e-3, seed=1)
    assert not torch.equal(a.fc1.weight, b.fc1.weight)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")


def _train_steps(name: str, channels: int, make_optimizer) -> torch.Tensor:
    """The flat weights after 8 Adam steps on fixed random data, from a seeded init."""
    torch.manual_seed(0)
    model = create_model(name, channels)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(8 * 32, channels, 28, 28, generator=gen), torch.arange(8 * 32) % 10
    optimizer = make_optimizer(model.parameters())
    for i in range(8):
        loss = torch.nn.functional.cross_entropy(model(x[i * 32:(i + 1) * 32]),
                                                 y[i * 32:(i + 1) * 32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name,channels", [("mlp", 1), ("convnet", 3)])
def test_fused_adam_is_the_default_loop_up_to_rounding(name, channels):
    """``adam`` (fused kernels) applies torch's default Adam update: after 8 steps every weight
    agrees to float rounding, and far closer than one step moves it (lr 1e-3)."""
    fused = _train_steps(name, channels, lambda p: adam(p, 1e-3))
    loop = _train_steps(name, channels, lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False))
    start = _train_steps(name, channels, lambda p: torch.optim.Adam(p, lr=0.0))
    torch.testing.assert_close(fused, loop, rtol=1e-4, atol=1e-5)  # 1 % of one step
    assert (fused - start).abs().max() > 1e-3  # the steps did move the weights


@pytest.mark.parametrize("name,channels", [("mlp", 1), ("convnet", 3)])
def test_fused_adam_is_deterministic(name, channels):
    assert torch.equal(_train_steps(name, channels, lambda p: adam(p, 1e-3)),
                       _train_steps(name, channels, lambda p: adam(p, 1e-3)))


# --- training models together (batched_training) ---------------------------------------------

@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_fit_ensemble_trains_each_model_as_fit_does(data, arch):
    """Two epochs of three models trained together equal three separate fits with the same
    seeds up to float rounding, which Adam's normalised steps amplify for near-zero gradients:
    every weight within a tenth of one step (lr); the histories agree too."""
    x, y = data.train.x[:96], data.train.y[:96]
    seeds = [0, 1, 2]
    alone = [new(arch, s) for s in seeds]
    alone_histories = [fit(m, x, y, epochs=2, batch_size=32, lr=1e-3, seed=s)
                       for m, s in zip(alone, seeds, strict=True)]
    together = [new(arch, s) for s in seeds]
    histories = fit_ensemble(together, x, y, epochs=2, batch_size=32, lr=1e-3, seeds=seeds)
    for a, b in zip(alone, together, strict=True):
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(pb, pa, rtol=0, atol=1e-4, msg=name)
    for ha, hb in zip(alone_histories, histories, strict=True):
        assert [h["acc"] for h in hb] == [h["acc"] for h in ha]
        assert [h["loss"] for h in hb] == pytest.approx([h["loss"] for h in ha], abs=1e-5)
    assert not any(m.training for m in together)


def test_fit_ensemble_models_differ_by_seed_and_log_on_epoch(data):
    models = [new("mlp", 0), new("mlp", 0)]
    histories = fit_ensemble(models, data.train.x, data.train.y, epochs=1, batch_size=32,
                             lr=1e-3, seeds=[0, 1], on_epoch=lambda m: {"mode": m.training})
    assert not torch.equal(models[0].fc1.weight, models[1].fc1.weight)
    assert [h[0]["mode"] for h in histories] == [False, False]


def test_fit_ensemble_needs_one_seed_per_model(data):
    with pytest.raises(ConfigError, match="2 models but 1 seeds"):
        fit_ensemble([new(), new()], data.train.x, data.train.y, epochs=1, batch_size=32,
                     lr=1e-3, seeds=[0])


def test_fit_ensemble_names_the_model_that_diverged(data):
    x = data.train.x.clone()
    x[7, 0, 3, 3] = float("nan")
    with pytest.raises(DivergenceError, match="model 0 .seed 5. became nan in epoch 1"):
        fit_ensemble([new(), new()], x, data.train.y, epochs=2, batch_size=32, lr=1e-3,
                     seeds=[5, 6])


def test_sgd_with_momentum_trains_and_differs_from_adam(data):
    weights = {}
    for name in ("adam", "sgd"):
        model = new()
        history = fit(model, data.train.x, data.train.y, epochs=3, batch_size=32, lr=0.05 if
                      name == "sgd" else 1e-3, seed=0, optimizer=name, weight_decay=5e-4)
        assert history[-1]["loss"] < history[0]["loss"] / 2
        weights[name] = next(model.parameters()).detach().clone()
    assert not torch.equal(weights["adam"], weights["sgd"])


def test_make_optimizer_builds_the_named_rule_and_rejects_others():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer("sgd", params, 0.1, weight_decay=5e-4)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == SGD_MOMENTUM and sgd.defaults["weight_decay"] == 5e-4
    assert isinstance(make_optimizer("adam", params, 0.1), torch.optim.Adam)
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", params, 0.1)
    with pytest.raises(ConfigError, match="unknown optimizer 'lbfgs'"):
        Recipe("mlp", epochs=1, batch_size=8, lr=0.1, optimizer="lbfgs")


def test_fit_logs_a_line_per_epoch_when_no_bar_can_be_drawn(data, caplog):
    caplog.set_level("INFO", logger="unlearnlab")
    fit(new(), data.train.x, data.train.y, epochs=2, batch_size=64, lr=1e-3, seed=0,
        desc="train original seed 0")
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(", loss")[0] for line in lines] == [
        "train original seed 0: epoch 1/2", "train original seed 0: epoch 2/2"]
