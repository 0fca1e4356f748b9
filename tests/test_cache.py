"""Content-addressed caches: a cached model made with another recipe, data, forget set,
package version, parent model or code is never loaded in place of the one asked for, and an
edit of prose keeps every cached model. Runs on scikit-learn's bundled digits (no files
needed), in quick mode, through the Python API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from unlearnlab import cache, experiment, scenario
from unlearnlab.config import RunConfig
from unlearnlab.errors import CacheError
from unlearnlab.experiment import prepare, run_method
from unlearnlab.store import load_payload, model_path, save_payload


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
    monkeypatch.setattr(cache, "__version__", "999.0")
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    # The models retrain (bit-identically here), so their evaluations, keyed by their
    # contents, are found again; the unlearned model is new.
    assert {f.split("/")[-1].split("-")[0] for f in cached(root) - before} == {
        "original", "retrained", "unlearned"}


def test_another_data_checksum_is_never_loaded(base, monkeypatch):
    cfg, root, before = base
    real = scenario.load_dataset

    def other_data(*args, **kwargs):
        return replace(real(*args, **kwargs), checksum="another-checksum")

    monkeypatch.setattr(scenario, "load_dataset", other_data)
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    assert len(cached(root) - before) == 4


def test_edited_method_code_unlearns_anew(base, monkeypatch):
    cfg, root, before = base
    monkeypatch.setattr(cache, "method_code_hash", lambda cls: "edited")
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    assert len(cached(root) - before) == 1  # only the unlearned model depends on the code


def test_edited_evaluation_code_evaluates_anew(base, monkeypatch):
    cfg, root, before = base
    monkeypatch.setattr(cache, "evaluation_code_hash", lambda: "edited")
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


def test_a_changed_parent_model_is_never_served_its_derived_caches(base):
    """Evaluations and unlearned models are keyed by the parent model's contents: another
    original under the same configuration (here, perturbed weights) gets new ones."""
    cfg, root, before = base
    sc = scenario.build_scenario(cfg)
    config = cache.model_config(sc, "original")
    path = model_path(root, config)
    payload = load_payload(path, config)
    payload["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v
                             for k, v in payload["state_dict"].items()}
    save_payload(path, payload)
    run_method(prepare(cfg), "finetune", {"epochs": 1})
    new = {f.split("/")[-1].split("-")[0] for f in cached(root) - before}
    assert new == {"baselines", "unlearned"}


def test_source_hash_ignores_prose_but_not_code(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text('"""A module."""\nLR = 1e-3  # the rate\n\n\ndef f(x):\n'
                    '    """Scale x."""\n    return LR * x\n')
    key = cache.source_hash([path])
    path.write_text('"""A module, documented again."""\n# a new comment\nLR = 1e-3\n\n\n'
                    'def f(x):\n    """Scale x by the rate."""\n    return LR * x  # why\n')
    assert cache.source_hash([path]) == key
    path.write_text('"""A module."""\nLR = 2e-3\n\n\ndef f(x):\n    return LR * x\n')
    assert cache.source_hash([path]) != key


def test_a_docstring_edit_keeps_every_cached_model(base, tmp_path):
    """A copy of the package with every docstring and comment edited runs (in a subprocess)
    on the same data root and finds all its models in the cache."""
    cfg, root, before = base
    copy = tmp_path / "edited"
    shutil.copytree(cache.PACKAGE, copy / "unlearnlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in (copy / "unlearnlab").rglob("*.py"):
        text = path.read_text()
        path.write_text("# an edited comment\n" + text.replace('"""', '"""Edited prose. ', 1))
    code = (f"import unlearnlab; assert unlearnlab.__file__.startswith({str(copy)!r}); "
            "from unlearnlab.config import RunConfig; "
            "from unlearnlab.experiment import prepare, run_method; "
            f"cfg = RunConfig(dataset='digits', forget='class:6', method='finetune', quick=True, "
            f"arch='mlp', data_dir={str(root)!r}, metrics=['mia_efficacy']); "
            "run_method(prepare(cfg), 'finetune', {'epochs': 1})")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "training" not in proc.stderr and "unlearning with" not in proc.stderr
    assert cached(root) == before
