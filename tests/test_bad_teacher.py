"""Bad Teacher (``bad_teacher``), on synthetic data."""

from __future__ import annotations

import pytest
import torch
from support import FORGET, make_task, unlearn
from support import weights as state

from unlearnlab.errors import ConfigError
from unlearnlab.methods import create
from unlearnlab.methods.bad_teacher import incompetent_teacher
from unlearnlab.training import predict


def test_bad_teacher_leaves_the_teacher_alone_and_is_seeded(mlp, mlp_data):
    before = state(mlp)
    _, out = unlearn("bad_teacher", mlp, make_task(mlp_data, arch="mlp"), lr=1e-3, epochs=2)
    assert all(torch.equal(v, before[k]) for k, v in state(mlp).items())
    assert not torch.equal(out.fc1.weight, mlp.fc1.weight)
    # the incompetent teacher: re-initialised (not the original), reproducible from the seed
    bad = incompetent_teacher(mlp, 3)
    assert not torch.equal(bad.fc1.weight, mlp.fc1.weight)
    assert torch.equal(bad.fc1.weight, incompetent_teacher(mlp, 3).fc1.weight)
    assert not torch.equal(bad.fc1.weight, incompetent_teacher(mlp, 4).fc1.weight)


def test_bad_teacher_forgets_towards_the_incompetent_teacher(mlp, mlp_data):
    test, f = mlp_data.test, mlp_data.test.y == FORGET
    assert (predict(mlp, test.x[f]).argmax(1) == FORGET).float().mean() > 0.8
    _, out = unlearn("bad_teacher", mlp, make_task(mlp_data, arch="mlp"), lr=3e-3, epochs=20,
                     batch_size=32, retain_fraction=0.5)
    after = predict(out, test.x).argmax(1)
    assert (after[f] == FORGET).float().mean() < 0.5
    assert (after[~f] == test.y[~f]).float().mean() > 0.8


@pytest.mark.parametrize(("key", "value"), [("temperature", 0.0), ("temperature", -1.0),
                                            ("temperature", float("nan")),
                                            ("retain_fraction", 1.5),
                                            ("retain_fraction", -0.1), ("lr", 0.0),
                                            ("epochs", 0)])
def test_bad_teacher_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"bad_teacher.*\b{key}\b"):
        create("bad_teacher", params={key: value})
