"""Simple gradient ascent (``gradient_ascent``, the thesis's baseline), on tiny synthetic
tensors."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import FORGET, TINY

from unlearnlab.errors import DivergenceError
from unlearnlab.methods import UnlearnTask, create
from unlearnlab.models import recipe_for
from unlearnlab.training import predict


def make_task(ds, seed: int = 0, arch: str = "mlp", name: str = "mnist") -> UnlearnTask:
    f = ds.train.y == FORGET
    return UnlearnTask(ds.train.x[f], ds.train.y[f], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for(arch), torch.device("cpu"), seed, name)


@pytest.fixture
def dataset(thesis_data):
    return thesis_data


@pytest.fixture
def trained(thesis_trained_mlp):
    return thesis_trained_mlp


@pytest.fixture
def mlp(thesis_trained_mlp):
    return copy.deepcopy(thesis_trained_mlp)


def run(name, model, task, **params):
    method = create(name, params={**TINY[name], **params})
    return method, method.unlearn(model, task)


def test_gradient_ascent_raises_the_forget_loss(mlp, dataset):
    task = make_task(dataset)
    loss = torch.nn.functional.cross_entropy
    before = loss(predict(mlp, task.forget_x), task.forget_y)
    method, out = run("gradient_ascent", mlp, task, lr=1e-3, epochs=2, stop_loss=0.0)
    assert loss(predict(out, task.forget_x), task.forget_y) > before
    assert [h["epoch"] for h in method.history] == [1, 2] and "ascent" in method.timings


def test_gradient_ascent_huge_lr_diverges(mlp, dataset):
    with pytest.raises(DivergenceError, match="gradient_ascent: .*lower lr"):
        run("gradient_ascent", mlp, make_task(dataset), lr=1e30)


def test_gradient_ascent_stops_early(mlp, dataset):
    method, _ = run("gradient_ascent", mlp, make_task(dataset), max_steps=2, epochs=5)
    assert method.history[-1]["steps"] == 2 and len(method.history) == 1
    method, _ = run("gradient_ascent", mlp, make_task(dataset), lr=1e-2, epochs=50,
                    stop_loss=5.0)
    assert len(method.history) < 50
