"""An adversarial user's inputs (issue "Caches and outputs that cannot lie"): damaged, truncated,
foreign and text files in every cache slot, damaged run bundles of every kind, and forget lists
with booleans, floats, negative and huge numbers; then wrong types from every entry point,
unwritable outputs, interruptions of every command, concurrent runs, path tricks and the
issue's silent cases. Each case ends in a rebuilt cache and the same record as a clean run, or
in one clean error: one stderr line from the CLI, no traceback, nothing partial written, no
cached artefact used whose inputs differ. Most cases run on scikit-learn's digits (no files
needed); the end-to-end CLI cases marked ``integration`` run ``--quick`` on the real data root."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import REPO, link_real_data, make_dataset, skip_or_fail, write_forget_list
from test_bundle import OUTPUT_DAMAGE, RECORD_DAMAGE, write_bundle

from unlearnlab import cli
from unlearnlab.config import RunConfig
from unlearnlab.errors import (
    CacheError,
    ConfigError,
    CorruptCacheError,
    DataError,
    DivergenceError,
)
from unlearnlab.experiment import prepare, run
from unlearnlab.forget import forget_masks
from unlearnlab.methods import UnlearningMethod

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
        # the progress lines (the original came from the cache) precede the one error line
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "Traceback" not in proc.stderr
        assert errors[0].startswith(f"unlearnlab: error: cache file '{path}'")
        assert proc.stderr.endswith(errors[0] + "\n")
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


# ======================================================================================
# Classes of the second half. Each test's name starts with its class (the count in
# the final report groups by it): wrong_type, unwritable, interrupted, concurrent, path_trick,
# silent. The CLI cases run in-process (``cli.main``) unless a signal or a second process is
# the point; every one asserts the exit status, a single stderr line, no traceback and that
# nothing was written (no model trained: the data root holds no models/ or runs/).

DIGITS = ["--dataset", "digits", "--quick", "--metrics", "mia_efficacy"]
RUN = ["run", *DIGITS, "--method", "finetune", "--set", "epochs=1"]


def main_in_process(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(code: int, err: str, status: int = 2, match: str | None = None) -> None:
    assert code == status, err
    assert err.count("\n") == 1 and err.startswith("unlearnlab: error: "), err
    assert "Traceback" not in err
    if match:
        assert re.search(match, err), err


def nothing_trained(root: Path) -> bool:
    return not (root / "models").exists() and not (root / "runs").exists()


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` read-only for this process: chmod for a normal user; root ignores modes, so
    there a read-only bind mount of the folder over itself is used."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        skip_or_fail("running as root without mount: cannot make a folder read-only")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)],
                          capture_output=True).returncode != 0:
            skip_or_fail("cannot remount a folder read-only")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def temporaries(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if re.search(r"\.(tmp|old)-\d+$|\.tmp$", p.name)]


def strict_load(path: Path):
    def refuse(token):
        raise ValueError(f"{path} holds the non-JSON token {token}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


# ------------------------------------------------------------------ wrong types: RunConfig

RUNCONFIG_BAD = [
    ("quick", "no"), ("quick", 1), ("reuse", "yes"), ("allow_train", None), ("seed", -1),
    ("seed", 2 ** 63), ("seed", 2 ** 32), ("seed", "0"), ("seed", 1.0), ("seed", True),
    ("dataset", 3), ("forget", None), ("preset", ["x"]), ("device", 0), ("params", [1]),
    ("params", "epochs=1"), ("method", 3), ("arch", 1), ("data_dir", 5), ("oversample", (6,)),
    ("oversample", (6, "10")), ("oversample", "6:10"), ("metrics", "mia_efficacy"),
    ("metrics", [1]), ("metrics", ["no_such_metric"]), ("metrics", []),
    ("train_per_class", 0), ("train_per_class", "300"), ("epochs", 1.5), ("validation", True),
    ("validation", 0.9), ("validation", "0.1"),
]


@pytest.mark.parametrize(("field", "value"), RUNCONFIG_BAD, ids=repr)
def test_wrong_type_runconfig_field_is_one_config_error(field, value):
    with pytest.raises(ConfigError) as info:
        RunConfig(**{field: value})
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------ wrong types: CLI

CLI_BAD = {
    "seed -1": (["--seed", "-1"], "seed must be between 0 and"),
    "seed 2^63": (["--seed", str(2 ** 63)], "seed must be between 0 and"),
    "seed 2^64+1": (["--seed", str(2 ** 64 + 1)], "seed must be between 0 and"),
    "seed text": (["--seed", "zero"], "invalid int value"),
    "epochs 0": (["--epochs", "0"], "epochs must be a positive integer"),
    "train-per-class text": (["--train-per-class", "many"], "invalid int value"),
    "oversample": (["--oversample", "6"], "CLASS:FACTOR"),
    "metrics unknown": (["--metrics", "nope"], "unknown metric 'nope'"),
    "set int text": (["--set", "epochs=one"], "expected int"),
    "set int float": (["--set", "epochs=1.5"], "expected int"),
    "set unknown key": (["--set", "nokey=1"], "has no parameter 'nokey'"),
    "set malformed": (["--set", "epochs"], "is malformed"),
    "set lr nan": (["--set", "lr=nan"], "lr must be a positive number"),
    "preset unknown": (["--preset", "nope"], "has no preset 'nope'"),
    "arch unknown": (["--arch", "nope"], "nope"),
    "dataset unknown": (["--dataset", "nope"], "nope"),
    "forget malformed": (["--forget", "class"], "class"),
}


@pytest.mark.parametrize("case", sorted(CLI_BAD))
def test_wrong_type_cli_run_option_is_one_line_before_any_work(case, tmp_path, capsys):
    extra, match = CLI_BAD[case]
    root = tmp_path / "data"
    code, _, err = main_in_process([*RUN, "--data-dir", root, *extra], capsys)
    assert_one_line(code, err, match=match)
    assert nothing_trained(root)


@pytest.mark.parametrize("argv", [
    ["compare", *DIGITS, "--methods", "finetune", "--seeds", "0"],
    ["compare", *DIGITS, "--methods", "finetune", "--seeds", "two"],
    ["compare", *DIGITS, "--methods", ",", "--seeds", "1"],
    ["compare", *DIGITS, "--methods", "finetune,finetune", "--seeds", "1"],
    ["compare", *DIGITS, "--methods", "relabel,unlearnlab.methods.relabel:Relabel",
     "--seeds", "1"],
    ["compare", *DIGITS, "--methods", "finetune", "--seeds", "1", "--metrics", "x"],
    ["bench", "--quick", "--seeds", "-1"],
    ["bench", "--quick", "--seeds", "1", "--methods", "nope"],
    ["tune", "--dataset", "digits", "--quick", "--method", "gradient_ascent", "--trials", "0"],
    ["tune", "--dataset", "digits", "--quick", "--method", "gradient_ascent", "--seeds", "-2"],
    ["tune", "--dataset", "digits", "--quick", "--method", "relabel", "--objective", "kl"],
], ids=lambda argv: " ".join(argv[:1] + argv[-2:]))
def test_wrong_type_cli_compare_bench_tune_option_is_one_line(argv, tmp_path, capsys):
    root = tmp_path / "data"
    out = [] if argv[0] == "tune" else ["--out", tmp_path / "out"]
    code, _, err = main_in_process([*argv, *out, "--data-dir", root], capsys)
    assert_one_line(code, err)
    assert nothing_trained(root) and not (tmp_path / "out").exists()


# ----------------------------------------------------------- wrong types: presets/tuned.json

GA_TUNED = {"lr": 3e-5, "epochs": 1, "batch_size": 64, "shuffle": True, "max_steps": 0}
TUNED_BAD = {
    "shuffle 'false'": {"gradient_ascent": {"digits": {"params": {**GA_TUNED,
                                                                  "shuffle": "false"}}}},
    "epochs '1'": {"gradient_ascent": {"digits": {"params": {**GA_TUNED, "epochs": "1"}}}},
    "lr null": {"gradient_ascent": {"digits": {"params": {**GA_TUNED, "lr": None}}}},
    "epochs true": {"gradient_ascent": {"digits": {"params": {**GA_TUNED, "epochs": True}}}},
    "stale key": {"gradient_ascent": {"digits": {"params": {**GA_TUNED, "gone": 1}}}},
    "params a list": {"gradient_ascent": {"digits": {"params": [1, 2]}}},
    "entry a string": {"gradient_ascent": {"digits": "fast"}},
    "method a list": {"gradient_ascent": ["digits"]},
    "top level a list": [],
    "not JSON": "{not json",
}


@pytest.mark.parametrize("case", sorted(TUNED_BAD))
def test_wrong_type_in_tuned_file_is_one_line_before_any_work(case, tmp_path, capsys):
    root = tmp_path / "data"
    content = TUNED_BAD[case]
    (root / "presets").mkdir(parents=True)
    (root / "presets" / "tuned.json").write_text(
        content if isinstance(content, str) else json.dumps(content))
    code, _, err = main_in_process(["run", *DIGITS, "--method", "gradient_ascent", "--preset",
                                    "tuned", "--data-dir", root], capsys)
    assert_one_line(code, err, match="tuned presets")
    assert nothing_trained(root)


# ----------------------------------------------------------------- wrong types: Python API

def _api_compare(**kw):
    from unlearnlab.compare import compare
    args = {"cfg": replace(CONFIG, data_dir=None), "methods": ["finetune"], "seeds": 1,
            "out": None, "preset": "default", **kw}
    return compare(**args)


def _api_bench(**kw):
    from unlearnlab.bench import bench
    args = {"cfg": replace(CONFIG, data_dir=None), "methods": ["finetune"], "seeds": 1,
            "out": None, **kw}
    return bench(**args)


def _api_tune(**kw):
    from unlearnlab.tuning import TuneConfig, tune
    return tune(TuneConfig(**{"dataset": "digits", "method": "gradient_ascent", "quick": True,
                              "trials": 1, "seeds": 1, **kw}))


API_BAD = {
    "run: a dict": lambda root: run({"dataset": "digits"}),
    "compare: cfg a dict": lambda root: _api_compare(cfg={"dataset": "digits"}),
    "compare: methods a str": lambda root: _api_compare(methods="finetune"),
    "compare: methods of ints": lambda root: _api_compare(methods=[1]),
    "compare: seeds 0": lambda root: _api_compare(seeds=0),
    "compare: seeds True": lambda root: _api_compare(seeds=True),
    "compare: seeds 2.0": lambda root: _api_compare(seeds=2.0),
    "compare: out an int": lambda root: _api_compare(out=3),
    "compare: preset None": lambda root: _api_compare(preset=None),
    "compare: one method twice": lambda root: _api_compare(
        methods=["relabel", "unlearnlab.methods.relabel:Relabel"]),
    "bench: methods a str": lambda root: _api_bench(methods="finetune"),
    "bench: seeds '1'": lambda root: _api_bench(seeds="1"),
    "bench: scenarios a str": lambda root: _api_bench(scenarios="mnist"),
    "bench: scenario pairs": lambda root: _api_bench(scenarios=[("digits", "class:6")]),
    "tune: a dict": lambda root: __import__("unlearnlab.tuning").tuning.tune({"trials": 1}),
    "tune: trials '5'": lambda root: _api_tune(trials="5", data_dir=str(root)),
    "tune: seeds 0": lambda root: _api_tune(seeds=0, data_dir=str(root)),
    "tune: quick 'no'": lambda root: _api_tune(quick="no", data_dir=str(root)),
    "tune: sampler_seed -1": lambda root: _api_tune(sampler_seed=-1, data_dir=str(root)),
    "tune: storage an int": lambda root: _api_tune(storage=5, data_dir=str(root)),
    "tune: validation 2": lambda root: _api_tune(validation=2.0, data_dir=str(root)),
    "tune: relabel target on its class": lambda root: _api_tune(
        method="relabel", forget="class:3", data_dir=str(root)),
}


@pytest.mark.parametrize("case", sorted(API_BAD))
def test_wrong_type_in_the_python_api_is_one_config_error(case, tmp_path):
    root = tmp_path / "data"
    with pytest.raises(ConfigError) as info:
        API_BAD[case](root)
    assert "\n" not in str(info.value)
    assert nothing_trained(root)


@pytest.mark.parametrize(("target", "forget", "match"), [
    (6, "class:6", "target 6 is the forgotten class"), (10, "class:6", "target 10 is not a"),
    (12, "class:2", "target 12 is not a class 0-9"),
])
def test_wrong_type_relabel_target_is_refused_before_training(tmp_path, capsys, target, forget,
                                                              match):
    """Issue: relabel's target was checked after training and left cache files behind."""
    root = tmp_path / "data"
    code, _, err = main_in_process(["run", *DIGITS, "--forget", forget, "--method", "relabel",
                                    "--set", f"target={target}", "--data-dir", root], capsys)
    assert_one_line(code, err, match=match)
    assert nothing_trained(root)


