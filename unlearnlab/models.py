"""The architecture registry: name -> model class and the recipe it is trained with.

The contract of a registered architecture: ``cls(in_channels=C, num_classes=K)`` builds a
freshly initialised ``nn.Module``; ``model(x)`` maps images with pixel values in [0, 1]
(N x C x H x W) to logits N x K (losses own the softmax); ``model.features(x)`` returns the
penultimate activations N x D (the PCA figures and feature-level methods read them). Register
one with ``@register_model("name", epochs=..., batch_size=..., lr=...)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError
from .registry import Registry
from .training import Recipe


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its class and the recipe a model is trained from scratch
    with."""

    cls: type[nn.Module]
    recipe: Recipe


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register_model(name: str, *, epochs: int, batch_size: int, lr: float,
                   replace: bool = False):
    """Class decorator: register ``cls`` under ``name`` with its training recipe (Adam at
    ``lr``, mean cross-entropy, ``batch_size``, ``epochs``). A taken name is an error unless
    ``replace``."""
    def wrap(cls):
        origin = f"{cls.__module__}:{cls.__qualname__}"
        if not callable(getattr(cls, "features", None)):
            raise ConfigError(f"architecture '{name}' ({origin}) has no features(x) method; "
                              "return the penultimate activations from it")
        recipe = Recipe(name, epochs=epochs, batch_size=batch_size, lr=lr)
        ARCHITECTURES.add(name, Architecture(cls, recipe), origin, replace)
        return cls
    return wrap


def list_models() -> list[str]:
    return sorted(ARCHITECTURES.names())


def architecture(name: str) -> Architecture:
    return ARCHITECTURES.get(name)


def recipe_for(arch: str, **overrides) -> Recipe:
    """The registered recipe of ``arch`` with ``overrides`` (e.g. ``epochs=1``)."""
    return dataclasses.replace(architecture(arch).recipe, **overrides)


def create_model(name: str, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model (seed torch beforehand for a reproducible init). Conv
    weights are stored channels-last, which the CPU (oneDNN) and CUDA convolution kernels run
    about twice as fast as NCHW on these nets (docs/performance.md)."""
    model = architecture(name).cls(in_channels=in_channels, num_classes=num_classes)
    return model.to(memory_format=torch.channels_last)


class Normalize(nn.Module):
    """Fixed per-channel standardisation, ``(x - mean) / std``, stored as buffers."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std


def pool_relu(x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(relu(x), 2)`` computed as ``relu(max_pool2d(x, 2))``: ReLU is monotone, so
    the two orders select the same maxima and give bitwise-identical outputs and gradients,
    but pooling first applies ReLU (and its backward) to a quarter of the values: 1.2x to 1.6x
    faster seed-CNN training steps on a 2-core CPU, measured side by side."""
    return torch.relu(nn.functional.max_pool2d(x, 2))


@register_model("cnn", epochs=3, batch_size=64, lr=1e-3)  # seed A exactly
class SeedCNN(nn.Module):
    """Seed A's CNN (Fabbri 2024): conv 32 -> conv 64 (3x3, padding 1, ReLU, 2x2 max-pool each)
    -> fc 128 -> fc 64 -> fc 10; 429,258 parameters. Includes the seed's input normalisation
    (MNIST mean 0.1307, std 0.3081) and returns logits instead of log-softmax."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.norm = Normalize(0.1307, 0.3081)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, num_classes)

    def features(self, x):
        """Penultimate activations (N x 64)."""
        x = pool_relu(self.conv1(self.norm(x)))
        x = pool_relu(self.conv2(x))
        x = torch.relu(self.fc1(x.flatten(1)))
        return torch.relu(self.fc2(x))

    def forward(self, x):
        return self.fc3(self.features(x))


@register_model("mlp", epochs=10, batch_size=128, lr=1e-3)
class MLP(nn.Module):
    """The thesis's TwoLayerPerceptron (Kastler 2025, after Simard et al. 2003):
    784 -> 800 (ReLU) -> 10; 636,010 parameters for one input channel. Input is pixels/255."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(in_channels * 28 * 28, 800)
        self.fc2 = nn.Linear(800, num_classes)

    def features(self, x):
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.features(x))


@register_model("convnet", epochs=10, batch_size=64, lr=1e-3)
class ConvNet(nn.Module):
    """The thesis's ConvNet for colorized MNIST: three blocks of 3x3 conv (padding 1), ReLU and
    2x2 max-pool with 32/64/128 channels (28 -> 14 -> 7 -> 3), then fc 1152 -> 128 -> 10;
    242,122 parameters on RGB input."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc1 = nn.Linear(128 * 3 * 3, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def features(self, x):
        for conv in (self.conv1, self.conv2, self.conv3):
            x = pool_relu(conv(x))
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.features(x))
