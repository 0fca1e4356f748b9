"""NegGrad+, gradient descent on the retain set combined with gradient ascent on the forget set
(Kurmanji, Triantafillou, Hayes & Triantafillou, NeurIPS 2023, "Towards Unbounded Machine
Unlearning", section 4 baselines).

Definition: each step pairs a retain batch B_r (``batch_size`` samples) with a forget batch B_f
(``forget_batch`` samples) and takes an Adam step on
L = alpha * mean_{B_r} CE(f(x), y) - (1 - alpha) * mean_{B_f} CE(f(x), y).
An epoch walks a shuffled retain sample of ``retain_per_epoch`` samples (0 = all of D_r) in
batches; the forget batches come from a shuffled D_f that is reshuffled and restarted whenever
it runs out. ``alpha`` = 1 is plain fine-tuning on the retain batches (the forget batches are
then not even evaluated); ``alpha`` = 0 is pure gradient ascent.

Deviations from the paper in the lab's default: Adam instead of SGD, alpha 0.9 where both
references use 0.95 (tuned on the lab's scenarios, docs/tuning-notes.md#neggrad_plus), and the
retain pass subsampled per epoch (``retain_per_epoch``) to keep the cost a small fraction of a
retraining. A non-finite loss or weight raises ``DivergenceError`` (the ascent term is
unbounded).

The ``paper`` preset is DeepUnlearn's NegGrad+ (xcadet/deepunlearn,
``munl/unlearning/neggradplus.py``, the ``ORIGINAL_*`` constants, adapted from SCRUB's
``small_scale_unlearning.ipynb``): SGD with momentum 0.9, lr 0.01, no weight decay, alpha 0.95,
10 epochs over all of D_r in batches of 256 paired with cycled forget batches of 256. Its
l2 pull towards the original weights is weighted by that weight decay (0) and so left out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import DivergenceError
from ..training import make_optimizer
from ._common import Timer, begin, check_finite, check_optimizer, sample_rows
from .base import UnlearningMethod, UnlearnTask
from .params import FRACTION, NON_NEGATIVE, SAMPLE_COUNT
from .registry import register_method


class CyclicBatches:
    """Endless shuffled batches of ``n`` row indices: a fresh permutation (drawn with ``gen``)
    each time the previous one is used up; a batch never straddles two permutations."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator):
        self.n, self.batch_size, self.gen = n, batch_size, gen
        self.order, self.pos = torch.randperm(n, generator=gen), 0

    def next(self) -> torch.Tensor:
        if self.pos >= self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


@register_method
class NegGradPlus(UnlearningMethod):
    name = "neggrad_plus"
    scenarios = ("class", "feature", "random")
    defaults = {"alpha": 0.9, "epochs": 1, "lr": 3e-4, "batch_size": 128, "forget_batch": 128,
                "retain_per_epoch": 3000}
    # ``training.make_optimizer``'s optimiser and L2 weight decay (the references: SGD)
    defaults |= {"optimizer": "adam", "weight_decay": 0.0}
    ranges = {"alpha": FRACTION, "retain_per_epoch": SAMPLE_COUNT,
              "weight_decay": NON_NEGATIVE}
    # NegGrad+ has a cliff between under- and over-forgetting on every scenario (one lr step
    # apart), and where it falls differs between seeds: none of these settings is robust
    # (docs/tuning-notes.md#neggrad_plus).
    refinements = {
        # the generic lr keeps most of the class; lr 1e-3 erases it at a cost in retain accuracy
        "mnist:class": {"lr": 1e-3},
        "fashion_mnist:feature": {"alpha": 0.95},
        # the only unflagged setting found; it under-forgets
        "cmnist:feature": {"lr": 1e-4},
        # random forgetting: the generic lr leaves the forget set as the original has it
        "mnist:random": {"lr": 2e-3},
        "fashion_mnist:random": {"lr": 1e-3},
    }
    # deepunlearn munl/unlearning/neggradplus.py, NegGradPlus.ORIGINAL_* and its default optimizer
    presets = {"paper": {"optimizer": "sgd", "lr": 0.01, "weight_decay": 0.0, "alpha": 0.95,
                         "epochs": 10, "batch_size": 256, "forget_batch": 256,
                         "retain_per_epoch": 0}}

    @classmethod
    def search_space(cls, trial) -> dict:
        """lr on a log scale around the lab's 1e-4-2e-3 (``refinements``; the cliff between
        under- and over-forgetting lies in it); alpha from 0.5 to 1 (the lab's 0.9 and 0.95,
        docs/tuning-notes.md tried 0.8; below 0.5 the unbounded ascent term dominates); 1-3
        epochs of a 500-10,000 retain sample per epoch (the default 3,000), so that the
        largest trial (3 x 10,000 retain and as many forget samples) is about one MNIST
        retraining epoch."""
        return {"lr": trial.suggest_float("lr", 3e-5, 1e-2, log=True),
                "alpha": trial.suggest_float("alpha", 0.5, 1.0),
                "epochs": trial.suggest_int("epochs", 1, 3),
                "retain_per_epoch": trial.suggest_int("retain_per_epoch", 500, 10000, log=True)}

    def check_params(self) -> None:
        check_optimizer(self)

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        device, alpha = task.device, p["alpha"]
        net, gen = begin(self, model, task, retain_needed_for="use gradient_ascent")
        net.train()
        optimizer = make_optimizer(p["optimizer"], [q for q in net.parameters()
                                                    if q.requires_grad],
                                   p["lr"], p["weight_decay"])
        forget = CyclicBatches(len(task.forget_y), p["forget_batch"], gen)
        ce = nn.functional.cross_entropy
        step = 0
        with Timer(self.timings, "train"):
            for epoch in range(1, p["epochs"] + 1):
                rows = sample_rows(len(task.retain_y), p["retain_per_epoch"], gen)
                sums = torch.zeros(3)
                for start in range(0, len(rows), p["batch_size"]):
                    r = rows[start:start + p["batch_size"]]
                    f = forget.next()
                    loss_r = ce(net(task.retain_x[r].to(device)), task.retain_y[r].to(device))
                    if alpha < 1:
                        loss_f = ce(net(task.forget_x[f].to(device)),
                                    task.forget_y[f].to(device))
                    else:  # plain fine-tuning: the forget term has weight 0
                        loss_f = torch.zeros((), device=device)
                    loss = alpha * loss_r - (1 - alpha) * loss_f
                    value = loss.item()
                    if not math.isfinite(value):
                        raise DivergenceError(f"{self.name}: the loss became {value} at step "
                                              f"{step + 1}; lower lr (now {p['lr']}) or raise "
                                              f"alpha (now {alpha})")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    sums += torch.tensor([value, loss_r.item(), loss_f.item()]) * len(r)
                loss, retain_ce, forget_ce = (sums / max(len(rows), 1)).tolist()
                self.history.append({"epoch": epoch, "loss": loss, "retain_ce": retain_ce,
                                     "forget_ce": forget_ce, "steps": step})
        check_finite(net, self.name, p["lr"])
        net.eval()
        return net