# -------------------------------------------------------------------- unwritable outputs

def _file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("x")
    return path


# Each trick: (what to pass, given the test's tmp folder; the message expected).
FILE_TRICKS = {
    "a directory": (lambda tmp: tmp, "is a directory"),
    "inside a file": (lambda tmp: _file(tmp) / "r.json", "is inside a file"),
}
FOLDER_TRICKS = {
    "a file": (lambda tmp: _file(tmp), "is a file, not a folder"),
    "inside a file": (lambda tmp: _file(tmp) / "out", "is inside a file"),
}


@pytest.mark.parametrize("trick", sorted(FILE_TRICKS))
def test_unwritable_run_json_fails_before_training(trick, tmp_path, capsys):
    target, match = FILE_TRICKS[trick]
    root = tmp_path / "data"
    code, _, err = main_in_process([*RUN, "--data-dir", root, "--json", target(tmp_path)],
                                   capsys)
    assert_one_line(code, err, match=match)
    assert nothing_trained(root)


COMMANDS_WITH_OUT = {
    "compare": ["compare", *DIGITS, "--methods", "finetune", "--seeds", "1"],
    "bench": ["bench", "--quick", "--seeds", "1", "--methods", "finetune"],
    "figures": ["figures", "class-forgetting", "--quick"],
}


