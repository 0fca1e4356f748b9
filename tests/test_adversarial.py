"""An adversarial user's inputs (issue "Caches and outputs that cannot lie"): damaged, truncated,
foreign and text files in every cache slot, damaged run bundles of every kind, and forget lists
with booleans, floats, negative and huge numbers. Each case ends in a rebuilt cache and the same
record as a clean run, or in one clean error: one stderr line from the CLI, no traceback,
nothing partial written. The Python API cases run on scikit-learn's digits (no files needed);
the end-to-end CLI cases at the bottom run ``--quick`` on the real data root."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import REPO, link_real_data, make_dataset, write_forget_list
from test_bundle import OUTPUT_DAMAGE, RECORD_DAMAGE, write_bundle

from unlearnlab import cli
from unlearnlab.config import RunConfig
from unlearnlab.errors import CacheError, CorruptCacheError, DataError
from unlearnlab.experiment import prepare, run
from unlearnlab.forget import forget_masks

CONFIG = RunConfig(dataset="digits", forget="class:6", method="finetune",
                   params={"epochs": 1}, quick=True, arch="mlp", metrics=["mia_efficacy"])
SLOTS = ("original", "retrained", "baselines", "unlearned")
# Fields that legitimately differ between two runs: timings and paths.
UNSTABLE = ("seconds", "speedup_vs_retrain", "bundle")


def comparable(record: dict) -> str:
    record = {k: v for k, v in record.items() if k not in UNSTABLE}
    record["run_config"] = {k: v for k, v in record["run_config"].items() if k != "data_dir"}
    return json.dumps(record, sort_keys=True)


def slot(root: Path, role: str) -> Path:
    (path,) = (root / "models").rglob(f"{role}-seed0-*.pt")
    return path


def flip_middle(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    mid, count = len(blob) // 2, min(4096, len(blob) // 4)
    blob[mid:mid + count] = bytes(b ^ 0xFF for b in blob[mid:mid + count])
    path.write_bytes(bytes(blob))


def strip_digest(path: Path) -> None:
    """As written before checkpoints carried a digest."""
    raw = torch.load(path, weights_only=True)
    del raw["meta"]["digest"]
    torch.save(raw, path)


DAMAGE = {
    "flipped": (flip_middle, "cannot be loaded safely|does not match its content digest"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:p.stat().st_size // 2]),
                  "cannot be loaded safely"),
    "empty": (lambda p: p.write_bytes(b""), "cannot be loaded safely"),
    "text": (lambda p: p.write_text("this is not a checkpoint\n"), "cannot be loaded safely"),
    "foreign": (lambda p: torch.save({"weights": torch.zeros(3)}, p), "not a checkpoint"),
    "no digest": (strip_digest, "carries no content digest"),
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    """One clean run in its own root: its cache and its record."""
    root = tmp_path_factory.mktemp("clean")
    result = run(replace(CONFIG, data_dir=str(root)))
    return {"root": root, "record": comparable(result.record)}


@pytest.fixture
def copy_of(clean, tmp_path) -> Path:
    """A fresh data root holding a copy of the clean run's cache (no bundles)."""
    root = tmp_path / "data"
    shutil.copytree(clean["root"] / "models", root / "models")
    return root


# ----------------------------------------------------------- damaged cache slots: rebuilt

@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("role", SLOTS)
def test_damaged_cache_entry_is_moved_aside_rebuilt_and_changes_nothing(clean, copy_of, caplog,
                                                                         role, damage):
    path = slot(copy_of, role)
    original_bytes = path.read_bytes()
    apply, problem = DAMAGE[damage]
    apply(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="unlearnlab"):
        result = run(replace(CONFIG, data_dir=str(copy_of)))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"'{path}'" in warnings[0] and "moved it to" in warnings[0]
    assert re.search(problem, warnings[0]), warnings[0]
    aside = path.with_name(path.name + ".corrupt-1")
    assert aside.read_bytes() == damaged  # kept, never deleted
    rebuilt = torch.load(path, weights_only=True)  # a new, verified entry in its place
    assert rebuilt["meta"]["digest"] == torch.load(io.BytesIO(original_bytes),
                                                   weights_only=True)["meta"]["digest"] \
        or role != "baselines"  # a model's digest covers its training time, which varies
    assert comparable(result.record) == clean["record"]
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("role", SLOTS)
def test_entry_of_another_configuration_is_refused_and_kept(copy_of, role):
    """A verified file of another slot: not corruption, so not moved; one CacheError line."""
    path = slot(copy_of, role)
    other = slot(copy_of, "retrained" if role == "original" else "original")
    shutil.copyfile(other, path)
    with pytest.raises(CacheError, match="another configuration") as info:
        run(replace(CONFIG, data_dir=str(copy_of)))
    assert not isinstance(info.value, CorruptCacheError)
    assert path.read_bytes() == other.read_bytes()
    assert not list(path.parent.glob("*.corrupt-*"))


