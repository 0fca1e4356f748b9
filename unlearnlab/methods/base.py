"""The contract every unlearning method follows, and how its hyperparameters are resolved.

A method class declares its hyperparameters and their defaults in ``defaults`` (the type of a
default is the parameter's type, for values from the command line, presets, the tuned file and
the Python API alike). ``unlearn(model, task)`` returns a new model and never mutates the one it
is given. A method that can be tuned (``unlearnlab tune``) declares its search space next to its
code, in ``search_space(trial)``; its best trial is then available as the preset ``tuned``
(``tuned_params``), and ``auto`` searches it before a run on a scenario no tuned preset fits
(``unlearnlab.auto_preset``). See docs/extending.md, "Add a method".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..training import Recipe
from .params import Range, check_ranges, check_types
from .presets import AUTO, TUNED


def share_count(share: float, n: int) -> int:
    """A sample count relative to a set of ``n`` samples (|D_f|, say): round(``share`` * n)
    (Python's round, halves to even), at least 1 and at most ``n`` (0 when ``n`` is 0). A
    default written as a share keeps its proportion on a forget set of another size, where an
    absolute count tuned on one set would take most of a small set or a sliver of a large one
    (docs/heldout.md)."""
    if not 0 < share <= 1:
        raise ConfigError(f"a share of the forget set must lie in (0, 1], got {share}")
    return min(n, max(1, round(share * n))) if n > 0 else 0


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

    A subclass sets ``name``, ``defaults`` and ``ranges``, implements ``unlearn(model, task)``
    and, for checks that relate parameters to each other, ``check_params``; it never needs
    ``__init__``. Build one with ``unlearnlab.methods.create`` (presets, the lab's
    refinements, the tuned file) or directly with ``Method(params, preset)`` (``params`` on top
    of the generic ``defaults``).
    """

    name: ClassVar[str]
    # Every hyperparameter and its generic default; the default's type is the parameter's type
    # (bool, int, float, str or list of str; a float parameter also accepts an int).
    defaults: ClassVar[dict[str, Any]] = {}
    # The range of each numeric parameter whose name implies none or another one
    # (``params.convention_range``), e.g. {"retain_fraction": Range(0, 1, "(]")} (a plain
    # tuple in ``Range``'s field order works too); every size-like parameter gets an upper
    # bound. Checked on construction.
    ranges: ClassVar[dict[str, Range]] = {}
    # Refinements of ``defaults`` (the lab's tuned values), applied from the most general to
    # the most specific key: the scenario kind ("class", "feature" or "random"), the
    # architecture (e.g. "mlp"), the dataset name, then "<dataset>:<kind>" (e.g.
    # "mnist:feature"). Random forgetting reads the "feature" keys unless some key names
    # "random" ("random" or "<dataset>:random"); see ``defaults_kind``.
    refinements: ClassVar[dict[str, dict[str, Any]]] = {}
    # Named alternatives (e.g. "paper": the reference's hyperparameters). Each preset lists only
    # the keys it changes; optional "by_arch" and "by_dataset" entries refine it per
    # architecture and per dataset.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # The forgetting scenarios the method is meant for: "class" (a whole class), "feature" (a
    # subset of one class) and/or "random" (a sample of every class); the leaderboard runs it
    # only there, and a method that does not declare "random" is refused on it
    # (``check_scenario``).
    scenarios: ClassVar[tuple[str, ...]] = ("class", "feature")

    def __init__(self, params: Mapping[str, Any] | None = None, preset: str = "default"):
        self.check_preset(preset)
        params = dict(params or {})
        self.check_names(params)
        self.preset = preset
        self.params = {**self.defaults, **params}
        check_types(type(self), self.params)
        check_ranges(type(self), self.params)
        self.check_params()
        self.history: list[dict] = []
        self.timings: dict[str, float] = {}  # seconds per phase, filled by unlearn()

    def check_params(self) -> None:
        """Checks of ``self.params`` beyond their types and ranges (``ranges`` and the naming
        conventions of ``params.convention_range``); raise ``ConfigError``."""

    def check_task(self, num_classes: int, forget_classes: Sequence[int]) -> None:
        """Checks of ``self.params`` against the data (e.g. a class index within
        ``num_classes``, or not among ``forget_classes``, the classes of the forget set); raise
        ``ConfigError``. Called once the scenario is built and before any model is trained."""

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        """Return an unlearned copy of ``model``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ parameter resolution

    @classmethod
    def check_preset(cls, preset: str) -> bool:
        """Raise ``ConfigError`` for an unknown preset; return whether ``preset`` is read from
        the tuned-preset file (``tuned``, unless the class declares its own ``tuned`` preset),
        which needs a search space. ``auto`` is always the lab's search (``searched``)."""
        if preset not in ("default", TUNED, AUTO) and preset not in cls.presets:
            raise ConfigError(f"method '{cls.name}' has no preset '{preset}'; choose one of "
                              f"{', '.join(['default', *sorted(cls.presets), TUNED, AUTO])}")
        return preset == TUNED and preset not in cls.presets

    @classmethod
    def searched(cls, preset: str) -> bool:
        """Whether ``preset``'s values come from a search of ``search_space``: ``tuned`` (the
        tuned-preset file) or ``auto`` (``unlearnlab.auto_preset``)."""
        return preset == AUTO or cls.check_preset(preset)

    @classmethod
    def check_scenario(cls, scenario: str | None) -> None:
        """Raise ``ConfigError`` for random forgetting when the method does not declare it: class
        and feature forgetting both forget samples of one class, random forgetting samples of
        every class, which a method written for one class may not handle."""
        if scenario == "random" and "random" not in cls.scenarios:
            raise ConfigError(f"method '{cls.name}' is not meant for random forgetting (its "
                              f"scenarios: {', '.join(cls.scenarios)}); choose another method")

    @classmethod
    def defaults_kind(cls, scenario: str | None) -> str | None:
        """The scenario kind whose ``refinements`` keys a run reads: random forgetting
        reads the "feature" ones unless a key names "random"."""
        if scenario == "random" and not any(key == "random" or key.endswith(":random")
                                            for key in cls.refinements):
            return "feature"
        return scenario

    @classmethod
    def check_names(cls, params: Mapping[str, Any]) -> None:
        """Raise ``ConfigError`` for a key of ``params`` that is not a parameter."""
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            raise ConfigError(f"method '{cls.name}' has no parameter '{unknown[0]}'; valid: "
                              f"{', '.join(sorted(cls.defaults)) or 'none'}")

    @classmethod
    def check_tunable(cls, preset: str = TUNED) -> None:
        """Raise ``ConfigError`` when the method has no search space (so no ``tuned`` and no
        ``auto`` preset)."""
        if not cls.tunable():
            raise ConfigError(f"method '{cls.name}' declares no search space, so it has "
                              f"no '{preset}' preset; use --preset default")

    @classmethod
    def resolve_params(cls, preset: str = "default", dataset: str | None = None,
                       scenario: str | None = None, arch: str | None = None,
                       tuned: Mapping[str, Any] | None = None,
                       overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The hyperparameters of a run, without reading any file: the generic ``defaults``,
        refined by ``refinements`` (scenario kind, architecture, dataset,
        "<dataset>:<kind>", with the kind of ``defaults_kind``) unless a named preset is
        chosen, then the preset's keys (for ``tuned`` and ``auto``: the searched params,
        ``tuned``), its ``by_arch`` entry for ``arch`` and its ``by_dataset`` entry for
        ``dataset``, then ``overrides``. A scenario the method is not meant for is refused
        (``check_scenario``)."""
        cls.check_scenario(scenario)
        cls.check_names(overrides or {})
        if cls.searched(preset):
            cls.check_tunable(preset)
            if tuned is None:
                source = "tuned entry" if preset == TUNED else "search's result"
                raise ConfigError(f"preset '{preset}' of method '{cls.name}' needs its {source}: "
                                  "build the method with unlearnlab.methods.create")
            chosen = dict(tuned)
            stale = sorted(set(chosen) - set(cls.defaults))
            if stale:
                raise ConfigError(f"the {preset} preset of '{cls.name}' on {dataset} sets "
                                  f"'{stale[0]}', which the method no longer has; run "
                                  "`unlearnlab tune` again")
        else:
            chosen = dict(cls.presets.get(preset, {}))
        by_arch = chosen.pop("by_arch", {})
        by_dataset = chosen.pop("by_dataset", {})
        if preset not in ("default", TUNED, AUTO):
            base = cls.defaults  # a named preset starts from the generic defaults
        else:  # the tuned parameters were searched on top of the dataset's defaults
            base = dict(cls.defaults)
            kind = cls.defaults_kind(scenario)
            for key in (kind, arch, dataset, f"{dataset}:{kind}"):
                base.update(cls.refinements.get(key, {}))
        return {**base, **chosen, **by_arch.get(arch, {}), **by_dataset.get(dataset, {}),
                **(overrides or {})}

    # ------------------------------------------------------------------------------ tuning

    @classmethod
    def search_space(cls, trial) -> dict[str, Any]:
        """The hyperparameters to tune, drawn from an Optuna ``trial`` (``trial.suggest_*``):
        {parameter: value}, a subset of ``defaults`` (the others keep their defaults for the
        dataset and scenario). Methods that can be tuned override this."""
        from .registry import tunable_methods

        raise ConfigError(f"method '{cls.name}' declares no search space, so it cannot be tuned; "
                          f"tunable: {', '.join(tunable_methods()) or 'none'}")

    @classmethod
    def tunable(cls) -> bool:
        """Whether the method declares a search space."""
        return cls.search_space.__func__ is not UnlearningMethod.search_space.__func__

    @staticmethod
    def copy_model(model: nn.Module) -> nn.Module:
        return copy.deepcopy(model)
