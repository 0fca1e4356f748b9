"""SalUn, saliency-masked random relabelling (Fan, Liu, Zhang, Wei, Wong & Liu, ICLR 2024,
"SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency").

Definition, on a forget sample D_f' of ``forget_samples`` samples without repeats (0 = all):

1. saliency: g = grad_theta mean_{D_f'} CE(f_theta(x), y) at the original weights (eval
   mode, accumulated in batches of ``mask_batch``); the mask m keeps the weights whose |g| is
   among the top ``mask_fraction`` of all weights of the model (one global threshold over
   every parameter tensor, biases included; ties broken by position, so exactly
   round(``mask_fraction`` * #weights) entries are 1, at least one);
2. random-label fine-tuning: the training set of ``random_label`` (D_f' with random wrong
   labels plus a retain sample of min(floor(|D_f'| * ``retain_ratio``), |D_r|) samples with
   true labels), ``epochs`` shuffled Adam passes on mean CE, with every gradient multiplied by
   m before the step. Adam's moments of a masked-out weight stay 0, so that weight is not
   changed at all (bit-identical to the original).

Deviations from the paper: Adam instead of SGD; the forget sample and the retain ratio keep the
cost a small fraction of a retraining (the paper trains on D_f and all of D_r for ~10
epochs); the paper's gradient is that of -CE summed over forget batches, whose magnitudes are
the same.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..training import fit
from ._common import (
    Timer,
    begin,
    check_count,
    check_finite,
    check_ratio,
    masked_gradients,
    top_fraction,
)
from .base import UnlearningMethod, UnlearnTask
from .random_label import relabelled_mix
from .registry import register_method


def saliency_mask(net: nn.Module, x: torch.Tensor, y: torch.Tensor, fraction: float,
                  batch_size: int) -> dict[str, torch.Tensor]:
    """Per parameter name, a 0/1 float mask of the weights with the largest |grad of the mean
    CE over (x, y)|: the top ``fraction`` of all trainable weights, one global threshold."""
    device = next(net.parameters()).device
    named = [(n, q) for n, q in net.named_parameters() if q.requires_grad]
    was_training = net.training
    net.eval()
    net.zero_grad(set_to_none=True)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        (nn.functional.cross_entropy(net(xb), yb, reduction="sum") / len(y)).backward()
    net.train(was_training)
    scores = {name: (q.grad if q.grad is not None else torch.zeros_like(q)).abs()
              for name, q in named}
    net.zero_grad(set_to_none=True)
    return top_fraction(scores, fraction)


@register_method
class SalUn(UnlearningMethod):
    name = "salun"
    scenarios = ("class", "feature", "random")
    defaults = {"mask_fraction": 0.5, "epochs": 1, "lr": 1e-3, "batch_size": 128,
                "forget_samples": 500, "retain_ratio": 4.0, "mask_batch": 512}
    # The generic defaults fit class forgetting; feature forgetting gets random_label's mild
    # relabelling, as lr 1e-3 over-forgets the Fashion-MNIST subset
    # (docs/tuning-notes.md#salun).
    dataset_defaults = {
        "feature": {"forget_samples": 100, "retain_ratio": 16.0, "lr": 3e-4},
        # the "feature" setting under-forgets the heeled sandals
        "fashion_mnist:feature": {"forget_samples": 200, "retain_ratio": 8.0},
    }

    def check_params(self) -> None:
        p = self.params
        f = p["mask_fraction"]
        if not isinstance(f, int | float) or not math.isfinite(f) or not 0 < f <= 1:
            raise ConfigError(f"{self.name}: mask_fraction must be a number in (0, 1], got {f}; "
                              "e.g. --set mask_fraction=0.5")
        check_count(self.name, "forget_samples", p["forget_samples"])
        check_ratio(self.name, p["retain_ratio"])

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        net, gen = begin(self, model, task)
        with Timer(self.timings, "mask"):
            x, t, rows = relabelled_mix(task, p["forget_samples"], p["retain_ratio"], gen)
            self.mix = {"forget": len(rows), "retain": len(t) - len(rows)}
            # the saliency of the same forget sample, with its true labels
            self.mask = saliency_mask(net, x[:len(rows)], task.forget_y[rows],
                                      p["mask_fraction"], p["mask_batch"])
        with Timer(self.timings, "train"):
            with masked_gradients(net, self.mask):
                self.history = fit(net, x, t, epochs=p["epochs"], batch_size=p["batch_size"],
                                   lr=p["lr"], seed=gen, device=task.device, desc=self.name)
        check_finite(net, self.name, p["lr"])
        net.eval()
        return net
