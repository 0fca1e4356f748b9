"""Bad Teacher, competent/incompetent teacher distillation (Chundawat et al., AAAI 2023, "Can
Bad Teaching Induce Forgetting? Unlearning in Deep Networks using an Incompetent Teacher").

Definition, with f the original model (the competent teacher, frozen), b a freshly initialised
model of the same architecture (the incompetent teacher, frozen), s the student (a copy of f)
and T the ``temperature``:

1. draw a retain subsample R of round(``retain_fraction`` * |D_r|) samples of D_r without
   replacement, and form U = D_f + R, each sample flagged forget (l=1) or retain (l=0);
2. teacher targets, computed once: p_i = softmax(b(x_i) / T) if l_i = 1 else
   softmax(f(x_i) / T);
3. train s for ``epochs`` shuffled epochs of U in mixed batches of ``batch_size`` with Adam
   (``lr``) on L = mean_i KL(p_i || softmax(s(x_i) / T)).

The incompetent teacher is ``copy.deepcopy`` of the model with ``reset_parameters()`` called on
every sub-module that has one, under ``torch.manual_seed(task.seed)`` (the global random state
is restored afterwards). Everything random (b, R, the shuffles) comes from ``task.seed``.

Lab notes and deviations from the reference code (vikram2000b/bad-teaching-unlearning):

- the student is trained by ``training.fit`` on the soft targets p_i, with its logits divided
  by T; cross-entropy against a fixed p_i differs from KL(p_i || q_i) only by the constant
  entropy H(p_i), so the gradients are the KL's. ``history`` reports both (``loss`` = CE,
  ``kl`` = CE - mean H(p));
- the KL is the per-sample sum over classes averaged over the batch ("batchmean"); the
  reference used PyTorch's default "mean" reduction, which also divides by the number of
  classes (a 10x smaller step at the same lr). No T^2 factor, as in the reference;
- the teachers' outputs are computed once in eval mode instead of per batch (the teachers are
  frozen, so the targets are the same);
- the reference sampled 30 % of D_r; here the fraction is ``retain_fraction``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import ConfigError, DivergenceError
from ..training import fit, predict
from . import register_method
from .base import UnlearningMethod, UnlearnTask
from .noise_generator import Timer


class _Tempered(nn.Module):
    """Wraps a model so that its logits are divided by the distillation temperature."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x):
        return self.model(x) / self.temperature


