"""NegGrad+ (``neggrad_plus``), on synthetic data."""

from __future__ import annotations

import copy
import math

import torch
from support import make_task, noise_task, same_weights, unlearn
from support import weights as state

from unlearnlab.training import predict


def test_neggrad_plus_alpha_one_is_retain_only_fine_tuning(cnn, cnn_data):
    """With alpha = 1 the forget term has weight 0: the forget images cannot matter."""
    _, a = unlearn("neggrad_plus", copy.deepcopy(cnn), make_task(cnn_data), alpha=1.0)
    _, b = unlearn("neggrad_plus", copy.deepcopy(cnn), noise_task(cnn_data), alpha=1.0)
    assert same_weights(state(a), state(b))
    _, c = unlearn("neggrad_plus", copy.deepcopy(cnn), make_task(cnn_data), alpha=0.9)
    _, d = unlearn("neggrad_plus", copy.deepcopy(cnn), noise_task(cnn_data), alpha=0.9)
    assert not same_weights(state(c), state(d))


def test_neggrad_plus_raises_the_forget_loss(cnn, cnn_data):
    task = make_task(cnn_data)
    ce = torch.nn.functional.cross_entropy
    before = ce(predict(cnn, task.forget_x), task.forget_y).item()
    params = {"epochs": 3, "batch_size": 32, "forget_batch": 16, "lr": 1e-3}
    _, keep = unlearn("neggrad_plus", copy.deepcopy(cnn), task, alpha=1.0, **params)
    method, push = unlearn("neggrad_plus", copy.deepcopy(cnn), task, alpha=0.5, **params)
    after_keep = ce(predict(keep, task.forget_x), task.forget_y).item()
    after_push = ce(predict(push, task.forget_x), task.forget_y).item()
    assert after_push > before and after_push > after_keep + 1.0
    assert [h["epoch"] for h in method.history] == [1, 2, 3]
    assert all(math.isfinite(h["forget_ce"]) for h in method.history)
