"""Fine-tuning on the retain set, "FT" (the standard baseline of Golatkar, Achille & Soatto,
CVPR 2020, "Eternal Sunshine of the Spotless Net", and Warnecke et al., NDSS 2023, "Machine
Unlearning of Features and Labels"; also the NeurIPS 2023 unlearning challenge's baseline).

Definition: copy the model and keep training it on retain data only,
theta <- Adam step on mean_b CE(f_theta(x), y), (x, y) in a batch of D_r', for ``epochs``
shuffled passes over D_r', where D_r' is a uniform sample of ``retain_samples`` retain samples
without repeats (0 = all of D_r). The forget set is never read: forgetting comes only from
catastrophic forgetting of what D_r does not support.

Deviations from the papers: the lab's default is Adam (``optimizer``) where the papers use SGD
with momentum, and one epoch over a retain subsample (``retain_samples``) that keeps the cost a
small fraction of a retraining, where the papers fine-tune on all of D_r for several epochs.

The ``paper`` preset is FT as SalUn's and l1-sparse's code run it (OPTML-Group/Unlearn-Saliency,
``Classification/README.md`` "FT" and ``unlearn/impl.py``): SGD with momentum 0.9 and weight
decay 5e-4 (the repositories' ``arg_parser.py`` defaults), lr 0.01, 10 epochs over all of D_r in
batches of 256; its step schedule (x0.1 at epochs 91 and 136) never fires within 10 epochs.
Lab adaptation: none beyond the data (10 epochs of all of D_r cost about a lab retraining).
"""

from __future__ import annotations

from torch import nn

from ..training import fit
from ._common import Timer, begin, check_finite, check_optimizer, sample_rows
from .base import UnlearningMethod, UnlearnTask
from .params import NON_NEGATIVE, SAMPLE_COUNT
from .registry import register_method


@register_method
class Finetune(UnlearningMethod):
    name = "finetune"
    scenarios = ("class", "feature", "random")
    # Lab defaults: one epoch over 4,000 retain samples at a high lr (forgetting needs it).
    defaults = {"epochs": 1, "lr": 1e-2, "batch_size": 128, "retain_samples": 4000}
    # ``training.make_optimizer``'s optimiser and L2 weight decay (the papers: SGD, 5e-4)
    defaults |= {"optimizer": "adam", "weight_decay": 0.0}
    ranges = {"retain_samples": SAMPLE_COUNT, "weight_decay": NON_NEGATIVE}
    # The generic defaults on class and feature forgetting: a lower lr only forgets less. Random
    # forgetting has little to forget, and the generic lr costs retain accuracy there
    # (docs/tuning-notes.md#random-forgetting).
    refinements = {
        "mnist:random": {"lr": 3e-3, "retain_samples": 16000},
        "fashion_mnist:random": {"lr": 1e-3},
    }
    # Unlearn-Saliency Classification/README.md, "FT"; arg_parser.py (batch, momentum, decay)
    presets = {"paper": {"optimizer": "sgd", "lr": 0.01, "epochs": 10, "batch_size": 256,
                         "weight_decay": 5e-4, "retain_samples": 0}}

    @classmethod
    def search_space(cls, trial) -> dict:
        """lr on a log scale around the lab's 1e-3-1e-2 (``refinements``), 1-3 epochs and a
        retain sample of 1,000-16,000 (the default 4,000 and the MNIST random-forgetting
        16,000). All of D_r (``retain_samples`` 0) is left out: one epoch of it costs a
        retraining epoch, and the largest trial here (3 x 16,000 samples) already about one
        MNIST retraining epoch. The batch size stays: with Adam the lr sets the step."""
        return {"lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
                "epochs": trial.suggest_int("epochs", 1, 3),
                "retain_samples": trial.suggest_int("retain_samples", 1000, 16000, log=True)}

    def check_params(self) -> None:
        check_optimizer(self)

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        net, gen = begin(self, model, task, needs_forget=False,
                         retain_needed_for="there is nothing to fine-tune on")
        with Timer(self.timings, "finetune"):
            rows = sample_rows(len(task.retain_y), p["retain_samples"], gen)
            self.history = fit(net, task.retain_x[rows], task.retain_y[rows], epochs=p["epochs"],
                               batch_size=p["batch_size"], lr=p["lr"], seed=gen,
                               device=task.device, desc=self.name,
                               optimizer=p["optimizer"], weight_decay=p["weight_decay"])
        check_finite(net, self.name, p["lr"])
        net.eval()
        return net
