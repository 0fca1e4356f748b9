"""Training models together (one vmap-batched model) against ``training.fit`` one by one."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset

from unlearnlab.batched_training import fit_ensemble
from unlearnlab.errors import ConfigError, DivergenceError
from unlearnlab.models import create_model
from unlearnlab.training import fit, seed_everything


@pytest.fixture(scope="module")
def data():
    return make_dataset(n_train=300, n_test=100, seed=1)


def new(arch="mlp", seed=0):
    seed_everything(seed)
    return create_model(arch)


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
