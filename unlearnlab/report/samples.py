"""The per-sample outputs a study folder keeps for its report: seed 0's probe-set logits.

``compare`` (and so ``bench``) writes, into ``<out>/samples_seed0/``, ``baselines.npz`` (the
untrained, original and retrained models' logits on the probe sets, with each set's rows and
labels) and one ``<method>.npz`` per method that did not diverge (its unlearned model's
logits on the same sets). The four roles of a run bundle (``bundle.py``'s ``outputs.npz``)
are thus kept once per scenario rather than once per method. Logits are stored as float16
(the report shows predictions, confidences and loss histograms, which float16's three
significant digits keep); an array with a value beyond float16's range stays float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import BundleError
from ..outputs import atomic_path

FOLDER = "samples_seed0"
BASELINES = "baselines.npz"
BASELINE_ROLES = ("untrained", "original", "retrained")
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _compact(logits: torch.Tensor) -> np.ndarray:
    values = logits.detach().cpu().numpy()
    if values.size and np.abs(values).max() > FLOAT16_MAX:
        return values.astype(np.float32)  # float16 would turn these into inf
    return values.astype(np.float16)


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def write_baselines(out: Path, probe: dict[str, tuple[str, torch.Tensor]],
                    labels: dict[str, torch.Tensor],
                    logits: dict[str, dict[str, torch.Tensor]]) -> None:
    """``baselines.npz``: ``rows/<split>/<set>`` (positions in the scenario's split, as in a
    run bundle), ``labels/<set>`` and ``logits/<role>/<set>`` of ``BASELINE_ROLES``."""
    arrays: dict[str, np.ndarray] = {}
    for name, (split, rows) in probe.items():
        arrays[f"rows/{split}/{name}"] = rows.numpy()
        arrays[f"labels/{name}"] = labels[name].numpy()
    for role in BASELINE_ROLES:
        for name, values in logits[role].items():
            arrays[f"logits/{role}/{name}"] = _compact(values)
    _save(Path(out) / FOLDER / BASELINES, arrays)


def write_method(out: Path, method: str, logits: dict[str, torch.Tensor]) -> None:
    """``<method>.npz``: ``logits/unlearned/<set>`` of one method's unlearned model."""
    _save(Path(out) / FOLDER / f"{method}.npz",
          {f"logits/unlearned/{name}": _compact(values) for name, values in logits.items()})


@dataclass
class Samples:
    """Seed 0's per-sample outputs of one method: ``rows[set]`` (split, positions),
    ``labels[set]`` and ``logits[role][set]`` (float32) for the original, retrained and
    unlearned models."""

    rows: dict[str, tuple[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    logits: dict[str, dict[str, np.ndarray]]


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise BundleError(f"'{path}' cannot be read ({type(exc).__name__}); run the study "
                          "again to rewrite its per-sample files") from exc


def available(folder: Path) -> set[str]:
    """The methods of a study folder with a per-sample file (none without ``baselines.npz``)."""
    base = Path(folder) / FOLDER
    if not (base / BASELINES).is_file():
        return set()
    return {p.stem for p in base.glob("*.npz") if p.name != BASELINES}


def load(folder: Path, method: str) -> Samples:
    """The per-sample outputs of ``method`` in the study ``folder`` (``BundleError``, one line,
    when a file is unreadable or lacks an array)."""
    base = Path(folder) / FOLDER
    arrays = {**_read(base / BASELINES), **_read(base / f"{method}.npz")}
    rows, labels = {}, {}
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        if kind == "rows":
            split, _, name = rest.partition("/")
            rows[name] = (split, value.astype(np.int64))
        elif kind == "labels":
            labels[rest] = value.astype(np.int64)
    logits: dict[str, dict[str, np.ndarray]] = {}
    for role in ("original", "retrained", "unlearned"):
        for name in rows:
            key = f"logits/{role}/{name}"
            if key not in arrays or len(arrays[key]) != len(rows[name][1]):
                raise BundleError(f"'{base}': the array '{key}' is missing or has the wrong "
                                  "length; run the study again to rewrite its per-sample files")
            logits.setdefault(role, {})[name] = arrays[key].astype(np.float32)
    return Samples(rows, labels, logits)
