"""The contract every unlearning method follows.

A method class declares its hyperparameters and their defaults in ``defaults`` (the types of
the defaults are the types accepted from the command line). ``unlearn(model, task)`` returns a
new model and never mutates the one it is given.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..training import Recipe


@dataclass
class UnlearnTask:
    """What a method may use: the forget and retain training samples (with the duplicates of
    an oversampled recipe), the recipe the original was trained with, the device and a seed."""

    forget_x: torch.Tensor
    forget_y: torch.Tensor
    retain_x: torch.Tensor
    retain_y: torch.Tensor
    num_classes: int
    recipe: Recipe
    device: torch.device
    seed: int
    dataset: str = ""


class UnlearningMethod:
    """Base class: hyperparameters in ``__init__`` (validated, no logic), work in ``unlearn``."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    # Refinements of ``defaults`` (the lab's tuned values), applied from the most general to
    # the most specific key: the scenario kind ("class" or "feature"), the architecture
    # (e.g. "mlp"), the dataset name, then "<dataset>:<kind>" (e.g. "mnist:feature").
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    # Named alternatives (e.g. "thesis": the published hyperparameters). Each preset lists only
    # the keys it changes; an optional "by_dataset" entry refines it per dataset.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # The forgetting scenarios the method is meant for: "class" (a whole class) and/or
    # "feature" (a subset of one class); the leaderboard runs it only there.
    scenarios: ClassVar[tuple[str, ...]] = ("class", "feature")

    def __init__(self, preset: str = "default", dataset: str | None = None,
                 scenario: str | None = None, arch: str | None = None, **params):
        if preset != "default" and preset not in self.presets:
            raise ConfigError(f"method '{self.name}' has no preset '{preset}'; choose one of "
                              f"{', '.join(['default', *sorted(self.presets)])}")
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f"method '{self.name}' has no parameter '{unknown[0]}'; valid: "
                              f"{', '.join(sorted(self.defaults)) or 'none'}")
        self.preset = preset
        chosen = dict(self.presets.get(preset, {}))
        by_dataset = chosen.pop("by_dataset", {})
        if preset != "default":
            base = self.defaults  # a named preset starts from the generic defaults
        else:
            base = dict(self.defaults)
            for key in (scenario, arch, dataset, f"{dataset}:{scenario}"):
                base.update(self.dataset_defaults.get(key, {}))
        self.params = {**base, **chosen, **by_dataset.get(dataset, {}), **params}
        _check_ranges(self.name, self.params)
        self.history: list[dict] = []
        self.timings: dict[str, float] = {}  # seconds per phase, filled by unlearn()

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        """Return an unlearned copy of ``model``."""
        raise NotImplementedError

    @staticmethod
    def copy_model(model: nn.Module) -> nn.Module:
        return copy.deepcopy(model)


def _check_ranges(method: str, params: dict[str, Any]) -> None:
    """Shared conventions: ``*epochs`` and ``*batch*`` are integers >= 1, ``*lr`` is a finite
    positive number."""
    for key, value in params.items():
        if (key.endswith("epochs") or "batch" in key) and not (
                isinstance(value, int) and value >= 1):
            raise ConfigError(f"method '{method}': {key} must be an integer >= 1, got {value}")
        if key.endswith("lr") and not (isinstance(value, int | float) and math.isfinite(value)
                                       and value > 0):
            raise ConfigError(f"method '{method}': {key} must be a positive number, got {value}")


def coerce_params(method_cls: type[UnlearningMethod], raw: dict[str, str]) -> dict[str, Any]:
    """Convert ``--set key=value`` strings to the types of the method's defaults."""
    out = {}
    for key, text in raw.items():
        if key not in method_cls.defaults:
            raise ConfigError(f"method '{method_cls.name}' has no parameter '{key}'; valid: "
                              f"{', '.join(sorted(method_cls.defaults)) or 'none'}")
        default = method_cls.defaults[key]
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                value = text.lower() in ("true", "1")
            elif isinstance(default, int):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
            elif isinstance(default, list):
                value = [item for item in text.split(",") if item]
            else:
                value = text
        except ValueError:
            raise ConfigError(f"--set {key}={text}: expected {type(default).__name__} for "
                              f"'{key}' of method '{method_cls.name}'") from None
        out[key] = value
    return out


def parse_set_options(items: list[str]) -> dict[str, str]:
    """Split ``key=value`` strings; a missing '=' or key is an error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.strip().isidentifier():
            raise ConfigError(f"--set '{item}' is malformed: write key=value, e.g. --set target=3")
        out[key.strip()] = value.strip()
    return out
