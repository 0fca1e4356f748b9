"""Every file and folder the lab writes: atomic writes (readers never see half a file),
strict JSON, output paths checked before any work, and whole output folders or none.
Checkpoints themselves are ``store``'s."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .errors import ConfigError


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
