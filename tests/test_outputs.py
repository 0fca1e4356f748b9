"""Outputs that cannot lie (``outputs``): strict JSON, output paths checked before any work, and
whole output folders or none (``output_folder``), with the temporaries of killed processes
cleaned up. Unit tests on temporary folders; the commands' cases are in test_adversarial."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlearnlab.errors import ConfigError
from unlearnlab.outputs import (
    OUTPUT_MARKER,
    check_file_target,
    check_folder_target,
    output_folder,
    remove_stale_folders,
    strict_json,
    write_json,
)


def refuse(token):
    raise ValueError(f"non-JSON token {token}")


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)


# ------------------------------------------------------------------------- strict JSON

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@given(JSON_VALUES)
def test_write_json_writes_strict_json_with_non_finite_numbers_as_null(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("j") / "v.json"
    write_json(path, value)
    loaded = json.loads(path.read_text(), parse_constant=refuse)
    assert loaded == json.loads(json.dumps(strict_json(value)))


def test_strict_json_replaces_nan_and_infinities_at_any_depth():
    value = {"a": [1.0, math.nan, {"b": (math.inf, -math.inf)}], "c": 2}
    assert strict_json(value) == {"a": [1.0, None, {"b": [None, None]}], "c": 2}


# ------------------------------------------------------------------ output paths checked

def test_file_target_checks(tmp_path):
    (tmp_path / "f").write_text("x")
    assert check_file_target(tmp_path / "new" / "r.json", "--json") == tmp_path / "new/r.json"
    with pytest.raises(ConfigError, match="is a directory"):
        check_file_target(tmp_path, "--json")
    with pytest.raises(ConfigError, match=r"is inside a file \('.*f'\)"):
        check_file_target(tmp_path / "f" / "deeper" / "r.json", "--json")


def test_folder_target_checks(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert check_folder_target(tmp_path / "a" / "b", "--out") == tmp_path / "a/b"
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_folder_target(tmp_path / "f", "--out")
    with pytest.raises(ConfigError, match="is inside a file"):
        check_folder_target(tmp_path / "f" / "out", "--out")
    with pytest.raises(ConfigError, match="cannot be resolved"):
        check_folder_target(tmp_path / "loop" / "out", "--out")


# ------------------------------------------------------------------ whole outputs or none

def test_output_folder_moves_a_complete_output_into_place(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, "compare") as folder:
        assert folder.name == f".out.tmp-{__import__('os').getpid()}" and not out.exists()
        (folder / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"
    assert json.loads((out / OUTPUT_MARKER).read_text()) == {"command": "compare"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_folder_replaces_an_earlier_output_only_when_complete(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, "compare") as folder:
        (folder / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), output_folder(out, "compare") as folder:
        (folder / "new.txt").write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with output_folder(out, "compare") as folder:
        (folder / "new.txt").write_text("whole")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_folder_refuses_a_folder_of_another_command_or_of_the_user(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, "bench"):
        pass
    with pytest.raises(ConfigError, match="did not write"), output_folder(out, "compare"):
        pass
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="did not write"), output_folder(mine, "compare"):
        pass
    assert (mine / "notes.txt").read_text() == "keep"


def test_output_folder_accepts_an_output_written_before_the_marker(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("results.csv", "summary.md", "kl.json", "gemu_seed0.json"):
        (out / name).write_text("old")
    with output_folder(out, "compare", ("results.csv", "summary.md", "kl.json",
                                        "*_seed*.json")) as folder:
        (folder / "summary.md").write_text("new")
    assert (out / "summary.md").read_text() == "new" and not (out / "kl.json").exists()


def test_stale_temporary_and_aside_folders_of_dead_processes_are_cleaned(tmp_path):
    pid = dead_pid()
    (tmp_path / f".out.tmp-{pid}").mkdir()
    (tmp_path / f".out.tmp-{pid}" / "half.json").write_text("{")
    (tmp_path / f".lost.old-{pid}").mkdir()  # its replacement never arrived: restored
    (tmp_path / f".lost.old-{pid}" / "summary.md").write_text("earlier")
    alive = tmp_path / f".busy.tmp-{__import__('os').getpid()}"
    alive.mkdir()
    removed = remove_stale_folders(tmp_path)
    assert [p.name for p in removed] == [f".out.tmp-{pid}"]
    assert (tmp_path / "lost" / "summary.md").read_text() == "earlier"
    assert alive.is_dir()
