"""SSD, Selective Synaptic Dampening (Foster et al., AAAI 2024, "Fast Machine Unlearning
Without Retraining Through Selective Synaptic Dampening"; reference code
if-loops/selective-synaptic-dampening, ``src/ssd.py``).

Definition, with theta the model's parameters and CE the cross-entropy:

1. importances (a diagonal-Fisher estimate, as in the reference): I(S) = mean over the
   mini-batches B of S (``batch_size`` samples, in order) of (grad_theta CE(f(B)))^2
   elementwise, CE(f(B)) the batch's mean cross-entropy; I_f = I(D_f) and I_D = I(D) on the
   full training data D = D_f + D_r, or a uniform sample of ``max_samples`` of its samples
   (0 = all; drawn without replacement from ``task.seed``; D is shuffled either way, so its
   batches mix classes);
2. selection: the elements with I_f > alpha * I_D (alpha = ``selection_weighting``);
3. dampening: each selected element is multiplied by beta = min(lambda * I_D / I_f, 1)
   (lambda = ``dampening_constant``); all other elements stay as they are.

No training: the weights can only shrink towards 0, never grow or change sign. The model is
in eval mode while the importances are computed.

Lab notes and deviations from the reference code:

- the full-data importance may be estimated on a sample (``max_samples``), which bounds the
  method's cost (the reference passed the whole training loader);
- the importance is the squared gradient of mini-batch means, as in the reference, not the
  per-sample Fisher: it depends on ``batch_size``. This matters: the forget batches (one
  class) have coherent gradients while D's mixed batches cancel, which is what lets
  I_f exceed alpha * I_D. With per-sample squares I_D >= |D_f|/|D| * I_f, so for a 10 % forget
  class no element can pass alpha >= 10 (tried: no forgetting, retain -5 points at alpha 3,
  and 10x slower);
- the reference's ``exponent`` (fixed to 1) and ``lower_bound`` (fixed to 1, the cap of beta)
  are not parameters;
- the paper's defaults (alpha 10, lambda 1, for ResNet-18 on CIFAR) are replaced by values
  tuned on the lab's models (``dataset_defaults``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, DivergenceError
from . import register_method
from .base import UnlearningMethod, UnlearnTask
from .noise_generator import Timer


def importances(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                device: torch.device) -> dict[str, torch.Tensor]:
    """Per parameter (by name), the mean over the batches of ``x`` (in order) of the squared
    gradient of the batch's mean cross-entropy."""
    params = {name: q for name, q in model.named_parameters() if q.requires_grad}
    out = {name: torch.zeros_like(q) for name, q in params.items()}
    batches = range(0, len(y), batch_size)
    for start in batches:
        loss = nn.functional.cross_entropy(model(x[start:start + batch_size].to(device)),
                                           y[start:start + batch_size].to(device))
        grads = torch.autograd.grad(loss, list(params.values()))
        for name, grad in zip(params, grads, strict=True):
            out[name] += grad.pow(2)
    return {name: imp / max(len(batches), 1) for name, imp in out.items()}


