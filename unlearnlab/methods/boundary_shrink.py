"""Boundary Shrink (Chen et al., CVPR 2023, "Boundary Unlearning: Rapid Forgetting of Deep
Networks via Shifting the Decision Space"; maintained re-implementation: SalUn's
``unlearn/boundary_sh.py``).

Definition, with f_0 the original model (frozen, eval mode) and D_f the forget samples:

1. neighbour search: for each (x, y) in D_f take one FGSM step of size ``bound`` (L-inf) that
   increases f_0's loss, x' = clip(x + ``bound`` * sign(grad_x CE(f_0(x), y)), 0, 1);
2. relabel: y' = argmax f_0(x'), the nearest wrong class; if the attack did not leave the true
   class (y' = y), y' = the runner-up class of f_0(x') (the highest logit other than y), so no
   sample keeps its own label;
3. shrink: fine-tune a copy of f_0 on {(x, y')} (the clean forget samples with the neighbour
   labels) with ``training.fit`` (Adam ``lr``, shuffled batches of ``batch_size``,
   ``epochs`` epochs, shuffles seeded with ``task.seed``). No retain data is used.

The labels ``self.labels`` are kept for inspection.

Lab notes and deviations:

- the attacked labels are computed once, before fine-tuning, on the frozen original (the
  reference recomputed them per batch on the same frozen copy, which gives the same labels);
- the runner-up rule is new: the reference kept an unsuccessful attack's label, i.e. trained
  the sample towards its own class;
- Adam instead of SGD with momentum (the lab's optimiser); the pixel range is [0, 1], so the
  adversarial images are clipped there.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, DivergenceError
from ..training import fit
from . import register_method
from .base import UnlearningMethod, UnlearnTask
from .noise_generator import Timer, frozen


def neighbour_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float,
                     device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    """The class one FGSM step of size ``bound`` pushes each sample into, never its own label
    (the runner-up class instead). ``model`` is used in eval mode and left unchanged."""
    was_training = model.training
    model.eval()
    labels = []
    try:
        with frozen(model.parameters()):
            for start in range(0, len(y), batch_size):
                xb = x[start:start + batch_size].to(device).requires_grad_(True)
                yb = y[start:start + batch_size].to(device)
                (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xb), yb), xb)
                with torch.no_grad():
                    adv = (xb + bound * grad.sign()).clamp(0, 1)
                    logits = model(adv)
                    logits[torch.arange(len(yb)), yb] = -math.inf  # the best class but y
                    labels.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(labels) if labels else y.clone()


@register_method
class BoundaryShrink(UnlearningMethod):
    name = "boundary_shrink"
    defaults = {"bound": 0.1, "epochs": 1, "lr": 1e-4, "batch_size": 64}
    # Keys: the generic defaults above are the CNN class values (mnist class:6, CNN, seed 0:
    # forget test 0.5 % (retrained 0.0), retain test 97.2 % (retrained 98.7), 6.2 s (36 s under
    # heavy CPU contention; retraining 36.9 s); batch 256, lr 3e-4: 0.0 / 95.6; batch 128 or 256
    # at lr 1e-4: 22.5 / 97.4 and 85.2 / 98.2). "mlp" holds the class-forgetting MLP value;
    # every feature entry overrides it. Measured numbers: forget test / retain test of
    # unlearned vs retrained, avg_gap in points, unlearn vs retraining seconds (2 shared cores).
    # The forget rate is steep in lr on feature subsets (every sample is pushed across).
    dataset_defaults = {
        # mnist class:6 (MLP): seed 0: F 0.8/0.0, R 97.9/98.1, gap 0.43, 0.9 s/25 s; seed 1:
        # F 0.4/0.0, R 97.2/98.4, gap 0.58, 0.9 s/58 s; no flags. Generic lr 1e-4: F 7.0, gap 3.18.
        "mlp": {"lr": 2e-4},
        # mnist rest:mnist_sevens_with_crossbar (MLP): seed 0: F 84.9/83.2, R 97.8/98.2, gap
        # 4.14, 1.0 s/35 s; seed 1: F 81.7/73.5, R 97.1/97.9, gap 8.21, 0.8 s/25 s; no flags.
        # lr 1e-4: F 7.8 (over-forgets); 6e-5: 31.5; 4e-5: 70.4 / 65.9 (gap 6.67 flagged /
        # 4.23); 2e-5: 94.2.
        "mnist:feature": {"lr": 3e-5},
        # fashion_mnist subset:fashion_mnist_heeled_sandals (MLP), the generic lr: seed 0: F
        # 66.8/61.1, R 85.5/87.8, gap 4.29, 0.6 s/84 s; seed 1: F 60.9/68.1, R 86.0/87.9, gap
        # 6.63, 0.5 s/26 s; no flags.
        "fashion_mnist:feature": {"lr": 1e-4},
        # cmnist subset:mnist_sevens_with_crossbar (ConvNet): seed 0: F 61.9/24.5, R 96.4/97.4,
        # gap 26.91, 0.2 s/109 s; seed 1: F 22.3/14.4, R 89.8/96.2, gap 5.67, 0.7 s/176 s; no
        # flags. Seed-sensitive: lr 5e-4: gap 14.8 / 10.9 but collapse on seed 1; 6e-4: gap
        # 4.62 on seed 0 but collapse on seed 1 (R 79.7); 1e-3: collapse; generic 1e-4: F 84.2.
        "cmnist:feature": {"lr": 4e-4},
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params  # epochs, batch_size and lr are checked by the base class
        if not (isinstance(p["bound"], int | float) and math.isfinite(p["bound"])
                and p["bound"] > 0):
            raise ConfigError(f"{self.name}: bound must be a positive number, got {p['bound']}; "
                              "e.g. --set bound=0.1")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        if len(task.forget_y) == 0:
            raise ConfigError(f"{self.name}: the forget set is empty; nothing to unlearn")
        if task.num_classes < 2:
            raise ConfigError(f"{self.name}: needs at least 2 classes, got {task.num_classes}")
        self.history, self.timings = [], {}
        net = self.copy_model(model).to(task.device)
        with Timer(self.timings, "attack"):
            self.labels = neighbour_labels(net, task.forget_x, task.forget_y, p["bound"],
                                           task.device)
        with Timer(self.timings, "shrink"):
            self.history = fit(net, task.forget_x, self.labels, epochs=p["epochs"],
                               batch_size=p["batch_size"], lr=p["lr"], seed=task.seed,
                               device=task.device, desc=self.name)
        if not all(torch.isfinite(q).all() for q in net.parameters()):
            raise DivergenceError(f"{self.name}: a weight became non-finite; lower lr (now "
                                  f"{p['lr']})")
        return net.eval()
