"""Method hyperparameters: their declared types and shared ranges, one check for values from
the command line (``--set key=value``, parsed and coerced here), presets, the tuned file and the
Python API."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import UnlearningMethod

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


def check_ranges(method: str, params: dict[str, Any]) -> None:
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