@pytest.mark.parametrize("trick", sorted(FOLDER_TRICKS))
@pytest.mark.parametrize("command", sorted(COMMANDS_WITH_OUT))
def test_unwritable_out_fails_before_any_work(command, trick, tmp_path, capsys):
    target, match = FOLDER_TRICKS[trick]
    root = tmp_path / "data"
    out = target(tmp_path)
    code, _, err = main_in_process([*COMMANDS_WITH_OUT[command], "--data-dir", root, "--out",
                                    out], capsys)
    assert_one_line(code, err, match=match)
    assert nothing_trained(root) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("command", ["run --json", "compare --out", "bench --out", "tune",
                                     "figures --out"])
def test_unwritable_read_only_folder_fails_before_any_work(command, tmp_path, capsys):
    root = tmp_path / "data"
    with read_only(tmp_path / "ro") as ro:
        argv = {"run --json": [*RUN, "--json", ro / "r.json"],
                "compare --out": [*COMMANDS_WITH_OUT["compare"], "--out", ro / "out"],
                "bench --out": [*COMMANDS_WITH_OUT["bench"], "--out", ro / "out"],
                "tune": ["tune", "--dataset", "digits", "--quick", "--method",
                         "gradient_ascent", "--trials", "1", "--seeds", "1"],
                "figures --out": [*COMMANDS_WITH_OUT["figures"], "--out", ro / "out"]}[command]
        if command == "tune":
            root = ro / "data"
        code, _, err = main_in_process([*argv, "--data-dir", root], capsys)
    assert_one_line(code, err, match="is not writable")
    assert nothing_trained(root)


