"""GEMU, generator-based error-maximising-noise unlearning (thesis, Kastler 2025: "FEMU+Gen",
code ``GeneratorMachineUnlearning``; after UNSIR, Tarun et al. 2023, "Fast Yet Effective
Machine Unlearning"). Seed notes, Part 2, D2/D3.

Definition, with f the model, g the noise generator (``noise_generator.NoiseGenerator``) and
D_f = {(x_i, y_i)} the forget samples:

1. noise maximisation: f frozen (eval mode), train g with Adam(``noise_lr``) for ``epochs``
   epochs of |D_f| samples in shuffled batches of ``noise_batch``, minimising
   L_g = -CE(f(g(z)), t) + ``lam`` * mean_batch(sum_pixels g(z)^2), z ~ N(0, I) fresh per
   batch, t = the forget labels y_i (GEMU; GeFeU overrides ``targets``);
2. impair: one shuffled epoch of Adam(``impair_lr``, batch ``impair_batch``) on CE over all
   parameters of f, on |D_f| fresh noise samples (noise i labelled t_i) plus a retain sample of
   min(floor(|D_f| * ``n2r``), |D_r|) samples drawn without replacement from D_r;
3. repair: one shuffled epoch of Adam(``repair_lr``, batch ``repair_batch``) on CE over the
   same retain sample.

Lab options: ``mask_fraction`` > 0 lets the impair phase change only that fraction of the
weights, those most specific to the forget set: the top ``mask_fraction`` of all trainable
weights by the ratio I_f / I_r of SSD's importances (Foster et al., AAAI 2024, see ``ssd``;
squared gradients of batch-mean CE in batches of ``MASK_BATCH``) on D_f and on a uniform sample
of min(``mask_samples``, |D_r|) retain samples, at the original weights; 0/0 scores 0, x/0
scores infinity; masked as SalUn masks (Fan et al., ICLR 2024, see ``salun``). The repair
phase is not masked. ``impair_freeze_conv`` / ``repair_freeze_conv`` keep the ``nn.Conv2d`` layers
fixed in that phase (no effect on the MLP), so that its backward pass stops at the first linear
layer: about three times cheaper per sample on the ConvNet. ``repair_n2r`` > 0 repairs on a
fresh retain sample of min(floor(|D_f| * ``repair_n2r``), |D_r|) samples instead of the
impair's.

Everything random (generator init, z, shuffles, the retain sample) comes from ``task.seed``.

Deviations from the thesis: the generator's hidden layers are registered and trained (the
thesis trained only its output layer, see ``noise_generator``); the lab defaults bound the noise
to [0, 1] with a sigmoid (``bounded``; the ``paper``/``thesis`` preset keeps it unbounded);
impair and repair batch sizes are parameters (the thesis hard-coded 8); the retain sample is a
uniform sample of D_r without repeats, capped at |D_r| (the thesis's balanced sampler served
classes round-robin, truncated to the smallest class and cycling, so it repeated samples when
floor(|D_f| * N2R) exceeded what it held); the ``paper``/``thesis`` noise lr is the code's 0.03
(thesis Table 4 says 0.3, a typo).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import DivergenceError
from ..training import adam
from ._common import (
    Timer,
    begin,
    frozen,
    importances,
    masked_gradients,
    top_fraction,
    train_epoch,
)
from .base import UnlearningMethod, UnlearnTask
from .noise_generator import NoiseGenerator, soft_cross_entropy
from .params import MAX_LAYERS, MAX_SAMPLES, MAX_WIDTH, NON_NEGATIVE, Range
from .registry import register_method

# Thesis Table 4 / the code's defaults (= Optuna best trial #53, rounded), seed notes D3.
GEMU_THESIS = {"epochs": 6, "noise_lr": 0.03, "noise_batch": 32, "n2r": 11.5, "lam": 0.26,
               "n_layers": 1, "hidden": 1024, "noise_dim": 35, "impair_lr": 0.05,
               "repair_lr": 0.01, "impair_batch": 8, "repair_batch": 8, "bounded": False}

# The lab's tuned values per dataset (unlisted keys: ``defaults``), shared by GEMU and GeFeU:
# the settings with the smallest worst-seed miss of the retrained model's forget accuracy
# within 2 retain points and 1/10 of its time. How they were searched, the measurements and
# the neighbours that failed: docs/tuning-notes.md#gemu-and-gefeu.
LAB_TUNED = {
    "mnist": {},
    # Masking the impair to the weights most specific to the forget set spares the top classes,
    # which an unmasked impair epoch cost retain accuracy on every setting tried.
    "fashion_mnist": {"n2r": 3.0, "impair_lr": 0.04, "impair_batch": 128, "repair_batch": 128,
                      "mask_fraction": 0.35},
    # A small forget set makes noise epochs cheap; the repair runs on all of D_r with the
    # convolutions frozen, which makes it ~3x cheaper than a full-network epoch.
    "cmnist": {"epochs": 3, "noise_batch": 256, "n2r": 24.0, "impair_lr": 1e-2,
               "impair_batch": 128, "repair_batch": 64, "repair_lr": 2e-3, "repair_n2r": 64.0,
               "repair_freeze_conv": True},
    # random forgetting: the masked impair at 0.04 costs retain accuracy (docs/tuning-notes.md)
    "fashion_mnist:random": {"impair_lr": 1e-2},
}


def conv_parameters(net: nn.Module, freeze: bool) -> list[nn.Parameter]:
    """The parameters a phase keeps fixed: those of the ``nn.Conv2d`` layers with ``freeze``,
    none otherwise."""
    if not freeze:
        return []
    return [q for module in net.modules() if isinstance(module, nn.Conv2d)
            for q in module.parameters()]


# The batch of the importances behind ``mask_fraction`` (batch-mean gradients, as SSD's).
MASK_BATCH = 128


def specific_weights(net: nn.Module, task: UnlearnTask, fraction: float, n_retain: int,
                     gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Per parameter name, a 0/1 mask of the top ``fraction`` of ``net``'s trainable weights by
    I_f / I_r (``ssd.importances`` on D_f and on min(``n_retain``, |D_r|) retain samples drawn
    with ``gen``); ``net`` is in eval mode."""
    rows = torch.randperm(len(task.retain_y), generator=gen)[:n_retain]
    forget = importances(net, task.forget_x, task.forget_y, MASK_BATCH, task.device)
    retain = importances(net, task.retain_x[rows], task.retain_y[rows], MASK_BATCH, task.device)
    scores = {name: torch.where(forget[name] > 0, forget[name] / retain[name], 0.0)
              for name in forget}
    return top_fraction(scores, fraction)


