"""The ``tuned`` preset: the best trial of ``unlearnlab tune`` per method and scenario or
dataset, read from ``<data root>/presets/tuned.json`` first, then from the presets shipped with
the package. The ``auto`` preset (``unlearnlab.auto_preset``) takes that entry when it was tuned
on the run's scenario, and otherwise searches before the run.

A file is {method: {key: entry}}. A key is either a dataset (``mnist``: the dataset-level entry,
which ``unlearnlab tune`` writes and which serves every scenario of the dataset) or a scenario
(``scenario_key``: ``mnist|class:6|mlp``, written by every study, ``unlearnlab tune-all``'s
only). A run looks up its scenario's key first, in every file, then its dataset's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import data_root
from ..errors import ConfigError
from ..forget import parse_forget
from .params import check_types

if TYPE_CHECKING:
    from .base import UnlearningMethod

TUNED = "tuned"
AUTO = "auto"
TUNED_FILE = Path("presets") / "tuned.json"
SHIPPED_TUNED = Path(__file__).with_name("tuned_presets.json")



def tuned_files(data_dir=None) -> list[Path]:
    """Where ``--preset tuned`` looks, first match wins: ``<data root>/presets/tuned.json``
    (written by ``unlearnlab tune``), then the package's shipped ``tuned_presets.json``."""
    return [data_root(data_dir) / TUNED_FILE, SHIPPED_TUNED]


def scenario_key(dataset: str, forget: str, arch: str) -> str:
    """The key of a scenario's tuned entry: ``<dataset>|<canonical forget spec>|<arch>``
    (``random:0.10`` and ``random:0.1`` name one scenario; the architecture is part of it, as
    MNIST class 6 runs on the MLP in the leaderboard and on the CNN by default)."""
    return f"{dataset}|{parse_forget(forget)}|{arch}"


def read_tuned(path: Path) -> dict:
    """A tuned-preset file, {method: {dataset: entry}}; {} when it does not exist."""
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # e.g. a 5000-digit int
        raise ConfigError(f"tuned presets '{path}' are not valid JSON ({exc}); the file holds "
                          "every method's tuned presets: repair it, or move it aside and run "
                          "`unlearnlab tune` again") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"tuned presets '{path}' must hold a JSON object {{method: {{dataset: "
                          f"entry}}}}, not a {type(content).__name__}; the file holds every "
                          "method's tuned presets: repair it, or move it aside")
    return content


def lookup_keys(dataset: str, forget: str | None = None, arch: str | None = None) -> list[str]:
    """The keys a run looks up, most specific first: its scenario's (``scenario_key``, when
    ``forget`` and ``arch`` are known), then its dataset's."""
    return ([scenario_key(dataset, forget, arch)] if forget and arch else []) + [dataset]


def find_entry(method: str, dataset: str, data_dir=None, forget: str | None = None,
               arch: str | None = None) -> tuple[Path, str, dict] | None:
    """(file, key, entry) of the first tuned entry of ``method`` for the run's scenario, else
    its dataset (``lookup_keys``; for each key the files of ``tuned_files`` in order); None
    when no file has one (a malformed file or entry is a ``ConfigError``)."""
    contents = []
    for path in tuned_files(data_dir):
        by_key = read_tuned(path).get(method)
        if by_key is not None and not isinstance(by_key, dict):
            raise ConfigError(f"tuned presets '{path}': the entry of method '{method}' must be "
                              "an object {dataset: entry}; run `unlearnlab tune` again")
        contents.append((path, by_key or {}))
    for key in lookup_keys(dataset, forget, arch):
        for path, by_key in contents:
            entry = by_key.get(key)
            if entry is not None:
                if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                    raise ConfigError(f"tuned presets '{path}': entry {method}/{key} has no "
                                      "params; run `unlearnlab tune` again")
                return path, key, entry
    return None


def lookup_tuned(method: str, dataset: str, data_dir=None, forget: str | None = None,
                 arch: str | None = None) -> tuple[Path, dict] | None:
    """The first tuned-preset file with an entry for ``method`` on the run's scenario
    (``forget``, ``arch``), else on ``dataset`` (``find_entry``), and that entry; None when no
    file has one."""
    found = find_entry(method, dataset, data_dir, forget, arch)
    return None if found is None else (found[0], found[2])


def find_tuned(method: str, dataset: str | None, data_dir=None, forget: str | None = None,
               arch: str | None = None) -> tuple[Path, str, dict]:
    """(file, key, entry) of the tuned entry of ``method`` for the run's scenario, else its
    ``dataset`` (``find_entry``): entry {"params": ..., "study": ..., "value": ..., ...}."""
    if not dataset:
        raise ConfigError(f"preset '{TUNED}' of method '{method}' is per dataset: name one")
    found = find_entry(method, dataset, data_dir, forget, arch)
    if found is not None:
        return found
    raise ConfigError(f"no tuned preset for method '{method}' on {dataset}: run `unlearnlab tune "
                      f"--method {method} --dataset {dataset} ...` first (looked in "
                      f"{', '.join(str(p) for p in tuned_files(data_dir))})")


def tuned_preset(method: str, dataset: str | None, data_dir=None, forget: str | None = None,
                 arch: str | None = None) -> dict:
    """The tuned entry of ``method`` for the run's scenario, else its ``dataset``, in the first
    tuned-preset file that has one (``find_tuned``): {"params": ..., "study": ..., ...}."""
    return find_tuned(method, dataset, data_dir, forget, arch)[2]


def tuned_params(method_cls: type[UnlearningMethod], dataset: str | None,
                 data_dir=None, forget: str | None = None,
                 arch: str | None = None) -> dict[str, Any]:
    """The params of the tuned entry of ``method_cls`` for the run's scenario (``forget``,
    ``arch``), else its ``dataset`` (``find_tuned``), each a parameter of the method with its
    declared type (else a ``ConfigError`` naming the file, method, key and parameter)."""
    path, key, entry = find_tuned(method_cls.name, dataset, data_dir, forget, arch)
    where = f"tuned presets '{path}', entry {method_cls.name}/{key}"
    stale = sorted(set(entry["params"]) - set(method_cls.defaults))
    if stale:
        raise ConfigError(f"{where} sets '{stale[0]}', which the method no longer has; run "
                          "`unlearnlab tune` again")
    check_types(method_cls, entry["params"], where)
    return dict(entry["params"])