@pytest.mark.parametrize("trick", ["presets a file", "tuned.json a directory",
                                   "studies a file", "models a file"])
def test_unwritable_tune_storage_and_preset_paths_fail_before_any_trial(trick, tmp_path,
                                                                         capsys):
    root = tmp_path / "data"
    root.mkdir()
    if trick == "presets a file":
        (root / "presets").write_text("x")
    elif trick == "tuned.json a directory":
        (root / "presets" / "tuned.json").mkdir(parents=True)
    else:
        (root / trick.split()[0]).write_text("x")
    code, _, err = main_in_process(["tune", "--dataset", "digits", "--quick", "--method",
                                    "gradient_ascent", "--trials", "1", "--seeds", "1",
                                    "--data-dir", root], capsys)
    assert_one_line(code, err, match="is inside a file|is a directory|is a file, not a folder")
    assert not (root / "studies" / "optuna.db").exists()


def test_unwritable_read_only_data_root_with_everything_cached_fails_early(clean, copy_of,
                                                                          capsys):
    """A run writes its bundle under runs/ even when every model is cached: a read-only data
    root is refused up front, and the message says why."""
    with read_only(copy_of):
        code, _, err = main_in_process(["run", *DIGITS, "--arch", "mlp", "--method", "finetune",
                                        "--set", "epochs=1", "--data-dir", copy_of], capsys)
    assert_one_line(code, err, match=r"is not writable.*bundle under runs/")


