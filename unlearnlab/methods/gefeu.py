"""GeFeU, Generator Feature Unlearning (thesis, Kastler 2025, code
``GeneratorFeatureUnlearning``, save folder "FEFU"). Seed notes, Part 2, D4.

Definition: GEMU (see ``gemu``) with one change: the label of noise sample i is the original
model's softmax on forget sample i, t_i = softmax(f_theta(x_i)), a soft C-vector computed once
before unlearning (thesis Eq. 3: min_g E[-L(f(g(z)), f(x)) + lam ||g(z)||] for x in D_f). The
same soft labels pair with the noise in the noise maximisation and in the impair phase; the
retain samples of the impair phase get one-hot labels. This needs the forget samples
themselves, not just their labels (no "zero-glance" privacy), as the thesis notes.

Deviations from the thesis: those of GEMU (registered generator layers, ``bounded`` noise in
the lab defaults, impair/repair batch sizes as parameters, a uniform retain sample).
"""

from __future__ import annotations

import torch
from torch import nn

from ..training import predict
from .base import UnlearnTask
from .gemu import GEMU, LAB_TUNED
from .registry import register_method

# Thesis Table 3 / the code's defaults (= Optuna best trial #99, rounded), seed notes D4.
GEFEU_THESIS = {"epochs": 7, "noise_lr": 0.24, "noise_batch": 100, "n2r": 4.75, "lam": 0.07,
                "n_layers": 5, "hidden": 1024, "noise_dim": 128, "impair_lr": 0.04,
                "repair_lr": 0.02, "impair_batch": 8, "repair_batch": 8, "bounded": False}


@register_method
class GeFeU(GEMU):
    name = "gefeu"
    defaults = dict(GEMU.defaults)
    refinements = dict(LAB_TUNED)  # tuned jointly with GEMU; see gemu.LAB_TUNED
    # The thesis is this method's paper: ``paper`` (every method's published values) and
    # ``thesis`` (the preset of the thesis figures) hold the same values.
    presets = {"paper": dict(GEFEU_THESIS), "thesis": dict(GEFEU_THESIS)}
    # The search space is GEMU's (``GEMU.search_space``, inherited): the same hyperparameters,
    # and the thesis searched the same ranges for both (seed notes D5).

    def targets(self, model: nn.Module, task: UnlearnTask) -> torch.Tensor:
        """Soft labels: the original model's softmax on each forget sample (before unlearning)."""
        return torch.softmax(predict(model, task.forget_x, device=task.device), dim=1)