@register_method
class SSD(UnlearningMethod):
    name = "ssd"
    # The paper's alpha 10 selects almost nothing on the lab's models (mnist class:6, seed 0:
    # forget test 99.4 %, retain unchanged); alpha 3 forgets most of the class.
    defaults = {"selection_weighting": 3.0, "dampening_constant": 1.0, "batch_size": 64,
                "max_samples": 5000}
    # Keys: the generic defaults above are the CNN class values (mnist class:6, CNN, seed 0:
    # forget test 17.1 % (retrained 0.0), retain test 98.4 % (retrained 98.7), 1.8 s (retraining
    # 36.9 s); alpha 5: forget 52.7; alpha 10: 99.4). "mlp" holds the class-forgetting MLP
    # values; every feature entry overrides all keys it sets. Measured numbers: forget test /
    # retain test of unlearned vs retrained, avg_gap in points, unlearn vs retraining seconds
    # (2 shared CPU cores). Note alpha < 1 with lambda 1 is the same as alpha 1 (beta caps at 1).
    dataset_defaults = {
        # mnist class:6 (MLP): seed 0: F 37.0/0.0, R 96.5/98.1, gap 19.00, 1.1 s/25 s; seed 1:
        # F 68.9/0.0, R 92.9/98.4, gap 39.47, 1.1 s/58 s; no flags. Under-forgets: SSD does not
        # reach the retrained model on the MLP (generic: F 84.4, gap 49.0; alpha 1: F 78.0;
        # alpha 1 with lambda 0.1: F 40.9, R 91.8; alpha 0.5, lambda 0.1: collapse).
        "mlp": {"batch_size": 2048, "max_samples": 20000},
        # mnist rest:mnist_sevens_with_crossbar (MLP): seed 0: F 88.0/83.2, R 97.8/98.2, gap
        # 4.23, 0.7 s/35 s, no flags; seed 1: F 47.2/73.5, R 95.8/97.9, gap 12.61, 0.7 s/25 s,
        # FLAGGED over_forgetting (seed 1 over-forgets at every alpha tried: 1.5: F 47.8, 2:
        # 43.0, 3: 37.3; seed 0 generic alpha 3: F 93.0, gap 8.0).
        "mnist:feature": {"selection_weighting": 1.0, "batch_size": 64, "max_samples": 5000},
        # fashion_mnist subset:fashion_mnist_heeled_sandals (MLP): seed 0: F 88.5/61.1, R
        # 88.7/87.8, gap 18.33, 0.6 s/84 s; seed 1: F 82.3/68.1, R 86.8/87.9, gap 8.98, 0.7 s/
        # 26 s; no flags; under-forgets (generic: F 96.2, gap 23.3; alpha 1: F 93.0).
        "fashion_mnist:feature": {"selection_weighting": 1.0, "dampening_constant": 0.1,
                                  "batch_size": 64, "max_samples": 5000},
        # cmnist subset:mnist_sevens_with_crossbar (ConvNet): left at the generic values, as
        # no setting tried is sane on both seeds. Generic: seed 0: F 84.9/24.5, R 97.7/97.4, gap
        # 42.91, 3.3 s/109 s, no flags; seed 1: F 0.0/14.4, R 86.2/96.2, gap 13.75, 2.0 s/176 s,
        # FLAGGED over_forgetting. alpha 1, lambda 0.4: gap 5.91 on seed 0 but collapse on
        # seed 1 (R 72.4); alpha 1 or 2: collapse on seed 1; alpha 5: seed 1 still F 0.0.
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params  # batch_size is checked by the base class
        for key in ("selection_weighting", "dampening_constant"):
            if not (isinstance(p[key], int | float) and math.isfinite(p[key]) and p[key] > 0):
                raise ConfigError(f"{self.name}: {key} must be a positive number, got {p[key]}")
        if not (isinstance(p["max_samples"], int) and p["max_samples"] >= 0):
            raise ConfigError(f"{self.name}: max_samples must be an integer >= 0 (0 = all), got "
                              f"{p['max_samples']}")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        if len(task.forget_y) == 0:
            raise ConfigError(f"{self.name}: the forget set is empty; nothing to unlearn")
        self.history, self.timings = [], {}
        device = task.device
        net = self.copy_model(model).to(device).eval()
        gen = torch.Generator().manual_seed(task.seed)
        with Timer(self.timings, "importance"):
            x, y = self._sample(torch.cat([task.forget_x, task.retain_x]),
                                torch.cat([task.forget_y, task.retain_y]), gen)
            imp_forget = importances(net, task.forget_x, task.forget_y, p["batch_size"], device)
            imp_full = importances(net, x, y, p["batch_size"], device)
        with Timer(self.timings, "dampen"), torch.no_grad():
            self.selected = {}  # name -> boolean mask of the dampened elements (for inspection)
            for name, q in net.named_parameters():
                if name not in imp_forget:
                    continue
                i_f, i_d = imp_forget[name], imp_full[name]
                mask = i_f > p["selection_weighting"] * i_d
                beta = (p["dampening_constant"] * i_d[mask] / i_f[mask]).clamp(max=1)
                q[mask] *= beta
                self.selected[name] = mask
        if not all(torch.isfinite(q).all() for q in net.parameters()):
            raise DivergenceError(f"{self.name}: a weight became non-finite (importances "
                                  "overflowed?); raise selection_weighting")
        selected = sum(int(mask.sum()) for mask in self.selected.values())
        total = sum(mask.numel() for mask in self.selected.values())
        self.history.append({"phase": self.name, "selected": selected, "parameters": total,
                             "selected_fraction": selected / max(total, 1),
                             "forget_samples": len(task.forget_y), "full_samples": len(y)})
        return net

    def _sample(self, x: torch.Tensor, y: torch.Tensor,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) shuffled, cut to at most ``max_samples`` (0 = all)."""
        cap = self.params["max_samples"] or len(y)
        rows = torch.randperm(len(y), generator=gen)[:cap]
        return x[rows], y[rows]
