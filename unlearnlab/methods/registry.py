"""Where methods come from, and the one way to build one.

A method is named by its registry key (a built-in method, or one an installed package declares
in the entry-point group ``unlearnlab.methods``, loaded on the first lookup or listing) or by
``package.module:ClassName`` (imported on demand, nothing to install). ``create`` resolves a
method's hyperparameters (``UnlearningMethod.resolve_params``, the tuned-preset file for
``--preset tuned``) and builds it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError
from .base import UnlearningMethod
from .presets import AUTO, tuned_params

ENTRY_POINT_GROUP = "unlearnlab.methods"

_METHODS: dict[str, type[UnlearningMethod]] = {}
_ORIGINS: dict[str, str] = {}  # registry key -> "module:Class" that registered it
_entry_points_loaded = False


def origin(cls: type) -> str:
    """``module:Class`` of a class, as error messages name it."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_method_class(obj: Any, where: str) -> type[UnlearningMethod]:
    if not (isinstance(obj, type) and issubclass(obj, UnlearningMethod)):
        raise ConfigError(f"method '{where}' is not a subclass of "
                          "unlearnlab.methods.UnlearningMethod")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"method '{where}' sets no name: give the class a registry key, "
                          "e.g. name = \"my_method\"")
    return obj


def _add(key: str, cls: type[UnlearningMethod], where: str) -> None:
    known = _METHODS.get(key)
    if known is not None and known is not cls:
        raise ConfigError(f"method '{key}' is registered twice, by {_ORIGINS[key]} and by "
                          f"{where}; rename one of them (its class's name)")
    _METHODS[key], _ORIGINS[key] = cls, where


def register_method(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator: register ``cls`` under ``cls.name`` (a second, different class under
    the same name is a ``ConfigError``)."""
    _check_method_class(cls, origin(cls))
    _add(cls.name, cls, origin(cls))
    return cls


def _load_entry_points() -> None:
    """Register the methods of the entry-point group ``unlearnlab.methods`` (once; an error
    is raised again on every lookup until it is fixed)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        try:
            obj = ep.load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"entry point '{ep.name} = {ep.value}' of group "
                              f"{ENTRY_POINT_GROUP} cannot be loaded ({type(exc).__name__}: "
                              f"{exc}); fix or uninstall the package that declares it") from exc
        cls = _check_method_class(obj, ep.value)
        if cls.name != ep.name:
            raise ConfigError(f"entry point '{ep.name} = {ep.value}' names a class whose name is "
                              f"'{cls.name}'; make the entry point's name the class's name")
        _add(ep.name, cls, ep.value)
    _entry_points_loaded = True


def load_method_class(spec: str) -> type[UnlearningMethod]:
    """The class named by ``package.module:ClassName`` (its module imported on demand)."""
    module_name, _, attr = spec.partition(":")
    if not (all(part.isidentifier() for part in module_name.split("."))
            and all(part.isidentifier() for part in attr.split("."))):
        raise ConfigError(f"method '{spec}' is malformed: write a registry key or "
                          "package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"method '{spec}': cannot import module '{module_name}' ({exc}); "
                          "put it on PYTHONPATH or install its package") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"method '{spec}': module '{module_name}' has no attribute "
                              f"'{attr}'")
        obj = getattr(obj, part)
    cls = _check_method_class(obj, spec)
    _load_entry_points()
    known = _METHODS.get(cls.name)
    if known is not None and known is not cls:
        raise ConfigError(f"method '{spec}' is named '{cls.name}', which {_ORIGINS[cls.name]} "
                          "already registers; give the class another name")
    return cls


def list_methods() -> list[str]:
    """Registry keys: the built-in methods and those of installed packages."""
    _load_entry_points()
    return sorted(_METHODS)


def get_method(name: str) -> type[UnlearningMethod]:
    """The class of a registry key or of ``package.module:ClassName``."""
    if ":" in name:
        return load_method_class(name)
    _load_entry_points()
    if name not in _METHODS:
        raise ConfigError(f"unknown method '{name}': choose one of {', '.join(list_methods())} "
                          "or name a class as package.module:ClassName")
    return _METHODS[name]


def create(method: str | type[UnlearningMethod], *, preset: str = "default",
           dataset: str | None = None, scenario: str | None = None, arch: str | None = None,
           data_dir=None, params: Mapping[str, Any] | None = None,
           auto: Mapping[str, Any] | None = None, forget: str | None = None) -> UnlearningMethod:
    """Build ``method`` (a registry key, ``package.module:ClassName`` or a class) with the
    hyperparameters of ``preset`` for ``dataset``, ``scenario`` kind and ``arch``, ``params``
    on top (``UnlearningMethod.resolve_params``). Preset ``tuned`` reads the tuned-preset file
    (``presets.tuned_files``: the data root ``data_dir``, then the package), the entry of the
    scenario (``forget`` spec and ``arch``) first, then the dataset's; preset ``auto``
    takes ``auto``, the values its search chose (``auto_preset.resolve``)."""
    if isinstance(method, type):
        cls = _check_method_class(method, origin(method))
    elif isinstance(method, str):
        cls = get_method(method)
    else:
        raise ConfigError(f"method must be a registry key, package.module:ClassName or a "
                          f"class, got {method!r}")
    if auto is not None and preset != AUTO:
        raise ConfigError(f"auto= holds the values of preset '{AUTO}', not of preset "
                          f"'{preset}': pass preset='{AUTO}' or leave auto out")
    tuned = None
    if cls.searched(preset):
        cls.check_names(params or {})
        cls.check_tunable(preset)
        if preset == AUTO:
            if auto is None:
                raise ConfigError(f"preset '{AUTO}' searches before the run it serves: use it "
                                  "with `unlearnlab run` or `unlearnlab compare` (or "
                                  "unlearnlab.run / compare), or pass its values as auto=")
            tuned = dict(auto)
        else:
            tuned = tuned_params(cls, dataset, data_dir, forget, arch)
    return cls(cls.resolve_params(preset, dataset, scenario, arch, tuned, params), preset)


def tunable_methods() -> list[str]:
    """Registry keys of the methods with a search space."""
    return [name for name in list_methods() if get_method(name).tunable()]
