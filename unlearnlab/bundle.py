"""The reproducibility bundle of one run, and ``rescore``.

A bundle is a folder holding ``record.json`` (the run's JSON record: resolved config, seeds,
library versions, device, the hash of its split indices, every metric) and ``outputs.npz``
(per-sample logits of the original, retrained, unlearned and untrained models on the probe sets:
the forget samples of train and test and the MIA shadow samples, with their labels and row
positions). Every forget-set metric of ``metrics.METRICS`` is a function of ``outputs.npz``, so
``rescore`` recomputes them without the models and reports any difference from the record.
``record.json`` is written last: a folder without it is an incomplete bundle, which ``rescore``
reports like any damaged one (one line) without writing anything into it.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import BundleError, ConfigError
from .metrics import ALL_ROLES, PROBE_SETS, Outputs, forget_metrics, select_metrics
from .outputs import atomic_path, write_json
from .verdict import GAP_KEYS, avg_gap

RECORD, OUTPUTS = "record.json", "outputs.npz"
RERUN = "run it again to rewrite the bundle"


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
    """The record and outputs of a bundle folder, checked whole before anything is returned:
    ``BundleError`` (one line naming the bundle, the problem and the fix) for a missing,
    truncated or invalid file, a record without the keys ``rescore`` reads, or outputs with
    pickled (object) arrays, missing or ill-shaped arrays."""
    folder = Path(folder)
    missing = [name for name in (RECORD, OUTPUTS) if not (folder / name).is_file()]
    if missing:
        raise _damaged(folder, f"not a complete run bundle ({' and '.join(missing)} missing)",
                       "pass a folder written by `unlearnlab run` or `compare`, or run it again")
    record = _load_record(folder)
    return record, _load_outputs(folder, record)


def _damaged(folder: Path, problem: str, fix: str = RERUN) -> BundleError:
    return BundleError(f"bundle '{folder}': {problem}; {fix}")


def read_record(folder: Path) -> dict:
    """A bundle's ``record.json`` as a dict (``BundleError`` when unreadable or not an
    object)."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except OSError as exc:
        raise _damaged(folder, f"{RECORD} cannot be read ({exc.strerror or exc})",
                       "check its permissions") from exc
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8 and over-long integer errors
        raise _damaged(folder, f"{RECORD} is not valid JSON ({_first_line(exc)})") from exc
    if not isinstance(record, dict):
        raise _damaged(folder, f"{RECORD} holds a {type(record).__name__}, not a record")
    return record


def _load_record(folder: Path) -> dict:
    record = read_record(folder)
    models = record.get("models")
    if not isinstance(models, dict) or not all(isinstance(models.get(m), dict)
                                               for m in ("original", "retrained")):
        raise _damaged(folder, f"{RECORD} lacks the evaluations 'models.original' and "
                       "'models.retrained'")
    for model, values in models.items():
        if values is None:
            continue
        if not isinstance(values, dict):
            raise _damaged(folder, f"{RECORD}: 'models.{model}' is not an object")
        for key in GAP_KEYS:
            if not _number_or_none(values.get(key)):
                raise _damaged(folder, f"{RECORD}: 'models.{model}.{key}' is not a number")
    run_config = record.get("run_config", {})
    if not isinstance(run_config, dict):
        raise _damaged(folder, f"{RECORD}: 'run_config' is not an object")
    metrics = run_config.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise _damaged(folder, f"{RECORD}: 'run_config.metrics' is not a list of names")
        try:
            select_metrics(metrics)
        except ConfigError as exc:
            raise _damaged(folder, f"{RECORD}: {exc}", "rescore it with the unlearnlab "
                           "version that wrote it") from exc
    if not _number_or_none(record.get("avg_gap")):
        raise _damaged(folder, f"{RECORD}: 'avg_gap' is not a number")
    return record


