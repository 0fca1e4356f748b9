"""Registry of unlearning methods: one module per method, each registered under its key."""

from __future__ import annotations

from ..errors import ConfigError
from .base import UnlearningMethod, UnlearnTask, coerce_params, parse_set_options

_METHODS: dict[str, type[UnlearningMethod]] = {}


def register_method(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    _METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[UnlearningMethod]:
    if name not in _METHODS:
        raise ConfigError(f"unknown method '{name}': choose one of {', '.join(list_methods())}")
    return _METHODS[name]


def create_method(name, *, preset="default", dataset=None, scenario=None, arch=None,
                  data_dir=None, params=None) -> UnlearningMethod:
    cls = name if isinstance(name, type) else get_method(name)
    return cls(preset=preset, dataset=dataset, scenario=scenario, arch=arch, data_dir=data_dir,
               **(params or {}))


__all__ = ["UnlearnTask", "UnlearningMethod", "coerce_params", "create_method", "get_method",
           "list_methods", "parse_set_options", "register_method"]

# One explicit import per method registers it: seed A's relabel, the thesis's gradient ascent,
# GEMU and GeFeU, and the field's standard methods.
from . import (  # noqa: E402,F401
    bad_teacher,
    boundary_shrink,
    finetune,
    gefeu,
    gemu,
    gradient_ascent,
    l1_sparse,
    neggrad_plus,
    random_label,
    relabel,
    salun,
    scrub,
    ssd,
    unsir,
)
