"""The command line end to end (integration): ``python -m unlearnlab run`` in quick mode on
real MNIST in an isolated data root, its JSON contract, the model cache, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, link_real_data

from unlearnlab.config import QUICK

pytestmark = pytest.mark.integration

RUN = ["--dataset", "mnist", "--forget", "class:6", "--method", "relabel", "--set", "target=3",
       "--quick"]
MODEL_KEYS = {"test_acc", "forget_test_acc", "retain_test_acc", "forget_train_acc",
              "retain_train_acc", "per_class_test_acc", "confusion_test"}
TOP_KEYS = {"dataset", "arch", "forget", "method", "params", "seed", "quick", "models", "seconds"}


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m unlearnlab run ARGS`` from ``cwd``, importing this checkout, with no
    ``$UNLEARNLAB_DATA`` (every call names its data root)."""
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # One OpenMP thread per process: on a busy 2-core machine torch's spinning worker threads
    # make a quick run 5-15x slower; the error cases run two processes at a time anyway.
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "unlearnlab", "run", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- a cached run

@pytest.fixture(scope="module")
def runs(real_data, tmp_path_factory):
    """The same quick run twice in one isolated root: the first trains and caches, the
    second loads everything from the cache."""
    tmp = tmp_path_factory.mktemp("cli")
    root = link_real_data(real_data, tmp / "data")
    first = cli(*RUN, "--data-dir", root, "--json", tmp / "r1.json", cwd=tmp)
    cached = files_under(root / "models") if (root / "models").is_dir() else []
    second = cli(*RUN, "--data-dir", root, "--json", tmp / "r2.json", cwd=tmp)
    for proc in (first, second):
        assert proc.returncode == 0, proc.stderr
    return {"root": root, "procs": (first, second), "cached": cached,
            "records": [json.loads((tmp / f"r{i}.json").read_text()) for i in (1, 2)]}


def test_run_succeeds_and_prints_a_summary(runs):
    for proc in runs["procs"]:
        assert proc.returncode == 0
        assert "Traceback" not in proc.stderr
        assert "mnist / cnn / forget class:6 / relabel / seed 0 / quick" in proc.stdout
        for name in ("original", "retrained", "unlearned"):
            assert name in proc.stdout


def test_json_has_every_contract_key(runs):
    rec = runs["records"][0]
    assert TOP_KEYS <= rec.keys()
    assert (rec["dataset"], rec["arch"], rec["forget"], rec["method"]) == \
        ("mnist", "cnn", "class:6", "relabel")
    assert rec["params"]["target"] == 3 and rec["seed"] == 0 and rec["quick"] is True
    assert {"original", "retrained", "unlearned"} <= rec["models"].keys()
    assert {"original", "retrained", "unlearn"} <= rec["seconds"].keys()
    assert all(isinstance(rec["seconds"][k], float) and rec["seconds"][k] >= 0
               for k in ("original", "retrained", "unlearn"))
    for name, m in rec["models"].items():
        assert MODEL_KEYS <= m.keys(), name
        for key in MODEL_KEYS - {"per_class_test_acc", "confusion_test"}:
            assert 0.0 <= m[key] <= 1.0, (name, key)
        assert len(m["per_class_test_acc"]) == 10
        assert all(0.0 <= a <= 1.0 for a in m["per_class_test_acc"])


@pytest.mark.parametrize("name", ["original", "retrained", "unlearned"])
def test_confusion_matrix_is_consistent(runs, name):
    m = runs["records"][0]["models"][name]
    cm = m["confusion_test"]
    assert len(cm) == 10 and all(len(row) == 10 for row in cm)
    # quick mode evaluates on a stratified subset: QUICK["test_per_class"] images per class
    assert [sum(row) for row in cm] == [QUICK["test_per_class"]] * 10
    total = sum(map(sum, cm))
    diag = [cm[c][c] for c in range(10)]
    assert m["per_class_test_acc"] == pytest.approx([d / sum(r) for d, r in zip(diag, cm,
                                                                                 strict=True)])
    assert m["test_acc"] == pytest.approx(sum(diag) / total)
    # class:6 -> the forget part of the test split is exactly class 6
    assert m["forget_test_acc"] == pytest.approx(diag[6] / sum(cm[6]))
    assert m["retain_test_acc"] == pytest.approx((sum(diag) - diag[6]) / (total - sum(cm[6])))


