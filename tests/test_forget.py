"""Forget specifications: parsing, masks on synthetic data, forget-list validation."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import make_dataset, write_forget_list
from hypothesis import example, given
from hypothesis import strategies as st

from unlearnlab.data import COLORS, DIGIT_CLASSES, Dataset
from unlearnlab.errors import ConfigError, DataError, SpecError
from unlearnlab.forget import (
    KINDS,
    ForgetSpec,
    class_of,
    forget_digest,
    forget_masks,
    load_forget_list,
    parse_forget,
    random_rows,
)

PINNED_CLASS3 = "75e95f4f24665d9b9e2dbe03b1ee22ddd5007a8148abbeba8c0da398be524391"
PINNED_RANDOM = "2c8b32d7ad5173cb0eea6b78edb5cac1d18d41b4d6d971701af285a0d4162aec"
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


# ------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize(("text", "expected"), [
    ("class:0", ForgetSpec("class", cls=0)),
    ("class:9", ForgetSpec("class", cls=9)),
    ("class:06", ForgetSpec("class", cls=6)),
    ("subset:mnist_sevens_with_crossbar", ForgetSpec("subset", name="mnist_sevens_with_crossbar")),
    ("rest:a.b-C_1", ForgetSpec("rest", name="a.b-C_1")),
    ("color:red:7", ForgetSpec("color", cls=7, color="red")),
    ("color:blue:0", ForgetSpec("color", cls=0, color="blue")),
])
def test_parse_valid(text, expected):
    spec = parse_forget(text)
    assert spec == expected
    assert parse_forget(str(spec)) == spec


@pytest.mark.parametrize(("text", "canonical", "is_feature"), [
    ("class:3", "class:3", False), ("class:03", "class:3", False),
    ("subset:x", "subset:x", True), ("rest:x", "rest:x", True),
    ("color:green:2", "color:green:2", True),
])
def test_str_and_is_feature(text, canonical, is_feature):
    spec = parse_forget(text)
    assert str(spec) == canonical
    assert spec.is_feature is is_feature


@pytest.mark.parametrize("text", [
    "", "class", "6", "class:", "class:-1", "class:10", "class:12", "class:a", "class:3.0",
    "class: 3", "class:3 ", "class:3\n", "class:\u0663",  # ARABIC-INDIC DIGIT THREE
    "class:" + "1" * 5000,  # int() of this many digits raises ValueError, not SpecError
])
def test_class_must_be_0_to_9(text):
    with pytest.raises(SpecError):
        parse_forget(text)


@pytest.mark.parametrize("text", ["bogus:1", "Class:3", "classes:3", ":3", "subsets:x"])
def test_unknown_kind(text):
    with pytest.raises(SpecError, match="unknown kind"):
        parse_forget(text)


@pytest.mark.parametrize("text", ["color:purple:3", "color:Red:3", "color::3", "color:red",
                                  "color:red:10", "color:red:3:1", "color:"])
def test_bad_color_spec(text):
    with pytest.raises(SpecError):
        parse_forget(text)


def test_bad_colour_message_names_the_colours():
    with pytest.raises(SpecError, match="red, green, blue"):
        parse_forget("color:purple:3")


@pytest.mark.parametrize("text", ["subset:", "rest:", "subset:a/b", "subset:../x",
                                  "subset:a b", "rest:abc\n", "subset:\u00e9t\u00e9"])
def test_bad_list_name(text):
    with pytest.raises(SpecError, match="not a forget-set name"):
        parse_forget(text)


@pytest.mark.parametrize("value", [None, 6, b"class:6", ["class:6"]])
def test_non_string_spec(value):
    with pytest.raises(SpecError):
        parse_forget(value)


spec_like = st.one_of(
    st.text(),
    st.builds(lambda kind, rest: f"{kind}:{rest}",
              st.sampled_from(KINDS + ("", "Class", "x")),
              st.one_of(st.text(max_size=8), st.from_regex(r"[A-Za-z0-9_.\-:/ \n]{0,12}"))),
    st.builds(lambda c, n: f"color:{c}:{n}", st.sampled_from(COLORS + ("", "Red", "cyan")),
              st.text(alphabet="0123456789-+ .:\n", max_size=4)),
)


@given(spec_like)
@example("class:3\n")
@example("subset:abc\n")
@example("color:red:3:")
@example("class:" + "9" * 5000)
def test_any_string_parses_and_round_trips_or_raises_spec_error(text):
    try:
        spec = parse_forget(text)
    except SpecError:
        return
    assert spec.kind in KINDS
    assert parse_forget(str(spec)) == spec
    if spec.kind in ("class", "color"):
        assert 0 <= spec.cls <= 9 and spec.name is None
    if spec.kind == "color":
        assert spec.color in COLORS
    if spec.kind in ("subset", "rest"):
        assert NAME_RE.fullmatch(spec.name) and spec.cls is None


@given(st.one_of(
    st.builds(lambda c: f"class:{c}", st.integers(0, 9)),
    st.builds(lambda k, n: f"{k}:{n}", st.sampled_from(["subset", "rest"]),
              st.from_regex(NAME_RE, fullmatch=True)),
    st.builds(lambda c, n: f"color:{c}:{n}", st.sampled_from(COLORS), st.integers(0, 9)),
))
def test_canonical_specs_always_parse_to_themselves(text):
    assert str(parse_forget(text)) == text


# --------------------------------------------------------------------- masks (synthetic)

def crossbar_list(ds: Dataset, cls: int = 7, every: int = 3, dataset: str = "MNIST") -> dict:
    """A valid list: every ``every``-th sample of ``cls`` in each split, by source index."""
    return {
        "dataset": dataset, "class": cls, "description": "test list", "source": "synthetic",
        "train": ds.train.index[ds.train.y == cls][::every].tolist(),
        "test": ds.test.index[ds.test.y == cls][::every].tolist(),
    }


def test_class_masks(synthetic):
    masks = forget_masks("class:4", synthetic)
    for split in ("train", "test"):
        assert torch.equal(masks[split], getattr(synthetic, split).y == 4)
        assert masks[split].dtype == torch.bool
    assert int(masks["train"].sum()) == 30 and int(masks["test"].sum()) == 10


def test_masks_accept_a_parsed_spec(synthetic):
    a = forget_masks(ForgetSpec("class", cls=2), synthetic)
    b = forget_masks("class:2", synthetic)
    assert all(torch.equal(a[k], b[k]) for k in ("train", "test"))


def test_subset_and_rest_masks(synthetic, tmp_path):
    content = crossbar_list(synthetic)
    write_forget_list(tmp_path, "sevens", content)
    subset = forget_masks("subset:sevens", synthetic, tmp_path)
    rest = forget_masks("rest:sevens", synthetic, tmp_path)
    for split in ("train", "test"):
        s = getattr(synthetic, split)
        listed = set(content[split])
        expected_subset = torch.tensor([int(i) in listed for i in s.index])
        expected_rest = (s.y == 7) & ~expected_subset
        assert torch.equal(subset[split], expected_subset)
        assert torch.equal(rest[split], expected_rest)
        # the two partition class 7 and touch nothing else
        assert torch.equal(subset[split] | rest[split], s.y == 7)
        assert not (subset[split] & rest[split]).any()
    assert int(subset["train"].sum()) == len(content["train"]) == 10
    assert class_of(parse_forget("rest:sevens"), synthetic, tmp_path) == 7


def test_subset_selects_by_source_index_not_position(tmp_path):
    """Lists address samples by ``index`` (position in the source file), so a reordered or
    subsampled split must still select the same samples."""
    ds = make_dataset()
    content = crossbar_list(ds)
    write_forget_list(tmp_path, "sevens", content)
    rows = torch.arange(len(ds.train) - 1, -1, -2)  # every other sample, reversed
    sub = Dataset(ds.name, ds.train.subset(rows), ds.test, ds.checksum, ds.classes,
                  ds.list_source)
    mask = forget_masks("subset:sevens", sub, tmp_path)["train"]
    assert sorted(sub.train.index[mask].tolist()) == sorted(set(content["train"])
                                                            & set(sub.train.index.tolist()))


def test_color_masks(synthetic_cmnist):
    ds = synthetic_cmnist
    masks = forget_masks("color:green:5", ds)
    for split in ("train", "test"):
        s = getattr(ds, split)
        assert torch.equal(masks[split], (s.y == 5) & (s.color == COLORS.index("green")))
    assert masks["train"].any()
    assert masks["train"].sum() < (ds.train.y == 5).sum()


def test_color_spec_needs_cmnist(synthetic):
    with pytest.raises(SpecError, match="cmnist"):
        forget_masks("color:red:3", synthetic)


def test_empty_class_forget_set_raises(synthetic):
    keep = torch.nonzero(synthetic.train.y != 8).flatten()
    ds = Dataset("mnist", synthetic.train.subset(keep), synthetic.test, "x", DIGIT_CLASSES,
                 "MNIST")
    with pytest.raises(SpecError, match="selects no training sample"):
        forget_masks("class:8", ds)


def test_empty_subset_raises(synthetic, tmp_path):
    content = crossbar_list(synthetic)
    content["train"] = []
    write_forget_list(tmp_path, "empty", content)
    with pytest.raises(SpecError, match="selects no training sample"):
        forget_masks("subset:empty", synthetic, tmp_path)


def test_empty_rest_raises(synthetic, tmp_path):
    content = crossbar_list(synthetic, every=1)  # the whole class is listed: rest is empty
    write_forget_list(tmp_path, "all_sevens", content)
    with pytest.raises(SpecError, match="selects no training sample"):
        forget_masks("rest:all_sevens", synthetic, tmp_path)


def test_empty_color_selection_raises(synthetic_cmnist):
    ds = synthetic_cmnist
    keep = torch.nonzero(~((ds.train.y == 1) & (ds.train.color == 0))).flatten()
    ds = Dataset("cmnist", ds.train.subset(keep), ds.test, "x", DIGIT_CLASSES, "MNIST")
    with pytest.raises(SpecError, match="selects no training sample"):
        forget_masks("color:red:1", ds)


# ------------------------------------------------------------------ forget-list validation

def _raises_data_error(ds, root, name="bad", spec_kind="subset") -> str:
    with pytest.raises(DataError) as info:
        forget_masks(f"{spec_kind}:{name}", ds, root)
    return str(info.value)


def test_missing_list(synthetic, tmp_path):
    msg = _raises_data_error(synthetic, tmp_path, "nowhere")
    assert "'nowhere' not found" in msg and "forget_sets" in msg


@pytest.mark.parametrize("text", ["{not json", "", "\u00ff\u00fe", '{"dataset": "MNIST",'])
def test_list_not_json(synthetic, tmp_path, text):
    path = write_forget_list(tmp_path, "bad", text)
    msg = _raises_data_error(synthetic, tmp_path)
    assert "not valid JSON" in msg and str(path) in msg


def test_list_not_utf8(synthetic, tmp_path):
    path = write_forget_list(tmp_path, "bad", "{}")
    path.write_bytes(b'{"dataset": "\xff\xfe"}')
    assert "not valid JSON" in _raises_data_error(synthetic, tmp_path)


@pytest.mark.parametrize("key", ["dataset", "class", "train", "test"])
def test_list_missing_key(synthetic, tmp_path, key):
    content = crossbar_list(synthetic)
    del content[key]
    write_forget_list(tmp_path, "bad", content)
    msg = _raises_data_error(synthetic, tmp_path)
    assert "lacks the keys" in msg and key in msg


@pytest.mark.parametrize("content", [[1, 2, 3], "just a string", 7, None])
def test_list_not_an_object(synthetic, tmp_path, content):
    write_forget_list(tmp_path, "bad", json.dumps(content))
    assert "lacks the keys" in _raises_data_error(synthetic, tmp_path)


@pytest.mark.parametrize(("split", "index", "limit"), [("train", 60000, "0-59999"),
                                                       ("test", 10000, "0-9999"),
                                                       ("train", -1, "0-59999")])
def test_list_index_out_of_range(synthetic, tmp_path, split, index, limit):
    content = crossbar_list(synthetic)
    content[split] = [*content[split], index]
    write_forget_list(tmp_path, "bad", content)
    msg = _raises_data_error(synthetic, tmp_path)
    assert f"{split} index {index} is out of range {limit}" in msg


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("kind", ["subset", "rest"])
def test_list_index_of_wrong_class(synthetic, tmp_path, split, kind):
    content = crossbar_list(synthetic)
    s = getattr(synthetic, split)
    wrong = int(s.index[s.y == 2][0])
    content[split] = [*content[split], wrong]
    write_forget_list(tmp_path, "bad", content)
    msg = _raises_data_error(synthetic, tmp_path, spec_kind=kind)
    assert f"{split} sample {wrong} has label 2, not the set's class 7" in msg


@pytest.mark.parametrize(("list_source", "dataset"), [
    ("FashionMNIST", "mnist"), ("FashionMNIST", "cmnist"), ("MNIST", "fashion_mnist"),
    ("MNIST", "digits"),
])
def test_list_for_the_wrong_dataset(tmp_path, list_source, dataset):
    ds = make_dataset(dataset)
    write_forget_list(tmp_path, "bad", crossbar_list(ds, dataset=list_source))
    msg = _raises_data_error(ds, tmp_path)
    assert f"indexes {list_source}" in msg and f"'{dataset}'" in msg


def test_mnist_list_selects_cmnist_by_index(synthetic_cmnist, tmp_path):
    """Colorized MNIST is addressed through MNIST positions: an MNIST list is accepted."""
    write_forget_list(tmp_path, "sevens", crossbar_list(synthetic_cmnist))
    assert forget_masks("subset:sevens", synthetic_cmnist, tmp_path)["train"].sum() == 10


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("class", 10, "class must be an integer 0-9"),
    ("class", "7", "class must be an integer 0-9"),
    ("train", "1,2,3", "'train' must be a list of integers"),
    ("test", [1.5], "'test' must be a list of integers"),
    ("train", [None], "'train' must be a list of integers"),
])
def test_list_malformed_values(synthetic, tmp_path, key, value, problem):
    content = crossbar_list(synthetic)
    content[key] = value
    write_forget_list(tmp_path, "bad", content)
    assert problem in _raises_data_error(synthetic, tmp_path)


@pytest.mark.parametrize(("key", "value"), [
    ("class", True), ("class", False), ("train", [True]), ("test", [False, True]),
    ("class", 7.0), ("train", [1e20]), ("class", -1), ("class", 2 ** 70),
])
def test_list_rejects_booleans_floats_and_out_of_range(synthetic, tmp_path, key, value):
    """JSON true is a Python int: without a check it would be read as class 1 or index 1."""
    content = crossbar_list(synthetic, cls=1)
    content[key] = value
    path = write_forget_list(tmp_path, "bad", content)
    msg = _raises_data_error(synthetic, tmp_path)
    assert str(path) in msg and f"'{key}'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("text", ["[" * 100000, '{"class": ' + "9" * 5000 + "}"])
def test_list_too_deep_or_too_long_is_a_data_error(synthetic, tmp_path, text):
    write_forget_list(tmp_path, "bad", text)
    msg = _raises_data_error(synthetic, tmp_path)
    assert "not valid JSON" in msg and "\n" not in msg


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=8)
index_lists = st.one_of(json_values, st.lists(st.one_of(st.integers(-5, 70000), st.booleans(),
                                                        st.floats(), st.none()), max_size=6))


@given(dataset=st.one_of(st.sampled_from(["MNIST", "FashionMNIST"]), json_values),
       cls=st.one_of(st.integers(-2, 12), json_values), train=index_lists, test=index_lists,
       drop=st.sets(st.sampled_from(["dataset", "class", "train", "test"]), max_size=1))
def test_any_list_content_loads_or_raises_a_data_error(tmp_path_factory, dataset, cls, train,
                                                       test, drop):
    """Random JSON in every field: a valid list or one clean DataError line, never a traceback."""
    ds = _PROPERTY_DATA
    root = tmp_path_factory.mktemp("lists")
    content = {"dataset": dataset, "class": cls, "train": train, "test": test}
    for key in drop:
        del content[key]
    write_forget_list(root, "x", content)
    try:
        loaded = load_forget_list("x", ds, root)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    assert loaded["dataset"] == "MNIST" and type(loaded["class"]) is int
    for split in ("train", "test"):
        assert all(type(i) is int for i in loaded[split])
        s = getattr(ds, split)
        assert (s.y[torch.isin(s.index, torch.tensor(loaded[split], dtype=torch.long))]
                == loaded["class"]).all()


_PROPERTY_DATA = make_dataset()


@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=8),
                 st.lists(st.text(max_size=4), max_size=2), st.booleans()))
def test_any_non_string_spec_raises_spec_error(value):
    with pytest.raises(SpecError):
        parse_forget(value)


# --------------------------------------------------------------------- forget-set digests

def test_forget_digest_is_the_selected_samples(synthetic, tmp_path):
    content = crossbar_list(synthetic)
    write_forget_list(tmp_path, "a", content)
    write_forget_list(tmp_path, "b", {**content, "train": content["train"][::-1],
                                      "description": "same samples, another order"})
    digest = forget_digest(forget_masks("subset:a", synthetic, tmp_path), synthetic)
    assert digest == forget_digest(forget_masks("subset:b", synthetic, tmp_path), synthetic)
    assert len(digest) == 64
    trimmed = {**content, "train": content["train"][1:]}  # the case: a trimmed list
    write_forget_list(tmp_path, "a", trimmed)
    assert forget_digest(forget_masks("subset:a", synthetic, tmp_path), synthetic) != digest
    moved = {**content, "test": content["test"][1:]}  # the test split counts too
    write_forget_list(tmp_path, "a", moved)
    assert forget_digest(forget_masks("subset:a", synthetic, tmp_path), synthetic) != digest


def test_forget_digest_tells_classes_and_colours_apart(synthetic, synthetic_cmnist):
    digests = {forget_digest(forget_masks(f"class:{c}", synthetic), synthetic) for c in range(10)}
    assert len(digests) == 10
    colours = {forget_digest(forget_masks(f"color:{c}:5", synthetic_cmnist), synthetic_cmnist)
               for c in COLORS}
    assert len(colours) == len(COLORS)


def test_forget_digest_is_pinned():
    # Pinned: a change of the hashing silently orphans every cache keyed on it.
    ds = make_dataset()
    assert forget_digest(forget_masks("class:3", ds), ds) == PINNED_CLASS3


@pytest.mark.parametrize("bad", [{"train": torch.zeros(3, dtype=torch.bool)},
                                 {"train": torch.zeros(300)}])
def test_forget_digest_rejects_foreign_masks(synthetic, bad):
    masks = {**forget_masks("class:3", synthetic), **bad}
    with pytest.raises(ConfigError, match="not a boolean mask over the 300 samples"):
        forget_digest(masks, synthetic)


# ------------------------------------------------------------------------ random forgetting

@pytest.mark.parametrize(("text", "fraction", "split_seed", "canonical"), [
    ("random:0.1", 0.1, 0, "random:0.1"),
    ("random:.25", 0.25, 0, "random:0.25"),
    ("random:0.10:0", 0.1, 0, "random:0.1"),
    ("random:0.5:7", 0.5, 7, "random:0.5:7"),
    ("random:0.5:007", 0.5, 7, "random:0.5:7"),
    ("random:0.00001", 1e-5, 0, "random:0.00001"),  # repr() would write 1e-05
    ("random:0.999:4294967295", 0.999, 2**32 - 1, "random:0.999:4294967295"),
])
def test_parse_random(text, fraction, split_seed, canonical):
    spec = parse_forget(text)
    assert spec == ForgetSpec("random", fraction=fraction, split_seed=split_seed)
    assert str(spec) == canonical
    assert parse_forget(str(spec)) == spec
    assert spec.scenario == "random" and spec.is_feature is False


@pytest.mark.parametrize("text", [
    "random:", "random:0", "random:1", "random:0.0", "random:1.0", "random:1.5", "random:-0.1",
    "random:nan", "random:inf", "random:-inf", "random:1e-1", "random:0,1", "random:0.1 ",
    "random: 0.1", "random:0.1\n", "random:abc", "random:\u0660.1", "random:0." + "0" * 400 + "1",
])
def test_random_fraction_must_be_a_decimal_in_0_1(text):
    with pytest.raises(SpecError, match="fraction must be a decimal between 0 and 1"):
        parse_forget(text)


@pytest.mark.parametrize("text", [
    "random:0.1:", "random:0.1:-1", "random:0.1:4294967296", "random:0.1:1.0", "random:0.1:x",
    "random:0.1:1:2", "random:0.1: 1", "random:0.1:\u0661", "random:0.1:" + "1" * 5000,
])
def test_random_split_seed_must_be_a_32_bit_integer(text):
    with pytest.raises(SpecError, match="split seed must be an integer from 0 to 4294967295"):
        parse_forget(text)


@given(st.builds(lambda rest: f"random:{rest}",
                 st.one_of(st.text(max_size=12),
                           st.from_regex(r"[0-9.:eE+\-]{0,14}", fullmatch=True),
                           st.builds(lambda f, s: f"{f}:{s}", st.floats(), st.integers()))))
@example("random:0.5")
@example("random:.5:0")
def test_any_random_string_parses_or_raises_spec_error(text):
    try:
        spec = parse_forget(text)
    except SpecError as exc:
        if "\n" not in text:  # the message echoes the spec; otherwise it is one line
            assert "\n" not in str(exc)
        return
    assert spec.kind == "random" and 0 < spec.fraction < 1
    assert 0 <= spec.split_seed < 2**32
    assert parse_forget(str(spec)) == spec


@given(st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True),
       st.integers(0, 2**32 - 1))
def test_canonical_random_specs_parse_to_themselves(fraction, split_seed):
    text = str(ForgetSpec("random", fraction=fraction, split_seed=split_seed))
    assert parse_forget(text) == ForgetSpec("random", fraction=fraction, split_seed=split_seed)
    assert str(parse_forget(text)) == text


def _stratified_counts_hold(labels: torch.Tensor, mask: torch.Tensor, fraction: float) -> bool:
    return all(int(mask[labels == c].sum()) == round(fraction * int((labels == c).sum()))
               for c in torch.unique(labels))


@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=200),
       fraction=st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True),
       split_seed=st.integers(0, 2**32 - 1))
def test_random_rows_have_exactly_the_stratified_counts(labels, fraction, split_seed):
    labels = torch.tensor(labels)
    rows = random_rows(labels, fraction, split_seed)
    assert torch.equal(rows, torch.unique(rows))  # sorted, no repeats
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[rows] = True
    assert _stratified_counts_hold(labels, mask, fraction)
    assert torch.equal(rows, random_rows(labels, fraction, split_seed))  # fixed by the seed


def test_random_masks(synthetic):
    masks = forget_masks("random:0.2", synthetic)
    assert masks["train"].dtype == torch.bool and masks["test"].dtype == torch.bool
    assert _stratified_counts_hold(synthetic.train.y, masks["train"], 0.2)
    assert int(masks["train"].sum()) == 60  # 6 of each class's 30
    assert not masks["test"].any()  # random forgetting has no forget-test samples
    assert len(torch.unique(synthetic.train.y[masks["train"]])) == 10
    assert class_of(parse_forget("random:0.2"), synthetic) is None


def test_random_masks_depend_on_the_split_seed_only(synthetic):
    a = forget_masks("random:0.2", synthetic)["train"]
    torch.manual_seed(123)  # the global generator (a run's seed) plays no part
    assert torch.equal(a, forget_masks("random:0.2:0", synthetic)["train"])
    assert not torch.equal(a, forget_masks("random:0.2:1", synthetic)["train"])


def test_random_draw_is_not_quick_modes_draw():
    """Seeding the draw with the split seed itself would repeat ``stratified_rows`` of the
    same run seed: quick mode's training subset would then lie inside the forget set."""
    from unlearnlab.data import stratified_rows

    labels = torch.arange(1000) % 10
    forget = torch.zeros(1000, dtype=torch.bool)
    forget[random_rows(labels, 0.5, 0)] = True
    assert 0 < int(forget[stratified_rows(labels, 50, 0)].sum()) < 500


@pytest.mark.parametrize(("text", "problem"), [
    ("random:0.01", "selects no training sample"),  # round(0.3) = 0 of each class's 30
    ("random:0.99", "selects every training sample"),  # round(29.7) = 30
])
def test_random_spec_selecting_nothing_or_everything_raises(synthetic, text, problem):
    with pytest.raises(SpecError, match=problem):
        forget_masks(text, synthetic)


def test_random_forget_digests(synthetic):
    def digest(text):
        return forget_digest(forget_masks(text, synthetic), synthetic)

    assert digest("random:0.1") == digest("random:0.10:0") == PINNED_RANDOM
    assert len({digest("random:0.1"), digest("random:0.1:1"), digest("random:0.2"),
                digest("random:0.2:1")}) == 4
