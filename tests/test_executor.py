"""The executor (``unlearnlab.executor``): its specs, job order and failures on a real pool of
spawned workers, and the same records and forget-quality numbers from ``local`` and
``process:2`` on scikit-learn's digits in quick mode (fresh data roots: every model is trained
in the workers on one side and in this process on the other)."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnlab import ensemble
from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError, ExecutorError
from unlearnlab.executor import JobProgress, ProcessExecutor, describe_job, parse_executor
from unlearnlab.ray_executor import RayExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = os.cpu_count() or 1
two_cores = pytest.mark.skipif(CORES < 2, reason="process:2 needs two cores")


# --- jobs: module-level, so that spawned workers can import them -----------------------------

def slow_square(job: int) -> int:
    time.sleep(0.05 * (4 - job % 4))  # later jobs finish first
    return job * job


def fail_on_three_else_touch(job: tuple) -> int:
    folder, n = job
    if n == 3:
        raise ConfigError("job 3 is bad; fix job 3")
    time.sleep(0.1)
    (folder / f"{n}.done").touch()
    return n


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
    ("ray:", "a Ray address is HOST:PORT"),
    ("ray:10.0.0.1", "a Ray address is HOST:PORT"),
    ("ray:10.0.0.1:0", "a Ray address is HOST:PORT"),
    ("ray:10.0.0.1:70000", "a Ray address is HOST:PORT"),
    ("ray://10.0.0.1", "a Ray address is HOST:PORT"),
    ("ray://:10001", "a Ray address is HOST:PORT"),
    ("threads:4", "unknown executor 'threads:4': use local, process:N, ray"),
    ("", "unknown executor '': use local, process:N, ray"),
    (2, "executor must be a str"),
    (f"process:{CORES + 1}", f"more workers than this machine's {CORES} cores"),
])
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_executor(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("spec", "address", "name"), [
    ("ray", None, "ray"), ("ray:127.0.0.1:6379", "127.0.0.1:6379", "ray:127.0.0.1:6379"),
    ("ray:head.example.org:6380", "head.example.org:6380", "ray:head.example.org:6380")])
def test_ray_specs_name_their_address_and_connect_to_nothing(spec, address, name):
    pytest.importorskip("ray")
    ex = parse_executor(spec, retries=3, gpus_per_job=0.25)
    assert isinstance(ex, RayExecutor) and not ex.in_process and not ex._connected
    assert (ex.address, ex.spec, ex.retries, ex.gpus_per_job) == (address, name, 3, 0.25)
    assert ex.threads == torch.get_num_threads()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"retries": -1}, "--retries must be a non-negative integer"),
    ({"retries": 1.5}, "--retries must be a non-negative integer"),
    ({"gpus_per_job": -0.5}, "--gpus-per-job must be a number >= 0"),
    ({"gpus_per_job": float("nan")}, "--gpus-per-job must be a number >= 0"),
])
def test_bad_retries_and_gpus_are_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        parse_executor("process:1", **kwargs)


@pytest.mark.parametrize("spec", ["local", "process:1"])
def test_gpus_per_job_is_refused_without_ray(spec):
    with pytest.raises(ConfigError, match="--gpus-per-job applies to --executor ray"):
        parse_executor(spec, gpus_per_job=0.5)


@pytest.mark.parametrize("spec", ["ray", "ray:127.0.0.1:6379", "ray://127.0.0.1:10001"])
def test_without_ray_installed_the_ray_executor_names_the_install(monkeypatch, spec):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError) as info:
        parse_executor(spec)
    assert str(info.value) == ("--executor ray needs Ray, which is not installed here: "
                               "pip install 'unlearnlab[ray]'")


def test_an_unreachable_ray_address_is_one_line_and_starts_no_cluster():
    ray = pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = parse_executor(f"ray:127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}") as info:
        ex.map(slow_square, [1])
    assert "\n" not in str(info.value) and not ray.is_initialized()


def test_jobs_describe_themselves():
    cfg = digits("data", seed=3)
    assert describe_job(slow_square, 4) == "slow_square: 4"
    assert (describe_job(pid, (cfg, ("finetune", "gemu"), "default", {"gemu": {}}))
            == "pid: digits class:6 (mlp), seed 3, finetune+gemu, default")
    assert describe_job(ensemble.train_job, (cfg, "retrained", 7)) == \
        "train_job: digits class:6 (mlp), seed 3, retrained, 7"


def test_local_reports_one_line_per_finished_job_off_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="unlearnlab"):
        assert parse_executor("local").map(slow_square, [1, 2]) == [1, 4]
    lines = [r.message for r in caplog.records if r.message.startswith("job ")]
    assert lines == ["job 1/2 done (slow_square: 1); 1 of 2 done, 0 running, 0 failed",
                     "job 2/2 done (slow_square: 2); 2 of 2 done, 0 running, 0 failed"]


def test_a_terminal_gets_one_bar_with_counts():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = JobProgress(slow_square, [1, 2, 3], "process:2", stream=stream)
    for i in range(3):
        progress.start(i)
    progress.finish(0)
    progress.fail(1, ConfigError("bad job"))
    progress.finish(2)
    progress.close()
    text = stream.getvalue()
    assert "jobs on process:2" in text and "3/3" in text and "failed=1" in text
    assert "unlearnlab: job 2/3 failed (slow_square: 2): bad job" in text


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
def test_a_failing_job_is_reported_the_others_finish_then_the_map_fails(tmp_path, caplog):
    ex = parse_executor("process:2")
    jobs = [(tmp_path, j) for j in range(8)]
    with caplog.at_level(logging.INFO, logger="unlearnlab"), \
            pytest.raises(ExecutorError) as info:
        ex.map(fail_on_three_else_touch, jobs)
    assert str(info.value) == ("1 of 8 jobs failed on process:2; the other jobs finished and "
                               "are cached; the first failure (fail_on_three_else_touch: "
                               f"{tmp_path}, 3): job 3 is bad; fix job 3")
    assert isinstance(info.value.__cause__, ConfigError)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{j}.done" for j in range(8) if j != 3]
    failed = [r.message for r in caplog.records if "failed" in r.message and "job 4/8" in r.message]
    assert failed == [f"job 4/8 failed (fail_on_three_else_touch: {tmp_path}, 3): job 3 is bad; "
                      "fix job 3"]
    assert ex.map(slow_square, [3]) == [9]  # the pool is kept for the next map
    ex.close()


@two_cores
def test_a_worker_that_always_dies_fails_its_job_after_the_retries():
    with parse_executor("process:2", retries=1) as ex, pytest.raises(ExecutorError) as info:
        ex.map(die, [0, 1])
    message = str(info.value)
    assert message.startswith("2 of 2 jobs failed on process:2") and "\n" not in message
    assert "its worker process died 2 time(s) (--retries 1)" in message


def die_once(job: tuple) -> int:
    """Dies the first time job ``n`` runs (a marker file remembers it), else returns n."""
    folder, n = job
    marker = folder / f"{n}.died"
    if n == 2 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    time.sleep(0.05)
    return n


def kill_me_once(job: tuple) -> int:
    """Job 1 writes its pid and waits to be killed the first time; then returns n."""
    folder, n = job
    if n == 1 and not (folder / "pid").exists():
        (folder / "pid.tmp").write_text(str(os.getpid()))
        (folder / "pid.tmp").rename(folder / "pid")
        time.sleep(60)
        raise AssertionError("job 1 was not killed")
    return n


@two_cores
def test_a_worker_that_dies_once_loses_only_a_retry_and_the_grid_completes(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="unlearnlab"), \
            parse_executor("process:2") as ex:
        assert ex.map(die_once, [(tmp_path, n) for n in range(6)]) == list(range(6))
    retried = [r.message for r in caplog.records if "lost its worker" in r.message]
    assert any("job 3/6" in m and "retry 1 of 2" in m for m in retried), retried


@two_cores
def test_a_pool_worker_killed_mid_job_is_retried(tmp_path):
    """The test kills the worker running job 1 (SIGKILL, as the out-of-memory killer would);
    the pool is started again and every job's result comes back."""
    with parse_executor("process:2") as ex:
        pool = ThreadPoolExecutor(1)
        future = pool.submit(ex.map, kill_me_once, [(tmp_path, n) for n in range(4)])
        deadline = time.monotonic() + 120
        while not (tmp_path / "pid").exists():
            assert time.monotonic() < deadline and not future.done()
            time.sleep(0.1)
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
        assert future.result(timeout=300) == [0, 1, 2, 3]
        pool.shutdown()


