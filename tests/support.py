"""Plain helpers of the unlearning-method tests (their fixtures, the data and the trained
models, are in ``conftest``): the forget task, the forget images replaced by noise, one
unlearning run, weight snapshots."""

from __future__ import annotations

import torch
from torch import nn

from unlearnlab.data import Dataset
from unlearnlab.methods import UnlearningMethod, UnlearnTask, create
from unlearnlab.models import recipe_for
from unlearnlab.training import seed_everything

FORGET = 6  # the class the method tests forget

# Small settings of the thesis methods, so that every unlearning run takes well under a second.
TINY = {"gradient_ascent": {"batch_size": 8},
        "gemu": {"hidden": 32, "noise_batch": 16, "impair_batch": 16, "repair_batch": 16,
                 "epochs": 2, "n2r": 2.0},
        "gefeu": {"hidden": 32, "n_layers": 3, "noise_batch": 16, "impair_batch": 16,
                  "repair_batch": 16, "epochs": 2, "n2r": 2.0}}


def make_task(ds: Dataset, forget: int | tuple[int, ...] = FORGET, *, seed: int = 0,
              arch: str = "cnn", forget_x: torch.Tensor | None = None) -> UnlearnTask:
    """The task of forgetting the training samples of class(es) ``forget`` of ``ds`` (the rest
    retained), on the CPU, with the recipe of ``arch``. ``forget_x`` replaces the forget images
    (its length also cuts the forget labels)."""
    f = torch.isin(ds.train.y, torch.tensor(forget))
    fx = ds.train.x[f] if forget_x is None else forget_x
    return UnlearnTask(fx, ds.train.y[f][:len(fx)], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for(arch), torch.device("cpu"), seed, ds.name)


def noise_task(ds: Dataset, *, seed: int = 0) -> UnlearnTask:
    """``make_task`` with the forget images replaced by uniform noise (same count, same labels,
    drawn from seed 99)."""
    shape = ds.train.x[ds.train.y == FORGET].shape
    noise = torch.rand(shape, generator=torch.Generator().manual_seed(99))
    return make_task(ds, seed=seed, forget_x=noise)


def unlearn(name: str, model: nn.Module, task: UnlearnTask, *, tiny: bool = False,
            **params) -> tuple[UnlearningMethod, nn.Module]:
    """Build method ``name`` with ``params`` and unlearn ``model`` on ``task``: (the method,
    the unlearned model). The global random state is seeded with ``task.seed`` first, unless
    ``tiny``: then ``params`` go on top of the method's ``TINY`` settings and the global state
    is left alone (the thesis-method tests check that it does not matter)."""
    if tiny:
        params = {**TINY[name], **params}
    else:
        seed_everything(task.seed)
    method = create(name, params=params)
    return method, method.unlearn(model, task)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
