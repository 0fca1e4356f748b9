"""The leaderboard: every method on the standard scenarios over N seeds, each judged against
the retrained ensemble of its scenario (``compare``), ranked by average gap to retrain."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from .compare import BASELINES, FLAGS, compare
from .config import RunConfig
from .forget import parse_forget
from .methods import get_method, list_methods
from .store import atomic_path

# Class forgetting (seed A's scenario) and the thesis's three feature subsets, with the
# short names the leaderboard uses. Each scenario names its architecture (None: the dataset's
# default). Class forgetting runs on the MLP here, not on seed A's CNN: evaluating ~270 models
# on all 70,000 MNIST images is 20x cheaper with it on a CPU.
STANDARD_SCENARIOS = (("mnist", "class:6", "mlp"),
                      ("mnist", "rest:mnist_sevens_with_crossbar", None),
                      ("fashion_mnist", "subset:fashion_mnist_heeled_sandals", None),
                      ("cmnist", "subset:mnist_sevens_with_crossbar", None))
SHORT_NAMES = {("mnist", "class:6"): "mnist-six",
               ("mnist", "rest:mnist_sevens_with_crossbar"): "mnist-plain-sevens",
               ("fashion_mnist", "subset:fashion_mnist_heeled_sandals"): "fashion-heeled-sandals",
               ("cmnist", "subset:mnist_sevens_with_crossbar"): "cmnist-crossed-sevens"}


def scenario_name(dataset: str, forget: str) -> str:
    """The leaderboard's name of a scenario: its short name, else ``<dataset>-<spec>`` with the
    spec written canonically and ':' as '-' (``mnist`` and ``random:0.10:0`` give
    ``mnist-random-0.1``)."""
    canonical = str(parse_forget(forget))
    return SHORT_NAMES.get((dataset, forget)) or f"{dataset}-{canonical.replace(':', '-')}"


def bench(cfg: RunConfig, methods: list[str] | None = None, seeds: int = 5,
          out: Path | None = None,
          scenarios: tuple[tuple[str, str, str | None], ...] = STANDARD_SCENARIOS
          ) -> pd.DataFrame:
    """Run ``compare`` for every scenario (writing each under ``out/<scenario>``) with the
    methods (registry keys or ``module:Class``) meant for its kind
    (``UnlearningMethod.scenarios``) and return one row per
    (scenario, method, seed) with the gap to the retrained ensemble, speed-up and flags; with
    ``out``, also write ``leaderboard.md`` and ``leaderboard.csv``."""
    methods = methods or list_methods()
    frames = []
    for dataset, forget, arch in scenarios:
        name = scenario_name(dataset, forget)
        kind = parse_forget(forget).scenario
        chosen = [m for m in methods if kind in get_method(m).scenarios]
        if not chosen:
            continue
        scenario = replace(cfg, dataset=dataset, forget=forget, method=chosen[0], arch=arch)
        comparison = compare(scenario, chosen, seeds, None if out is None else Path(out) / name)
        rows = comparison.rows[~comparison.rows["model"].isin(BASELINES)]
        rows = rows.rename(columns={"model": "method"})
        rows.insert(0, "scenario", name)
        rows["speedup"] = rows["retrain_seconds"] / rows["seconds"]
        frames.append(rows)
    rows = pd.concat(frames, ignore_index=True)
    if out is not None:
        with atomic_path(Path(out) / "leaderboard.csv") as tmp:
            rows.to_csv(tmp, index=False)
        with atomic_path(Path(out) / "leaderboard.md") as tmp:
            tmp.write_text(leaderboard_markdown(rows, seeds, cfg.quick))
    return rows


def leaderboard(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: average gap (mean over seeds, then over scenarios) overall and per
    scenario, median speed-up and the number of flagged runs; sorted by the overall gap.
    A method that diverged on any run ranks last (its gap there is undefined)."""
    methods, scenarios = rows["method"].unique(), rows["scenario"].unique()
    gap = (rows.groupby(["method", "scenario"])["avg_gap"].mean().unstack()
           .reindex(index=methods, columns=scenarios))
    table = pd.DataFrame(index=methods)
    table["avg_gap"] = gap.mean(axis=1)
    for scenario in gap.columns:
        table[scenario] = gap[scenario]
    grouped = rows.groupby("method", sort=False)
    table["speedup"] = grouped["speedup"].median()
    for flag in FLAGS:
        table[flag] = grouped[flag].sum().astype(int)
    table["runs"] = grouped.size()
    table.loc[table["diverged"] > 0, "avg_gap"] = float("inf")
    return table.sort_values(["avg_gap", "speedup"], ascending=[True, False])


def leaderboard_markdown(rows: pd.DataFrame, seeds: int, quick: bool) -> str:
    table = leaderboard(rows)
    scenarios = [c for c in table.columns if c in set(rows["scenario"])]
    head = ["rank", "method", "avg gap (pts)", *scenarios, "speed-up ×", "flagged runs"]
    mode = " · quick mode" if quick else ""
    lines = [f"Average gap to the retrained ensemble, in accuracy/MIA points (mean over "
             f"{seeds} seeds, then over the scenarios a method is meant for; lower is better; "
             f"n/a: not meant for that scenario){mode}.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, (method, row) in enumerate(table.iterrows(), 1):
        flags = ", ".join(f"{f.replace('_', '-')} ×{int(row[f])}" for f in FLAGS if row[f])
        cells = [str(rank), method,
                 "diverged" if row["avg_gap"] == float("inf") else f"{100 * row['avg_gap']:.2f}",
                 *("n/a" if pd.isna(row[s]) else f"{100 * row[s]:.2f}" for s in scenarios),
                 "n/a" if pd.isna(row["speedup"]) else f"{row['speedup']:.1f}", flags]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
