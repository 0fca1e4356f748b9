"""The ensemble comparison through the Python API, on scikit-learn's bundled digits in quick
mode (seconds, no files needed), and its verdict against the retrained ensemble on
constructed rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unlearnlab.compare import against_ensemble, compare, flag, markdown, summarize
from unlearnlab.config import RunConfig
from unlearnlab.metrics import kl_matrix
from unlearnlab.scenario import build_scenario
from unlearnlab.training import predict


def test_kl_matrix_reuses_the_probe_logits_and_equals_fresh_predictions(tmp_path):
    """The KL matrix comes from the logits every evaluation already holds; it equals the
    matrix of a separate prediction pass on the forget training set."""
    cfg = RunConfig(dataset="digits", forget="class:6", quick=True, arch="mlp",
                    data_dir=str(tmp_path), metrics=["mia_efficacy"])
    cmp = compare(cfg, ["gradient_ascent", "finetune"], seeds=2)
    sc = build_scenario(cfg)  # the forget training set is the same for every seed
    forget_x = sc.train.x[sc.masks["train"]]
    for seed, (names, matrix) in cmp.kl.items():
        assert names == ["untrained", "original", "retrained", "gradient_ascent", "finetune"]
        fresh = kl_matrix({n: predict(m, forget_x) for n, m in cmp.models[seed].items()})
        assert fresh[0] == names
        np.testing.assert_allclose(matrix, fresh[1], rtol=1e-5, atol=1e-6)
        assert np.all(np.diag(matrix) == 0) and np.all(matrix[~np.eye(5, dtype=bool)] > 0)


# --- the verdict against the retrained ensemble, on constructed rows (no training) ---------

RETRAINED = [  # forget test 38 / 40 / 42 %: std (ddof 1) 2 points; retain test std 0.1 points
    {"forget_train_acc": 0.50, "forget_test_acc": 0.38, "retain_train_acc": 0.99,
     "retain_test_acc": 0.969, "mia_efficacy": 0.6},
    {"forget_train_acc": 0.52, "forget_test_acc": 0.40, "retain_train_acc": 0.99,
     "retain_test_acc": 0.970, "mia_efficacy": 0.6},
    {"forget_train_acc": 0.54, "forget_test_acc": 0.42, "retain_train_acc": 0.99,
     "retain_test_acc": 0.971, "mia_efficacy": 0.6},
]


def constructed_rows(method_rows: list[dict], seeds: int = 3) -> pd.DataFrame:
    """Rows as ``run_comparison`` builds them: the baselines and one method per seed."""
    rows = []
    for seed in range(seeds):
        rows += [{"model": "original", "seed": seed, **RETRAINED[seed], "forget_test_acc": 0.99},
                 {"model": "retrained", "seed": seed, **RETRAINED[seed]},
                 {"model": "m", "seed": seed, **method_rows[seed], "diverged": False,
                  "seconds": 1.0, "retrain_seconds": 10.0}]
    return against_ensemble(flag(pd.DataFrame(rows)))


def test_each_method_run_gets_its_avg_abs_z_and_the_spread_flags():
    # Ensemble means: forget train 52 %, forget test 40 %, retain train 99 % (std 0: floor
    # 0.1 points), retain test 97.0 % (std 0.1 points), MIA 0.6 (std 0: floor).
    # seed 0: retain test 0.7 points below (z = -7), the rest at the means: avg |z| = 7/5.
    # seed 1: forget test 30 % (z = -5) and forget train 50 % (z = -1): avg |z| = 6/5.
    # seed 2: forget test 50 % (z = +5): avg |z| = 1.
    method = [{**RETRAINED[1], "retain_test_acc": 0.963},
              {**RETRAINED[1], "forget_test_acc": 0.30, "forget_train_acc": 0.50},
              {**RETRAINED[1], "forget_test_acc": 0.50}]
    rows = constructed_rows(method)
    runs = rows[rows["model"] == "m"].set_index("seed")
    assert runs["z_gap"].tolist() == pytest.approx([1.4, 1.2, 1.0])
    assert runs["z_retain_test_acc"][0] == pytest.approx(-7.0)
    assert runs["avg_gap"][0] == pytest.approx(0.007 / 5)  # the same distance in points
    assert runs["retain_damage"].tolist() == [True, False, False]
    assert runs["over_forgetting"].tolist() == [False, True, False]
    assert runs["under_forgetting"].tolist() == [False, False, True]
    assert not runs["collapse"].any()
    baselines = rows[rows["model"] != "m"]
    assert baselines["z_gap"].isna().all() and not baselines["under_forgetting"].any()


def test_the_summary_puts_the_verdict_first_and_the_point_gap_second():
    method = [{**RETRAINED[1], "retain_test_acc": 0.963}] * 3  # z = -7, avg |z| = 1.4
    table = summarize(constructed_rows(method))
    assert table.loc["m", "z_gap_mean"] == pytest.approx(1.4)
    assert table.loc["m", "z_retain_test_acc"] == pytest.approx(-7.0)
    assert table.loc["m", "retain_damage"] == 3
    text = markdown(table, "t")
    head = next(line for line in text.splitlines() if line.startswith("| model"))
    cells = [c.strip() for c in head.strip("|").split(" | ")]
    assert cells[1] == r"avg \|z\| (σ)"
    assert cells[2:7] == ["z forget (train)", "z forget", "z retain (train)", "z retain",
                          "z MIA-efficacy"]
    assert cells.index("avg gap (pts)") > cells.index("retain")
    row = next(line for line in text.splitlines() if line.startswith("| m |"))
    assert "| 1.4 ± 0.0 |" in row and row.endswith("| retain-damage (3 of 3 seeds) |")
    assert "avg |z|: mean |z|" in text
    assert "an independently retrained model scores about 1.63 with 3 seeds" in text


def test_one_seed_has_no_spread_so_no_z_and_no_spread_flag():
    method = [{**RETRAINED[0], "retain_test_acc": 0.85, "forget_test_acc": 0.0}]
    rows = constructed_rows(method, seeds=1)
    run = rows[rows["model"] == "m"].iloc[0]
    assert np.isnan(run["z_gap"]) and np.isnan(run["z_forget_test_acc"])
    assert run["avg_gap"] == pytest.approx((0.119 + 0.38) / 5)
    assert run["collapse"] and not run["over_forgetting"] and not run["retain_damage"]
    text = markdown(summarize(rows))
    assert "| m | n/a |" in text and "n/a with one seed: one retrained model has no spread" in text


def test_compare_logs_its_progress_to_a_file_and_what_came_from_the_cache(tmp_path):
    """``unlearnlab compare`` with stderr going to a file (no terminal, so no bars): a line
    per training epoch, per seed (``seed j/n``) and per method; a second run says that the
    models and evaluations came from the cache and trains nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    env.pop("UNLEARNLAB_DATA", None)
    command = [sys.executable, "-m", "unlearnlab", "compare", "--dataset", "digits", "--forget",
               "class:6", "--methods", "gradient_ascent", "--seeds", "2", "--quick",
               "--data-dir", str(tmp_path / "data")]
    logs = []
    for run in ("cold", "warm"):
        log = tmp_path / f"{run}.log"
        with log.open("w") as stderr:
            proc = subprocess.run([*command, "--out", str(tmp_path / run)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=stderr, timeout=900)
        logs.append(log.read_text())
        assert proc.returncode == 0, logs[-1][-2000:]
    cold, warm = logs
    assert "train original seed 0: epoch 1/1" in cold and "train retrained seed 1: epoch" in cold
    assert "seed 1/2: the baselines" in cold and "seed 2/2: the baselines" in cold
    assert "seed 2/2 · method 1/1 gradient_ascent" in cold
    assert "from the cache" not in cold
    assert "loaded the original model (seed 1) from the cache" in warm
    assert "loaded the retrained model (seed 0) from the cache" in warm
    assert "loaded the baselines' evaluation (seed 1) from the cache" in warm
    assert "loaded the model unlearned by gradient_ascent" in warm
    assert "training the" not in warm and "epoch 1/1" not in warm
