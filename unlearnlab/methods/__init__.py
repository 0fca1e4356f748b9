"""Unlearning methods: the contract (``UnlearningMethod``, ``UnlearnTask``), the registry and
``create``, one module per built-in method.

A method from outside the lab needs no fork: name its class as ``package.module:ClassName``, or
declare it in an installed package's entry points (group ``unlearnlab.methods``); see
docs/extending.md, "Add a method".
"""

from __future__ import annotations

from .base import UnlearningMethod, UnlearnTask
from .params import Range, coerce_params, parse_set_options
from .registry import (
    create,
    get_method,
    list_methods,
    load_method_class,
    register_method,
)

__all__ = ["Range", "UnlearnTask", "UnlearningMethod", "coerce_params", "create", "get_method",
           "list_methods", "load_method_class", "parse_set_options", "register_method"]

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
