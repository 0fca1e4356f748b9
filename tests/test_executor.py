"""The executor (``unlearnlab.executor``): its specs, job order and failures on a real pool of
spawned workers, and the same records and forget-quality numbers from ``local`` and
``process:2`` on scikit-learn's digits in quick mode (fresh data roots: every model is trained
in the workers on one side and in this process on the other)."""

from __future__ import annotations

import json
import logging
import os
import runpy
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnlab import ensemble
from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError, ExecutorError
from unlearnlab.executor import ProcessExecutor, parse_executor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = os.cpu_count() or 1
two_cores = pytest.mark.skipif(CORES < 2, reason="process:2 needs two cores")


# --- jobs: module-level, so that spawned workers can import them -----------------------------

def slow_square(job: int) -> int:
    time.sleep(0.05 * (4 - job % 4))  # later jobs finish first
    return job * job


def fail_on_three(job: int) -> int:
    if job == 3:
        raise ConfigError("job 3 is bad; fix job 3")
    time.sleep(0.2)
    return job


def worker_threads(job: int) -> int:
    return torch.get_num_threads()


def pid(job: int) -> tuple[int, int]:
    return job, os.getpid()


def die(job: int) -> int:
    os._exit(1)


# --- specs ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ("process:0", "the number of workers must be a positive integer"),
    ("process:x", "the number of workers must be a positive integer"),
    ("process:", "the number of workers must be a positive integer"),
    ("process:-2", "the number of workers must be a positive integer"),
    ("ray", "is not built yet: use local or process:N"),
    ("ray://10.0.0.1:10001", "is not built yet: use local or process:N"),
    ("threads:4", "unknown executor 'threads:4': use local or process:N"),
    ("", "unknown executor '': use local or process:N"),
    (2, "executor must be a str"),
    (f"process:{CORES + 1}", f"more workers than this machine's {CORES} cores"),
])
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_executor(spec)
    assert "\n" not in str(info.value)


def test_local_runs_in_this_process_in_job_order():
    ex = parse_executor("local")
    assert ex.in_process and ex.workers == 1 and ex.threads == torch.get_num_threads()
    assert ex.map(pid, [2, 1]) == [(2, os.getpid()), (1, os.getpid())]


@pytest.mark.parametrize(("local", "cores", "workers", "threads"), [
    (1, 2, 2, 1), (1, 16, 2, 1), (8, 16, 2, 8), (16, 16, 2, 8), (16, 16, 4, 4), (3, 2, 1, 2),
    (1, 3, 2, 1), (4, 3, 3, 1)])
