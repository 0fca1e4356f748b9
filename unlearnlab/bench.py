"""The leaderboard: every method on the standard scenarios over N seeds, each judged against
the retrained ensemble of its scenario (``compare``), ranked by average gap to retrain."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from .compare import (
    BASELINES,
    FLAGS,
    check_inputs,
    check_out_not_data,
    check_scenario,
    run_comparison,
)
from .config import RunConfig
from .errors import ConfigError
from .forget import parse_forget
from .methods import get_method, list_methods
from .outputs import atomic_path, output_folder

# Class forgetting (seed A's scenario), the thesis's three feature subsets and random
# forgetting of 10 % of MNIST and Fashion-MNIST, with the short names the leaderboard uses. Each
# scenario names its architecture (None: the dataset's default). Class and random forgetting
# run on the MLP here, not on seed A's CNN: evaluating ~270 models on all 70,000 MNIST images
# is 20x cheaper with it on a CPU.
STANDARD_SCENARIOS = (("mnist", "class:6", "mlp"),
                      ("mnist", "rest:mnist_sevens_with_crossbar", None),
                      ("fashion_mnist", "subset:fashion_mnist_heeled_sandals", None),
                      ("cmnist", "subset:mnist_sevens_with_crossbar", None),
                      ("mnist", "random:0.1", "mlp"),
                      ("fashion_mnist", "random:0.1", "mlp"))
SHORT_NAMES = {("mnist", "class:6"): "mnist-six",
               ("mnist", "rest:mnist_sevens_with_crossbar"): "mnist-plain-sevens",
               ("fashion_mnist", "subset:fashion_mnist_heeled_sandals"): "fashion-heeled-sandals",
               ("cmnist", "subset:mnist_sevens_with_crossbar"): "cmnist-crossed-sevens",
               ("mnist", "random:0.1"): "mnist-random-10",
               ("fashion_mnist", "random:0.1"): "fashion-random-10"}


def scenario_name(dataset: str, forget: str) -> str:
    """The leaderboard's name of a scenario: its short name, else ``<dataset>-<spec>`` with the
    spec written canonically and ':' as '-' (``mnist`` and ``random:0.10:0`` give
    ``mnist-random-0.1``)."""
    canonical = str(parse_forget(forget))
    return SHORT_NAMES.get((dataset, forget)) or f"{dataset}-{canonical.replace(':', '-')}"


# What an output folder of ``bench`` held before it carried ``outputs.OUTPUT_MARKER`` (see
# ``compare.OUTPUT_NAMES``): the leaderboard and one folder per scenario.
OUTPUT_NAMES = ("leaderboard.md", "leaderboard.csv", ".*.tmp", "mnist-*", "fashion-*",
                "cmnist-*", "fashion_mnist-*", "digits-*")


def bench(cfg: RunConfig, methods: list[str] | None = None, seeds: int = 5,
          out: Path | None = None,
          scenarios: tuple[tuple[str, str, str | None], ...] = STANDARD_SCENARIOS
          ) -> pd.DataFrame:
    """Run ``compare`` for every scenario (writing each under ``out/<scenario>``) with the
    methods (registry keys or ``module:Class``) meant for its kind
    (``UnlearningMethod.scenarios``) and return one row per
    (scenario, method, seed) with the gap to the retrained ensemble, speed-up and flags; with
    ``out``, also write ``leaderboard.md`` and ``leaderboard.csv``.

    Every scenario and its methods are checked (as in ``compare``) before the first model is
    trained, and ``out`` is written whole or not at all (``outputs.output_folder``)."""
    if methods is None or (isinstance(methods, list | tuple) and not methods):
        methods = list_methods()
    check_inputs(cfg, methods, seeds, out, "default")
    if not isinstance(scenarios, list | tuple) or not scenarios or not all(
            isinstance(s, list | tuple) and len(s) == 3 for s in scenarios):
        raise ConfigError("scenarios must be a non-empty list of (dataset, forget, arch) "
                          f"triples, got {scenarios!r}")
    plan = []
    for dataset, forget, arch in scenarios:
        kind = parse_forget(forget).scenario
        chosen = [m for m in methods if kind in get_method(m).scenarios]
        if chosen:
            scenario = replace(cfg, dataset=dataset, forget=forget, method=chosen[0], arch=arch)
            plan.append((scenario_name(dataset, forget), scenario, chosen))
    if not plan:
        raise ConfigError("no method is meant for any of the scenarios; add methods")
    if out is None:
        return _bench(plan, seeds, None, cfg.quick)
    check_out_not_data(Path(out), cfg.data_dir, "bench")
    with output_folder(Path(out), "bench", OUTPUT_NAMES) as folder:
        return _bench(plan, seeds, folder, cfg.quick)


def _bench(plan: list, seeds: int, out: Path | None, quick: bool) -> pd.DataFrame:
    """``bench``'s work: every scenario checked first, then compared; writes into ``out``."""
    firsts = [check_scenario(scenario, chosen, "default") for _, scenario, chosen in plan]
    frames = []
    for (name, scenario, chosen), first in zip(plan, firsts, strict=True):
        comparison = run_comparison(scenario, chosen, seeds,
                                    None if out is None else Path(out) / name, "default", first)
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
            tmp.write_text(leaderboard_markdown(rows, seeds, quick))
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