def _load_outputs(folder: Path, record: dict) -> Outputs:
    path = folder / OUTPUTS
    arrays = {}
    try:
        # allow_pickle=False: an object array would unpickle arbitrary code
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise _damaged(folder, f"{OUTPUTS} is a single array, not an .npz archive")
        with data:
            for key in data.files:
                arrays[key] = data[key]
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile,
            zlib.error) as exc:  # what numpy and zipfile raise on damaged archives
        raise _damaged(folder, f"{OUTPUTS} cannot be read ({type(exc).__name__}: "
                       f"{_first_line(exc)})") from exc
    seed = arrays.get("seed")
    if seed is None or seed.shape != () or seed.dtype.kind not in "iu":
        raise _damaged(folder, f"{OUTPUTS} lacks the integer array 'seed'")
    labels = {name: arrays.get(f"labels/{name}") for name in PROBE_SETS}
    for name, y in labels.items():
        if y is None or y.ndim != 1 or y.dtype.kind not in "iu":
            raise _damaged(folder, f"{OUTPUTS} lacks the integer array 'labels/{name}'")
    logits: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        model, _, name = rest.partition("/")
        if kind != "logits":
            continue
        y = labels.get(name)
        if y is None or value.ndim != 2 or value.dtype.kind != "f" or len(value) != len(y) \
                or (len(y) and not 0 <= y.min() <= y.max() < value.shape[1]):
            raise _damaged(folder, f"{OUTPUTS}: '{key}' is not a float array of one row of "
                           f"logits per label of a probe set")
        logits.setdefault(model, {})[name] = torch.from_numpy(value)
    needed = {m for m in ALL_ROLES if record["models"].get(m) is not None}
    if "zrf" in select_metrics(record.get("run_config", {}).get("metrics")):
        needed.add("untrained")
    for model in sorted(needed | logits.keys()):
        absent = [name for name in PROBE_SETS if name not in logits.get(model, {})]
        if absent:
            raise _damaged(folder, f"{OUTPUTS} lacks the array 'logits/{model}/{absent[0]}'")
    return Outputs({k: torch.from_numpy(v) for k, v in labels.items()}, logits, int(seed))


def _number_or_none(value) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def find(root: Path) -> list[Path]:
    """``root`` itself if it holds a bundle file, else every folder below holding
    ``record.json`` or ``outputs.npz``, sorted; ``load`` then reports the incomplete ones.
    A root under which no folder holds ``record.json`` (written last) has no bundle."""
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"'{root}' does not exist: pass a run bundle or a folder of them")
    if (root / RECORD).is_file() or (root / OUTPUTS).is_file():
        return [root]
    found = sorted({p.parent for name in (RECORD, OUTPUTS) for p in root.rglob(name)
                    if p.is_file()})
    if not any((folder / RECORD).is_file() for folder in found):
        unfinished = f" ({len(found)} folder(s) hold only {OUTPUTS}: runs that never finished)"
        raise ConfigError(f"no run bundle under '{root}'{unfinished if found else ''} (a bundle "
                          f"holds {RECORD} and {OUTPUTS}); run `unlearnlab run` or `compare` "
                          "first")
    return found


def rescore(folder: Path) -> dict:
    """Recompute every output-based metric of a bundle and the average gap. Returns
    {"metrics": {model: {key: value}}, "avg_gap": ..., "differences": {"model.key": (recorded,
    recomputed)}} where differences lists every value that does not match the record, and
    writes it to ``rescored.json``. A damaged bundle raises ``BundleError`` (see ``load``)
    before anything is written."""
    from . import ensemble

    if (Path(folder) / ensemble.ARRAYS).exists():
        result = ensemble.rescore_bundle(folder, read_record(Path(folder)))
        write_json(Path(folder) / "rescored.json", result)
        return result
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
    try:
        write_json(Path(folder) / "rescored.json", result)
    except OSError as exc:
        raise _damaged(Path(folder), f"rescored.json cannot be written ({exc.strerror or exc})",
                       "make the folder writable") from exc
    return result


def _same(a, b, tol: float = 1e-12) -> bool:
    """Equal within ``tol``; a recorded value that is not a number never equals a number."""
    if a is None or b is None:
        return a is b
    if not (_number_or_none(a) and _number_or_none(b)):
        return a == b
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
