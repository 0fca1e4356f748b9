"""The model store: cached checkpoints keyed by everything that determines them, and atomic
writes for every file the lab produces.

A checkpoint is ``{"state_dict": ..., "meta": {"config": ..., ...}}`` saved with
``torch.save`` and read back with ``weights_only=True``; its file name carries a hash of the
config, and the stored config is compared again on load, so an entry made with another
configuration is never used in its place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

from .errors import CacheError


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def model_path(root: Path, config: dict) -> Path:
    """``<root>/models/<dataset>/<arch>/<role>-seed<seed>-<key>.pt``."""
    return (Path(root) / "models" / config["dataset"] / config["arch"]
            / f"{config['role']}-seed{config['seed']}-{config_key(config)}.pt")


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on any
    failure remove it. Readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files in ``folder`` left by killed processes (their pid is gone)."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 3)[-3])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_model(path: Path, model: nn.Module, meta: dict) -> None:
    save_payload(path, {"state_dict": model.state_dict(), "meta": meta})


def save_payload(path: Path, payload: dict) -> None:
    """``torch.save`` a dict of tensors and plain data (with ``meta["config"]``), atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: Path, expected_config: dict) -> dict:
    """A payload written by ``save_payload``, read with ``weights_only=True``, if its
    ``meta["config"]`` equals ``expected_config``; ``CacheError`` otherwise."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise CacheError(f"cache file '{path}' cannot be loaded safely ({type(exc).__name__}); "
                         "delete it and run again to recompute it") from exc
    meta = payload.get("meta", {}) if isinstance(payload, dict) else {}
    if not isinstance(meta, dict) or meta.get("config") != expected_config:
        raise CacheError(f"cache file '{path}' was made with another configuration; delete it "
                         "and run again to recompute it")
    return payload


def load_model(path: Path, model: nn.Module, expected_config: dict) -> dict:
    """Load weights into ``model`` if the checkpoint's config equals ``expected_config``;
    return its meta. Refuses anything that is not a plain tensor/metadata checkpoint."""
    payload = load_payload(path, expected_config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise CacheError(f"checkpoint '{path}' does not hold weights for this model "
                         f"({type(exc).__name__}); delete it and run again to retrain") from exc
    return payload["meta"]
