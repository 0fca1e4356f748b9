"""The model store: cached checkpoints keyed by everything that determines them (written with
``outputs.atomic_path``).

A checkpoint is ``{"state_dict": ..., "meta": {"config": ..., "digest": ...}}`` saved with
``torch.save`` and read back with ``weights_only=True``; its file name carries a hash of the
config, and the stored config is compared again on load, so an entry made with another
configuration is never used in its place. ``meta["digest"]`` is the ``content_digest`` of
everything else in the file, checked on every load: a damaged, truncated or foreign file is
moved aside (``<name>.corrupt-<n>``, never deleted) and reported as ``CorruptCacheError``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import torch
from torch import nn

from .errors import CacheError, CorruptCacheError
from .outputs import atomic_path


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def model_path(root: Path, config: dict) -> Path:
    """``<root>/models/<dataset>/<arch>/<role>-seed<seed>-<key>.pt``."""
    return (Path(root) / "models" / config["dataset"] / config["arch"]
            / f"{config['role']}-seed{config['seed']}-{config_key(config)}.pt")


def save_model(path: Path, model: nn.Module, meta: dict) -> str:
    """Save ``model``'s state dict with ``meta`` (see ``save_payload``); returns the digest."""
    return save_payload(path, {"state_dict": model.state_dict(), "meta": meta})


def content_digest(obj) -> str:
    """sha256 (hex) of a payload, a state dict or any nesting of dicts, lists and tensors.

    Tensors are hashed in the order of their sorted paths (the keys leading to them), each as
    its path, dtype, shape and raw bytes; everything else is hashed as the canonical JSON
    (sorted keys) of the structure with each tensor replaced by its path. Two objects with the
    same digest hold the same tensors bit for bit and the same plain data, in any key order.
    Key derived caches on ``content_digest(payload["state_dict"])``: a model's digest, free of
    its training time.
    """
    tensors: list[tuple[str, torch.Tensor]] = []

    def skeleton(value, path: tuple):
        if isinstance(value, torch.Tensor):
            tensors.append((json.dumps(path), value))
            return {"tensor": list(path)}
        if isinstance(value, dict):
            return {str(k): skeleton(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [skeleton(v, (*path, i)) for i, v in enumerate(value)]
        return value

    h = hashlib.sha256(json.dumps(skeleton(obj, ()), sort_keys=True).encode())
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"\n{name} {flat.dtype} {list(tensor.shape)}\n".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_payload(path: Path, payload: dict) -> str:
    """``torch.save`` a dict of tensors and plain data with ``meta["config"]``, atomically,
    adding ``meta["digest"]``: the ``content_digest`` of the payload without it, which
    ``load_payload`` verifies. Returns that digest; ``payload`` itself is not modified."""
    meta = {k: v for k, v in payload["meta"].items() if k != "digest"}
    digest = content_digest({**payload, "meta": meta})
    with atomic_path(path) as tmp:
        torch.save({**payload, "meta": {**meta, "digest": digest}}, tmp)
    return digest


def load_payload(path: Path, expected_config: dict, required: tuple[str, ...] = ()) -> dict:
    """The payload ``save_payload`` wrote at ``path`` (without ``meta["digest"]``), read with
    ``weights_only=True`` and verified against its digest.

    Raises ``CorruptCacheError`` after moving the file aside (``<name>.corrupt-<n>``) when it
    cannot be unpickled safely, is truncated or foreign, lacks a digest (written before
    checkpoints were verified), does not match its digest or lacks a ``required`` key; a plain
    ``CacheError`` (file left in place) when it cannot be read or was made with another
    configuration than ``expected_config``.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")  # opened apart from decoding: a read error is not corruption
    except OSError as exc:
        raise CacheError(f"cache file '{path}' cannot be read ({exc.strerror or exc}); check it "
                         "exists and is readable, or delete it to recompute it") from exc
    with fh:
        identity = _identity(os.fstat(fh.fileno()))
        try:
            payload = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # any failure to decode untrusted bytes: not a checkpoint
            raise _corrupt(path, identity, f"cannot be loaded safely ({type(exc).__name__})") \
                from exc
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or "config" not in meta:
        raise _corrupt(path, identity, "is not a checkpoint of this lab (no meta with a config)")
    stored = meta.get("digest")
    if not isinstance(stored, str):
        raise _corrupt(path, identity, "carries no content digest (written before checkpoints "
                       "were verified)")
    body = {**payload, "meta": {k: v for k, v in meta.items() if k != "digest"}}
    try:
        actual = content_digest(body)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise _corrupt(path, identity, f"holds data that cannot be hashed ({exc})") from exc
    if actual != stored:
        raise _corrupt(path, identity, "does not match its content digest (damaged on disk)")
    if meta["config"] != expected_config:
        raise CacheError(f"cache file '{path}' was made with another configuration; delete it "
                         "and run again to recompute it")
    missing = [key for key in required if key not in payload]
    if missing:
        raise _corrupt(path, identity, f"lacks the entry '{missing[0]}'")
    return body


def load_model(path: Path, model: nn.Module, expected_config: dict) -> dict:
    """Load weights into ``model`` if the checkpoint verifies (see ``load_payload``) and its
    config equals ``expected_config``; return its meta. ``model`` is left untouched unless
    every tensor matches its parameters and buffers in name, shape and dtype."""
    payload = load_payload(path, expected_config, required=("state_dict",))
    state, expected = payload["state_dict"], model.state_dict()
    problem = _state_dict_mismatch(state, expected)
    if problem:
        raise _corrupt(Path(path), None, f"does not hold weights for this model ({problem})")
    model.load_state_dict(state)
    return payload["meta"]


def _state_dict_mismatch(state, expected: dict) -> str | None:
    if not isinstance(state, dict):
        return f"state_dict is a {type(state).__name__}"
    if state.keys() != expected.keys():
        names = sorted(set(state) ^ set(expected))
        return f"{len(names)} tensor name(s) differ, e.g. '{names[0]}'"
    for name, tensor in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape \
                or got.dtype != tensor.dtype:
            return f"'{name}' is not a {tensor.dtype} tensor of shape {list(tensor.shape)}"
    return None


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _corrupt(path: Path, identity: tuple[int, int] | None, problem: str) -> CorruptCacheError:
    """Move ``path`` aside and return the error to raise. ``identity`` is the (device, inode) of
    the file that was read: when another process has meanwhile replaced it (a rebuilt entry,
    written by ``atomic_path``), the new file is left alone."""
    try:
        current = _identity(os.stat(path))
    except FileNotFoundError:
        return CorruptCacheError(f"cache file '{path}' {problem}; another process already "
                                 "moved it aside, so it is rebuilt", path)
    if identity is not None and current != identity:
        return CorruptCacheError(f"cache file '{path}' {problem}; it has since been replaced "
                                 "by another process, so it is read again", path)
    moved = move_aside(path)
    return CorruptCacheError(f"cache file '{path}' {problem}; moved it to '{moved.name}' in the "
                             "same folder, so that it is rebuilt", path, moved)


def move_aside(path: Path) -> Path:
    """Rename ``path`` to the first free ``<name>.corrupt-<n>`` beside it (never overwriting
    one, never deleting anything) and return the new path."""
    path = Path(path)
    for n in itertools.count(1):
        target = path.with_name(f"{path.name}.corrupt-{n}")
        try:
            os.link(path, target)  # fails if target exists, unlike rename
        except FileExistsError:
            continue
        os.unlink(path)
        return target