@pytest.mark.parametrize("role", ["original", "retrained"])
def test_no_train_refuses_a_damaged_model_after_moving_it(copy_of, role):
    path = slot(copy_of, role)
    path.write_text("not a model")
    with pytest.raises(CorruptCacheError, match="moved it to") as info:
        prepare(replace(CONFIG, data_dir=str(copy_of), allow_train=False))
    assert info.value.moved_to.read_text() == "not a model"
    assert not path.exists()


def test_a_directory_in_a_cache_slot_is_a_one_line_error(copy_of):
    path = slot(copy_of, "original")
    path.unlink()
    path.mkdir()
    with pytest.raises(CacheError, match="cannot be read"):
        prepare(replace(CONFIG, data_dir=str(copy_of)))
    assert path.is_dir()


def test_a_trimmed_forget_list_selects_other_samples(tmp_path):
    """Issue (b): the forget digest (the key the lead puts in place of the spec string) sees a
    trimmed list, where the spec string 'subset:x' stayed the same."""
    from unlearnlab.forget import forget_digest

    ds = make_dataset()
    listed = ds.train.index[ds.train.y == 7].tolist()
    write_forget_list(tmp_path, "x", {"dataset": "MNIST", "class": 7, "train": listed,
                                      "test": []})
    before = forget_digest(forget_masks("subset:x", ds, tmp_path), ds)
    write_forget_list(tmp_path, "x", {"dataset": "MNIST", "class": 7, "train": listed[:-1],
                                      "test": []})
    assert forget_digest(forget_masks("subset:x", ds, tmp_path), ds) != before


# ----------------------------------------------------------------------- bad forget lists

LIST_VALUES = [
    ("class", True), ("class", False), ("class", 7.0), ("class", -7), ("class", 10 ** 30),
    ("class", None), ("class", [7]), ("train", [True, 1]), ("train", [2.0]), ("train", [-3]),
    ("train", [10 ** 30]), ("test", [False]), ("test", [1e308]), ("train", "0,1,2"),
    ("train", {"0": 1}), ("test", None),
]


@pytest.mark.parametrize(("field", "value"), LIST_VALUES, ids=repr)
def test_bad_forget_list_value_is_one_data_error(tmp_path, field, value):
    ds = make_dataset()
    content = {"dataset": "MNIST", "class": 1, "train": ds.train.index[ds.train.y == 1].tolist(),
               "test": []}
    content[field] = value
    path = write_forget_list(tmp_path, "bad", content)
    with pytest.raises(DataError) as info:
        forget_masks("subset:bad", ds, tmp_path)
    message = str(info.value)
    assert str(path) in message and field in message and "\n" not in message


# ------------------------------------------------------------- rescore of damaged bundles

