"""Simple gradient ascent (``gradient_ascent``, the thesis's baseline), on tiny synthetic
tensors."""

from __future__ import annotations

import pytest
import torch
from support import make_task, unlearn

from unlearnlab.errors import DivergenceError
from unlearnlab.training import predict


def test_gradient_ascent_raises_the_forget_loss(thesis_mlp, thesis_data):
    task = make_task(thesis_data, arch="mlp")
    loss = torch.nn.functional.cross_entropy
    before = loss(predict(thesis_mlp, task.forget_x), task.forget_y)
    method, out = unlearn("gradient_ascent", thesis_mlp, task, tiny=True, lr=1e-3, epochs=2,
                          stop_loss=0.0)
    assert loss(predict(out, task.forget_x), task.forget_y) > before
    assert [h["epoch"] for h in method.history] == [1, 2] and "ascent" in method.timings


def test_gradient_ascent_huge_lr_diverges(thesis_mlp, thesis_data):
    with pytest.raises(DivergenceError, match="gradient_ascent: .*lower lr"):
        unlearn("gradient_ascent", thesis_mlp, make_task(thesis_data, arch="mlp"), tiny=True,
                lr=1e30)


def test_gradient_ascent_stops_early(thesis_mlp, thesis_data):
    method, _ = unlearn("gradient_ascent", thesis_mlp, make_task(thesis_data, arch="mlp"),
                        tiny=True, max_steps=2, epochs=5)
    assert method.history[-1]["steps"] == 2 and len(method.history) == 1
    method, _ = unlearn("gradient_ascent", thesis_mlp, make_task(thesis_data, arch="mlp"),
                        tiny=True, lr=1e-2, epochs=50, stop_loss=5.0)
    assert len(method.history) < 50
