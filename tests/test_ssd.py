"""SSD (``ssd``), on synthetic data."""

from __future__ import annotations

import pytest
import torch
from support import FORGET, make_task, unlearn

from unlearnlab.errors import ConfigError
from unlearnlab.methods import create
from unlearnlab.training import predict


def test_ssd_only_shrinks_selected_weights(mlp, mlp_data):
    before = dict(mlp.named_parameters())
    method, out = unlearn("ssd", mlp, make_task(mlp_data, arch="mlp"), selection_weighting=2.0,
                          dampening_constant=1.0)
    assert set(method.selected) == set(before)
    for name, new in out.named_parameters():
        old, mask = before[name].detach(), method.selected[name]
        new = new.detach()
        assert torch.equal(new[~mask], old[~mask]), name  # unselected: untouched
        # selected: lambda = 1 < I_f / I_D, so beta < 1 shrinks every non-zero element
        assert (new[mask].abs() < old[mask].abs()).all() or not old[mask].any(), name
        assert (new * old >= 0).all(), name  # never flips sign
    total = sum(int(mask.sum()) for mask in method.selected.values())
    assert total == method.history[0]["selected"]
    assert 0 < total < sum(q.numel() for q in before.values())


def test_ssd_is_a_no_op_when_nothing_is_selected(mlp, mlp_data):
    method, out = unlearn("ssd", mlp, make_task(mlp_data, arch="mlp"), selection_weighting=1e30)
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), mlp.parameters(),
                                                  strict=True))
    assert method.history[0]["selected"] == 0


def test_ssd_dampening_lowers_the_forget_class_confidence(mlp, mlp_data):
    test, f = mlp_data.test, mlp_data.test.y == FORGET

    def confidence(**params):  # mean probability of the forgotten class on its test images
        _, out = unlearn("ssd", mlp, make_task(mlp_data, arch="mlp"), **params)
        return predict(out, test.x[f]).softmax(1)[:, FORGET].mean().item()

    untouched = confidence(selection_weighting=1e30)
    assert confidence(selection_weighting=1.5, dampening_constant=0.1) < untouched - 0.05


@pytest.mark.parametrize(("key", "value"), [("selection_weighting", 0.0),
                                            ("dampening_constant", -1.0),
                                            ("max_samples", -1), ("batch_size", 0)])
def test_ssd_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"ssd.*\b{key}\b"):
        create("ssd", params={key: value})