def rescore(path: Path, capsys) -> tuple[int, str, str]:
    code = cli.main(["rescore", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", [f"record: {k}" for k in sorted(RECORD_DAMAGE)]
                         + [f"outputs: {k}" for k in sorted(OUTPUT_DAMAGE)])
def test_rescore_reports_a_damaged_bundle_in_one_line_and_rescores_the_others(tmp_path, capsys,
                                                                             case):
    kind, _, name = case.partition(": ")
    damage, problem = (RECORD_DAMAGE if kind == "record" else OUTPUT_DAMAGE)[name]
    folders = [write_bundle(tmp_path / f"b{i}", seed=i, metrics=["zrf", "mia_efficacy"])
               for i in range(3)]
    damage(folders[1])  # sorted in the middle: bundles before and after it are rescored
    code, out, err = rescore(tmp_path, capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"unlearnlab: error: bundle '{folders[1]}': ")
    assert problem in lines[0] and "Traceback" not in err
    assert "rescored 2 bundle(s): 2 match their records; 1 damaged, not rescored" in out
    assert [(f / "rescored.json").is_file() for f in folders] == [True, False, True]


def test_rescore_exit_status_orders_damage_before_differences(tmp_path, capsys):
    good, differs, damaged = (write_bundle(tmp_path / n, metrics=["zrf"]) for n in "abc")
    record = json.loads((differs / "record.json").read_text())
    record["models"]["unlearned"]["zrf"] += 0.1
    (differs / "record.json").write_text(json.dumps(record))
    shutil.rmtree(damaged)
    code, out, err = rescore(tmp_path, capsys)
    assert code == 1 and err == "" and f"{differs}: unlearned.zrf: recorded" in out
    write_bundle(damaged, metrics=["zrf"])
    (damaged / "outputs.npz").write_bytes(b"PK")
    code, out, err = rescore(tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "1 differ" in out
    shutil.rmtree(damaged)
    assert rescore(tmp_path, capsys)[0] == 1
    shutil.rmtree(differs)
    assert rescore(good, capsys)[0] == 0


def test_rescore_of_one_damaged_bundle_by_subprocess_has_no_traceback(tmp_path):
    folder = write_bundle(tmp_path / "b")
    (folder / "outputs.npz").write_bytes((folder / "outputs.npz").read_bytes()[:100])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "unlearnlab", "rescore", str(folder)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"unlearnlab: error: bundle '{folder}': outputs.npz cannot")
    assert not (folder / "rescored.json").exists()


# ------------------------------------------------------------- end to end on the real data

def cli_run(*args, root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = str(REPO)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "unlearnlab", "run", "--quick", "--dataset",
                           "mnist", "--forget", "class:6", "--method", "relabel", "--set",
                           "target=3", "--metrics", "mia_efficacy", "--data-dir", str(root),
                           *map(str, args)],
                          cwd=root.parent, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def real_run(real_data, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("adversarial-cli")
    root = link_real_data(real_data, tmp / "data")
    proc = cli_run("--json", tmp / "clean.json", root=root)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "tmp": tmp,
            "record": comparable(json.loads((tmp / "clean.json").read_text()))}


@pytest.mark.integration
def test_cli_corrupted_original_warns_once_retrains_and_reports_the_same(real_run):
    """The issue's case (a): a few KB flipped in a cached original no longer yield a damaged
    model; one warning line, the file moved aside, the same record as the clean run."""
    path = slot(real_run["root"], "original")
    flip_middle(path)
    out = real_run["tmp"] / "again.json"
    proc = cli_run("--json", out, root=real_run["root"])
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "moved it to" in line]
    assert len(warned) == 1 and f"'{path}'" in warned[0] and "Traceback" not in proc.stderr
    assert path.with_name(path.name + ".corrupt-1").is_file() and path.is_file()
    assert comparable(json.loads(out.read_text())) == real_run["record"]


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_cli_no_train_on_a_damaged_model_is_one_line(real_run, damage):
    path = slot(real_run["root"], "retrained")
    saved = path.read_bytes()
    DAMAGE[damage][0](path)
    try:
        proc = cli_run("--no-train", root=real_run["root"])
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"unlearnlab: error: cache file '{path}'")
        assert not path.exists()
    finally:
        path.write_bytes(saved)
        for aside in path.parent.glob("*.corrupt-*"):
            aside.unlink()


@pytest.mark.integration
@pytest.mark.parametrize("value", [True, 1.0, -1, 10 ** 30])
def test_cli_forget_list_with_a_bad_class_is_one_line(real_data, tmp_path, value):
    root = tmp_path / "data"
    root.mkdir()
    (root / "MNIST").symlink_to((real_data / "MNIST").resolve(), target_is_directory=True)
    path = write_forget_list(root, "bad", {"dataset": "MNIST", "class": value, "train": [0],
                                           "test": []})
    proc = cli_run("--forget", "subset:bad", root=root)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"forget set '{path}': class must be an integer 0-9" in proc.stderr
    assert not (root / "models").exists() and not (root / "runs").exists()
