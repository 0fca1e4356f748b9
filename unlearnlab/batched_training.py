"""Training N models of one architecture together, as one batched model: the forget-quality
test's ensembles at the price of fewer, larger kernels (``benchmarks/bench_ensemble.py``
measures it against ``training.fit`` one model after the other).

A module of its own because every cached model's key hashes ``training.py``: code added there
would retrain every model."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .errors import ConfigError, DivergenceError
from .progress import bar, step
from .training import make_optimizer


def fit_ensemble(models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                 batch_size: int, lr: float, seeds: Sequence[int],
                 device: torch.device | str = "cpu", desc: str = "train",
                 on_epoch: Callable[[nn.Module], dict] | None = None, optimizer: str = "adam",
                 weight_decay: float = 0.0) -> list[list[dict]]:
    """Train ``models`` (one architecture) together, in place: the same recipe as ``fit`` for
    each model ``i`` with shuffle seed ``seeds[i]``, computed as one batched model
    (``torch.func.stack_module_state`` + ``vmap``) whose loss is the sum of the models' mean
    cross-entropies, so that each model receives exactly its own gradient and optimiser update.

    Equal to ``fit`` up to float rounding per step (batched matrix products round
    differently); over many steps the rounding differences grow as in any chaotic training, so
    the weights are not tolerance-equal after an epoch, only distributed alike
    (``benchmarks/bench_ensemble.py``). Returns one ``fit`` history per model. Models must
    not share parameters; buffers are carried along unchanged (no batch norm)."""
    if len(models) != len(seeds) or not models:
        raise ConfigError(f"fit_ensemble: {len(models)} models but {len(seeds)} seeds; give one "
                          "seed per model")
    device = torch.device(device)
    for model in models:
        model.to(device).train()
    x, y = x.to(device), y.to(device)
    params, buffers = stack_module_state(list(models))
    template = copy.deepcopy(models[0]).to("meta")

    def one_model(p, b, xb):
        return functional_call(template, (p, b), (xb,))

    batched = vmap(one_model)
    step_rule = make_optimizer(optimizer, list(params.values()), lr, weight_decay)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    hard = y if y.dim() == 1 else y.argmax(1)
    m, n = len(models), len(y)
    histories: list[list[dict]] = [[] for _ in models]
    for epoch in range(1, epochs + 1):
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        loss_sum = torch.zeros(m, device=device)
        correct = torch.zeros(m, device=device, dtype=torch.long)
        for start in bar(range(0, n, batch_size), desc=f"{desc} x{m} {epoch}/{epochs}"):
            idx = orders[:, start:start + batch_size]
            logits = batched(params, buffers, x[idx])
            targets = y[idx]
            losses = nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(0, 1), reduction="none").view(m, -1)
            per_model = losses.mean(1)
            step_rule.zero_grad(set_to_none=True)
            per_model.sum().backward()
            step_rule.step()
            loss_sum += per_model.detach() * idx.shape[1]
            correct += (logits.detach().argmax(2) == hard[idx]).sum(1)
        mean_loss = (loss_sum / n).tolist()
        bad = [i for i, v in enumerate(mean_loss) if not np.isfinite(v)]
        if bad:
            raise DivergenceError(f"{desc}: the loss of model {bad[0]} (seed {seeds[bad[0]]}) "
                                  f"became {mean_loss[bad[0]]} in epoch {epoch}; lower the "
                                  "learning rate")
        _unstack(models, params)
        for i, model in enumerate(models):
            entry = {"epoch": epoch, "loss": mean_loss[i], "acc": correct[i].item() / n}
            if on_epoch is not None:
                entry.update(on_epoch(model.eval()))
                model.train()
            histories[i].append(entry)
        step("%s x%d: epoch %d/%d, mean loss %.4f", desc, m, epoch, epochs, sum(mean_loss) / m)
    for model in models:
        model.eval()
    return histories


@torch.no_grad()
def _unstack(models: Sequence[nn.Module], params: dict[str, torch.Tensor]) -> None:
    for i, model in enumerate(models):
        for name, param in model.named_parameters():
            param.copy_(params[name][i])
