"""``--set key=value`` parsing and coercion, and the CLI's one-line usage errors (in process,
no data needed)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from unlearnlab.cli import main
from unlearnlab.errors import ConfigError
from unlearnlab.methods import UnlearningMethod, coerce_params, parse_set_options
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


# ------------------------------------------------------- CLI usage errors (one line, rc 2)

@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["run", "--seed", "abc"], ["run", "--oversample", "6x10"],
    ["run", "--no-such-option"], ["run", "--method", "nope"],
    ["run", "--set", "target"], ["run", "--set", "nope=1"], ["run", "--set", "target=x"],
    ["run", "--set", "lr=-1"], ["run", "--set", "epochs=0"],
])
def test_usage_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("unlearnlab: error: "), err
    assert "Traceback" not in err and out == ""


def test_debug_reraises(capsys):
    with pytest.raises(ConfigError):
        main(["run", "--method", "nope", "--debug"])