def test_unwritable_rescore_bundle_fails_before_rescoring(tmp_path, capsys):
    folders = [write_bundle(tmp_path / f"b{i}", seed=i, metrics=["zrf"]) for i in range(2)]
    with read_only(folders[1]):
        code, _, err = main_in_process(["rescore", tmp_path], capsys)
    assert_one_line(code, err, match="rescore bundle .* is not writable")
    assert not any((f / "rescored.json").exists() for f in folders)


def test_unwritable_figures_bench_out_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bench").mkdir()
    code, _, err = main_in_process(["figures", "bench", tmp_path / "bench", "--out",
                                    _file(tmp_path)], capsys)
    assert_one_line(code, err, match="is a file, not a folder")


# --------------------------------------------------------------------------- path tricks

def test_path_trick_data_dir_a_file(tmp_path, capsys):
    code, _, err = main_in_process([*RUN, "--data-dir", _file(tmp_path)], capsys)
    assert_one_line(code, err, match="is inside a file")


def test_path_trick_data_dir_a_symlink_loop(tmp_path, capsys):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    code, _, err = main_in_process([*RUN, "--data-dir", tmp_path / "loop"], capsys)
    assert_one_line(code, err, match="cannot be resolved")


def test_path_trick_json_a_symlink_loop(tmp_path, capsys):
    (tmp_path / "loop.json").symlink_to(tmp_path / "loop.json")
    code, _, err = main_in_process([*RUN, "--data-dir", tmp_path / "data", "--json",
                                    tmp_path / "loop.json"], capsys)
    assert_one_line(code, err, match="cannot be resolved")
    assert nothing_trained(tmp_path / "data")


@pytest.mark.parametrize("where", ["the data root", "above the data root"])
@pytest.mark.parametrize("command", ["compare", "bench"])
def test_path_trick_out_is_the_data_root(command, where, tmp_path, capsys):
    root = tmp_path / "data"
    (root / "forget_sets").mkdir(parents=True)
    out = root if where == "the data root" else tmp_path
    code, _, err = main_in_process([*COMMANDS_WITH_OUT[command], "--data-dir", root, "--out",
                                    out], capsys)
    assert_one_line(code, err, match="is the data root or a folder holding it|did not write")
    assert (root / "forget_sets").is_dir() and not (root / "models").exists()


def test_path_trick_out_a_folder_of_the_users_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    code, _, err = main_in_process([*COMMANDS_WITH_OUT["compare"], "--data-dir",
                                    tmp_path / "data", "--out", out], capsys)
    assert_one_line(code, err, match="did not write")
    assert (out / "chapter1.tex").read_text() == "precious"