def test_worker_threads_never_exceed_local_nor_the_share_of_cores(local, cores, workers, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(local)
    try:
        ex = ProcessExecutor(workers, cores=cores)
    finally:
        torch.set_num_threads(before)
    assert ex.threads == threads and ex.workers * ex.threads <= cores


@two_cores
def test_a_pool_returns_results_in_job_order_with_the_stated_threads():
    with parse_executor("process:2") as ex:
        assert ex.map(slow_square, range(8)) == [j * j for j in range(8)]
        assert ex.map(worker_threads, range(4)) == [ex.threads] * 4  # the pool is kept
        assert os.getpid() not in {p for _, p in ex.map(pid, range(4))}
    assert ex._pool is None


@two_cores
def test_a_failing_job_reaches_the_caller_and_shuts_the_pool_down():
    ex = parse_executor("process:2")
    with pytest.raises(ConfigError, match=r"^job 3 is bad; fix job 3$"):
        ex.map(fail_on_three, range(12))
    assert ex._pool is None
    assert ex.map(slow_square, [3]) == [9]  # a later map starts a new pool
    ex.close()


@two_cores
def test_a_dead_worker_is_one_line():
    with parse_executor("process:2") as ex, pytest.raises(ExecutorError) as info:
        ex.map(die, [0, 1])
    assert "died" in str(info.value) and "\n" not in str(info.value)


# --- refused combinations, before any work ----------------------------------------------------

def digits(root, **kw) -> RunConfig:
    return RunConfig(**{"dataset": "digits", "forget": "class:6", "quick": True, "arch": "mlp",
                        "data_dir": str(root), **kw})


def test_together_and_fresh_are_refused_with_workers_before_any_work(tmp_path):
    ex = ProcessExecutor(1, cores=1)
    with pytest.raises(ConfigError, match="--together trains a side as one batched model"):
        ensemble.study(digits(tmp_path), "finetune", 2, together=True, executor=ex)
    with pytest.raises(ConfigError, match="--fresh with --executor process:1 is not built"):
        ensemble.study(digits(tmp_path, reuse=False), "finetune", 2, executor=ex)
    with pytest.raises(ConfigError, match="--fresh with --executor process:1 is not built"):
        compare(digits(tmp_path, reuse=False), ["finetune"], 2, executor=ex)
    assert ex._pool is None and not (tmp_path / "models").exists()


# --- same numbers whichever executor ran the jobs ---------------------------------------------

COMPARE_RECORDS = runpy.run_path(os.path.join(REPO, "scripts", "compare_records.py"))


@two_cores
def test_local_and_process_give_identical_records_and_forget_quality(tmp_path, caplog):
    """Both sides train at this process's thread count (conftest: 1; a worker of process:2
    trains at min(that, cores // 2)): every record, row, KL matrix, eps and F equal, timings
    and paths aside. The parent of the process side trains and unlearns nothing: it finds
    every model in the cache."""
    if parse_executor("process:2").threads != torch.get_num_threads():
        pytest.skip("OMP_NUM_THREADS exceeds half the cores: the sides train at different "
                    "thread counts (docs/scaling.md)")
    methods = ["gradient_ascent", "finetune"]
    comparisons, studies = {}, {}
    for spec in ("local", "process:2"):
        side = tmp_path / spec.replace(":", "")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="unlearnlab"):
            comparisons[spec] = compare(digits(side / "data"), methods, 2, side / "out" / "cmp",
                                        executor=spec)
            studies[spec] = ensemble.study(digits(side / "data", forget="random:0.1"),
                                           "finetune", 2, executor=spec)
        work = [r.message for r in caplog.records
                if r.message.startswith(("training the", "unlearning with"))]
        assert bool(work) == (spec == "local"), work

    local, pooled = (tmp_path / s / "out" for s in ("local", "process2"))
    a, b = COMPARE_RECORDS["records"](local), COMPARE_RECORDS["records"](pooled)
    assert len(a) == 4 and a.keys() == b.keys()
    ignore = COMPARE_RECORDS["VOLATILE"]
    for name in a:
        assert COMPARE_RECORDS["differences"](a[name], b[name], ignore) == [], name
    timing = ["seconds", "retrain_seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(local / "cmp" / "results.csv").drop(columns=timing),
        pd.read_csv(pooled / "cmp" / "results.csv").drop(columns=timing))
    kl = [json.loads((o / "cmp" / "kl.json").read_text()) for o in (local, pooled)]
    assert kl[0] == kl[1]

    s, t = studies["local"], studies["process:2"]
    assert s["forget_quality"] == t["forget_quality"] and s["final_score"] == t["final_score"]
    for key, array in s["arrays"].items():
        assert np.array_equal(array, t["arrays"][key]), key
    for side in ("unlearned", "retrained"):
        assert ({k: v for k, v in s["sides"][side].items() if k != "seconds"}
                == {k: v for k, v in t["sides"][side].items() if k != "seconds"})
    assert s["z"] == t["z"] and s["z_gap"] == t["z_gap"]


def test_preset_auto_is_searched_once_before_the_worker_jobs(tmp_path, caplog):
    """The workers unlearn with preset auto's values (found in the parent first), so the
    parent's loop finds every unlearned model in the cache."""
    with caplog.at_level(logging.INFO, logger="unlearnlab"):
        comparison = compare(digits(tmp_path / "data"), ["finetune"], 2, tmp_path / "out",
                             preset="auto", executor="process:2")
    assert not [r.message for r in caplog.records if r.message.startswith("unlearning with")]
    records = [r for r in comparison.records if r["method"] == "finetune"]
    assert len(records) == 2 and all(r["auto_preset"]["source"] == "search" for r in records)


# --- the command line -------------------------------------------------------------------------

def cli(*args, root) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, "-m", "unlearnlab", *map(str, args),
                           "--data-dir", str(root)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root.parent)


@pytest.mark.parametrize(("args", "message"), [
    (["compare", "--dataset", "digits", "--methods", "finetune", "--out", "o", "--executor",
      "ray"],
     "--executor 'ray' is not built yet: use local or process:N"),
    (["bench", "--out", "o", "--executor", "process:0"],
     "the number of workers must be a positive integer"),
    (["forget-quality", "--dataset", "digits", "--method", "finetune", "--models", "2",
      "--together",
      "--executor", "process:1"], "--together trains a side as one batched model"),
])
def test_bad_executor_options_are_one_line_before_any_work(tmp_path, args, message):
    root = tmp_path / "data"
    root.mkdir()
    proc = cli(*args, "--quick", root=root)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not (root / "models").exists()


@two_cores
def test_forget_quality_command_with_two_workers(tmp_path):
    """``python -m unlearnlab`` as the spawned workers' main module: they start, train the
    reference's models and the command writes its bundle."""
    root = tmp_path / "data"
    root.mkdir()
    out = tmp_path / "r.json"
    proc = cli("forget-quality", "--dataset", "digits", "--quick", "--forget", "random:0.1",
               "--arch", "mlp", "--method", "original", "--models", "2", "--executor",
               "process:2", "--json", out, root=root)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["method"] == "original" and 0 <= record["forget_quality"] <= 1
    assert len(list((root / "models" / "digits" / "mlp").glob("*.pt"))) == 4
