"""Run bundles: loading checks every file whole, ``rescore`` reports a damaged bundle as one
``BundleError`` and writes nothing for it, ``find`` lists incomplete bundles for reporting."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnlab import bundle
from unlearnlab.errors import BundleError, ConfigError
from unlearnlab.metrics import PROBE_SETS, Outputs, forget_metrics
from unlearnlab.verdict import GAP_KEYS, avg_gap

MODELS = ("original", "retrained", "unlearned", "untrained")


def random_outputs(seed: int = 0, n: int = 60) -> Outputs:
    gen = torch.Generator().manual_seed(seed)
    labels = {s: torch.randint(0, 10, (n,), generator=gen) for s in PROBE_SETS}
    logits = {m: {s: 3 * torch.randn(n, 10, generator=gen) for s in PROBE_SETS} for m in MODELS}
    return Outputs(labels, logits, seed)


def write_bundle(folder: Path, seed: int = 0, metrics: list[str] | None = None) -> Path:
    """A valid bundle whose record matches its outputs (``metrics``: the run's selection)."""
    out = random_outputs(seed)
    scores = forget_metrics(out, metrics)
    models = {role: {**values, **{k: 0.5 for k in GAP_KEYS if k not in values}}
              for role, values in scores.items()}
    record = {"models": models, "avg_gap": avg_gap(models["unlearned"], models["retrained"]),
              "run_config": {"metrics": metrics}}
    probe = {s: ("train" if s in ("forget_train", "member") else "test",
                 torch.arange(len(out.labels[s]))) for s in PROBE_SETS}
    bundle.write(folder, record, out, probe)
    return folder


def arrays_of(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / bundle.OUTPUTS) as data:
        return {k: data[k] for k in data.files}


def rewrite_outputs(folder: Path, arrays: dict) -> None:
    with open(folder / bundle.OUTPUTS, "wb") as fh:
        np.savez(fh, **arrays)


def test_round_trip_and_rescore(tmp_path):
    folder = write_bundle(tmp_path / "b", metrics=["mia_efficacy", "zrf", "js_to_retrained"])
    record, outputs = bundle.load(folder)
    assert set(outputs.logits) == set(MODELS) and outputs.seed == 0
    result = bundle.rescore(folder)
    assert result["differences"] == {}
    assert json.loads((folder / "rescored.json").read_text())["avg_gap"] == record["avg_gap"]


def test_a_recorded_value_that_is_not_a_number_is_a_difference(tmp_path):
    folder = write_bundle(tmp_path / "b", metrics=["zrf"])
    record = json.loads((folder / bundle.RECORD).read_text())
    record["models"]["unlearned"]["zrf"] = "0.3"
    (folder / bundle.RECORD).write_text(json.dumps(record))
    assert set(bundle.rescore(folder)["differences"]) == {"unlearned.zrf"}


def test_diverged_run_needs_no_unlearned_outputs(tmp_path):
    folder = write_bundle(tmp_path / "b", metrics=["zrf"])
    record = json.loads((folder / bundle.RECORD).read_text())
    record["models"]["unlearned"], record["avg_gap"] = None, None
    (folder / bundle.RECORD).write_text(json.dumps(record))
    rewrite_outputs(folder, {k: v for k, v in arrays_of(folder).items()
                             if not k.startswith("logits/unlearned/")})
    result = bundle.rescore(folder)
    assert result["differences"] == {} and result["avg_gap"] is None


def damage_record(folder: Path, change) -> None:
    record = json.loads((folder / bundle.RECORD).read_text())
    change(record)
    (folder / bundle.RECORD).write_text(json.dumps(record))


RECORD_DAMAGE = {
    "missing": (lambda f: (f / bundle.RECORD).unlink(), "record.json missing"),
    "truncated": (lambda f: (f / bundle.RECORD).write_text((f / bundle.RECORD).read_text()[:50]),
                  "not valid JSON"),
    "not utf-8": (lambda f: (f / bundle.RECORD).write_bytes(b"\xff\xfe{}"), "not valid JSON"),
    "a list": (lambda f: (f / bundle.RECORD).write_text("[1, 2]"), "holds a list"),
    "no models": (lambda f: damage_record(f, lambda r: r.pop("models")), "lacks the evaluations"),
    "no retrained": (lambda f: damage_record(f, lambda r: r["models"].pop("retrained")),
                     "lacks the evaluations"),
    "model not an object": (lambda f: damage_record(
        f, lambda r: r["models"].__setitem__("unlearned", [1])), "'models.unlearned' is not"),
    "gap key a string": (lambda f: damage_record(
        f, lambda r: r["models"]["retrained"].__setitem__("forget_test_acc", "x")),
        "'models.retrained.forget_test_acc' is not a number"),
    "gap key a boolean": (lambda f: damage_record(
        f, lambda r: r["models"]["unlearned"].__setitem__("retain_test_acc", True)),
        "is not a number"),
    "avg_gap a string": (lambda f: damage_record(f, lambda r: r.__setitem__("avg_gap", "1")),
                         "'avg_gap' is not a number"),
    "run_config a list": (lambda f: damage_record(f, lambda r: r.__setitem__("run_config", [])),
                          "'run_config' is not an object"),
    "unknown metric": (lambda f: damage_record(
        f, lambda r: r["run_config"].__setitem__("metrics", ["bogus"])), "unknown metric"),
    "metrics not names": (lambda f: damage_record(
        f, lambda r: r["run_config"].__setitem__("metrics", [1])), "not a list of names"),
}


def _drop(prefix):
    def change(folder):
        rewrite_outputs(folder, {k: v for k, v in arrays_of(folder).items()
                                 if not k.startswith(prefix)})
    return change


def _replace(key, value):
    def change(folder):
        rewrite_outputs(folder, {**arrays_of(folder), key: value})
    return change


def _truncate(folder):
    blob = (folder / bundle.OUTPUTS).read_bytes()
    (folder / bundle.OUTPUTS).write_bytes(blob[:len(blob) // 2])


def _flip(folder):
    blob = bytearray((folder / bundle.OUTPUTS).read_bytes())
    mid = len(blob) // 2
    blob[mid:mid + 64] = bytes(b ^ 0xFF for b in blob[mid:mid + 64])
    (folder / bundle.OUTPUTS).write_bytes(bytes(blob))


def _object_array(folder):
    arrays = arrays_of(folder)
    arrays["logits/unlearned/forget_train"] = np.array([{"a": 1}, None], dtype=object)
    with open(folder / bundle.OUTPUTS, "wb") as fh:
        np.savez(fh, **arrays)  # savez pickles object arrays


def _single_npy(folder):
    with open(folder / bundle.OUTPUTS, "wb") as fh:
        np.save(fh, np.zeros(3))


OUTPUT_DAMAGE = {
    "missing": (lambda f: (f / bundle.OUTPUTS).unlink(), "outputs.npz missing"),
    "truncated": (_truncate, "outputs.npz cannot be read"),
    "flipped bytes": (_flip, "outputs.npz cannot be read"),
    "empty": (lambda f: (f / bundle.OUTPUTS).write_bytes(b""), "cannot be read"),
    "text": (lambda f: (f / bundle.OUTPUTS).write_text("logits\n"), "cannot be read"),
    "object array": (_object_array, "cannot be read"),
    "single array": (_single_npy, "single array"),
    "no seed": (_drop("seed"), "'seed'"),
    "seed a float": (_replace("seed", np.array(1.5)), "'seed'"),
    "no labels": (_drop("labels/member"), "'labels/member'"),
    "labels as floats": (_replace("labels/member", np.zeros(60)), "'labels/member'"),
    "no unlearned logits": (_drop("logits/unlearned/nonmember"),
                            "'logits/unlearned/nonmember'"),
    "no untrained logits": (_drop("logits/untrained/"), "'logits/untrained/"),
    "logits of wrong length": (_replace("logits/original/forget_test", np.zeros((3, 10))),
                               "'logits/original/forget_test' is not"),
    "logits as integers": (_replace("logits/original/forget_test",
                                    np.zeros((60, 10), dtype=np.int64)), "is not a float array"),
    "label beyond the classes": (_replace("labels/forget_test", np.full(60, 12)),
                                 "is not a float array"),
    "stray logits": (_replace("logits/original", np.zeros((60, 10))), "'logits/original'"),
}


@pytest.mark.parametrize("case", sorted(RECORD_DAMAGE), ids=str)
def test_damaged_record_is_one_bundle_error_and_writes_nothing(tmp_path, case):
    damage, problem = RECORD_DAMAGE[case]
    check_damaged(tmp_path / "b", damage, problem)


@pytest.mark.parametrize("case", sorted(OUTPUT_DAMAGE), ids=str)
def test_damaged_outputs_are_one_bundle_error_and_write_nothing(tmp_path, case):
    damage, problem = OUTPUT_DAMAGE[case]
    check_damaged(tmp_path / "b", damage, problem)


def check_damaged(folder: Path, damage, problem: str) -> None:
    write_bundle(folder, metrics=["zrf", "mia_efficacy"])
    damage(folder)
    with pytest.raises(BundleError) as info:
        bundle.rescore(folder)
    message = str(info.value)
    assert message.startswith(f"bundle '{folder}': ") and problem in message, message
    assert "; " in message and "\n" not in message
    assert not (folder / "rescored.json").exists()
    assert isinstance(info.value, ConfigError)  # callers that caught ConfigError still do


def test_object_arrays_are_never_unpickled(tmp_path, monkeypatch):
    folder = write_bundle(tmp_path / "b")
    _object_array(folder)
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("an object array was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    with pytest.raises(BundleError, match="Object arrays cannot be loaded"):
        bundle.load(folder)


def test_find_lists_incomplete_bundles_beside_complete_ones(tmp_path):
    good = write_bundle(tmp_path / "a")
    half = write_bundle(tmp_path / "b")
    (half / bundle.RECORD).unlink()
    assert bundle.find(tmp_path) == [good, half]
    assert bundle.find(half) == [half]
    with pytest.raises(BundleError, match="record.json missing"):
        bundle.load(half)


def test_find_without_any_record_names_the_unfinished_runs(tmp_path):
    write_bundle(tmp_path / "a")
    (tmp_path / "a" / bundle.RECORD).unlink()
    with pytest.raises(ConfigError, match=r"no run bundle under .*1 folder\(s\) hold only"):
        bundle.find(tmp_path)


def test_npz_of_a_zip_without_arrays_is_reported(tmp_path):
    folder = write_bundle(tmp_path / "b")
    with zipfile.ZipFile(folder / bundle.OUTPUTS, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(BundleError, match="cannot be read|lacks"):
        bundle.load(folder)
