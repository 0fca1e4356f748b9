"""Property tests of the preset parsers: any input to ``--set`` parsing and coercion
(``methods.params``) or any content of a tuned-preset file (``methods.presets``, and ``tune``'s
check of it) gives a valid result or a one-line ``ConfigError``, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlearnlab.errors import ConfigError
from unlearnlab.methods import get_method, list_methods
from unlearnlab.methods.params import coerce_params, has_type, param_type, parse_set_options
from unlearnlab.methods.presets import TUNED_FILE, read_tuned, tuned_params
from unlearnlab.studies import check_preset_file

METHODS = [get_method(name) for name in list_methods()]
methods = st.sampled_from(METHODS)
# Text that looks like what a user types: digits, signs, dots, words, commas, '=', unicode.
typed = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["1", "-1", "0", "1.5", "1e400", "nan", "inf", "-inf", "true", "False", "0x10", "١٢",
     "a,b", ",", "", " ", "=", "1_000", "9" * 5000])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | typed,
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(typed, inner, max_size=3), max_leaves=12)


def one_line(exc: ConfigError) -> None:
    """A message (the CLI prints it on one line, quoting line breaks from the input)."""
    assert str(exc).strip()


@given(st.lists(typed, max_size=4))
def test_parse_set_options_gives_pairs_or_a_config_error(items):
    try:
        parsed = parse_set_options(items)
    except ConfigError as exc:
        one_line(exc)
        return
    assert all(isinstance(k, str) and k.isidentifier() and isinstance(v, str)
               for k, v in parsed.items())


@given(methods, st.data())
def test_coerce_params_gives_declared_types_or_a_config_error(method_cls, data):
    keys = st.sampled_from(sorted(method_cls.defaults)) | typed
    raw = data.draw(st.dictionaries(keys, typed, max_size=4))
    try:
        params = coerce_params(method_cls, raw)
    except ConfigError as exc:
        one_line(exc)
        return
    for key, value in params.items():
        assert has_type(value, param_type(method_cls, key)), (key, value)


def write_tuned(root, content) -> None:
    path = root / TUNED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def tuned_contents(method_cls):
    """Tuned files around a valid entry: damaged values, shapes and raw text."""
    valid = dict(method_cls.defaults)
    params = st.dictionaries(st.sampled_from(sorted(valid)) | typed, JSON, max_size=4).map(
        lambda d: {**valid, **d})
    entry = st.fixed_dictionaries({"params": params}) | JSON
    by_dataset = st.dictionaries(st.sampled_from(["digits", "mnist"]) | typed, entry,
                                 max_size=2)
    return (st.dictionaries(st.just(method_cls.name) | typed, by_dataset | JSON, max_size=2)
            | JSON | typed)


@given(methods.flatmap(lambda m: st.tuples(st.just(m), tuned_contents(m))))
def test_tuned_file_readers_give_valid_params_or_a_config_error(tmp_path_factory, case):
    method_cls, content = case
    root = tmp_path_factory.mktemp("tuned")
    write_tuned(root, content)
    for read in (lambda: read_tuned(root / TUNED_FILE),
                 lambda: check_preset_file(root / TUNED_FILE, method_cls.name)):
        try:
            read()
        except ConfigError as exc:
            one_line(exc)
    try:
        params = tuned_params(method_cls, "digits", root)
    except ConfigError as exc:
        one_line(exc)
        return
    for key, value in params.items():
        assert has_type(value, param_type(method_cls, key)), (key, value)


@pytest.mark.parametrize("text", ["9" * 5000, "[" * 100000, "{\"a\": NaN}", "\udcff"])
def test_tuned_file_edge_texts_are_config_errors_or_read(tmp_path, text):
    path = tmp_path / TUNED_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    for read in (lambda: read_tuned(path), lambda: check_preset_file(path, "gemu")):
        try:
            read()
        except ConfigError as exc:
            one_line(exc)
