"""Reading a saved benchmark (``unlearnlab bench --out DIR``) for its figures.

``load_bench`` reads what the bench wrote (``leaderboard.csv``, ``leaderboard.md``, each
scenario's ``results.csv``, ``kl.json`` and per-(method, seed) records) into plain pandas tables
and dicts; ``load_outputs`` reads one record's bundle (its per-sample logits). Nothing is
recomputed: a notebook or ``unlearnlab figures bench`` loads once and hands the values to the
plot functions of ``figures.bench``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import bundle
from ..bench import leaderboard
from ..compare import FLAGS
from ..data import DIGIT_CLASSES, FASHION_CLASSES
from ..errors import ConfigError
from ..forget import parse_forget
from ..metrics import Outputs
from .style import UNLEARNED

LEADERBOARD_CSV, LEADERBOARD_MD = "leaderboard.csv", "leaderboard.md"


def load_bench(folder: str | Path, *, outputs: bool = False) -> dict:
    """Everything ``unlearnlab bench --out folder`` wrote, as plain tables and dicts:

    ``{"dir": Path, "rows": DataFrame (leaderboard.csv: one row per scenario, method, seed),
    "markdown": str | None (leaderboard.md), "scenarios": {name: scenario}}``, the scenarios in
    leaderboard order, each ``{"dataset", "forget", "feature" (bool: part of a class),
    "classes" (class names), "rows" (results.csv, baselines included, or None), "kl" (kl.json or
    None), "records": {method: [record, ...] by seed}}``. With ``outputs``, each scenario also
    gets ``"outputs": {method: {seed: Outputs}}`` from the records' bundles (all of them: this
    reads every ``outputs.npz``; ``load_outputs`` reads one).
    """
    folder = Path(folder)
    csv = folder / LEADERBOARD_CSV
    if not csv.is_file():
        raise ConfigError(f"'{folder}' holds no {LEADERBOARD_CSV}: pass the --out folder of a "
                          "finished `unlearnlab bench` run")
    rows = pd.read_csv(csv)
    if "z_gap" not in rows:
        raise ConfigError(f"'{csv}' has no z_gap column: it was written before the verdicts in "
                          "sigma; run `unlearnlab bench` again")
    markdown = folder / LEADERBOARD_MD
    bench = {"dir": folder, "rows": rows,
             "markdown": markdown.read_text() if markdown.is_file() else None, "scenarios": {}}
    for name in dict.fromkeys(rows["scenario"]):
        scenario = _load_scenario(folder / name)
        if outputs:
            scenario["outputs"] = {method: {r["seed"]: load_outputs(r) for r in records
                                            if r.get("bundle")}
                                   for method, records in scenario["records"].items()}
        bench["scenarios"][name] = scenario
    return bench


def _load_scenario(folder: Path) -> dict:
    if not folder.is_dir():
        raise ConfigError(f"the leaderboard names scenario '{folder.name}' but '{folder}' is "
                          "missing: copy the whole bench folder")
    records: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*_seed*.json")):
        record = json.loads(path.read_text())
        records.setdefault(record["method"], []).append(record)
    if not records:
        raise ConfigError(f"'{folder}' holds no <method>_seed<s>.json record")
    for method in records:
        records[method].sort(key=lambda r: r["seed"])
    first = next(iter(records.values()))[0]
    results, kl = folder / "results.csv", folder / "kl.json"
    return {"dataset": first["dataset"], "forget": first["forget"],
            "feature": parse_forget(first["forget"]).is_feature,
            "classes": FASHION_CLASSES if first["dataset"] == "fashion_mnist" else DIGIT_CLASSES,
            "rows": pd.read_csv(results) if results.is_file() else None,
            "kl": json.loads(kl.read_text()) if kl.is_file() else None, "records": records}


def load_outputs(record: Mapping) -> Outputs:
    """The per-sample logits and labels of one run, from the bundle its record names."""
    path = record.get("bundle")
    if not path:
        raise ConfigError(f"the record of {record.get('method')} (seed {record.get('seed')}) "
                          "names no bundle: it predates bundles or its run diverged")
    return bundle.load(Path(path))[1]


def ranked_methods(bench: Mapping, scenario: str | None = None) -> list[str]:
    """Method names by their avg |z| to the retrained ensemble (best first; ``method_order``),
    over every scenario or in one; methods with a diverged run come last."""
    rows = bench["rows"]
    if scenario is not None:
        rows = rows[rows["scenario"] == scenario]
    return method_order(rows)


def pick_run(bench: Mapping, scenario: str, method: str | None = None,
             seed: int | None = None) -> dict:
    """The record of one run of ``scenario``: ``method`` (default: the best-ranked method
    there with a run that did not diverge) at ``seed`` (default: its first such seed)."""
    if scenario not in bench["scenarios"]:
        raise ConfigError(f"no scenario '{scenario}' in the bench; have "
                          f"{', '.join(bench['scenarios'])}")
    records = bench["scenarios"][scenario]["records"]
    candidates = [method] if method is not None else ranked_methods(bench, scenario)
    for name in candidates:
        if name not in records:
            raise ConfigError(f"no run of '{name}' in scenario '{scenario}'; have "
                              f"{', '.join(records)}")
        runs = [r for r in records[name] if r["models"].get(UNLEARNED) is not None
                and (seed is None or r["seed"] == seed)]
        if runs:
            return runs[0]
    which = "any method" if method is None else f"'{method}'"
    raise ConfigError(f"scenario '{scenario}' has no finished run of {which}"
                      + ("" if seed is None else f" at seed {seed}"))


def loss_mia_scores(record: Mapping) -> dict[str, float | None]:
    """The loss-MIA accuracy of each model of a record (for ``plot_mia_distributions``)."""
    return {model: (values or {}).get("mia_loss") for model, values in record["models"].items()}


def feature_scenarios(bench: Mapping) -> list[str]:
    """The scenarios that forget part of a class (the thesis's feature forgetting)."""
    return [name for name, s in bench["scenarios"].items() if s["feature"]]


def method_order(rows: pd.DataFrame) -> list[str]:
    """The leaderboard's ranking (``bench.leaderboard``): avg |z| (mean over seeds per
    scenario, then over scenarios), ties by the gap in points; a method with a diverged run
    ranks last. ``rows`` without a speed-up or a flag column count as unknown speed-up and
    never flagged."""
    defaults = {"speedup": np.nan, **dict.fromkeys(FLAGS, False)}
    rows = rows.assign(**{c: v for c, v in defaults.items() if c not in rows})
    return list(leaderboard(rows).index)

