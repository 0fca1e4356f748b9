"""SSD, Selective Synaptic Dampening (Foster et al., AAAI 2024, "Fast Machine Unlearning
Without Retraining Through Selective Synaptic Dampening"; reference code
if-loops/selective-synaptic-dampening, ``src/ssd.py``).

Definition, with theta the model's parameters and CE the cross-entropy:

1. importances (a diagonal-Fisher estimate, as in the reference): I(S) = mean over the
   mini-batches B of S (``batch_size`` samples, in order) of (grad_theta CE(f(B)))^2
   elementwise, CE(f(B)) the batch's mean cross-entropy; I_f = I(D_f) and I_D = I(D) on the
   full training data D = D_f + D_r, or a uniform sample of ``max_samples`` of its samples
   (0 = all; drawn without replacement from ``task.seed``), in the order
   ``importance_order`` names: ``shuffled`` (the lab's default; D's batches mix classes) or
   ``class`` (the reference's: D_r grouped by class in ascending class order, then D_f, each
   in dataset order within a class, so that almost every batch holds one class);
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
  tuned on the lab's models (``refinements``), with D shuffled (``importance_order``): with
  mixed batches the full-data importance is mostly gradient noise whose size depends on the
  batch, so alpha means something else than in the paper.

The ``paper`` preset is the reference's full-class run (if-loops/selective-synaptic-dampening,
``src/forget_full_class_main.py``: ``full_train_dl`` = ConcatDataset(retain, forget), unshuffled,
the retain set built class by class in ``forget_full_class_strategies.build_retain_forget_sets``;
batch ``-b`` 64; ``selection_weighting`` 10 and ``dampening_constant`` 1 in its ``kwargs``):
alpha 10, lambda 1, batches of 64, all of D in class order. No lab adaptation.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DivergenceError
from ._common import Timer, begin, check_choice, importances
from .base import UnlearningMethod, UnlearnTask
from .params import POSITIVE, SAMPLE_COUNT
from .registry import register_method


@register_method
class SSD(UnlearningMethod):
    name = "ssd"
    scenarios = ("class", "feature", "random")
    # The paper's alpha 10 selects almost nothing on the lab's models; alpha 3 forgets most of
    # the class (docs/tuning-notes.md#ssd).
    defaults = {"selection_weighting": 3.0, "dampening_constant": 1.0, "batch_size": 64,
                "max_samples": 5000}
    # The order of D in the full-data importance: "shuffled" (lab) or "class" (the reference)
    defaults |= {"importance_order": "shuffled"}
    ranges = {"selection_weighting": POSITIVE, "dampening_constant": POSITIVE,
              "max_samples": SAMPLE_COUNT}
    # The generic defaults above are the CNN class values; "mlp" holds the class-forgetting MLP
    # values, and every feature entry overrides all keys it sets. SSD under-forgets on the MLP
    # and is seed-sensitive on feature subsets; the measurements and the settings that failed
    # are in docs/tuning-notes.md#ssd. Note alpha < 1 with lambda 1 is the same as alpha 1
    # (beta caps at 1).
    refinements = {
        "mlp": {"batch_size": 2048, "max_samples": 20000},
        "mnist:feature": {"selection_weighting": 1.0, "batch_size": 64, "max_samples": 5000},
        "fashion_mnist:feature": {"selection_weighting": 1.0, "dampening_constant": 0.1,
                                  "batch_size": 64, "max_samples": 5000},
        # cmnist feature: no setting tried is sane on both seeds, so the generic values stay
        # random forgetting: forget and retain importances are alike, so select fewer weights
        "random": {"selection_weighting": 5.0, "dampening_constant": 1.0},
    }
    # selective-synaptic-dampening src/forget_full_class_main.py: -b 64, full_train_dl, kwargs
    presets = {"paper": {"selection_weighting": 10.0, "dampening_constant": 1.0,
                         "batch_size": 64, "max_samples": 0, "importance_order": "class"}}
    IMPORTANCE_ORDERS = ("shuffled", "class")

    @classmethod
    def search_space(cls, trial) -> dict:
        """alpha (``selection_weighting``) from 1 to 30 on a log scale, holding the paper's 10
        and the lab's 1-5 (below 1 it selects as 1 does at lambda 1); lambda
        (``dampening_constant``) from 0.01 to 5 on a log scale, holding the paper's 1 and the
        lab's 0.1; the importance batch as a power of two from 32 to 2,048 (the lab's 64 and
        the MLP's 2,048; the importances depend on it). ``max_samples`` only bounds the
        estimate's cost and stays; SSD trains nothing, so every trial is cheap."""
        return {"selection_weighting": trial.suggest_float("selection_weighting", 1.0, 30.0,
                                                           log=True),
                "dampening_constant": trial.suggest_float("dampening_constant", 0.01, 5.0,
                                                          log=True),
                "batch_size": trial.suggest_categorical("batch_size",
                                                        [32, 64, 128, 256, 512, 1024, 2048])}

    def check_params(self) -> None:
        check_choice(self, "importance_order", self.IMPORTANCE_ORDERS)

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        device = task.device
        net, gen = begin(self, model, task)
        net.eval()
        with Timer(self.timings, "importance"):
            x, y = self._sample(torch.cat([task.forget_x, task.retain_x]),
                                torch.cat([task.forget_y, task.retain_y]), gen,
                                n_forget=len(task.forget_y))
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

    def _sample(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                n_forget: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) shuffled and cut to at most ``max_samples`` (0 = all); for
        ``importance_order`` "class", the kept rows are put in the reference's order: the
        retain rows (``x[n_forget:]``) grouped by class in ascending class order, then the
        forget rows (``x[:n_forget]``) grouped likewise, each in their order in ``x`` within
        a class."""
        cap = self.params["max_samples"] or len(y)
        rows = torch.randperm(len(y), generator=gen)[:cap]
        if self.params["importance_order"] == "class":
            rows = rows.sort().values
            num_classes = int(y.max()) + 1 if len(y) else 1
            group = (rows < n_forget).long() * num_classes + y[rows]
            rows = rows[torch.sort(group, stable=True).indices]
        return x[rows], y[rows]
