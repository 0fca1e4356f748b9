"""The model store: cached checkpoints keyed by everything that determines them, and atomic
writes for every file the lab produces.

A checkpoint is ``{"state_dict": ..., "meta": {"config": ..., "digest": ...}}`` saved with
``torch.save`` and read back with ``weights_only=True``; its file name carries a hash of the
config, and the stored config is compared again on load, so an entry made with another
configuration is never used in its place. ``meta["digest"]`` is the ``content_digest`` of
everything else in the file, checked on every load: a damaged, truncated or foreign file is
moved aside (``<name>.corrupt-<n>``, never deleted) and reported as ``CorruptCacheError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import shutil
import signal
import tempfile
from pathlib import Path

import torch
from torch import nn

from .errors import CacheError, ConfigError, CorruptCacheError


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
    """Write ``obj`` as indented strict JSON (RFC 8259), atomically: NaN and +-inf, which
    ``json.dumps`` would write as the non-JSON tokens ``NaN``/``Infinity``, become null."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=False, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def strict_json(obj):
    """``obj`` with every non-finite float (NaN, +-inf) replaced by None, at any depth of
    dicts, lists and tuples (tuples become lists, as JSON has no tuples)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


# ----------------------------------------------------------------- outputs checked up front

def check_file_target(path: Path, what: str) -> Path:
    """Raise ``ConfigError`` unless a file can be written at ``path`` (``what`` names the
    option, e.g. "--json"): not a directory, not inside a file, its folder (or the nearest
    existing one above it) writable. Called before any work, so nothing is computed in vain."""
    path = Path(path)
    if _stat(path, what) is not None and path.is_dir():
        raise ConfigError(f"{what} '{path}' is a directory; name a file, e.g. "
                          f"'{path / 'record.json'}'")
    _check_creatable(path.parent, path, what)
    return path


def check_folder_target(path: Path, what: str) -> Path:
    """Raise ``ConfigError`` unless files can be written into the folder ``path``: not a file,
    not inside a file, the folder itself (or the nearest existing one above it) writable."""
    path = Path(path)
    if _stat(path, what) is not None:
        if not path.is_dir():
            raise ConfigError(f"{what} '{path}' is a file, not a folder; name a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} '{path}' is not writable; make it writable or choose "
                              "another folder")
        return path
    _check_creatable(path.parent, path, what)
    return path


def _check_creatable(folder: Path, target: Path, what: str) -> None:
    """``folder`` exists as a writable directory, or can be made inside the nearest existing
    writable directory above it."""
    for above in (folder, *folder.parents):
        if _stat(above, what) is None:
            continue
        if not above.is_dir():
            raise ConfigError(f"{what} '{target}' is inside a file ('{above}'); name a path "
                              "in a folder")
        if not os.access(above, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} '{target}' is not writable ('{above}' is read-only); "
                              "make it writable or choose another path")
        return


def _stat(path: Path, what: str) -> os.stat_result | None:
    """``os.stat(path)`` following links; None when nothing is there. A link loop or a path
    that cannot be searched is a ``ConfigError``."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"{what} '{path}' cannot be resolved ({exc.strerror}); name a "
                          "plain path") from exc


# ------------------------------------------------------------ whole output folders or none

OUTPUT_MARKER = ".unlearnlab-output.json"


@contextlib.contextmanager
def output_folder(out: Path, command: str, legacy: tuple[str, ...] = ()):
    """Yield a temporary folder beside ``out`` (``.<name>.tmp-<pid>``) to write a command's
    whole output into; on success move it to ``out``, replacing an earlier complete output of
    the same ``command`` only then; on any failure (Ctrl-C included) remove it, leaving ``out``
    as it was. Temporary folders of dead processes beside ``out`` are removed first.

    ``out`` may be missing, empty, or an earlier output of ``command``: a folder holding its
    marker file, or (written before the marker existed) only names matching ``legacy`` glob
    patterns. Any other folder is refused, so that no folder of the user's is ever replaced."""
    out = Path(out)
    check_output_folder(out, command, legacy)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_folders(out.parent)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        (tmp / OUTPUT_MARKER).write_text(json.dumps({"command": command}) + "\n")
        yield tmp
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_folder(out: Path, command: str, legacy: tuple[str, ...] = ()) -> Path:
    """Raise ``ConfigError`` unless ``output_folder(out, command)`` can write and later
    replace ``out`` (see there)."""
    what = f"{command} --out"
    out = Path(out)
    check_folder_target(out, what)
    _check_creatable(out.parent, out, what)  # the temporary folder goes beside it
    if out.is_dir() and not _is_output_of(out, command, legacy):
        raise ConfigError(f"{what} '{out}' is a folder that `unlearnlab {command}` did not "
                          "write; name a new or empty folder (its content would be replaced)")
    return out


def _is_output_of(folder: Path, command: str, legacy: tuple[str, ...]) -> bool:
    names = [p.name for p in folder.iterdir()]
    if not names:
        return True
    if OUTPUT_MARKER in names:
        try:
            return json.loads((folder / OUTPUT_MARKER).read_text()).get("command") == command
        except (OSError, ValueError, AttributeError):
            return False
    return bool(legacy) and all(any(Path(n).match(p) for p in legacy) for n in names)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is first renamed aside and removed after.
    Ctrl-C is held back between the two renames, so ``out`` is never left missing."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_folders(parent: Path) -> list[Path]:
    """Remove the temporary output folders in ``parent`` left by killed processes (their pid
    is gone): ``.<name>.tmp-<pid>`` is deleted; ``.<name>.old-<pid>`` (an earlier output
    renamed aside while its replacement moved in) is deleted, or renamed back to ``<name>``
    when the replacement never arrived."""
    removed = []
    for folder in Path(parent).glob(".*.*-*"):
        stem, _, pid = folder.name.rpartition("-")
        name, dot, kind = stem[1:].rpartition(".")
        if not (dot and kind in ("tmp", "old") and pid.isdigit() and folder.is_dir()):
            continue
        if _pid_alive(int(pid)):
            continue
        target = folder.with_name(name)
        if kind == "old" and not target.exists():
            os.rename(folder, target)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


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
