"""What a report shows, read from a study folder: which kind of lab output it is (``compare``,
``bench`` or ``forget-quality``) and its tables, records and optional per-sample files.

Nothing is recomputed but the leaderboard table (``bench.leaderboard``, with its bootstrap
interval from ``ranking``), which a compare folder gets too, from its ``results.csv``, as a
bench of one scenario.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import bundle, ensemble
from ..bench import leaderboard
from ..compare import BASELINES
from ..errors import BundleError, ConfigError
from ..outputs import OUTPUT_MARKER
from . import samples

KINDS = ("compare", "bench", "forget-quality")
EXPECTED = ("a compare folder (results.csv and <method>_seed<k>.json), a bench folder "
            "(leaderboard.csv and one compare folder per scenario) or a forget-quality bundle "
            "(record.json and forget_quality.npz) or a folder of them")


@dataclass
class QualityStudy:
    """One forget-quality bundle: its record, per-example eps and both sides' confidences
    (models x forget samples), and its folder."""

    folder: Path
    record: dict
    epsilons: np.ndarray
    unlearned_confidence: np.ndarray
    retrained_confidence: np.ndarray


@dataclass
class ScenarioStudy:
    """One compare folder: ``rows`` (results.csv: one row per model and seed), ``records``
    (per method, its records by seed), ``samples`` (the methods with a per-sample file) and
    ``quality`` (per method or reference, its forget-quality bundle, in a bench)."""

    name: str
    folder: Path
    rows: pd.DataFrame
    records: dict[str, list[dict]]
    samples: set[str]
    quality: dict[str, QualityStudy] = field(default_factory=dict)

    @property
    def first_record(self) -> dict:
        return next(iter(self.records.values()))[0]

    @property
    def seeds(self) -> int:
        return int((self.rows["model"] == "retrained").sum())


@dataclass
class Study:
    """A study folder: its ``kind``, scenarios (compare: one; bench: each; forget-quality:
    none), ``board`` (``bench.leaderboard`` of its method rows; None for forget-quality) with
    ``runs`` (the method rows it was computed from) and ``quality`` (forget-quality studies
    read directly from the folder)."""

    kind: str
    folder: Path
    scenarios: dict[str, ScenarioStudy]
    board: pd.DataFrame | None
    runs: pd.DataFrame | None
    quality: dict[str, QualityStudy] = field(default_factory=dict)


def detect(folder: Path) -> str:
    """The kind of lab output ``folder`` is, from its marker file or, for folders written
    before the marker, from its files; ``ConfigError`` naming what was expected otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"report: '{folder}' is not a folder; pass {EXPECTED}")
    marker = folder / OUTPUT_MARKER
    if marker.is_file():
        try:
            command = json.loads(marker.read_text()).get("command")
        except (OSError, ValueError, AttributeError):
            command = None
        if command in ("compare", "bench"):
            return command
    if (folder / "leaderboard.csv").is_file():
        return "bench"
    if (folder / "results.csv").is_file() and any(folder.glob("*_seed*.json")):
        return "compare"
    if _quality_folders(folder):
        return "forget-quality"
    raise ConfigError(f"report: '{folder}' is not a lab output; expected {EXPECTED}")


def _quality_folders(folder: Path) -> list[Path]:
    """``folder`` itself when it is a forget-quality bundle, else its sub-folders that are."""
    def is_bundle(path: Path) -> bool:
        return (path / bundle.RECORD).is_file() and (path / ensemble.ARRAYS).is_file()
    if is_bundle(folder):
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and is_bundle(p))


def load_quality(folder: Path) -> QualityStudy:
    record = bundle.read_record(folder)
    if record.get("kind") != "forget_quality":
        raise BundleError(f"bundle '{folder}': {bundle.RECORD} is not a forget-quality record; "
                          "pass a folder written by `unlearnlab forget-quality`")
    try:
        with np.load(folder / ensemble.ARRAYS, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("epsilons", "unlearned_confidence",
                                           "retrained_confidence")}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise BundleError(f"bundle '{folder}': {ensemble.ARRAYS} cannot be read "
                          f"({type(exc).__name__}); run `unlearnlab forget-quality` again"
                          ) from exc
    return QualityStudy(folder, record, **arrays)


def load_scenario(folder: Path, name: str | None = None) -> ScenarioStudy:
    """A compare folder (``ConfigError`` when it lacks results.csv or its records)."""
    results = folder / "results.csv"
    if not results.is_file():
        raise ConfigError(f"report: '{folder}' holds no results.csv; expected {EXPECTED}")
    records: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*_seed*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"report: '{path}' cannot be read as JSON ({type(exc).__name__});"
                              " run the study again") from exc
        record["_file"] = path.name
        records.setdefault(record["method"], []).append(record)
    if not records:
        raise ConfigError(f"report: '{folder}' holds no <method>_seed<k>.json record; "
                          f"expected {EXPECTED}")
    for runs in records.values():
        runs.sort(key=lambda r: r["seed"])
    quality = {}
    if (folder / "forget_quality").is_dir():
        for sub in _quality_folders(folder / "forget_quality"):
            study = load_quality(sub)
            quality[study.record["method"]] = study
    return ScenarioStudy(name or folder.name, folder, pd.read_csv(results), records,
                         samples.available(folder), quality)


def method_rows(scenario: ScenarioStudy) -> pd.DataFrame:
    """The method rows of a compare folder as a bench's rows: ``scenario``, ``method`` and the
    speed-up (retraining seconds over unlearning seconds)."""
    rows = scenario.rows[~scenario.rows["model"].isin(BASELINES)].rename(
        columns={"model": "method"})
    rows.insert(0, "scenario", scenario.name)
    rows["speedup"] = rows["retrain_seconds"] / rows["seconds"]
    return rows


def load(folder: Path) -> Study:
    """The study in ``folder`` (see ``detect``), read whole before anything is drawn."""
    folder = Path(folder)
    kind = detect(folder)
    if kind == "forget-quality":
        studies = [load_quality(p) for p in _quality_folders(folder)]
        return Study(kind, folder, {}, None, None,
                     {s.record["method"]: s for s in studies})
    if kind == "compare":
        scenario = load_scenario(folder)
        first = scenario.first_record
        scenario.name = f"{first['dataset']} · forget {first['forget']}"
        runs = method_rows(scenario)
        scenarios = {scenario.name: scenario}
    else:
        csv = folder / "leaderboard.csv"
        if not csv.is_file():
            raise ConfigError(f"report: '{folder}' holds no leaderboard.csv; expected "
                              f"{EXPECTED}")
        runs = pd.read_csv(csv)
        scenarios = {}
        for name in dict.fromkeys(runs["scenario"]):
            if not (folder / name).is_dir():
                raise ConfigError(f"report: the leaderboard names scenario '{name}' but "
                                  f"'{folder / name}' is missing; copy the whole bench folder")
            scenarios[name] = load_scenario(folder / name, name)
    board = leaderboard(runs) if len(runs) else None
    return Study(kind, folder, scenarios, board, runs)

