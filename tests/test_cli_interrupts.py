"""Interrupted runs and determinism (integration): a training run killed with SIGINT or
SIGKILL leaves no partial checkpoint or result behind and the next run starts cleanly; the
same command with the same seed gives byte-identical metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, link_real_data

pytestmark = pytest.mark.integration

# A run long enough to be interrupted in the middle of training (full MNIST, one epoch of the
# seed CNN takes several seconds on 2 cores).
LONG = ["run", "--dataset", "mnist", "--forget", "class:6", "--method", "relabel",
        "--set", "target=3"]
QUICK = [*LONG, "--quick"]


def start(args, root: Path, json_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "unlearnlab", *args, "--data-dir", str(root),
                             "--json", str(json_path)], env=env, cwd=root.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_training(proc: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Read stderr until the run announces that it is training the original model, then give
    it a moment to get into the epoch. Returns the lines read."""
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "training the original model" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(timeout), f"training never started: {lines}"
    time.sleep(2.0)
    return lines


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix in (".pt", ".tmp")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_training_leaves_nothing_partial(real_data, tmp_path, sig):
    root = link_real_data(real_data, tmp_path / "data")
    out = tmp_path / "r.json"
    proc = start(LONG, root, out)
    lines = wait_for_training(proc)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    time.sleep(0.5)  # let the reader thread drain stderr
    stderr = "".join(lines)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert lines[-1].startswith("unlearnlab: interrupted"), stderr
        assert "Traceback" not in stderr
    assert not out.exists()
    assert leftovers(root) == [], "a partial checkpoint was left behind"
    # The next run starts cleanly and writes complete files.
    done = start(QUICK, root, out)
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert json.loads(out.read_text())["models"]["unlearned"]["test_acc"] is not None
    assert not [p for p in root.rglob("*.tmp")]


def test_stale_temporary_of_a_killed_process_is_removed(real_data, tmp_path):
    """A temporary file whose writer died (SIGKILL during a save) is cleaned up by the next
    write into the same folder; the finished run leaves only complete checkpoints."""
    root = link_real_data(real_data, tmp_path / "data")
    folder = root / "models" / "mnist" / "cnn"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = folder / f".original-seed0-abc.pt.{dead}.x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    proc = start(QUICK, root, tmp_path / "r.json")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert not stale.exists()


def test_same_seed_gives_byte_identical_metrics(real_data, tmp_path):
    """Two fresh runs (nothing cached) of the same command in two data roots: every field but
    the timings and the paths is byte-identical."""
    dumps = []
    for i in (1, 2):
        root = link_real_data(real_data, tmp_path / f"data{i}")
        out = tmp_path / f"r{i}.json"
        proc = start(QUICK, root, out)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        record = json.loads(out.read_text())
        for timing_or_path in ("seconds", "speedup_vs_retrain", "bundle"):
            record.pop(timing_or_path)
        record["run_config"].pop("data_dir")
        dumps.append(json.dumps(record, sort_keys=True))
    assert dumps[0] == dumps[1]


def test_sigint_stops_a_run_started_with_sigint_ignored(real_data, tmp_path):
    """A command started with SIGINT ignored (as ``nohup cmd &`` starts it) still stops
    cleanly on SIGINT: Python would otherwise inherit the ignored signal."""
    root = link_real_data(real_data, tmp_path / "data")
    out = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "unlearnlab", *LONG, "--data-dir", str(root),
                             "--json", str(out)], env=env, cwd=root.parent, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = wait_for_training(proc)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    time.sleep(0.5)
    assert proc.returncode == 130, "".join(lines)
    assert not out.exists() and leftovers(root) == []
