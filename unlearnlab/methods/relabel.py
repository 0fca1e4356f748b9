"""Freeze-and-relabel class forgetting (seed A: Fabbri 2024, "Selective Unlearning in Neural
Networks: Forgetting and Relearning Classes").

Freeze the named layers (default: the seed CNN's ``fc1`` and ``fc2``), then train the remaining
parameters with cross-entropy towards the ``target`` class for forget samples and towards the
true label for retain samples: L = mean_i CE(f(x_i), t_i), t_i = target if x_i is forgotten
else y_i.

Preset ``paper`` is the seed's notebook: target 3, ``fc1`` and ``fc2`` frozen (on the MLP, whose
only hidden layer is ``fc1``, that layer: the seed's first, MLP version froze all but the output
layer), 3 epochs of Adam at lr 1e-3 in batches of 64.

Deviations from the seed, in ``paper`` too: the loss is the batch *mean* (the seed summed
per-sample terms; under a fresh Adam the sum takes the same steps, up to Adam's epsilon); the
method gets a fresh Adam optimiser (the seed reused the training optimiser's moment estimates,
which the lab's checkpoints do not hold); it runs on D = D_f + D_r as the scenario gives it (the
seed ran on its training set with class 6 duplicated ten times); the target class and the frozen
layers are parameters instead of constants. The ``default`` preset also takes 1 epoch, not 3.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..training import fit
from .base import UnlearningMethod, UnlearnTask
from .registry import register_method


@register_method
class Relabel(UnlearningMethod):
    name = "relabel"
    scenarios = ("class",)  # it teaches the network that the whole class is ``target``
    defaults = {"target": 3, "freeze": ["fc1", "fc2"], "epochs": 1, "lr": 1e-3, "batch_size": 64}
    # Seed A froze the CNN's two hidden fc layers; the MLP's analogue keeps its hidden layer and
    # relearns the output layer.
    refinements = {"mlp": {"freeze": ["fc1"]}}
    presets = {"paper": {"target": 3, "freeze": ["fc1", "fc2"], "epochs": 3, "lr": 1e-3,
                         "batch_size": 64, "by_arch": {"mlp": {"freeze": ["fc1"]}}}}

    @classmethod
    def search_space(cls, trial) -> dict:
        """lr (log scale around the seed's 1e-3) and 1-2 epochs. The procedure stays the seed's:
        ``target`` and ``freeze`` are its choices, not quantities to fit to retraining. Two
        epochs at most, as each epoch passes over all of D (one retraining epoch)."""
        return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
                "epochs": trial.suggest_int("epochs", 1, 2)}

    def check_task(self, num_classes, forget_classes):
        target = self.params["target"]
        if not 0 <= target < num_classes:
            raise ConfigError(f"relabel: target {target} is not a class 0-{num_classes - 1}; "
                              "pick one with --set target=<class>")
        if target in forget_classes:
            raise ConfigError(f"relabel: target {target} is the forgotten class; pick another "
                              "with --set target=<class>")

    def unlearn(self, model, task: UnlearnTask):
        p = self.params
        # The runners call check_task before training; a direct call is checked here too.
        self.check_task(task.num_classes, task.forget_y.unique().tolist())
        model = self.copy_model(model)
        modules = dict(model.named_modules())
        missing = [name for name in p["freeze"] if name not in modules]
        if missing:
            # any(m.parameters()) would take the truth value of a whole tensor
            layers = [n for n, m in model.named_children()
                      if next(m.parameters(), None) is not None]
            raise ConfigError(f"relabel: model has no layer '{missing[0]}' to freeze; layers: "
                              f"{', '.join(layers)}")
        frozen = {id(q) for name in p["freeze"] for q in modules[name].parameters()}
        trainable = [q for q in model.parameters() if id(q) not in frozen]
        if not trainable:
            raise ConfigError(f"relabel: freezing {', '.join(p['freeze'])} leaves no trainable "
                              "parameter; freeze fewer layers with --set freeze=<layer,...>")
        x = torch.cat([task.forget_x, task.retain_x])
        y = torch.cat([torch.full_like(task.forget_y, p["target"]), task.retain_y])
        self.history = fit(model, x, y, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                           seed=task.seed, device=task.device, params=trainable, desc="relabel")
        return model
