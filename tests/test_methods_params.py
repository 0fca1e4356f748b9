"""``--set key=value`` parsing and coercion, parameter ranges and the bounds of every size-like
parameter, and the CLI's one-line usage errors (in process, no data needed)."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from unlearnlab.cli import main
from unlearnlab.errors import ConfigError
from unlearnlab.methods import (
    UnlearningMethod,
    coerce_params,
    create,
    get_method,
    list_methods,
    parse_set_options,
)
from unlearnlab.methods.params import Range, param_ranges
from unlearnlab.methods.presets import SHIPPED_TUNED, read_tuned
from unlearnlab.methods.relabel import Relabel


class AllTypes(UnlearningMethod):
    """Not registered: one hyperparameter of every type ``coerce_params`` knows."""

    name = "alltypes"
    defaults: ClassVar[dict] = {"flag": False, "count": 3, "rate": 0.5, "layers": ["a"],
                                "mode": "fast"}


# ------------------------------------------------------------------------ parse_set_options

@pytest.mark.parametrize(("items", "expected"), [
    ([], {}),
    (["target=3"], {"target": "3"}),
    ([" target = 3 "], {"target": "3"}),
    (["freeze=fc1,fc2", "lr=0.01"], {"freeze": "fc1,fc2", "lr": "0.01"}),
    (["freeze="], {"freeze": ""}),
    (["mode=a=b"], {"mode": "a=b"}),
    (["target=3", "target=4"], {"target": "4"}),
])
def test_parse_set_options(items, expected):
    assert parse_set_options(items) == expected


@pytest.mark.parametrize("item", ["target", "", "=3", " =3", "3x=1", "a-b=1", "a b=1",
                                  "target:3", "x.y=1"])
def test_malformed_set_option(item):
    with pytest.raises(ConfigError, match="is malformed: write key=value"):
        parse_set_options(["lr=0.1", item])


# ---------------------------------------------------------------------------- coerce_params

def test_coerce_relabel_types():
    out = coerce_params(Relabel, {"target": "5", "freeze": "fc1,conv2", "epochs": "2",
                                  "lr": "1e-4", "batch_size": "32"})
    assert out == {"target": 5, "freeze": ["fc1", "conv2"], "epochs": 2, "lr": 1e-4,
                   "batch_size": 32}
    assert type(out["lr"]) is float and type(out["target"]) is int
    assert coerce_params(Relabel, {"freeze": ""}) == {"freeze": []}
    assert coerce_params(Relabel, {}) == {}


@pytest.mark.parametrize(("text", "value"), [("true", True), ("True", True), ("1", True),
                                             ("false", False), ("FALSE", False), ("0", False)])
def test_coerce_bool(text, value):
    assert coerce_params(AllTypes, {"flag": text}) == {"flag": value}


def test_coerce_other_types():
    out = coerce_params(AllTypes, {"count": "-2", "rate": "3", "layers": "x,,y,", "mode": "slow"})
    assert out == {"count": -2, "rate": 3.0, "layers": ["x", "y"], "mode": "slow"}
    assert type(out["rate"]) is float


@pytest.mark.parametrize("key", ["nope", "Target", "freezes"])
def test_unknown_key(key):
    with pytest.raises(ConfigError, match=f"no parameter '{key}'; valid: batch_size, epochs, "
                                          "freeze, lr, target"):
        coerce_params(Relabel, {key: "1"})


@pytest.mark.parametrize(("cls", "key", "text"), [
    (Relabel, "target", "abc"), (Relabel, "target", "3.5"), (Relabel, "target", ""),
    (Relabel, "epochs", "1e3"), (Relabel, "lr", "fast"), (Relabel, "lr", ""),
    (Relabel, "batch_size", "64.0"), (AllTypes, "flag", "yes"), (AllTypes, "flag", ""),
    (AllTypes, "count", "9" * 5000),
])
def test_wrong_type(cls, key, text):
    with pytest.raises(ConfigError, match=f"expected .* for '{key}'"):
        coerce_params(cls, {key: text})


KEYS = sorted(AllTypes.defaults) + sorted(Relabel.defaults)
set_items = st.lists(st.one_of(
    st.text(max_size=30),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS) | st.text(max_size=6),
              st.text(max_size=12) | st.from_regex(r"-?[0-9]{0,4}(\.[0-9]*)?(e-?[0-9])?")),
), max_size=4)


@given(set_items, st.sampled_from([Relabel, AllTypes]))
@example(["count=" + "7" * 5000], AllTypes)
@example(["rate=nan", "flag=1"], AllTypes)
@example(["target=\u0663"], Relabel)
def test_any_set_strings_give_typed_params_or_config_error(items, cls):
    try:
        params = coerce_params(cls, parse_set_options(items))
    except ConfigError:
        return
    assert isinstance(params, dict)
    for key, value in params.items():
        assert type(value) is type(cls.defaults[key]), (key, value)


# ------------------------------------------------------------------------ ranges and bounds

# The integer parameters that are not sizes: relabel's target class (checked against the task's
# classes when it runs) and scrub's msteps (at most its epochs).
NOT_SIZES = {("relabel", "target"), ("scrub", "msteps")}
SIZES = [(name, key) for name in list_methods()
         for key, default in get_method(name).defaults.items()
         if type(default) is int and (name, key) not in NOT_SIZES]


@pytest.mark.parametrize(("name", "key"), SIZES)
def test_a_huge_size_is_one_config_error_naming_the_key_and_the_bound(name, key):
    cls = get_method(name)
    spec = param_ranges(cls).get(key)
    assert spec is not None and spec.high is not None, f"{name}: {key} has no upper bound"
    assert cls({key: spec.high}).params[key] == spec.high  # the bound itself is allowed
    for value in (spec.high + 1, 10**12):
        with pytest.raises(ConfigError, match=rf"^{name}: {key} must be an integer in "
                                              rf"\[\d+, {spec.high}\].*, got {value}; "
                                              rf"e\.g\. --set {key}=\d+$"):
            create(name, params={key: value})


@pytest.mark.parametrize(("name", "key", "value", "message"), [
    ("l1_sparse", "retain_fraction", 0.0, "l1_sparse: retain_fraction must be in (0, 1], got 0.0"),
    ("unsir", "retain_fraction", 2.0, "unsir: retain_fraction must be in (0, 1], got 2.0"),
    ("bad_teacher", "retain_fraction", 1.5, "retain_fraction must be in [0, 1], got 1.5"),
    ("gemu", "mask_fraction", 1.5, "mask_fraction must be in [0, 1] (0 = no mask), got 1.5"),
    ("gemu", "lam", float("inf"), "gemu: lam must be a number >= 0, got inf"),
    ("bad_teacher", "temperature", 0.0, "temperature must be a positive number, got 0.0"),
    ("ssd", "max_samples", -1, "max_samples must be an integer in [0, 10000000] (0 = all)"),
    ("relabel", "lr", float("nan"), "relabel: lr must be a positive number, got nan"),
    ("relabel", "epochs", 0, "relabel: epochs must be an integer in [1, 10000], got 0"),
])
def test_range_errors_say_the_range(name, key, value, message):
    with pytest.raises(ConfigError) as info:
        create(name, params={key: value})
    assert message in str(info.value)
    assert str(info.value).endswith(f"; e.g. --set {key}={get_method(name).defaults[key]}")


@pytest.mark.parametrize("name", list_methods())
def test_every_refinement_and_preset_lies_within_the_ranges(name):
    cls = get_method(name)
    entries = list(cls.refinements.values())
    for preset in cls.presets.values():
        preset = dict(preset)
        refinements = [*preset.pop("by_arch", {}).values(),
                       *preset.pop("by_dataset", {}).values()]
        entries += [preset, *({**preset, **refined} for refined in refinements)]
    entries += [entry["params"] for entry in read_tuned(SHIPPED_TUNED).get(name, {}).values()]
    for entry in entries:
        cls(entry)


class Sized(UnlearningMethod):
    """Not registered: parameters named by the conventions, and two declared ranges (a
    ``Range`` and a plain tuple)."""

    name = "sized"
    defaults: ClassVar[dict] = {"epochs": 1, "inner_batch": 8, "step_lr": 0.1, "width": 4,
                                "depth": 2, "mode": "fast"}
    ranges: ClassVar[dict] = {"width": Range(1, 64), "depth": (1, 8)}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("epochs", 10_001, "epochs must be an integer in [1, 10000]"),
    ("inner_batch", 0, "inner_batch must be an integer in [1, 65536]"),
    ("step_lr", 0.0, "step_lr must be a positive number"),
    ("width", 65, "width must be an integer in [1, 64]"),
    ("depth", 0, "depth must be an integer in [1, 8]"),
])
def test_a_method_from_outside_gets_the_conventions_and_its_ranges(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(f"sized: {message}, got {value};")):
        Sized({key: value})


@pytest.mark.parametrize("key", ["nope", "mode"])
def test_a_range_for_no_numeric_parameter_is_refused(key):
    broken = type("Broken", (Sized,), {"ranges": {key: Range(0, 1)}})
    with pytest.raises(ConfigError, match=f"declares a range for '{key}', which is not one of "
                                          "its numeric parameters"):
        broken()


def test_a_range_with_unknown_ends_is_refused():
    broken = type("Broken", (Sized,), {"ranges": {"width": Range(0, 1, "[")}})
    with pytest.raises(ConfigError, match="range of 'width' has ends '\\['; write one of"):
        broken()


# ------------------------------------------------------- CLI usage errors (one line, rc 2)

@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["run", "--seed", "abc"], ["run", "--oversample", "6x10"],
    ["run", "--no-such-option"], ["run", "--method", "nope"],
    ["run", "--set", "target"], ["run", "--set", "nope=1"], ["run", "--set", "target=x"],
    ["run", "--set", "lr=-1"], ["run", "--set", "epochs=0"],
    ["run", "--method", "gemu", "--set", "hidden=1000000000000"],
    ["run", "--method", "unsir", "--set", "noise_batch=1000000000000"],
])
def test_usage_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("unlearnlab: error: "), err
    assert "Traceback" not in err and out == ""


def test_a_huge_size_on_the_command_line_names_the_key_the_bound_and_a_fix(capsys):
    assert main(["run", "--method", "gemu", "--set", "hidden=1000000000000"]) == 2
    assert capsys.readouterr().err == ("unlearnlab: error: gemu: hidden must be an integer in "
                                       "[1, 4096], got 1000000000000; e.g. --set hidden=512\n")


def test_debug_reraises(capsys):
    with pytest.raises(ConfigError):
        main(["run", "--method", "nope", "--debug"])