ORPHAN_SCRIPT = """
import sys, time
from pathlib import Path
from unlearnlab.executor import parse_executor
sys.path.insert(0, {tests!r})
from test_executor import kill_me_once
with parse_executor("process:1") as ex:
    ex.map(kill_me_once, [(Path({folder!r}), 1)])
"""


def test_a_killed_command_takes_its_workers_with_it(tmp_path):
    """SIGKILL the command while its worker runs a job: the worker ends within seconds instead
    of running its job to the end alone."""
    script = ORPHAN_SCRIPT.format(tests=str(Path(__file__).parent), folder=str(tmp_path))
    command = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 120
    while not (tmp_path / "pid").exists():
        assert time.monotonic() < deadline and command.poll() is None
        time.sleep(0.1)
    worker = int((tmp_path / "pid").read_text())
    command.kill()
    command.wait()
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "the worker outlived its command"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


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
      "ray:nohost"], "a Ray address is HOST:PORT"),
    (["compare", "--dataset", "digits", "--methods", "finetune", "--out", "o",
      "--gpus-per-job", "0.5"], "--gpus-per-job applies to --executor ray"),
    (["tune", "--dataset", "digits", "--method", "finetune", "--executor", "process:0"],
     "the number of workers must be a positive integer"),
    (["compare", "--dataset", "digits", "--methods", "finetune", "--out", "o", "--retries",
      "-1"], "--retries must be a non-negative integer"),
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