def retain_sample(task: UnlearnTask, n2r: float,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniform sample of min(floor(|D_f| * ``n2r``), |D_r|) retain samples without repeats,
    drawn with ``gen``."""
    k = min(int(math.floor(len(task.forget_y) * n2r)), len(task.retain_y))
    rows = torch.randperm(len(task.retain_y), generator=gen)[:k]
    return task.retain_x[rows], task.retain_y[rows]


@register_method
class GEMU(UnlearningMethod):
    name = "gemu"
    scenarios = ("class", "feature", "random")
    # Lab defaults (= the MNIST tuning below): one cheap noise epoch, a 512-wide generator,
    # bounded noise, large batches, a retain sample of 2 x |D_f|.
    defaults = {"epochs": 1, "noise_lr": 1e-3, "noise_batch": 512, "n2r": 2.0, "lam": 0.1,
                "n_layers": 1, "hidden": 512, "noise_dim": 35, "impair_lr": 5e-3,
                "repair_lr": 5e-4, "impair_batch": 512, "repair_batch": 256, "bounded": True,
                "impair_freeze_conv": False, "repair_freeze_conv": False, "repair_n2r": 0.0,
                "mask_fraction": 0.0, "mask_samples": 8192}
    ranges = {"n_layers": Range(1, MAX_LAYERS), "hidden": Range(1, MAX_WIDTH),
              "noise_dim": Range(1, MAX_WIDTH), "n2r": NON_NEGATIVE, "lam": NON_NEGATIVE,
              "repair_n2r": NON_NEGATIVE, "mask_fraction": Range(0, 1, note="0 = no mask"),
              "mask_samples": Range(1, MAX_SAMPLES)}
    refinements = LAB_TUNED
    # The thesis is this method's paper: ``paper`` (every method's published values) and
    # ``thesis`` (the preset of the thesis figures) hold the same values.
    presets = {"paper": dict(GEMU_THESIS), "thesis": dict(GEMU_THESIS)}

    @classmethod
    def search_space(cls, trial) -> dict:
        """The thesis's study (seed notes D5: epochs 1-10, noise lr 0.01-0.3, N2R 0.01-20,
        lambda 0.01-0.3, impair/repair lr 0.01-0.3) widened downwards to hold ``LAB_TUNED``
        (noise lr 1e-3, impair lr 5e-3-0.02, repair lr 5e-4-1e-2, N2R up to 64), on log
        scales; batch sizes as powers of two from 32 (the thesis's 8 makes a CPU trial many
        times slower) that include every ``LAB_TUNED`` value, which a study runs first; the
        impair mask off (0) or on at a few fractions around the Fashion-MNIST value. The
        generator's shape (``n_layers``, ``hidden``, ``noise_dim``) stays at the defaults: the
        thesis's tuned depth acted on untrained layers (see ``noise_generator``), and on CPU
        every wider generator costs every trial."""
        return {"epochs": trial.suggest_int("epochs", 1, 8),
                "noise_lr": trial.suggest_float("noise_lr", 1e-4, 0.3, log=True),
                "lam": trial.suggest_float("lam", 0.01, 0.3, log=True),
                "n2r": trial.suggest_float("n2r", 0.5, 64.0, log=True),
                "impair_lr": trial.suggest_float("impair_lr", 1e-4, 0.1, log=True),
                "repair_lr": trial.suggest_float("repair_lr", 1e-5, 0.05, log=True),
                "noise_batch": trial.suggest_categorical("noise_batch", [32, 128, 256, 512]),
                "impair_batch": trial.suggest_categorical("impair_batch", [32, 128, 512]),
                "repair_batch": trial.suggest_categorical("repair_batch", [32, 64, 128, 256]),
                "mask_fraction": trial.suggest_categorical("mask_fraction",
                                                           [0.0, 0.2, 0.35, 0.5])}

    # ---------------------------------------------------------------------- overridable step

    def targets(self, model: nn.Module, task: UnlearnTask) -> torch.Tensor:
        """The label of noise sample i, one per forget sample: GEMU uses the true labels."""
        return task.forget_y.clone()

    # ---------------------------------------------------------------------------- the method

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        device = task.device
        net, gen = begin(self, model, task)
        self.generator: NoiseGenerator | None = None

        with Timer(self.timings, "labels"):
            targets = self.targets(net, task).cpu()
        with Timer(self.timings, "noise"):
            generator = self._make_generator(task)
            self._maximise_noise(net, generator, targets, gen, task)
            self.generator = generator  # kept for inspection (tests, notebooks)
        impair_fixed = conv_parameters(net, p["impair_freeze_conv"])
        with Timer(self.timings, "mask"), frozen(impair_fixed):
            net.eval()
            self.mask = ({} if p["mask_fraction"] == 0 else
                         specific_weights(net, task, p["mask_fraction"], p["mask_samples"], gen))
        with (Timer(self.timings, "impair"), frozen(impair_fixed),
              masked_gradients(net, self.mask)):
            with torch.no_grad():
                generator.eval()
                noise = torch.cat([generator.sample(len(chunk), gen).cpu()
                                   for chunk in targets.split(4096)])
            retain_x, retain_y = retain_sample(task, p["n2r"], gen)
            retain_t = (retain_y if targets.dim() == 1 else
                        nn.functional.one_hot(retain_y, task.num_classes).to(targets.dtype))
            x = torch.cat([noise.to(retain_x.dtype), retain_x])
            y = torch.cat([targets, retain_t])
            self.history.append(train_epoch(net, x, y, lr=p["impair_lr"],
                                            batch_size=p["impair_batch"], gen=gen,
                                            device=device, desc=f"{self.name} impair"))
        with Timer(self.timings, "repair"), frozen(conv_parameters(net, p["repair_freeze_conv"])):
            if p["repair_n2r"] > 0:
                retain_x, retain_y = retain_sample(task, p["repair_n2r"], gen)
            if len(retain_y) > 0:
                self.history.append(train_epoch(net, retain_x, retain_y, lr=p["repair_lr"],
                                                batch_size=p["repair_batch"], gen=gen,
                                                device=device, desc=f"{self.name} repair"))
        net.eval()
        return net

    def _make_generator(self, task: UnlearnTask) -> NoiseGenerator:
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task.seed)
            generator = NoiseGenerator(tuple(task.forget_x.shape[1:]), p["noise_dim"],
                                       p["hidden"], p["n_layers"], p["bounded"])
        return generator.to(task.device)

    def _maximise_noise(self, net: nn.Module, generator: NoiseGenerator, targets: torch.Tensor,
                        gen: torch.Generator, task: UnlearnTask) -> None:
        """Phase 1: train ``generator`` against the frozen ``net`` (its weights untouched)."""
        p = self.params
        net.eval()
        generator.train()
        optimizer = adam(generator.parameters(), p["noise_lr"])
        n = len(targets)
        with frozen(net.parameters()):
            for epoch in range(1, p["epochs"] + 1):
                order = torch.randperm(n, generator=gen)
                sums = torch.zeros(3, device=task.device)
                for start in range(0, n, p["noise_batch"]):
                    idx = order[start:start + p["noise_batch"]]
                    noise = generator.sample(len(idx), gen)
                    ce = soft_cross_entropy(net(noise), targets[idx].to(task.device))
                    reg = noise.pow(2).flatten(1).sum(1).mean()
                    loss = -ce + p["lam"] * reg
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    sums += torch.stack([loss.detach(), ce.detach(), reg.detach()]) * len(idx)
                loss, ce, reg = (sums / n).tolist()
                if not math.isfinite(loss):
                    raise DivergenceError(f"{self.name} noise: the generator loss became {loss} "
                                          f"in epoch {epoch}; lower noise_lr or raise lam")
                self.history.append({"phase": f"{self.name} noise", "epoch": epoch,
                                     "loss": loss, "ce": ce, "reg": reg})
        generator.eval()