def incompetent_teacher(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every sub-module that has ``reset_parameters`` re-initialised,
    seeded with ``seed`` (the caller's global random state is left as it was)."""
    teacher = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in teacher.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return teacher.eval()


@register_method
class BadTeacher(UnlearningMethod):
    name = "bad_teacher"
    # Lab defaults: a 5 % retain sample (the reference's 30 % costs 3x the time for the same
    # retain accuracy here) and lr 1e-3 (the reference's 1e-4 leaves the class at 26 %).
    defaults = {"epochs": 1, "lr": 1e-3, "batch_size": 256, "temperature": 1.0,
                "retain_fraction": 0.05}
    # Keys: the generic defaults above are the CNN class values (mnist class:6, CNN, seed 0:
    # forget test 0.1 % (retrained 0.0), retain test 98.3 % (retrained 98.7), 2.0 s (retraining
    # 36.9 s); lr 1e-4 with 30 % retain: 25.6 / 98.4; lr 5e-4 with 10 %: 7.5 / 98.6). "mlp"
    # holds the class-forgetting MLP values; every feature entry overrides all keys it sets.
    # Measured numbers: forget test / retain test of unlearned vs retrained, avg_gap in points,
    # unlearn vs retraining seconds (2 shared CPU cores, so the seconds are noisy).
    dataset_defaults = {
        # mnist class:6 (MLP): seed 0: F 8.0/0.0, R 97.0/98.1, gap 3.91, 0.8 s/25 s; seed 1:
        # F 5.8/0.0, R 97.2/98.4, gap 3.09, 0.9 s/58 s; no flags. Generic (lr 1e-3, 5 %): F 11.7,
        # gap 5.81; lr 2e-3 with 5 %: F 34.1 (noisy in lr / retain fraction).
        "mlp": {"lr": 2e-3, "retain_fraction": 0.1},
        # mnist rest:mnist_sevens_with_crossbar (MLP): seed 0: F 77.6/83.2, R 97.4/98.2, gap
        # 2.01, 1.1 s/35 s; seed 1: F 74.6/73.5, R 97.2/97.9, gap 2.78, 0.7 s/25 s; no flags.
        # lr 1e-3 (the class value): F 7.4, gap 45.1 (over-forgets); lr 2e-4 with 20 %: F 12.1.
        "mnist:feature": {"lr": 1e-4, "retain_fraction": 0.05},
        # fashion_mnist subset:fashion_mnist_heeled_sandals (MLP): seed 0: F 67.8/61.1, R
        # 85.6/87.8, gap 3.88, 0.6 s/84 s; seed 1: F 63.0/68.1, R 84.7/87.9, gap 6.51, 0.5 s/
        # 26 s; no flags. lr 1e-4: F 88.2 (gap 17.4); lr 3e-4: F 31.9 (over-forgets); 1e-3: 4.3.
        "fashion_mnist:feature": {"lr": 2e-4, "retain_fraction": 0.05},
        # cmnist subset:mnist_sevens_with_crossbar (ConvNet): seed 0: F 20.1/24.5, R 93.4/97.4,
        # gap 4.87, 0.8 s/109 s; seed 1: F 19.4/14.4, R 94.1/96.2, gap 3.16, 0.9 s/176 s; no
        # flags (retain costs 2-4 points). lr 1e-3 with 5 %: F 5.0, R 90.0; lr 3e-4: F 74.8.
        "cmnist:feature": {"lr": 6e-4, "retain_fraction": 0.1},
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params  # epochs, batch_size and lr are checked by the base class
        if not (isinstance(p["temperature"], int | float) and math.isfinite(p["temperature"])
                and p["temperature"] > 0):
            raise ConfigError(f"{self.name}: temperature must be a positive number, got "
                              f"{p['temperature']}")
        if not (isinstance(p["retain_fraction"], int | float)
                and 0 <= p["retain_fraction"] <= 1):
            raise ConfigError(f"{self.name}: retain_fraction must be in [0, 1], got "
                              f"{p['retain_fraction']}; e.g. --set retain_fraction=0.3")

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        if len(task.forget_y) == 0:
            raise ConfigError(f"{self.name}: the forget set is empty; nothing to unlearn")
        self.history, self.timings = [], {}
        device = task.device
        gen = torch.Generator().manual_seed(task.seed)
        with Timer(self.timings, "targets"):
            bad = incompetent_teacher(model, task.seed).to(device)
            k = round(p["retain_fraction"] * len(task.retain_y))
            rows = torch.randperm(len(task.retain_y), generator=gen)[:k]
            retain_x = task.retain_x[rows]
            t = p["temperature"]
            # N x C teacher probabilities: the incompetent teacher on D_f, the original on R
            targets = torch.cat([
                torch.softmax(predict(bad, task.forget_x, device=device) / t, 1),
                torch.softmax(predict(model, retain_x, device=device) / t, 1)])
            x = torch.cat([task.forget_x, retain_x])
            entropy = -(targets * targets.clamp_min(1e-12).log()).sum(1).mean().item()
        with Timer(self.timings, "distill"):
            student = self.copy_model(model).to(device)
            tempered = _Tempered(student, t)
            history = fit(tempered, x, targets, epochs=p["epochs"], batch_size=p["batch_size"],
                          lr=p["lr"], seed=gen, device=device, desc=self.name)
        self.history = [{**entry, "kl": entry["loss"] - entropy, "samples": len(x)}
                        for entry in history]
        if not all(torch.isfinite(q).all() for q in student.parameters()):
            raise DivergenceError(f"{self.name}: a weight became non-finite; lower lr (now "
                                  f"{p['lr']})")
        return student.eval()
