"""The ``tuned`` preset: the best trial of ``unlearnlab tune`` per method and dataset, read from
``<data root>/presets/tuned.json`` first, then from the presets shipped with the package. The
``auto`` preset (``unlearnlab.auto_preset``) takes that entry when it was tuned on the run's
scenario, and otherwise searches before the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import data_root
from ..errors import ConfigError
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


def lookup_tuned(method: str, dataset: str, data_dir=None) -> tuple[Path, dict] | None:
    """The first tuned-preset file (``tuned_files``) with an entry for ``method`` on
    ``dataset``, and that entry; None when no file has one (a malformed file or entry is a
    ``ConfigError``)."""
    for path in tuned_files(data_dir):
        by_dataset = read_tuned(path).get(method)
        if by_dataset is not None and not isinstance(by_dataset, dict):
            raise ConfigError(f"tuned presets '{path}': the entry of method '{method}' must be "
                              "an object {dataset: entry}; run `unlearnlab tune` again")
        entry = by_dataset.get(dataset) if by_dataset is not None else None
        if entry is not None:
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                raise ConfigError(f"tuned presets '{path}': entry {method}/{dataset} has no "
                                  "params; run `unlearnlab tune` again")
            return path, entry
    return None


def find_tuned(method: str, dataset: str | None, data_dir=None) -> tuple[Path, dict]:
    """The first tuned-preset file (``tuned_files``) with an entry for ``method`` on
    ``dataset``, and that entry: {"params": ..., "study": ..., "value": ..., ...}."""
    if not dataset:
        raise ConfigError(f"preset '{TUNED}' of method '{method}' is per dataset: name one")
    found = lookup_tuned(method, dataset, data_dir)
    if found is not None:
        return found
    raise ConfigError(f"no tuned preset for method '{method}' on {dataset}: run `unlearnlab tune "
                      f"--method {method} --dataset {dataset} ...` first (looked in "
                      f"{', '.join(str(p) for p in tuned_files(data_dir))})")


def tuned_preset(method: str, dataset: str | None, data_dir=None) -> dict:
    """The entry of ``method`` on ``dataset`` in the first tuned-preset file that has one
    (``tuned_files``): {"params": ..., "study": ..., "value": ..., ...}."""
    return find_tuned(method, dataset, data_dir)[1]


def tuned_params(method_cls: type[UnlearningMethod], dataset: str | None,
                 data_dir=None) -> dict[str, Any]:
    """The params of the tuned entry of ``method_cls`` on ``dataset``, each a parameter of the
    method with its declared type (else a ``ConfigError`` naming the file, method, dataset
    and key)."""
    path, entry = find_tuned(method_cls.name, dataset, data_dir)
    where = f"tuned presets '{path}', entry {method_cls.name}/{dataset}"
    stale = sorted(set(entry["params"]) - set(method_cls.defaults))
    if stale:
        raise ConfigError(f"{where} sets '{stale[0]}', which the method no longer has; run "
                          "`unlearnlab tune` again")
    check_types(method_cls, entry["params"], where)
    return dict(entry["params"])
