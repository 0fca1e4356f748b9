"""Retain-only fine-tuning of the last layer.

Definition: copy the model, keep every parameter fixed except those of its last ``nn.Linear``
layer (the classifier head), and train the head with Adam (``lr``) on mean cross-entropy over a
uniform sample of ``retain_samples`` retain samples (0 = all), for ``epochs`` shuffled passes
in batches of ``batch_size``. The forget set is never read: the head forgets what the retain
data does not support. Everything random comes from ``task.seed``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from unlearnlab.errors import ConfigError
from unlearnlab.methods import UnlearningMethod, UnlearnTask
from unlearnlab.training import fit


class HeadFinetune(UnlearningMethod):
    name = "head_finetune"
    defaults = {"epochs": 2, "lr": 1e-2, "batch_size": 128, "retain_samples": 4000}
    scenarios = ("class",)

    def check_params(self) -> None:
        if self.params["retain_samples"] < 0:
            raise ConfigError(f"{self.name}: retain_samples must be >= 0 (0 = all)")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        net = copy.deepcopy(model).to(task.device)  # never change the model we are given
        head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        gen = torch.Generator().manual_seed(task.seed)
        rows = torch.randperm(len(task.retain_y), generator=gen)
        rows = rows[:p["retain_samples"]] if p["retain_samples"] else rows
        self.history = fit(net, task.retain_x[rows], task.retain_y[rows], epochs=p["epochs"],
                           batch_size=p["batch_size"], lr=p["lr"], seed=gen,
                           device=task.device, params=head.parameters(), desc=self.name)
        return net.eval()
