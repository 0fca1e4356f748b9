"""Model architectures, registered by name. Every model takes images with pixel values in
[0, 1] (N x C x 28 x 28) and returns logits; losses own the softmax."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def wrap(cls):
        _MODELS[name] = cls
        return cls
    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model (seed torch beforehand for a reproducible init). Conv
    weights are stored channels-last, which the CPU (oneDNN) and CUDA convolution kernels run
    about twice as fast as NCHW on these nets (measured in ``benchmarks/bench_perf.py``)."""
    if name not in _MODELS:
        raise ConfigError(f"unknown architecture '{name}': choose one of "
                          f"{', '.join(list_models())}")
    model = _MODELS[name](in_channels=in_channels, num_classes=num_classes)
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


@register_model("cnn")
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


@register_model("mlp")
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


@register_model("convnet")
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