FIELD_KEYS = {"mia_efficacy", "mia_entropy", "mia_loss", "mia_loss_auc", "zrf"}
UNLEARNED_KEYS = {"js_to_retrained", "activation_distance", "agreement_with_retrained",
                  "relearn_steps"}


def test_json_has_the_field_metrics(runs):
    rec = runs["records"][0]
    for name, m in rec["models"].items():
        assert FIELD_KEYS <= m.keys(), name
        for key in FIELD_KEYS:
            assert 0.0 <= m[key] <= 1.0, (name, key)
    assert UNLEARNED_KEYS <= rec["models"]["unlearned"].keys()
    assert "relearn_steps" in rec["models"]["retrained"]
    assert 0 <= rec["avg_gap"] <= 1 and rec["speedup_vs_retrain"] > 0
    assert set(rec["flags"]) <= {"collapse", "over_forgetting", "under_forgetting"}
    assert len(rec["split_hash"]) == 64 and rec["run_config"]["seed"] == 0
    assert Path(rec["bundle"]).is_relative_to(runs["root"] / "runs" / "mnist")


def test_rescore_reproduces_the_record(runs):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    folder = Path(runs["records"][0]["bundle"])
    proc = subprocess.run([sys.executable, "-m", "unlearnlab", "rescore", str(folder)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rescored 1 bundle(s): 1 match their records" in proc.stdout
    rescored = json.loads((folder / "rescored.json").read_text())
    assert rescored["differences"] == {}
    assert rescored["avg_gap"] == pytest.approx(runs["records"][0]["avg_gap"])


def test_unlearning_forgets(runs):
    models = runs["records"][0]["models"]
    assert models["original"]["forget_test_acc"] > 0.5  # it had learned class 6
    assert models["unlearned"]["forget_test_acc"] < models["original"]["forget_test_acc"]
    assert models["unlearned"]["forget_test_acc"] < 0.1
    assert models["retrained"]["forget_test_acc"] < 0.1  # never saw class 6
    assert models["unlearned"]["retain_test_acc"] > 0.5  # ... and did not forget everything


def test_second_run_loads_from_the_cache(runs):
    first, second = runs["records"]
    assert second["models"] == first["models"]
    # the training time is the cached one, not a new (near-zero) load time
    assert second["seconds"]["original"] == first["seconds"]["original"] > 0
    assert second["seconds"]["retrained"] == first["seconds"]["retrained"] > 0
    assert files_under(runs["root"] / "models") == runs["cached"]  # nothing new was written


def test_cache_lives_in_the_isolated_root(runs):
    cached = runs["cached"]
    assert any(f.startswith("mnist/cnn/original-seed0-") and f.endswith(".pt") for f in cached)
    assert any(f.startswith("mnist/cnn/retrained-seed0-") for f in cached)
    assert not any(f.endswith(".tmp") for f in cached)
    assert all((runs["root"] / name).is_symlink() for name in ("MNIST", "forget_sets"))


# ------------------------------------------------------------------------------ bad inputs

ERROR_CASES = {
    "unknown_dataset": (["--dataset", "nope"], "unknown dataset 'nope'"),
    "unknown_method": (["--method", "nope"], "unknown method 'nope'"),
    "unknown_forget_kind": (["--forget", "blah:1"], "unknown kind 'blah'"),
    "class_out_of_range": (["--forget", "class:12"], "class must be a number from 0 to 9"),
    "missing_forget_list": (["--forget", "subset:does_not_exist"],
                            "forget set 'does_not_exist' not found"),
    "list_of_another_dataset": (["--forget", "subset:fashion_mnist_heeled_sandals"],
                                "indexes FashionMNIST"),
    "malformed_set": (["--set", "target"], "'target' is malformed"),
    "unknown_set_key": (["--set", "nope=1"], "has no parameter 'nope'"),
    "wrong_set_type": (["--set", "target=three"], "expected int for 'target'"),
    "bad_learning_rate": (["--set", "lr=-1"], "lr must be"),
    "missing_data_dir": ([], "does not exist"),
    "no_train_empty_cache": (["--no-train"], "no cached original model"),
    "unknown_metric": (["--metrics", "mia_efficacy,nope"], "unknown metric 'nope'"),
    "bad_train_per_class": (["--train-per-class", "0"], "train-per-class must be a positive"),
    # quick mode trains on a subset that need not hold the wrong entry: checked all the same
    "wrong_class_list": (["--forget", "subset:wrong_class"], "train sample 1 has label 0, "
                         "not the set's class 7"),
}


def _write_wrong_class_list(root: Path) -> None:
    """A copy of the crossbar list with MNIST training sample 1 (a zero) among the sevens."""
    linked = root / "forget_sets"
    source = json.loads((linked / "mnist_sevens_with_crossbar.json").read_text())
    linked.unlink()
    linked.mkdir()
    source["train"] = [1, *source["train"][:5]]
    (linked / "wrong_class.json").write_text(json.dumps(source))


def _error_case(tmp: Path, real_data: Path, case: str, debug: bool = False):
    args, _ = ERROR_CASES[case]
    folder = tmp / case / ("debug" if debug else "plain")
    folder.mkdir(parents=True)
    root = folder / "data"
    if case != "missing_data_dir":
        link_real_data(real_data, root)
    if case == "wrong_class_list":
        _write_wrong_class_list(root)
    out = folder / "out" / "r.json"
    proc = cli(*RUN, *args, "--data-dir", root, "--json", out, *(["--debug"] if debug else []),
               cwd=folder)
    return proc, root, out


@pytest.fixture(scope="module")
def errors(real_data, tmp_path_factory):
    """Every bad input of ERROR_CASES, run concurrently (each in its own isolated root)."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    jobs = [(case, False) for case in ERROR_CASES] + [("class_out_of_range", True)]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {job: pool.submit(_error_case, tmp, real_data, *job) for job in jobs}
        return {job: future.result() for job, future in futures.items()}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_input_is_one_error_line(errors, case):
    proc, root, out = errors[case, False]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("unlearnlab: error: ")
    assert ERROR_CASES[case][1] in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    # nothing was written: no JSON record, no model cache
    assert not out.exists() and not out.parent.exists()
    assert not (root / "models").exists() or files_under(root / "models") == []
    assert not (root / "runs").exists()


def test_debug_shows_the_traceback(errors):
    case = "class_out_of_range"
    proc, _, out = errors[case, True]
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert ERROR_CASES[case][1] in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------ numerical faults

def test_a_diverging_method_exits_3_with_a_flagged_record(runs, tmp_path):
    """Gradient ascent with an absurd learning rate: the loss turns NaN. The run stops with a
    clear message and exit 3, and the record is flagged, with no NaN anywhere in it."""
    out = tmp_path / "diverged.json"
    proc = cli(*RUN[:4], "--method", "gradient_ascent", "--set", "lr=1e30", "--set",
               "stop_loss=0", "--quick", "--data-dir", runs["root"], "--json", out,
               cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("unlearnlab: error: gradient_ascent: the forget loss became nan")
    assert "lower lr" in last and f"flagged record written to {out}" in last

    def no_nan(token):
        raise AssertionError(f"non-finite number {token} in the record")

    record = json.loads(out.read_text(), parse_constant=no_nan)
    assert record["flags"] == ["diverged"] and "nan" in record["error"]
    assert record["models"]["unlearned"] is None and record["avg_gap"] is None
    assert record["models"]["retrained"]["retain_test_acc"] > 0.5  # baselines still reported
