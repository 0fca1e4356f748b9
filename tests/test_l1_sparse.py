"""l1-sparse unlearning (``l1_sparse``), on synthetic data."""

from __future__ import annotations

import copy

import pytest
import torch
from support import make_task, unlearn

from unlearnlab.errors import ConfigError
from unlearnlab.methods import create
from unlearnlab.training import fit


def test_l1_sparse_without_penalty_is_plain_finetuning(mlp, mlp_data):
    task = make_task(mlp_data, seed=2, arch="mlp")
    _, out = unlearn("l1_sparse", mlp, task, alpha=0.0, epochs=2, batch_size=32, lr=1e-3,
                     retain_fraction=1.0)
    plain = copy.deepcopy(mlp)
    fit(plain, task.retain_x, task.retain_y, epochs=2, batch_size=32, lr=1e-3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), plain.parameters(),
                                                  strict=True))


def test_l1_sparse_penalty_shrinks_the_weights_and_decays(mlp, mlp_data):
    task = make_task(mlp_data, arch="mlp")
    _, plain = unlearn("l1_sparse", mlp, task, alpha=0.0, epochs=2, batch_size=32)
    method, sparse = unlearn("l1_sparse", mlp, task, alpha=1e-3, epochs=2, batch_size=32)

    def l1(m):
        return sum(q.abs().sum().item() for q in m.parameters())

    assert l1(sparse) < l1(plain)
    alphas = [entry["alpha_end"] for entry in method.history]
    assert alphas[0] > 0 and alphas[-1] == 0.0  # linear decay reaches 0 at the last step
    assert method.history[0]["l1_penalty"] > method.history[1]["l1_penalty"] > 0


@pytest.mark.parametrize(("key", "value"), [("alpha", -1e-4), ("alpha", float("inf")),
                                            ("retain_fraction", 0.0)])
def test_l1_sparse_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"l1_sparse.*\b{key}\b"):
        create("l1_sparse", params={key: value})
