"""The noise generator shared by GEMU and GeFeU (thesis, Kastler 2025, section D2 of the seed
notes).

Definition: g(z) = W_out . h_L(...h_1(z)) + b_out, h_l(u) = ReLU(W_l u + b_l), z ~ N(0, I) of
dimension ``noise_dim``, ``n_layers`` hidden layers of width ``hidden``, output reshaped to
C x 28 x 28. With ``bounded=True`` the output goes through a sigmoid, so the noise lies in the
models' pixel range [0, 1].

Deviations from the thesis's ``NoiseGenerator``:

- the hidden layers are registered sub-modules (``nn.Sequential``), so they are trained, moved
  by ``.to()`` and saved in ``state_dict``; the thesis kept them in a plain dict, so only the
  output layer trained and the hidden layers were a frozen random feature map;
- one call maps a whole batch of z to a batch of images (the thesis drew one sample per
  ``__getitem__`` call), and z comes from an explicit ``torch.Generator`` (seeded);
- ``bounded`` (sigmoid output) is new; the thesis's output was an unbounded linear layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class NoiseGenerator(nn.Module):
    """Maps a batch of z ~ N(0, I) (N x ``noise_dim``) to a batch of images (N x C x H x W)."""

    def __init__(self, out_shape: Sequence[int], noise_dim: int = 35, hidden: int = 1024,
                 n_layers: int = 1, bounded: bool = True):
        super().__init__()
        self.out_shape = tuple(int(s) for s in out_shape)
        self.noise_dim = noise_dim
        self.bounded = bounded
        layers: list[nn.Module] = []
        width = noise_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, math.prod(self.out_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.out(self.hidden(z))
        if self.bounded:
            x = torch.sigmoid(x)
        return x.view(len(z), *self.out_shape)

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` images from fresh z drawn with ``gen`` (a CPU generator)."""
        z = torch.randn(n, self.noise_dim, generator=gen)
        return self(z.to(self.out.weight.device))


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean CE against class indices (1-D long) or probability vectors (2-D float)."""
    return nn.functional.cross_entropy(logits, target)
