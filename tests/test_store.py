"""The model store: cache keys, checkpoints (safe loading), atomic writes, stale temporaries."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearnlab.errors import CacheError
from unlearnlab.models import create_model
from unlearnlab.store import (
    atomic_path,
    config_key,
    load_model,
    model_path,
    remove_stale_temporaries,
    save_model,
    write_json,
)

CONFIG = {"role": "original", "dataset": "mnist", "arch": "mlp", "seed": 0,
          "recipe": {"epochs": 1, "lr": 0.001, "oversample": None}, "quick": None}


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def fresh(arch="mlp", seed=0):
    torch.manual_seed(seed)
    return create_model(arch)


# ------------------------------------------------------------------------------ config key

def test_config_key_is_stable_across_versions():
    # Pinned: a change of the hashing silently orphans every cached model.
    assert config_key({"a": 1}) == "f9d86028c6e0d64e"
    assert config_key({"role": "original", "seed": 0,
                       "nested": {"x": [1, 2], "y": None}}) == "d46582a313007078"


def test_config_key_ignores_key_order():
    a = {"seed": 0, "role": "original", "recipe": {"lr": 0.001, "epochs": 3}}
    b = {"recipe": {"epochs": 3, "lr": 0.001}, "role": "original", "seed": 0}
    assert config_key(a) == config_key(b)


@pytest.mark.parametrize("change", [{"seed": 1}, {"role": "retrained"}, {"quick": {"epochs": 1}},
                                    {"recipe": {"epochs": 2, "lr": 0.001, "oversample": None}}])
def test_config_key_changes_with_any_value(change):
    key = config_key({**CONFIG, **change})
    assert key != config_key(CONFIG)
    assert len(key) == 16 and int(key, 16) >= 0


def test_model_path_layout(tmp_path):
    path = model_path(tmp_path, CONFIG)
    assert path == tmp_path / "models" / "mnist" / "mlp" / f"original-seed0-{config_key(CONFIG)}.pt"


# ---------------------------------------------------------------------------- checkpoints

def test_save_load_round_trip(tmp_path):
    src = fresh(seed=1)
    path = tmp_path / "m" / "x.pt"
    meta = {"config": CONFIG, "seconds": 1.5, "history": [{"epoch": 1, "loss": 0.3}]}
    save_model(path, src, meta)
    assert path.is_file()
    dst = fresh(seed=2)
    assert not torch.equal(dst.fc1.weight, src.fc1.weight)
    loaded = load_model(path, dst, CONFIG)
    assert loaded == meta
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_round_trip_keeps_buffers(tmp_path):
    src = fresh("cnn")
    src.norm.mean.fill_(0.5)
    save_model(tmp_path / "c.pt", src, {"config": CONFIG})
    dst = fresh("cnn")
    load_model(tmp_path / "c.pt", dst, CONFIG)
    assert dst.norm.mean.item() == 0.5


def test_checkpoint_of_another_config_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    save_model(path, fresh(seed=1), {"config": CONFIG})
    dst = fresh(seed=2)
    before = weights(dst)
    with pytest.raises(CacheError, match="another configuration"):
        load_model(path, dst, {**CONFIG, "seed": 1})
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("payload", [{"state_dict": {}}, {"meta": {}, "state_dict": {}},
                                     [1, 2, 3], torch.zeros(3)])
def test_checkpoint_without_matching_meta_is_refused(tmp_path, payload):
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(CacheError):
        load_model(tmp_path / "x.pt", fresh(), CONFIG)


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_tampered_checkpoint_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    content = {"state_dict": fresh().state_dict(), "meta": {"config": CONFIG},
               "extra": Payload(marker)}
    if writer == "torch.save":
        torch.save(content, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(content, f)
    with pytest.raises(CacheError, match="cannot be loaded safely"):
        load_model(path, fresh(), CONFIG)
    assert not marker.exists(), "the pickled payload was executed"


@pytest.mark.parametrize("payload", [
    {"meta": ["config"], "state_dict": {}},  # meta of the wrong type
    {"meta": {"config": CONFIG}, "state_dict": {}},  # right config, weights that do not fit
    {"meta": {"config": CONFIG}, "state_dict": {"fc1.weight": torch.zeros(2, 2)}},
    {"meta": {"config": CONFIG}},  # no weights at all
])
def test_malformed_checkpoint_is_refused(tmp_path, payload):
    """Loadable with weights_only but not a checkpoint of this model: a CacheError (one CLI
    line telling the user to delete it), not an AttributeError/RuntimeError traceback."""
    torch.save(payload, tmp_path / "x.pt")
    dst = fresh()
    before = weights(dst)
    with pytest.raises(CacheError, match="delete it"):
        load_model(tmp_path / "x.pt", dst, CONFIG)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())


def test_the_tampered_payload_is_live(tmp_path):
    """Control for the test above: unpickled without weights_only, the payload does run."""
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    torch.save({"extra": Payload(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    path = tmp_path / "x.pt"
    save_model(path, fresh(), {"config": CONFIG})
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[:len(blob) // 2], "empty": b"",
                      "garbage": os.urandom(256)}[damage])
    with pytest.raises(CacheError, match="delete it and run again"):
        load_model(path, fresh(), CONFIG)


def test_missing_checkpoint_is_a_cache_error(tmp_path):
    with pytest.raises(CacheError):
        load_model(tmp_path / "none.pt", fresh(), CONFIG)


# ---------------------------------------------------------------------------- atomic writes

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_path_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()  # nothing visible before the body finishes
    assert target.read_text() == "done"
    assert leftovers(target.parent) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_failure_leaves_nothing(tmp_path, exc):
    target = tmp_path / "out.txt"
    with pytest.raises(exc), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise exc("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("new but broken")
        raise ValueError
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_failed_save_model_leaves_nothing(tmp_path):
    class Unsaveable(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("cannot serialise")

    with pytest.raises(RuntimeError):
        save_model(tmp_path / "m.pt", Unsaveable(), {"config": CONFIG})
    assert list(tmp_path.iterdir()) == []


def test_write_json(tmp_path):
    obj = {"a": [1, 2.5, None], "b": {"c": "d"}}
    write_json(tmp_path / "r.json", obj)
    assert json.loads((tmp_path / "r.json").read_text()) == obj
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------- stale temporaries

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remove_stale_temporaries(tmp_path):
    folder = tmp_path / "models" / "mnist" / "cnn"
    folder.mkdir(parents=True)
    pid = dead_pid()
    stale = folder / f".original-seed0-abc.pt.{pid}.k2j4_x9q.tmp"
    alive = folder / f".original-seed0-abc.pt.{os.getpid()}.a8d7f3s1.tmp"
    unrelated = [folder / ".notes.tmp", folder / "original-seed0-abc.pt",
                 folder / ".x.pt.notapid.abcdefgh.tmp"]
    for p in (stale, alive, *unrelated):
        p.write_text("x")
    removed = remove_stale_temporaries(folder)
    assert removed == [stale]
    assert not stale.exists()
    assert alive.exists() and all(p.exists() for p in unrelated)


def test_remove_stale_temporaries_of_a_real_atomic_write(tmp_path):
    """The names atomic_path really makes are recognised (killed writer -> removed)."""
    target = tmp_path / "m.pt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        kept = tmp.with_name(tmp.name.replace(f".{os.getpid()}.", f".{dead_pid()}."))
        tmp.rename(kept)  # as if the writing process had been killed
        raise RuntimeError
    assert kept.exists()
    assert remove_stale_temporaries(tmp_path) == [kept]
    assert not kept.exists()


def test_remove_stale_temporaries_missing_folder(tmp_path):
    assert remove_stale_temporaries(tmp_path / "nope") == []
