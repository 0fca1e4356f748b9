"""Model-comparison metrics of the thesis (Kastler 2025, src/metrics.py), with its bugs fixed:
global parameter distance instead of a sum of per-tensor norms, and per-sample instead of
per-batch averaging for the KL divergence."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .training import predict


def parameter_distance(a: nn.Module, b: nn.Module) -> float:
    """Global L2 norm of the parameter difference, ||theta_a - theta_b||_2 over all parameters.
    (The thesis summed per-tensor L2 norms.)"""
    total = sum(((pa.detach().cpu() - pb.detach().cpu()) ** 2).sum()
                for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    return float(torch.sqrt(total))


def layer_distances(a: nn.Module, b: nn.Module, p: int = 2) -> dict[str, float]:
    """Per-tensor Lp norm of the parameter difference, keyed by parameter name."""
    pairs = zip(a.named_parameters(), b.named_parameters(), strict=True)
    return {name: float(torch.linalg.vector_norm((pa.detach() - pb.detach()).cpu().flatten(), p))
            for (name, pa), (_, pb) in pairs}


def kl_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> float:
    """Mean over samples of KL(P || Q) = sum_c p_c (log p_c - log q_c), from logits (natural
    log). Computed in log space without clamping. (The thesis averaged per batch and clamped.)"""
    log_p = torch.log_softmax(logits_p.double(), 1)
    log_q = torch.log_softmax(logits_q.double(), 1)
    return float((log_p.exp() * (log_p - log_q)).sum(1).mean())


def kl_matrix(models: dict[str, nn.Module], x: torch.Tensor,
              device=None) -> tuple[list[str], np.ndarray]:
    """Entry [i, j] = mean KL(P_i || P_j) on ``x``, for every pair of named models.
    Note the thesis's heatmaps put KL(P_col || P_row) at (row, col); this is the transpose."""
    names = list(models)
    logits = {n: predict(m, x, device=device) for n, m in models.items()}
    matrix = np.array([[kl_divergence(logits[i], logits[j]) for j in names] for i in names])
    return names, matrix
