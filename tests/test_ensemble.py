"""The forget-quality protocol (``ensemble``) and the ``forget-quality`` command: models vary
by seed over one scenario's samples, every model is cached, the references bracket a method,
the bundle rescores, and bad inputs are one line before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, link_real_data

from unlearnlab import ensemble
from unlearnlab.cache import train_or_load
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.scenario import build_scenario

N = 4


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fq")


def config(root, **kw) -> RunConfig:
    return RunConfig(dataset="digits", forget="class:6", quick=True, arch="mlp",
                     data_dir=str(root), **kw)


def test_model_seeds_vary_the_models_not_the_samples(digits_root):
    sc = build_scenario(config(digits_root))
    a, b = (ensemble.with_model_seed(sc, seed) for seed in (0, 1))
    assert torch.equal(a.train_rows, b.train_rows) and torch.equal(a.masks["train"],
                                                                   b.masks["train"])
    model_a, _ = train_or_load(a, "retrained")
    model_b, _ = train_or_load(b, "retrained")
    assert not torch.equal(model_a.fc1.weight, model_b.fc1.weight)
    assert a.task.seed == 0 and b.task.seed == 1


def test_references_bracket_a_method_and_every_model_is_cached(digits_root):
    cfg = config(digits_root)
    scores = {m: ensemble.study(cfg, m, N) for m in ("retrain", "original", "finetune")}
    # An original model still knows the forgotten class; a second retrained set does not.
    assert scores["original"]["forget_quality"] < scores["retrain"]["forget_quality"]
    assert scores["original"]["sides"]["unlearned"]["forget_acc_mean"] > 0.5
    assert scores["retrain"]["sides"]["unlearned"]["forget_acc_mean"] < 0.1
    for record in scores.values():
        assert 0 <= record["forget_quality"] <= 1 and record["models"] == N
        assert record["arrays"]["epsilons"].shape == (record["forget_samples"],)
        assert record["arrays"]["unlearned_confidence"].shape == (N, record["forget_samples"])
    # Judged in the retrained side's spread too: the original keeps the class retraining
    # forgets, many sigma away; a second retrained set lies where retraining does.
    assert scores["original"]["z"]["forget_acc"] > 10
    assert scores["retrain"]["z_gap"] < scores["original"]["z_gap"]
    assert scores["retrain"]["z_gap_retrained"] == pytest.approx(1.23, abs=0.01)
    models = sorted(p.name for p in (digits_root / "models").rglob("*.pt"))
    again = ensemble.study(cfg, "finetune", N)  # everything from the cache
    assert sorted(p.name for p in (digits_root / "models").rglob("*.pt")) == models
    assert again["forget_quality"] == scores["finetune"]["forget_quality"]
    assert np.array_equal(again["arrays"]["epsilons"], scores["finetune"]["arrays"]["epsilons"])


def test_models_trained_together_are_cached_apart_and_score_alike(digits_root):
    cfg = config(digits_root)
    alone = ensemble.study(cfg, "retrain", N)
    before = set((digits_root / "models").rglob("*.pt"))
    together = ensemble.study(cfg, "retrain", N, together=True)
    added = set((digits_root / "models").rglob("*.pt")) - before
    assert len(added) == 2 * N  # none of the models trained alone stands in
    assert together["together"] is True and alone["together"] is False
    for key in ("retain_acc_mean", "test_acc_mean"):
        assert together["sides"]["retrained"][key] == pytest.approx(
            alone["sides"]["retrained"][key], abs=0.03)
    again = ensemble.study(cfg, "retrain", N, together=True)
    assert set((digits_root / "models").rglob("*.pt")) - before == added
    assert np.array_equal(again["arrays"]["epsilons"], together["arrays"]["epsilons"])
    assert ensemble.default_folder(cfg, "retrain", N, True) != ensemble.default_folder(
        cfg, "retrain", N)


def test_the_bundle_rescores_to_its_record(digits_root, tmp_path):
    record = ensemble.study(config(digits_root), "finetune", N)
    saved = ensemble.write_bundle(tmp_path / "b", record)
    assert saved["kind"] == "forget_quality" and "arrays" not in saved
    assert json.loads((tmp_path / "b" / "record.json").read_text())["forget_quality"] == \
        record["forget_quality"]
    result = ensemble.rescore_bundle(tmp_path / "b", saved)
    assert result["differences"] == {} and result["forget_quality"] == record["forget_quality"]
    saved["forget_quality"] = 0.123
    assert "forget_quality" in ensemble.rescore_bundle(tmp_path / "b", saved)["differences"]


@pytest.mark.parametrize("n", [1, 0, -3, True, 2.5, 5000])
def test_bad_model_counts(n):
    with pytest.raises(ConfigError, match="--models must be an integer from 2"):
        ensemble.check("finetune", n)


def cli(*args, root) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "unlearnlab", "forget-quality", *map(str, args),
                           "--data-dir", str(root)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root.parent)


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "finetune", "--models", "1"], "--models must be an integer from 2"),
    (["--method", "finetune", "--forget", "random:0"], "fraction must be a decimal"),
    (["--method", "finetune", "--forget", "random:1.5"], "fraction must be a decimal"),
    (["--method", "nope"], "unknown method 'nope'"),
    (["--method", "retrain", "--set", "lr=1"], "--set does not apply"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, args, message):
    root = tmp_path / "data"
    root.mkdir()
    proc = cli("--dataset", "digits", "--quick", *args, root=root)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not (root / "models").exists()


@pytest.mark.integration
def test_forget_quality_command_on_mnist_random_forgetting(real_data, tmp_path):
    root = link_real_data(real_data, tmp_path / "data")
    out = tmp_path / "r.json"
    proc = cli("--dataset", "mnist", "--forget", "random:0.1", "--arch", "mlp", "--quick",
               "--method", "finetune", "--models", "3", "--json", out, root=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["method"] == "finetune" and record["models"] == 3
    assert record["forget"] == "random:0.1" and record["kind"] == "forget_quality"
    for side in ("unlearned", "retrained"):
        assert set(record["sides"][side]) >= {"retain_acc_mean", "retain_acc_std",
                                              "test_acc_mean", "forget_acc_mean", "seconds"}
    assert 0 <= record["final_score"] <= record["forget_quality"] * 1.5
    assert record["run_config"]["quick"] is True and record["run_config"]["seed"] == 0
    assert record["recipe"]["arch"] == "mlp" and "torch" in record["versions"]
    assert len(record["split_hash"]) >= 16 and record["data_checksum"]
    assert "forget quality F" in proc.stdout
    rescore = subprocess.run([sys.executable, "-m", "unlearnlab", "rescore",
                              str(root / "forget_quality")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert rescore.returncode == 0 and "1 match" in rescore.stdout, rescore.stderr
