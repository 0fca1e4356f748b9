"""Method hyperparameters: their declared types and ranges, one check for values from the
command line (``--set key=value``, parsed and coerced here), presets, the tuned file and the
Python API.

A numeric parameter's range comes from its name (``*epochs`` and ``*batch*`` are integers from
1 to a bound, ``*lr`` a positive number) or from the method's ``ranges``, a ``Range`` per key
that wins over the name. Every size-like parameter (widths, layer counts, sample counts,
steps, epochs) has an upper bound, so that a typo such as ``hidden=1000000000000`` is one
``ConfigError`` at construction, never an allocation error or a run that never ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

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


class Range(NamedTuple):
    """The values a numeric parameter may take: from ``low`` to ``high`` (None: unbounded on
    that side), its ends included or not as ``ends`` says in interval notation ("[]", "(]",
    "[)", "()"), finite, and an integer when ``integer`` (or when the parameter is declared
    an int). ``note`` says what a special value means (e.g. "0 = all"), for the message."""

    low: float | None = None
    high: float | None = None
    ends: str = "[]"
    note: str = ""
    integer: bool = False

    def admits(self, value: Any, integer: bool) -> bool:
        """Whether ``value`` lies in the range (and is an int, when ``integer``)."""
        if integer and not (isinstance(value, int) and not isinstance(value, bool)):
            return False
        if not (isinstance(value, int | float) and math.isfinite(value)):
            return False
        low_ok = self.low is None or (value > self.low if self.ends[0] == "(" else
                                      value >= self.low)
        high_ok = self.high is None or (value < self.high if self.ends[1] == ")" else
                                        value <= self.high)
        return low_ok and high_ok

    def describe(self, integer: bool) -> str:
        """The range in words: "in (0, 1]", "an integer in [1, 16]", "a number >= 0", "a
        positive number", with the note in parentheses."""
        noun = "integer" if integer else "number"
        kind = f"an {noun}" if integer else f"a {noun}"
        if self.low is not None and self.high is not None:
            text = (f"{kind + ' ' if integer else ''}in {self.ends[0]}{_show(self.low)}, "
                    f"{_show(self.high)}{self.ends[1]}")
        elif self.low == 0 and self.ends[0] == "(" and self.high is None:
            text = f"a positive {noun}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.ends[0] == '(' else '>='} {_show(self.low)}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.ends[1] == ')' else '<='} {_show(self.high)}"
        else:
            text = f"a finite {noun}"
        return f"{text} ({self.note})" if self.note else text


def _show(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


# Upper bounds of the size-like parameters: generous for real use, small enough that a typo'd
# exponent is refused before it allocates or loops.
MAX_EPOCHS = 10_000  # a CPU retraining takes 3-10 epochs
MAX_BATCH = 65_536  # above every built-in training split (60,000 images): the whole set anyway
MAX_STEPS = 1_000_000  # optimiser steps (the methods take tens to thousands)
MAX_SAMPLES = 10_000_000  # a sample cap; 10 M images of 28x28 alone are 31 GB
MAX_COPIES = 100  # copies of each noise tensor, 5x the UNSIR notebook's 20
# The noise generator: 4x the thesis's widest (1024) and 3x its deepest tuned one (5); 16
# layers of 4096 are 270 M weights, ~4 GB with their gradients and Adam's moments.
MAX_WIDTH = 4096
MAX_LAYERS = 16

# Shared ranges that methods name in their ``ranges``.
POSITIVE = Range(0, None, "(]")
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1)
SAMPLE_COUNT = Range(0, MAX_SAMPLES, note="0 = all")


def convention_range(key: str) -> Range | None:
    """The range a parameter's name implies: ``*epochs`` an integer in [1, ``MAX_EPOCHS``],
    ``*batch*`` an integer in [1, ``MAX_BATCH``], ``*lr`` a positive number; else None."""
    if key.endswith("epochs"):
        return Range(1, MAX_EPOCHS, integer=True)
    if "batch" in key:
        return Range(1, MAX_BATCH, integer=True)
    if key.endswith("lr"):
        return POSITIVE
    return None


def param_ranges(method_cls: type[UnlearningMethod]) -> dict[str, Range]:
    """The range of every numeric parameter that has one: by its name (``convention_range``),
    overridden by the class's ``ranges``."""
    out = {}
    for key, default in method_cls.defaults.items():
        spec = convention_range(key)
        if spec is not None and has_type(default, float):
            out[key] = spec
    for key, spec in method_cls.ranges.items():
        if key not in method_cls.defaults or not has_type(method_cls.defaults[key], float):
            raise ConfigError(f"method '{method_cls.name}' declares a range for '{key}', which "
                              "is not one of its numeric parameters; fix its ranges")
        spec = Range(*spec)
        if spec.ends not in ("[]", "(]", "[)", "()"):
            raise ConfigError(f"method '{method_cls.name}': the range of '{key}' has ends "
                              f"{spec.ends!r}; write one of '[]', '(]', '[)', '()'")
        out[key] = spec
    return out


def check_ranges(method_cls: type[UnlearningMethod], params: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` for the first value of ``params`` outside its range
    (``param_ranges``), naming the key, the range and an example value (the default)."""
    ranges = param_ranges(method_cls)
    for key, value in params.items():
        spec = ranges.get(key)
        if spec is None:
            continue
        integer = spec.integer or param_type(method_cls, key) is int
        if not spec.admits(value, integer):
            raise ConfigError(f"{method_cls.name}: {key} must be {spec.describe(integer)}, got "
                              f"{value}; e.g. --set {key}={method_cls.defaults[key]}")


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
