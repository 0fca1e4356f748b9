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

from unlearnlab.errors import CacheError, CorruptCacheError
from unlearnlab.models import create_model
from unlearnlab.outputs import atomic_path, remove_stale_temporaries, write_json
from unlearnlab.store import (
    config_key,
    content_digest,
    load_model,
    load_payload,
    model_path,
    move_aside,
    save_model,
    save_payload,
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
    """Loadable with weights_only but not a checkpoint of this model: a CorruptCacheError (one
    CLI line; the file is moved aside), not an AttributeError/RuntimeError traceback."""
    torch.save(payload, tmp_path / "x.pt")
    dst = fresh()
    before = weights(dst)
    with pytest.raises(CorruptCacheError, match="moved it to 'x.pt.corrupt-1'"):
        load_model(tmp_path / "x.pt", dst, CONFIG)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())
    assert not (tmp_path / "x.pt").exists() and (tmp_path / "x.pt.corrupt-1").is_file()


@pytest.mark.parametrize(("state", "problem"), [
    ({}, "tensor name"),
    ({"fc1.weight": torch.zeros(2, 2)}, "tensor name"),
    ("weights", "state_dict is a str"),
])
def test_verified_checkpoint_of_another_model_is_moved_aside(tmp_path, state, problem):
    """Even with a valid digest and config, weights that do not fit the model are refused
    before any of them is copied in."""
    save_payload(tmp_path / "x.pt", {"state_dict": state, "meta": {"config": CONFIG}})
    dst = fresh()
    before = weights(dst)
    with pytest.raises(CorruptCacheError, match=problem):
        load_model(tmp_path / "x.pt", dst, CONFIG)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())


def test_weights_of_another_dtype_or_shape_are_refused_untouched(tmp_path):
    src = fresh(seed=1)
    state = src.state_dict()
    state["fc1.weight"] = state["fc1.weight"].double()  # load_state_dict would cast silently
    save_payload(tmp_path / "x.pt", {"state_dict": state, "meta": {"config": CONFIG}})
    dst = fresh(seed=2)
    before = weights(dst)
    with pytest.raises(CorruptCacheError, match="'fc1.weight' is not a torch.float32 tensor"):
        load_model(tmp_path / "x.pt", dst, CONFIG)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())


def test_the_tampered_payload_is_live(tmp_path):
    """Control for the test above: unpickled without weights_only, the payload does run."""
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    torch.save({"extra": Payload(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "text"])
def test_damaged_checkpoint_is_refused_and_moved_aside(tmp_path, damage):
    path = tmp_path / "x.pt"
    save_model(path, fresh(), {"config": CONFIG})
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[:len(blob) // 2], "empty": b"",
                      "garbage": os.urandom(256), "text": b"not a checkpoint\n"}[damage])
    with pytest.raises(CorruptCacheError, match="cannot be loaded safely") as info:
        load_model(path, fresh(), CONFIG)
    assert info.value.path == path and info.value.moved_to == tmp_path / "x.pt.corrupt-1"
    assert not path.exists() and info.value.moved_to.read_bytes() != blob


def test_missing_checkpoint_is_a_cache_error(tmp_path):
    with pytest.raises(CacheError, match="cannot be read") as info:
        load_model(tmp_path / "none.pt", fresh(), CONFIG)
    assert not isinstance(info.value, CorruptCacheError)


def test_unreadable_path_is_not_moved(tmp_path):
    (tmp_path / "x.pt").mkdir()
    with pytest.raises(CacheError, match="cannot be read") as info:
        load_model(tmp_path / "x.pt", fresh(), CONFIG)
    assert not isinstance(info.value, CorruptCacheError)
    assert (tmp_path / "x.pt").is_dir()


# ------------------------------------------------------------------------- content digests

