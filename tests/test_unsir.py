"""UNSIR (``unsir``), on synthetic data."""

from __future__ import annotations

import pytest
import torch
from support import make_task, unlearn

from unlearnlab.errors import ConfigError
from unlearnlab.methods import create


def test_unsir_learns_one_noise_tensor_per_forgotten_class(mlp, mlp_data):
    task = make_task(mlp_data, forget=(2, 6), arch="mlp")
    method, out = unlearn("unsir", mlp, task, noise_batch=8, noise_copies=3, noise_steps=3)
    assert sorted(method.noise) == [2, 6]
    for noise in method.noise.values():
        assert noise.shape == (8, 1, 28, 28)
    assert not torch.equal(method.noise[2], method.noise[6])
    assert set(method.timings) == {"noise", "impair", "repair"}
    # the impair phase saw 2 classes x 8 images x 3 copies of noise
    impair = next(h for h in method.history if h.get("phase") == "unsir impair")
    retain = round(method.params["retain_fraction"] * len(task.retain_y))
    assert impair["samples"] == 2 * 8 * 3 + retain
    # the noise maximises the frozen original's error on its own class
    for k, noise in method.noise.items():
        with torch.no_grad():
            ce = torch.nn.functional.cross_entropy(mlp(noise), torch.full((8,), k))
        assert ce > 1.0


def test_unsir_labels_each_noise_with_its_own_class(mlp, mlp_data, monkeypatch):
    """The reference notebook labelled all noise 0; every copy of N_k must carry label k."""
    import unlearnlab.methods.unsir as unsir

    seen = []

    def spy(net, x, y, **kw):
        seen.append((x.clone(), y.clone(), kw["desc"]))
        return {"phase": kw["desc"], "loss": 0.0, "acc": 0.0, "samples": len(x)}

    monkeypatch.setattr(unsir, "train_epoch", spy)
    task = make_task(mlp_data, forget=(2, 6), arch="mlp")
    method, _ = unlearn("unsir", mlp, task, noise_batch=4, noise_copies=2, noise_steps=1)
    x, y, desc = seen[0]
    assert desc == "unsir impair"
    for k, noise in method.noise.items():
        rows = (x[:, None] == noise[None]).flatten(2).all(2).any(1)  # copies of N_k
        assert rows.sum() == 4 * 2
        assert (y[rows] == k).all()
    assert set(y[:16].tolist()) == {2, 6}


@pytest.mark.parametrize(("key", "value"), [("noise_steps", 0), ("noise_copies", 0),
                                            ("lam", -1.0), ("retain_fraction", 2.0),
                                            ("noise_batch", 0)])
def test_unsir_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"unsir.*\b{key}\b"):
        create("unsir", params={key: value})
