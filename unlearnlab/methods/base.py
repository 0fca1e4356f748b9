"""The contract every unlearning method follows.

A method class declares its hyperparameters and their defaults in ``defaults`` (the types of
the defaults are the types accepted from the command line). ``unlearn(model, task)`` returns a
new model and never mutates the one it is given. A method that can be tuned
(``unlearnlab tune``) declares its search space next to its code, in ``search_space(trial)``;
its best trial is then available as the preset ``tuned`` (``tuned_preset``).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import data_root
from ..errors import ConfigError
from ..training import Recipe

# The preset written by ``unlearnlab tune`` (its best trial per method and dataset): looked up in
# the data root first, then in the presets shipped with the package.
TUNED = "tuned"
TUNED_FILE = Path("presets") / "tuned.json"
SHIPPED_TUNED = Path(__file__).with_name("tuned_presets.json")


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
                 scenario: str | None = None, arch: str | None = None, data_dir=None, **params):
        if preset not in ("default", TUNED) and preset not in self.presets:
            raise ConfigError(f"method '{self.name}' has no preset '{preset}'; choose one of "
                              f"{', '.join(['default', *sorted(self.presets), TUNED])}")
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f"method '{self.name}' has no parameter '{unknown[0]}'; valid: "
                              f"{', '.join(sorted(self.defaults)) or 'none'}")
        self.preset = preset
        if preset == TUNED and preset not in self.presets:
            if not self.tunable():
                raise ConfigError(f"method '{self.name}' declares no search space, so it has "
                                  f"no '{TUNED}' preset")
            chosen = dict(tuned_preset(self.name, dataset, data_dir)["params"])
            stale = sorted(set(chosen) - set(self.defaults))
            if stale:
                raise ConfigError(f"the tuned preset of '{self.name}' on {dataset} sets "
                                  f"'{stale[0]}', which the method no longer has; run "
                                  "`unlearnlab tune` again")
        else:
            chosen = dict(self.presets.get(preset, {}))
        by_dataset = chosen.pop("by_dataset", {})
        if preset not in ("default", TUNED):
            base = self.defaults  # a named preset starts from the generic defaults
        else:  # the tuned parameters were searched on top of the dataset's defaults
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

    @classmethod
    def search_space(cls, trial) -> dict[str, Any]:
        """The hyperparameters to tune, drawn from an Optuna ``trial`` (``trial.suggest_*``):
        {parameter: value}, a subset of ``defaults`` (the others keep their defaults for the
        dataset and scenario). Methods that can be tuned override this."""
        raise ConfigError(f"method '{cls.name}' declares no search space, so it cannot be tuned; "
                          f"tunable: {', '.join(tunable_methods()) or 'none'}")

    @classmethod
    def tunable(cls) -> bool:
        """Whether the method declares a search space."""
        return cls.search_space.__func__ is not UnlearningMethod.search_space.__func__

    @staticmethod
    def copy_model(model: nn.Module) -> nn.Module:
        return copy.deepcopy(model)


def tunable_methods() -> list[str]:
    """Registry keys of the methods with a search space."""
    from . import get_method, list_methods

    return [name for name in list_methods() if get_method(name).tunable()]


def tuned_files(data_dir=None) -> list[Path]:
    """Where ``--preset tuned`` looks, first match wins: ``<data root>/presets/tuned.json``
    (written by ``unlearnlab tune``), then the package's shipped ``tuned_presets.json``."""
    return [data_root(data_dir) / TUNED_FILE, SHIPPED_TUNED]


def read_tuned(path: Path) -> dict:
    """A tuned-preset file, {method: {dataset: entry}}; {} when it does not exist."""
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tuned presets '{path}' are not valid JSON ({exc}); delete the file "
                          "and run `unlearnlab tune` again") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"tuned presets '{path}' must hold a JSON object")
    return content


def tuned_preset(method: str, dataset: str | None, data_dir=None) -> dict:
    """The entry of ``method`` on ``dataset`` in the first tuned-preset file that has one
    (``tuned_files``): {"params": ..., "study": ..., "value": ..., ...}."""
    if not dataset:
        raise ConfigError(f"preset '{TUNED}' of method '{method}' is per dataset: name one")
    for path in tuned_files(data_dir):
        by_dataset = read_tuned(path).get(method)
        entry = by_dataset.get(dataset) if isinstance(by_dataset, dict) else None
        if entry is not None:
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                raise ConfigError(f"tuned presets '{path}': entry {method}/{dataset} has no "
                                  "params; run `unlearnlab tune` again")
            return entry
    raise ConfigError(f"no tuned preset for method '{method}' on {dataset}: run `unlearnlab tune "
                      f"--method {method} --dataset {dataset} ...` first (looked in "
                      f"{', '.join(str(p) for p in tuned_files(data_dir))})")


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