def flip_middle(path: Path, count: int = 4096) -> None:
    """Invert ``count`` bytes in the middle of ``path`` (a damaged disk block)."""
    blob = bytearray(path.read_bytes())
    mid = len(blob) // 2
    count = min(count, len(blob) // 4)
    blob[mid:mid + count] = bytes(b ^ 0xFF for b in blob[mid:mid + count])
    path.write_bytes(bytes(blob))


def test_saved_checkpoint_carries_the_digest_of_its_contents(tmp_path):
    src = fresh("cnn", seed=1)
    meta = {"config": CONFIG, "seconds": 1.0}
    digest = save_model(tmp_path / "x.pt", src, meta)
    raw = torch.load(tmp_path / "x.pt", weights_only=True)
    assert raw["meta"]["digest"] == digest
    assert digest == content_digest({"state_dict": src.state_dict(), "meta": meta})
    assert "digest" not in meta  # the caller's meta is not modified
    assert load_model(tmp_path / "x.pt", fresh("cnn"), CONFIG) == meta  # nor returned


def test_flipped_bytes_are_caught_even_when_the_file_still_unpickles(tmp_path):
    """The issue's case: damage inside a tensor's bytes leaves a loadable zip; only the digest
    notices."""
    path = tmp_path / "x.pt"
    src = fresh("cnn", seed=1)
    save_model(path, src, {"config": CONFIG})
    flip_middle(path)
    raw = torch.load(path, weights_only=True)  # the damaged file does load ...
    assert not all(torch.equal(raw["state_dict"][k], v) for k, v in src.state_dict().items())
    dst = fresh("cnn", seed=2)
    before = weights(dst)
    with pytest.raises(CorruptCacheError, match="does not match its content digest"):
        load_model(path, dst, CONFIG)  # ... but is refused
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in before.items())
    assert (tmp_path / "x.pt.corrupt-1").is_file()


def test_checkpoint_without_a_digest_is_stale(tmp_path):
    """Written before checkpoints carried a digest: moved aside and rebuilt, never trusted."""
    torch.save({"state_dict": fresh().state_dict(), "meta": {"config": CONFIG}},
               tmp_path / "x.pt")
    with pytest.raises(CorruptCacheError, match="carries no content digest"):
        load_model(tmp_path / "x.pt", fresh(), CONFIG)


def test_edited_metadata_is_caught(tmp_path):
    path = tmp_path / "x.pt"
    save_model(path, fresh(), {"config": CONFIG, "seconds": 2.0})
    raw = torch.load(path, weights_only=True)
    raw["meta"]["seconds"] = 0.001
    torch.save(raw, path)
    with pytest.raises(CorruptCacheError, match="content digest"):
        load_model(path, fresh(), CONFIG)


def test_moving_aside_never_overwrites(tmp_path):
    path = tmp_path / "x.pt"
    for n in (1, 2, 3):
        path.write_bytes(b"broken %d" % n)
        with pytest.raises(CorruptCacheError, match=f"x.pt.corrupt-{n}"):
            load_payload(path, CONFIG)
    assert [(tmp_path / f"x.pt.corrupt-{n}").read_bytes() for n in (1, 2, 3)] == \
        [b"broken 1", b"broken 2", b"broken 3"]
    assert move_aside(tmp_path / "x.pt.corrupt-1") == tmp_path / "x.pt.corrupt-1.corrupt-1"


def test_config_mismatch_is_not_moved(tmp_path):
    save_model(tmp_path / "x.pt", fresh(), {"config": CONFIG})
    with pytest.raises(CacheError, match="another configuration") as info:
        load_model(tmp_path / "x.pt", fresh(), {**CONFIG, "seed": 3})
    assert not isinstance(info.value, CorruptCacheError)
    assert (tmp_path / "x.pt").is_file()


def test_required_entries_are_checked(tmp_path):
    save_payload(tmp_path / "e.pt", {"evaluations": {}, "meta": {"config": CONFIG}})
    with pytest.raises(CorruptCacheError, match="lacks the entry 'outputs'"):
        load_payload(tmp_path / "e.pt", CONFIG, required=("evaluations", "outputs"))


def test_content_digest_is_canonical():
    a = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"x": 1, "y": [1.5, None]}}
    b = {"meta": {"y": [1.5, None], "x": 1}, "w": torch.arange(6.0).reshape(2, 3)}
    assert content_digest(a) == content_digest(b)  # key order does not matter
    assert len(content_digest(a)) == 64


@pytest.mark.parametrize("change", [
    lambda p: p["w"].__setitem__((0, 0), 0.5),        # one value
    lambda p: p.__setitem__("w", p["w"].reshape(3, 2)),  # same bytes, another shape
    lambda p: p.__setitem__("w", p["w"].double()),     # another dtype
    lambda p: p.__setitem__("v", p.pop("w")),          # another name
    lambda p: p["meta"].__setitem__("x", 2),           # plain data
    lambda p: p["meta"]["y"].append(0),
])
def test_content_digest_sees_every_change(change):
    payload = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"x": 1, "y": [1.5, None]}}
    before = content_digest(payload)
    change(payload)
    assert content_digest(payload) != before


def test_content_digest_of_a_state_dict_ignores_training_metadata():
    """A parent model's digest for derived cache keys: its weights alone."""
    model = fresh("cnn", seed=3)
    assert content_digest(model.state_dict()) == content_digest(fresh("cnn", seed=3).state_dict())
    assert content_digest(model.state_dict()) != content_digest(fresh("cnn", seed=4).state_dict())


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
