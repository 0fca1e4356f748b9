"""The performance benchmark runs end to end on the real data (two steps, one repeat, and the
thesis grid at one seed in quick mode): it prints its tables and writes JSON with every ratio.
No timing is asserted (machines are noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.integration


def test_bench_perf_smoke(shared_isolated_root, tmp_path):
    out = tmp_path / "perf.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_perf.py"),
                           "--data-dir", str(shared_isolated_root), "--steps", "2",
                           "--repeats", "1", "--eval-images", "300", "--grid", "--seeds", "1",
                           "--quick", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["training_throughput"]
    assert [r["arch"] for r in rows] == ["cnn", "mlp", "convnet"]
    for row in rows:
        for key in ("ratio_vs_loader_w0", "ratio_vs_loader_w2", "ratio_vs_loader_seed",
                    "eval_ratio", "peak_rss_mb_so_far"):
            assert row[key] > 0, key
    assert "seed set-up" in proc.stdout and "evaluation of 300 training images" in proc.stdout
    grid = result["thesis_grid"]
    for phase in ("cold", "warm"):
        assert set(grid[phase]["datasets"]) == {"mnist", "fashion_mnist", "cmnist"}
        assert grid[phase]["seconds"] > 0 and grid[phase]["peak_rss_mb"] > 0
    assert len(grid["method_times"]) == 9
    assert all(row["ratio_max"] > 0 for row in grid["method_times"].values())
    repeated = grid["method_times_repeated"]
    assert repeated.keys() == grid["method_times"].keys()
    for row in repeated.values():
        (seed,) = row["seeds"]
        assert len(seed["runs_s"]) == 1 and seed["median_s"] > 0 and seed["retrain_s"] > 0
        assert row["slowest_repeat_ratio"] >= row["ratio_max"] > 0
    assert "median of 1 repeats" in proc.stdout
    assert "thesis grid, 1 seeds (quick): cold" in proc.stdout


def test_grid_root_must_be_a_new_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_perf.py"), "--grid",
                           "--grid-root", str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert f"--grid-root '{tmp_path}' exists" in proc.stderr
