"""SalUn, saliency-masked random relabelling (Fan, Liu, Zhang, Wei, Wong & Liu, ICLR 2024,
"SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency").

Definition, on a forget sample D_f' of ``forget_samples`` samples without repeats (0 = all;
with ``forget_share`` > 0, ``base.share_count(forget_share, |D_f|)`` samples):

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

Deviations from the paper in the lab's default: Adam instead of SGD; wrong labels only
(``label_classes``); the forget sample (which also builds the mask) and the retain ratio keep
the cost a small fraction of a retraining, where the paper builds the mask from all of D_f and
trains on D_f and all of D_r for 10 epochs; the paper's gradient is that of -CE summed over
forget batches, whose magnitudes are the same.

The ``paper`` preset is SalUn as its code runs it (OPTML-Group/Unlearn-Saliency,
``Classification/README.md`` "SalUn" command, ``generate_mask.py`` over the whole forget
loader, ``unlearn/RL.py``, ``arg_parser.py``): mask fraction 0.5 from all of D_f, random labels
over all classes, all of D_f and D_r in shuffled batches of 256, SGD with momentum 0.9 and
weight decay 5e-4 (on the unmasked weights only), lr 0.1, 10 epochs. Lab adaptation: none
beyond the data.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import top_fraction
from .params import Range
from .random_label import RandomLabel
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
class SalUn(RandomLabel):
    """``random_label`` with the fine-tuning masked to the most salient weights."""

    name = "salun"
    scenarios = ("class", "feature", "random")
    defaults = {"mask_fraction": 0.5, "epochs": 1, "lr": 1e-3, "batch_size": 128,
                "forget_samples": 500, "retain_ratio": 4.0, "mask_batch": 512,
                "forget_share": 0.0}
    # random_label's optimiser, weight decay, label classes and retain set
    defaults |= {"optimizer": "adam", "weight_decay": 0.0, "label_classes": "others",
                 "retain_set": "ratio"}
    ranges = {**RandomLabel.ranges, "mask_fraction": Range(0, 1, "(]")}
    # ``refinements`` are random_label's: class forgetting keeps the generic defaults,
    # feature forgetting gets the mild relabelling, as lr 1e-3 over-forgets the Fashion-MNIST
    # subset (docs/tuning-notes.md#salun), and so does random forgetting.
    mix_phase = "mask"
    # Unlearn-Saliency README.md "SalUn" command (hard mask 0.5, lr 0.1, 10 epochs),
    # generate_mask.py (all of D_f), unlearn/RL.py and arg_parser.py, as random_label's
    presets = {"paper": {**RandomLabel.presets["paper"], "mask_fraction": 0.5}}

    @classmethod
    def search_space(cls, trial) -> dict:
        """``random_label``'s space (the same relabelling, the same refinements) and the mask
        fraction from 0.05 to 1 (1 = unmasked random labelling), holding the paper's and the
        lab's 0.5. ``mask_batch`` only batches the saliency gradient, so it is not searched."""
        return {**super().search_space(trial),
                "mask_fraction": trial.suggest_float("mask_fraction", 0.05, 1.0)}

    def weight_mask(self, net: nn.Module, forget_x: torch.Tensor,
                    forget_y: torch.Tensor) -> dict[str, torch.Tensor]:
        return saliency_mask(net, forget_x, forget_y, self.params["mask_fraction"],
                             self.params["mask_batch"])