# --- claim files: two processes that need one model train it once ----------------------------

def race_for_one_model(job: tuple) -> list[str]:
    """A spawned process's part of the race: wait for the other at the barrier, then ask the
    cache for the same original model, whose training takes at least a second here (so the
    other process arrives while it runs). Returns this process's training log lines."""
    root, barrier = job
    from unlearnlab import cache
    from unlearnlab.scenario import build_scenario

    fit = cache.fit

    def slow_fit(*args, **kwargs):
        time.sleep(1.0)
        return fit(*args, **kwargs)

    cache.fit = slow_fit
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("unlearnlab").addHandler(handler)
    logging.getLogger("unlearnlab").setLevel(logging.INFO)
    sc = build_scenario(digits(root))
    barrier.wait(timeout=120)
    _, meta = cache.train_or_load(sc, "original")
    return [m for m in messages if m.startswith(("training the", "waiting for"))] + [
        meta["digest"]]


def test_two_processes_racing_for_one_model_train_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(2)
    with context.Pool(2) as pool:
        first, second = pool.map(race_for_one_model, [(tmp_path, barrier)] * 2)
    trained = [m for m in first + second if m.startswith("training the original")]
    assert len(trained) == 1, (first, second)
    assert any(m.startswith("waiting for another process computing original-seed0-")
               for m in first + second)
    assert first[-1] == second[-1]  # the loser loaded the winner's model
    assert len(list((tmp_path / "models" / "digits" / "mlp").glob("*.pt"))) == 1


# --- tune on workers --------------------------------------------------------------------------

@two_cores
def test_tune_on_two_workers_gives_each_trial_the_value_of_its_parameters(tmp_path):
    """The trials run on the pool's workers in rounds of two; each trial's value is what this
    process computes for its parameters (the worker never enters a number)."""
    from unlearnlab.tuning import TuneConfig, baselines, evaluate, tune

    cfg = TuneConfig(dataset="digits", method="finetune", trials=4, seeds=2, quick=True,
                     data_dir=str(tmp_path / "data"))
    result = tune(cfg, executor="process:2")
    trials = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    assert result.ran == 4 and len(trials) == 4 and result.preset is not None
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials} != {str(os.getpid())}
    bases = baselines(cfg)
    for trial in trials:
        assert evaluate(bases, cfg.method, trial.params)["value"] == trial.value, trial.number
