"""Stale caches (issue 7): a cached model made with another recipe, data, forget spec, package
version or method code is never loaded in place of the one asked for. Runs on scikit-learn's
bundled digits (no files needed), in quick mode, through the Python API."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from unlearnlab import experiment
from unlearnlab.errors import CacheError
from unlearnlab.experiment import RunConfig, prepare, run_method


def cached(root) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "models").rglob("*.pt")}


@pytest.fixture
def base(tmp_path):
    cfg = RunConfig(dataset="digits", forget="class:6", method="finetune", quick=True,
                    arch="mlp", data_dir=str(tmp_path), metrics=["mia_efficacy"])
    baselines = prepare(cfg)
    run_method(baselines, "finetune", {"epochs": 1})
    return cfg, tmp_path, cached(tmp_path)


def test_the_same_configuration_is_loaded_not_retrained(base):
    cfg, root, before = base
    baselines = prepare(cfg)
    run_method(baselines, "finetune", {"epochs": 1})
    assert cached(root) == before
    assert len(before) == 4  # original, retrained, their evaluations, unlearned


@pytest.mark.parametrize(("change", "new_files"), [
    ({"epochs": 2}, 4),                 # another recipe: everything is new
    ({"forget": "class:5"}, 3),         # another forget spec: retrained, evaluations, unlearned
    ({"seed": 1}, 4),
])
def test_a_changed_configuration_trains_anew(base, change, new_files):
    cfg, root, before = base
    baselines = prepare(replace(cfg, **change))
    run_method(baselines, "finetune", {"epochs": 1})
    assert len(cached(root) - before) == new_files


def test_another_package_version_is_never_loaded(base, monkeypatch):
    cfg, root, before = base
    monkeypatch.setattr(experiment, "__version__", "999.0")
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    assert len(cached(root) - before) == 4


def test_another_data_checksum_is_never_loaded(base, monkeypatch):
    cfg, root, before = base
    real = experiment.load_dataset

    def other_data(*args, **kwargs):
        return replace(real(*args, **kwargs), checksum="another-checksum")

    monkeypatch.setattr(experiment, "load_dataset", other_data)
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    assert len(cached(root) - before) == 4


def test_edited_method_code_unlearns_anew(base, monkeypatch):
    cfg, root, before = base
    monkeypatch.setattr(experiment, "method_code_hash", lambda: "edited")
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    assert len(cached(root) - before) == 1  # only the unlearned model depends on the code


def test_edited_evaluation_code_evaluates_anew(base, monkeypatch):
    cfg, root, before = base
    monkeypatch.setattr(experiment, "evaluation_code_hash", lambda: "edited")
    prepare(cfg)
    assert [f.split("/")[-1].split("-")[0] for f in cached(root) - before] == ["baselines"]


def test_cached_baseline_evaluations_equal_fresh_ones_and_skip_prediction(base, monkeypatch):
    cfg, root, _ = base
    fresh = prepare(replace(cfg, reuse=False), untrained=True)

    def no_prediction(*args, **kwargs):
        raise AssertionError("a cached baseline was evaluated again")

    monkeypatch.setattr(experiment, "assess", no_prediction)
    warm = prepare(cfg, untrained=True)
    assert warm.evaluations == fresh.evaluations
    assert warm.outputs.keys() == fresh.outputs.keys()
    for name, probes in fresh.outputs.items():
        assert all(torch.equal(warm.outputs[name][k], v) for k, v in probes.items())


def test_no_train_refuses_with_the_missing_path(base):
    cfg, root, _ = base
    with pytest.raises(CacheError, match=r"no cached original model .* run without --no-train"):
        prepare(replace(cfg, epochs=3, allow_train=False))


def test_reuse_off_retrains_even_when_cached(base):
    cfg, root, before = base
    stamps = {f: (root / f).stat().st_mtime_ns for f in before}
    prepare(replace(cfg, reuse=False))
    assert cached(root) == before
    rewritten = {f for f in before if (root / f).stat().st_mtime_ns != stamps[f]}
    assert {f.split("/")[-1].split("-")[0] for f in rewritten} == {"original", "retrained",
                                                                   "baselines"}
