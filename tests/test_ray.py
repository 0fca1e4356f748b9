"""``--executor ray:HOST:PORT`` against a real Ray cluster on the loopback address: a head that
runs no task and two worker nodes of one CPU each, started once for the module with this
environment's ``ray`` and the checkout on their ``PYTHONPATH``. A quick ``compare`` and a quick
``bench`` on scikit-learn's digits give the records of ``local`` (fresh data roots: every model
is trained on the cluster on one side and here on the other), and a worker killed mid-grid
costs one retry: the grid completes, every record is there and no partial file is left."""

from __future__ import annotations

import json
import logging
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray
import torch

from unlearnlab.bench import bench
from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError, ExecutorError
from unlearnlab.executor import parse_executor
from unlearnlab.methods.finetune import Finetune

REPO = Path(__file__).resolve().parents[1]
COMPARE_RECORDS = runpy.run_path(str(REPO / "scripts" / "compare_records.py"))
KILL_DIR = "UNLEARNLAB_TEST_KILL_DIR"  # where DiesOnceFinetune's first run writes its pid


class DiesOnceFinetune(Finetune):
    """Finetune whose first run of seed 1 on a worker node writes its pid and waits to be
    killed (``test_a_worker_killed_mid_grid_costs_one_retry`` kills it); every other run is
    finetune's."""

    name = "dies_once_finetune"

    def unlearn(self, model, task):
        folder = os.environ.get(KILL_DIR)
        if folder and task.seed == 1 and not (Path(folder) / "pid").exists():
            (Path(folder) / "pid.part").write_text(str(os.getpid()))
            (Path(folder) / "pid.part").rename(Path(folder) / "pid")
            time.sleep(120)
        return super().unlearn(model, task)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _own_processes(marker: str) -> list[int]:
    """Pids of this machine's processes whose command line names ``marker`` (the cluster's
    own temporary folder): the nodes' daemons, which leave the group of ``ray start``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def cluster():
    """``HOST:PORT`` of a head (0 CPUs, no dashboard) and two one-CPU worker nodes, each a
    ``ray start --block`` child of this process; the finalizer stops them (SIGTERM to each
    node's group, then SIGKILL to any of the cluster's processes left), whatever happened."""
    temp = tempfile.mkdtemp(prefix="ulray", dir="/tmp")  # Ray's socket paths must stay short
    kill_dir = Path(temp) / "kill"
    kill_dir.mkdir()
    port = free_port()
    address = f"127.0.0.1:{port}"
    ray_bin = str(Path(sys.executable).parent / "ray")
    # Without token authentication on both sides: a token file left in ~/.ray by another
    # cluster would switch the nodes to it and not this process.
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}",
           "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", KILL_DIR: str(kill_dir)}
    env.pop("RAY_ADDRESS", None)
    nodes, logs = [], []

    def start(*args):
        log_file = open(Path(temp) / f"node{len(nodes)}.log", "w")  # noqa: SIM115
        logs.append(log_file)
        nodes.append(subprocess.Popen([ray_bin, "start", "--block", "--disable-usage-stats",
                                       "--node-ip-address", "127.0.0.1", *args], env=env,
                                      stdout=log_file, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    try:
        start("--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard",
              "false", "--temp-dir", temp)
        deadline = time.monotonic() + 120
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and nodes[0].poll() is None, "no head"
            time.sleep(0.3)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        try:
            for cpus in (1, 2):  # one after another: nodes started together clash on sockets
                start("--address", address, "--num-cpus", "1")
                while ray.cluster_resources().get("CPU", 0) < cpus:
                    assert time.monotonic() < deadline and nodes[-1].poll() is None, \
                        f"worker node {cpus} did not join: {(Path(temp) / f'node{cpus}.log')}"
                    time.sleep(0.3)
        finally:
            ray.shutdown()
        yield {"address": address, "kill_dir": kill_dir}
    finally:
        for node in reversed(nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        for pid in _own_processes(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log_file in logs:
            log_file.close()
        shutil.rmtree(temp, ignore_errors=True)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode


def digits(root: Path, **kw) -> RunConfig:
    return RunConfig(**{"dataset": "digits", "forget": "class:6", "quick": True, "arch": "mlp",
                        "metrics": ["mia_efficacy"], "data_dir": str(root), **kw})


def assert_same_records(local: Path, other: Path, count: int) -> None:
    a, b = COMPARE_RECORDS["records"](local), COMPARE_RECORDS["records"](other)
    assert len(a) == count and a.keys() == b.keys()
    for name in a:
        assert COMPARE_RECORDS["differences"](a[name], b[name],
                                              COMPARE_RECORDS["VOLATILE"]) == [], name


def partial_files(*folders: Path) -> list[Path]:
    return [p for folder in folders for pattern in ("*.tmp", "*.part", ".*.tmp")
            for p in folder.rglob(pattern)]


def test_compare_and_bench_on_the_cluster_give_the_records_of_local(cluster, tmp_path,
                                                                    caplog):
    """Every model is trained and unlearned on the cluster's workers (this process trains
    nothing), at the thread count of ``local`` (1): the records are equal bit for bit,
    timings and paths aside."""
    assert torch.get_num_threads() == 1
    spec = f"ray:{cluster['address']}"
    methods = ["finetune", "gradient_ascent"]
    scenarios = (("digits", "class:6", "mlp"),)
    for side in ("local", "ray"):
        root = tmp_path / side / "data"
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="unlearnlab"), \
                parse_executor("local" if side == "local" else spec) as pool:
            compare(digits(root), methods, 2, tmp_path / side / "cmp", executor=pool)
            bench(digits(root), methods, 2, tmp_path / side / "bench", scenarios=scenarios,
                  executor=pool)
        work = [r.message for r in caplog.records
                if r.message.startswith(("training the", "unlearning with"))]
        assert bool(work) == (side == "local"), work
        done = [r.message for r in caplog.records if r.message.startswith("job ")]
        if side == "ray":
            assert len(done) == 4 and all(" done (warm_seed: digits class:6" in m
                                          for m in done), done
    assert_same_records(tmp_path / "local", tmp_path / "ray", 4)  # cmp/<method>_seed<s>.json
    assert_same_records(tmp_path / "local" / "bench", tmp_path / "ray" / "bench", 4)
    assert not ray.is_initialized()  # the executor disconnected on close


def test_a_worker_killed_mid_grid_costs_one_retry(cluster, tmp_path):
    """The first run of seed 1's method writes its worker's pid and waits; the test kills
    that worker (SIGKILL). Ray runs the seed's job again (``--retries``): the grid completes
    with every record and no partial file in the data root or the output."""
    root, out = tmp_path / "data", tmp_path / "out"
    pid_file = cluster["kill_dir"] / "pid"
    killed = []

    def killer():
        deadline = time.monotonic() + 180
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    method = "test_ray:DiesOnceFinetune"
    with parse_executor(f"ray:{cluster['address']}", retries=1) as pool:
        comparison = compare(digits(root), [method], 3, out, executor=pool)
    thread.join(timeout=5)
    assert killed, "the job never started its first run"
    records = sorted(p.name for p in out.glob("*_seed*.json"))
    assert records == [f"dies_once_finetune_seed{s}.json" for s in range(3)]
    assert len(comparison.records) == 3
    assert all(json.loads((out / name).read_text())["method"] == "dies_once_finetune"
               for name in records)
    assert partial_files(root, out) == []


def raise_on_two(job: tuple) -> int:
    """Notes each run of job ``n`` in ``folder``; job 2 raises."""
    folder, n = job
    with open(folder / f"{n}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\n")
    if n == 2:
        raise ConfigError("job 2 is bad; fix job 2")
    return n


def test_a_job_that_raises_is_not_retried_and_the_others_finish(cluster, tmp_path):
    spec = f"ray:{cluster['address']}"
    with parse_executor(spec) as pool, pytest.raises(ExecutorError) as info:
        pool.map(raise_on_two, [(tmp_path, n) for n in range(4)])
    assert str(info.value) == (f"1 of 4 jobs failed on {spec}; the other jobs finished and are "
                               f"cached; the first failure (raise_on_two: {tmp_path}, 2): "
                               "job 2 is bad; fix job 2")
    assert isinstance(info.value.__cause__, ConfigError)
    runs = {p.name: len(p.read_text().splitlines()) for p in tmp_path.glob("*.runs")}
    assert runs == {f"{n}.runs": 1 for n in range(4)}
