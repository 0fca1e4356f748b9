"""NegGrad+ (``neggrad_plus``), on synthetic data."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import FORGET, same_weights
from conftest import weights as state

from unlearnlab.methods import UnlearnTask, create
from unlearnlab.models import recipe_for
from unlearnlab.training import predict, seed_everything


def make_task(ds, seed: int = 0, forget_x: torch.Tensor | None = None) -> UnlearnTask:
    f = ds.train.y == FORGET
    fx = ds.train.x[f] if forget_x is None else forget_x
    return UnlearnTask(fx, ds.train.y[f][:len(fx)], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for("cnn"), torch.device("cpu"), seed)


def noise_task(ds, seed: int = 0) -> UnlearnTask:
    """The same task with the forget images replaced by noise (same count, same labels)."""
    f = ds.train.y == FORGET
    gen = torch.Generator().manual_seed(99)
    return make_task(ds, seed, torch.rand(ds.train.x[f].shape, generator=gen))


@pytest.fixture
def dataset(cnn_data):
    return cnn_data


def run(name, model, task, **params):
    seed_everything(task.seed)
    method = create(name, params=params)
    return method.unlearn(model, task), method


def test_neggrad_plus_alpha_one_is_retain_only_fine_tuning(cnn, dataset):
    """With alpha = 1 the forget term has weight 0: the forget images cannot matter."""
    a, _ = run("neggrad_plus", copy.deepcopy(cnn), make_task(dataset), alpha=1.0)
    b, _ = run("neggrad_plus", copy.deepcopy(cnn), noise_task(dataset), alpha=1.0)
    assert same_weights(state(a), state(b))
    c, _ = run("neggrad_plus", copy.deepcopy(cnn), make_task(dataset), alpha=0.9)
    d, _ = run("neggrad_plus", copy.deepcopy(cnn), noise_task(dataset), alpha=0.9)
    assert not same_weights(state(c), state(d))


def test_neggrad_plus_raises_the_forget_loss(cnn, dataset):
    task = make_task(dataset)
    ce = torch.nn.functional.cross_entropy
    before = ce(predict(cnn, task.forget_x), task.forget_y).item()
    params = {"epochs": 3, "batch_size": 32, "forget_batch": 16, "lr": 1e-3}
    keep, _ = run("neggrad_plus", copy.deepcopy(cnn), task, alpha=1.0, **params)
    push, method = run("neggrad_plus", copy.deepcopy(cnn), task, alpha=0.5, **params)
    after_keep = ce(predict(keep, task.forget_x), task.forget_y).item()
    after_push = ce(predict(push, task.forget_x), task.forget_y).item()
    assert after_push > before and after_push > after_keep + 1.0
    assert [h["epoch"] for h in method.history] == [1, 2, 3]
    assert all(math.isfinite(h["forget_ce"]) for h in method.history)
