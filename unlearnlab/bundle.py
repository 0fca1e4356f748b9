"""The reproducibility bundle of one run, and ``rescore``.

A bundle is a folder holding ``record.json`` (the run's JSON record: resolved config, seeds,
library versions, device, the hash of its split indices, every metric) and ``outputs.npz``
(per-sample logits of the original, retrained, unlearned and random models on the probe sets:
the forget samples of train and test and the MIA shadow samples, with their labels and row
positions). Every forget-set metric of ``metrics.METRICS`` is a function of ``outputs.npz``, so
``rescore`` recomputes them without the models and reports any difference from the record.
``record.json`` is written last: a folder without it is incomplete and never read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError
from .metrics import GAP_KEYS, Outputs, avg_gap, forget_metrics
from .store import atomic_path, write_json

RECORD, OUTPUTS = "record.json", "outputs.npz"


def write(folder: Path, record: dict, outputs: Outputs,
          probe: dict[str, tuple[str, torch.Tensor]]) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"seed": np.array(outputs.seed)}
    for name, (split, rows) in probe.items():
        arrays[f"rows/{split}/{name}"] = rows.numpy()
        arrays[f"labels/{name}"] = outputs.labels[name].numpy()
    for model, sets in outputs.logits.items():
        for name, logits in sets.items():
            arrays[f"logits/{model}/{name}"] = logits.numpy()
    with atomic_path(folder / OUTPUTS) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    write_json(folder / RECORD, record)


def load(folder: Path) -> tuple[dict, Outputs]:
    """The record and outputs of a bundle folder."""
    folder = Path(folder)
    if not (folder / RECORD).is_file() or not (folder / OUTPUTS).is_file():
        raise ConfigError(f"'{folder}' is not a complete run bundle (needs {RECORD} and "
                          f"{OUTPUTS}); pass a folder written by `unlearnlab run` or `compare`")
    record = json.loads((folder / RECORD).read_text())
    labels, logits = {}, {}
    with np.load(folder / OUTPUTS) as data:
        seed = int(data["seed"])
        for key in data.files:
            kind, *rest = key.split("/")
            if kind == "labels":
                labels[rest[0]] = torch.from_numpy(data[key])
            elif kind == "logits":
                logits.setdefault(rest[0], {})[rest[1]] = torch.from_numpy(data[key])
    return record, Outputs(labels, logits, seed)


def find(root: Path) -> list[Path]:
    """``root`` itself if it is a bundle, else every bundle below it, sorted."""
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"'{root}' does not exist: pass a run bundle or a folder of them")
    if (root / RECORD).is_file() and (root / OUTPUTS).is_file():
        return [root]
    found = sorted(p.parent for p in root.rglob(OUTPUTS) if (p.parent / RECORD).is_file())
    if not found:
        raise ConfigError(f"no run bundle under '{root}' (a bundle holds {RECORD} and "
                          f"{OUTPUTS}); run `unlearnlab run` or `compare` first")
    return found


def rescore(folder: Path) -> dict:
    """Recompute every output-based metric of a bundle and the average gap. Returns
    {"metrics": {model: {key: value}}, "avg_gap": ..., "differences": {"model.key": (recorded,
    recomputed)}} where differences lists every value that does not match the record."""
    record, outputs = load(folder)
    metric_names = record.get("run_config", {}).get("metrics")
    recomputed = forget_metrics(outputs, metric_names)
    differences = {}
    for model, values in recomputed.items():
        stored = record["models"].get(model) or {}
        for key, value in values.items():
            if not _same(stored.get(key), value):
                differences[f"{model}.{key}"] = (stored.get(key), value)
    gap = None
    if record["models"].get("unlearned") is not None:
        merged = {model: {**(record["models"][model] or {}), **values}
                  for model, values in recomputed.items()}
        gap = avg_gap({k: merged["unlearned"].get(k) for k in GAP_KEYS},
                      {k: merged["retrained"].get(k) for k in GAP_KEYS})
        if not _same(record.get("avg_gap"), gap):
            differences["avg_gap"] = (record.get("avg_gap"), gap)
    result = {"bundle": str(folder), "metrics": recomputed, "avg_gap": gap,
              "differences": differences}
    write_json(Path(folder) / "rescored.json", result)
    return result


def _same(a, b, tol: float = 1e-12) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