def test_path_trick_relative_paths_with_dotdot_write_where_they_say(tmp_path, monkeypatch,
                                                                     capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    code, _, err = main_in_process([*RUN, "--data-dir", "../../data", "--json",
                                    "../out/../r.json"], capsys)
    assert code == 0, err
    assert strict_load(tmp_path / "a" / "r.json")["method"] == "finetune"
    assert (tmp_path / "data" / "runs").is_dir()
    code, _, err = main_in_process(["compare", *DIGITS, "--methods", "finetune", "--seeds", "1",
                                    "--data-dir", "../../data", "--out", "../x/../cmp"], capsys)
    assert code == 0, err
    assert (tmp_path / "a" / "cmp" / "summary.md").is_file()
    assert not temporaries(tmp_path / "a")


# -------------------------------------------------------------------------- interruptions

def start_cli(argv, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = str(REPO)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen([sys.executable, "-m", "unlearnlab", *map(str, argv)], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_when(proc: subprocess.Popen, text: str, occurrence: int = 1,
                   delay: float = 0.5) -> str:
    """SIGINT ``proc`` ``delay`` seconds after its stderr shows ``text`` for the
    ``occurrence``-th time; return all of its stderr."""
    lines, seen = [], threading.Event()

    def read():
        count = 0
        for line in proc.stderr:
            lines.append(line)
            count += text in line
            if count >= occurrence:
                seen.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(300), "".join(lines)
    time.sleep(delay)
    assert proc.poll() is None, "finished before it could be interrupted: " + "".join(lines)
    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    reader.join(10)
    return "".join(lines)


def assert_interrupted(proc: subprocess.Popen, stderr: str) -> None:
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("unlearnlab: interrupted"), stderr
    assert "Traceback" not in stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# Long enough to be interrupted in training on scikit-learn's digits.
SLOW = ["--dataset", "digits", "--arch", "mlp", "--epochs", "300", "--metrics", "mia_efficacy"]


def test_interrupted_run_writes_no_json_and_no_partial_file(tmp_path):
    root, out = tmp_path / "data", tmp_path / "r.json"
    out.write_text('{"earlier": true}\n')
    proc = start_cli(["run", *SLOW, "--method", "finetune", "--data-dir", root, "--json", out],
                     tmp_path)
    assert_interrupted(proc, interrupt_when(proc, "training the original model"))
    assert out.read_text() == '{"earlier": true}\n'
    assert not temporaries(tmp_path) and not list(root.rglob("*.pt"))


def test_interrupted_compare_leaves_the_earlier_output_untouched(tmp_path):
    """Issue: records of a new scenario were left beside an old one's summary, while the
    CLI said that nothing partial was written."""
    root, out = tmp_path / "data", tmp_path / "out"
    done = start_cli(["compare", *DIGITS, "--methods", "finetune", "--seeds", "1",
                      "--data-dir", root, "--out", out], tmp_path)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    before = snapshot(out)
    proc = start_cli(["compare", *SLOW, "--forget", "class:2", "--methods", "finetune",
                      "--seeds", "2", "--data-dir", root, "--out", out], tmp_path)
    # Seed 1's training: seed 0's records are written by then (into the temporary folder).
    stderr = interrupt_when(proc, "training the original model", occurrence=2, delay=0.3)
    assert_interrupted(proc, stderr)
    assert "nothing partial was written" in stderr.splitlines()[-1]
    assert snapshot(out) == before
    assert not temporaries(tmp_path)


def test_interrupted_bench_leaves_the_earlier_output_untouched(real_data, tmp_path):
    root = link_real_data(real_data, tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".unlearnlab-output.json").write_text('{"command": "bench"}\n')
    (out / "leaderboard.md").write_text("an earlier leaderboard\n")
    before = snapshot(out)
    proc = start_cli(["bench", "--quick", "--seeds", "2", "--methods", "finetune",
                      "--data-dir", root, "--out", out], tmp_path)
    assert_interrupted(proc, interrupt_when(proc, "training the original model",
                                            occurrence=2, delay=0.2))
    assert snapshot(out) == before and not temporaries(tmp_path)


def test_interrupted_tune_keeps_other_presets_and_writes_whole_files(tmp_path):
    root = tmp_path / "data"
    (root / "presets").mkdir(parents=True)
    other = {"finetune": {"mnist": {"params": {"epochs": 2}, "study": "kept"}}}
    (root / "presets" / "tuned.json").write_text(json.dumps(other))
    proc = start_cli(["tune", "--dataset", "digits", "--quick", "--method", "gradient_ascent",
                      "--trials", "200", "--seeds", "1", "--data-dir", root], tmp_path)
    stderr = interrupt_when(proc, "trial 1", delay=0.2)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("unlearnlab: interrupted"), stderr
    content = strict_load(root / "presets" / "tuned.json")
    assert content["finetune"] == other["finetune"]
    assert not temporaries(root)


# ---------------------------------------------------------------------------- concurrency

def test_concurrent_runs_of_one_configuration_both_succeed_with_identical_records(tmp_path):
    root = tmp_path / "data"
    procs = [start_cli([*RUN, "--data-dir", root, "--json", tmp_path / f"r{i}.json"], tmp_path)
             for i in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    records = [strict_load(tmp_path / f"r{i}.json") for i in (1, 2)]
    assert comparable(records[0]) == comparable(records[1])
    assert not temporaries(root) and not list(root.rglob("*.corrupt-*"))
    (bundle_folder,) = {r["bundle"] for r in records}
    assert strict_load(Path(bundle_folder) / "record.json")["split_hash"] == \
        records[0]["split_hash"]


# --------------------------------------------------------------------------- silent cases

def test_silent_quick_no_is_refused_not_read_as_true():
    with pytest.raises(ConfigError, match="quick must be a bool"):
        RunConfig(dataset="digits", quick="no")


def test_silent_shuffle_false_string_in_a_tuned_file_is_refused(tmp_path, capsys):
    test_wrong_type_in_tuned_file_is_one_line_before_any_work("shuffle 'false'", tmp_path,
                                                              capsys)


def test_silent_one_method_twice_writes_no_nan(tmp_path, capsys):
    """Issue: `compare --methods relabel,relabel` wrote a bare NaN into kl.json."""
    code, _, err = main_in_process(["compare", *DIGITS, "--methods", "relabel,relabel",
                                    "--seeds", "1", "--data-dir", tmp_path / "data", "--out",
                                    tmp_path / "out"], capsys)
    assert_one_line(code, err, match="names a method twice")
    assert not (tmp_path / "out").exists()


class Diverges(UnlearningMethod):
    """Always diverges: the row and KL entries of a diverged method."""

    name = "diverges_for_test"
    defaults = {"epochs": 1}

    def unlearn(self, model, task):
        raise DivergenceError("diverges_for_test: a weight became non-finite (on purpose)")


def test_silent_a_diverged_method_writes_strict_json(tmp_path):
    from unlearnlab.compare import compare

    out = tmp_path / "out"
    compare(replace(CONFIG, data_dir=str(tmp_path / "data")), ["finetune", Diverges], 1, out)
    written = sorted(out.rglob("*.json"))
    assert {p.name for p in written} >= {"kl.json", "diverges_for_test_seed0.json"}
    for path in written:
        strict_load(path)  # raises on NaN / Infinity
    kl = strict_load(out / "kl.json")
    assert None in kl["mean"][-1]  # the diverged method's row: null, not NaN


@pytest.mark.integration
def test_silent_trimmed_forget_list_gets_new_models_on_real_data(real_data, tmp_path):
    root = link_real_data(real_data, tmp_path / "data")
    (root / "forget_sets").unlink()
    listed = json.loads((real_data / "forget_sets" / "mnist_sevens_with_crossbar.json")
                        .read_text())
    write_forget_list(root, "x", listed)
    args = ["--forget", "subset:x"]
    first = cli_run(*args, "--json", tmp_path / "a.json", root=root)
    assert first.returncode == 0, first.stderr
    listed["train"] = listed["train"][: len(listed["train"]) // 2]
    write_forget_list(root, "x", listed)
    second = cli_run(*args, "--json", tmp_path / "b.json", root=root)
    assert second.returncode == 0, second.stderr
    for role in ("retrained", "unlearned"):
        assert len(list((root / "models").rglob(f"{role}-seed0-*.pt"))) == 2, role
    a, b = (strict_load(tmp_path / n) for n in ("a.json", "b.json"))
    assert a["sizes"]["forget_train"] > b["sizes"]["forget_train"]


def test_silent_demo_with_a_damaged_mnist_file_fails_in_one_line(real_data, tmp_path, capsys):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(real_data / "MNIST" / "raw" / name, raw / name)
    damaged = raw / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    code, out, err = main_in_process(["demo", "--quick", "--data-dir", tmp_path / "data"],
                                     capsys)
    assert_one_line(code, err, match=f"checksum mismatch for '{damaged}'")
    assert "digits" not in out and nothing_trained(tmp_path / "data")


def test_silent_demo_without_mnist_falls_back_to_digits(tmp_path, capsys, monkeypatch):
    from unlearnlab.data import builtin

    def offline(*args, **kwargs):
        raise RuntimeError("offline")
    monkeypatch.setattr(builtin, "_torchvision_class", lambda name: offline)
    code, out, err = main_in_process(["demo", "--quick", "--data-dir", tmp_path / "data",
                                      "--out", tmp_path / "demo"], capsys)
    assert code == 0, err
    assert "running the demo on scikit-learn's digits instead" in out
    assert "digits / " in out
    assert "forgotten sixes (test set) now predicted as: " in out and "(retrained model: " in out
    assert (tmp_path / "demo" / "class_forgetting_predictions.png").is_file()
    assert f"figures: {(tmp_path / 'demo').resolve()}/" in out


@pytest.mark.parametrize("value", ["\n", "a\nb=1", "epo\r\nchs=1"])
def test_wrong_type_set_with_a_line_break_is_still_one_line(value, tmp_path, capsys):
    code, _, err = main_in_process([*RUN, "--data-dir", tmp_path / "data", "--set", value],
                                   capsys)
    assert_one_line(code, err)
