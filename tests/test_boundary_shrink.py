"""Boundary Shrink (``boundary_shrink``), on synthetic data."""

from __future__ import annotations

import pytest
import torch
from support import FORGET, make_task, unlearn

from unlearnlab.errors import ConfigError
from unlearnlab.methods import create
from unlearnlab.methods.boundary_shrink import neighbour_labels
from unlearnlab.training import predict


def test_boundary_shrink_never_keeps_the_true_label(mlp, mlp_data):
    task = make_task(mlp_data, forget=(1, FORGET), arch="mlp")
    # data_share 0: every forget sample (two of ten classes exceed the default tenth of |D|)
    method, out = unlearn("boundary_shrink", mlp, task, bound=1e-4, data_share=0.0)
    assert len(method.labels) == len(task.forget_y)
    assert (method.labels != task.forget_y).all()
    assert ((method.labels >= 0) & (method.labels < 10)).all()
    # with a tiny bound the attacked prediction is the true class, so the runner-up is used
    logits = predict(mlp, task.forget_x)
    logits[torch.arange(len(logits)), task.forget_y] = -torch.inf
    assert torch.equal(method.labels, logits.argmax(1))


def test_boundary_shrink_uses_the_attacked_class(mlp, mlp_data):
    task = make_task(mlp_data, arch="mlp")
    labels = neighbour_labels(mlp, task.forget_x, task.forget_y, 0.3, torch.device("cpu"))
    x = task.forget_x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(mlp(x), task.forget_y)
    (grad,) = torch.autograd.grad(loss, x)
    adv = predict(mlp, (task.forget_x + 0.3 * grad.sign()).clamp(0, 1)).argmax(1)
    moved = adv != task.forget_y
    assert moved.any()
    assert torch.equal(labels[moved], adv[moved])
    assert all(q.requires_grad for q in mlp.parameters())  # the attack froze only temporarily


def test_boundary_shrink_rejects_a_bad_bound():
    for bound in (0.0, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="boundary_shrink: bound"):
            create("boundary_shrink", params={"bound": bound})
