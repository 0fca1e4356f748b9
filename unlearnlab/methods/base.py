"""The contract every unlearning method follows, and how its hyperparameters are resolved.

A method class declares its hyperparameters and their defaults in ``defaults`` (the type of a
default is the parameter's type, for values from the command line, presets, the tuned file and
the Python API alike). ``unlearn(model, task)`` returns a new model and never mutates the one it
is given. A method that can be tuned (``unlearnlab tune``) declares its search space next to its
code, in ``search_space(trial)``; its best trial is then available as the preset ``tuned``
(``tuned_params``). See docs/extending.md, "Add a method".
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
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
    """What a method may use: the forget samples (``forget_x`` N_f x C x H x W in [0, 1],
    ``forget_y`` their labels) and the retain samples (``retain_x``, ``retain_y``) of the
    training set, with the duplicates of an oversampled recipe; ``num_classes``; the ``recipe``
    the original was trained with; the ``device`` to compute on; the run's ``seed`` (every
    random draw of a method derives from it); the ``dataset`` name ("" when unknown)."""

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
    """Base class: hyperparameters stored and validated in ``__init__``, work in ``unlearn``.

    A subclass sets ``name`` and ``defaults``, implements ``unlearn(model, task)`` and, for
    checks beyond the shared conventions, ``check_params``; it never needs ``__init__``. Build
    one with ``unlearnlab.methods.create`` (presets, the lab's refinements, the tuned file) or
    directly with ``Method(params, preset)`` (``params`` on top of the generic ``defaults``).
    """

    name: ClassVar[str]
    # Every hyperparameter and its generic default; the default's type is the parameter's type
    # (bool, int, float, str or list of str; a float parameter also accepts an int).
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

    def __init__(self, params: Mapping[str, Any] | None = None, preset: str = "default"):
        self.check_preset(preset)
        params = dict(params or {})
        self.check_names(params)
        self.preset = preset
        self.params = {**self.defaults, **params}
        check_types(type(self), self.params)
        _check_ranges(self.name, self.params)
        self.check_params()
        self.history: list[dict] = []
        self.timings: dict[str, float] = {}  # seconds per phase, filled by unlearn()

    def check_params(self) -> None:
        """Checks of ``self.params`` beyond their types and the shared conventions (``*epochs``
        and ``*batch*`` integers >= 1, ``*lr`` finite and > 0); raise ``ConfigError``."""

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        """Return an unlearned copy of ``model``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ parameter resolution

    @classmethod
    def check_preset(cls, preset: str) -> bool:
        """Raise ``ConfigError`` for an unknown preset; return whether ``preset`` is read from
        the tuned-preset file (``tuned``, unless the class declares its own ``tuned`` preset),
        which needs a search space."""
        if preset not in ("default", TUNED) and preset not in cls.presets:
            raise ConfigError(f"method '{cls.name}' has no preset '{preset}'; choose one of "
                              f"{', '.join(['default', *sorted(cls.presets), TUNED])}")
        return preset == TUNED and preset not in cls.presets

    @classmethod
    def check_names(cls, params: Mapping[str, Any]) -> None:
        """Raise ``ConfigError`` for a key of ``params`` that is not a parameter."""
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            raise ConfigError(f"method '{cls.name}' has no parameter '{unknown[0]}'; valid: "
                              f"{', '.join(sorted(cls.defaults)) or 'none'}")

    @classmethod
    def check_tunable(cls) -> None:
        """Raise ``ConfigError`` when the method has no search space (so no tuned preset)."""
        if not cls.tunable():
            raise ConfigError(f"method '{cls.name}' declares no search space, so it has "
                              f"no '{TUNED}' preset")

    @classmethod
    def resolve_params(cls, preset: str = "default", dataset: str | None = None,
                       scenario: str | None = None, arch: str | None = None,
                       tuned: Mapping[str, Any] | None = None,
                       overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The hyperparameters of a run, without reading any file: the generic ``defaults``,
        refined by ``dataset_defaults`` (scenario kind, architecture, dataset,
        "<dataset>:<kind>") unless a named preset is chosen, then the preset's keys (for
        ``tuned``: the params of the tuned entry, ``tuned``), its ``by_dataset`` entry for
        ``dataset``, then ``overrides``."""
        uses_tuned = cls.check_preset(preset)
        cls.check_names(overrides or {})
        if uses_tuned:
            cls.check_tunable()
            if tuned is None:
                raise ConfigError(f"preset '{TUNED}' of method '{cls.name}' needs its tuned "
                                  "entry: build the method with unlearnlab.methods.create")
            chosen = dict(tuned)
            stale = sorted(set(chosen) - set(cls.defaults))
            if stale:
                raise ConfigError(f"the tuned preset of '{cls.name}' on {dataset} sets "
                                  f"'{stale[0]}', which the method no longer has; run "
                                  "`unlearnlab tune` again")
        else:
            chosen = dict(cls.presets.get(preset, {}))
        by_dataset = chosen.pop("by_dataset", {})
        if preset not in ("default", TUNED):
            base = cls.defaults  # a named preset starts from the generic defaults
        else:  # the tuned parameters were searched on top of the dataset's defaults
            base = dict(cls.defaults)
            for key in (scenario, arch, dataset, f"{dataset}:{scenario}"):
                base.update(cls.dataset_defaults.get(key, {}))
        return {**base, **chosen, **by_dataset.get(dataset, {}), **(overrides or {})}

    # ------------------------------------------------------------------------------ tuning

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


# ------------------------------------------------------------------------ parameter types

# The parameter types a default may have, each with how an error names it.
PARAM_TYPES = {bool: "true or false", int: "an integer", float: "a number",
               str: "a string", list: "a list of strings"}


def param_type(method_cls: type[UnlearningMethod], key: str) -> type:
    """The declared type of parameter ``key``: the type of its default."""
    kind = type(method_cls.defaults[key])
    if kind not in PARAM_TYPES:
        raise ConfigError(f"method '{method_cls.name}' declares parameter '{key}' with a "
                          f"{kind.__name__} default; use bool, int, float, str or list of str")
    if kind is list and not all(isinstance(item, str) for item in method_cls.defaults[key]):
        raise ConfigError(f"method '{method_cls.name}' declares parameter '{key}' as a list "
                          "with non-string items; a list parameter holds strings")
    return kind


def has_type(value: Any, kind: type) -> bool:
    """Whether ``value`` is of parameter type ``kind``: bool strictly bool, int an int but not
    a bool, float an int or float but not a bool, list a list of str, str a str."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    if kind is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, kind)


def check_types(method_cls: type[UnlearningMethod], params: Mapping[str, Any],
                where: str | None = None) -> None:
    """Raise ``ConfigError`` for the first value of ``params`` that is not of its declared type
    (``param_type``); ``where`` names the source in the message (default: the method)."""
    for key, value in params.items():
        kind = param_type(method_cls, key)
        if not has_type(value, kind):
            raise ConfigError(f"{where or f'method {method_cls.name!r}'}: {key} must be "
                              f"{PARAM_TYPES[kind]}, got {value!r} ({type(value).__name__})")


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


def find_tuned(method: str, dataset: str | None, data_dir=None) -> tuple[Path, dict]:
    """The first tuned-preset file (``tuned_files``) with an entry for ``method`` on
    ``dataset``, and that entry: {"params": ..., "study": ..., "value": ..., ...}."""
    if not dataset:
        raise ConfigError(f"preset '{TUNED}' of method '{method}' is per dataset: name one")
    for path in tuned_files(data_dir):
        by_dataset = read_tuned(path).get(method)
        if by_dataset is not None and not isinstance(by_dataset, dict):
            raise ConfigError(f"tuned presets '{path}': the entry of method '{method}' must be "
                              "an object {dataset: entry}; run `unlearnlab tune` again")
        entry = by_dataset.get(dataset) if by_dataset is not None else None
        if entry is not None:
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                raise ConfigError(f"tuned presets '{path}': entry {method}/{dataset} has no "
                                  "params; run `unlearnlab tune` again")
            return path, entry
    raise ConfigError(f"no tuned preset for method '{method}' on {dataset}: run `unlearnlab tune "
                      f"--method {method} --dataset {dataset} ...` first (looked in "
                      f"{', '.join(str(p) for p in tuned_files(data_dir))})")


def tuned_preset(method: str, dataset: str | None, data_dir=None) -> dict:
    """The entry of ``method`` on ``dataset`` in the first tuned-preset file that has one
    (``tuned_files``): {"params": ..., "study": ..., "value": ..., ...}."""
    return find_tuned(method, dataset, data_dir)[1]


def tuned_params(method_cls: type[UnlearningMethod], dataset: str | None,
                 data_dir=None) -> dict[str, Any]:
    """The params of the tuned entry of ``method_cls`` on ``dataset``, each a parameter of the
    method with its declared type (else a ``ConfigError`` naming the file, method, dataset
    and key)."""
    path, entry = find_tuned(method_cls.name, dataset, data_dir)
    where = f"tuned presets '{path}', entry {method_cls.name}/{dataset}"
    stale = sorted(set(entry["params"]) - set(method_cls.defaults))
    if stale:
        raise ConfigError(f"{where} sets '{stale[0]}', which the method no longer has; run "
                          "`unlearnlab tune` again")
    check_types(method_cls, entry["params"], where)
    return dict(entry["params"])


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
