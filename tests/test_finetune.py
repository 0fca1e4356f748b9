"""Fine-tuning on the retain set (``finetune``), on synthetic data."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import FORGET, same_weights
from conftest import weights as state

from unlearnlab.methods import UnlearnTask, create
from unlearnlab.models import recipe_for
from unlearnlab.training import seed_everything


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


def test_finetune_never_reads_the_forget_set(cnn, dataset):
    a, _ = run("finetune", copy.deepcopy(cnn), make_task(dataset))
    b, _ = run("finetune", copy.deepcopy(cnn), noise_task(dataset))
    c, _ = run("finetune", copy.deepcopy(cnn), make_task(dataset, forget_x=dataset.train.x[:3]))
    assert same_weights(state(a), state(b)) and same_weights(state(a), state(c))


def test_finetune_retain_samples_caps_the_training_set(cnn, dataset):
    _, method = run("finetune", cnn, make_task(dataset), retain_samples=40, batch_size=16,
                    epochs=2)
    assert len(method.history) == 2
    # accuracy over 40 samples is a multiple of 1/40
    assert all(abs(h["acc"] * 40 - round(h["acc"] * 40)) < 1e-9 for h in method.history)
