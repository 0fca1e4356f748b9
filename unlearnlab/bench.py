"""The leaderboard: every method on the standard scenarios over N seeds, each judged against
the retrained ensemble of its scenario (``compare``), ranked by avg |z|: how many of that
ensemble's standard deviations a method lies from retraining (``verdict.avg_abs_z``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from .compare import (
    BASELINES,
    FLAGS,
    Z_GAP_HEADING,
    check_inputs,
    check_out_not_data,
    check_scenario,
    retrained_reference,
    run_comparison,
)
from .config import RunConfig
from .errors import ConfigError
from .forget import parse_forget
from .methods import get_method, list_methods
from .outputs import atomic_path, output_folder

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
    (scenario, method, seed) with its avg |z| (``z_gap``) and z-scores against the retrained
    ensemble, the average gap in points (``avg_gap``), speed-up and flags; with
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


# The columns a leaderboard is computed from (``leaderboard.csv`` of a bench run).
LEADERBOARD_COLUMNS = ("scenario", "method", "z_gap", "avg_gap", "speedup", *FLAGS)


def leaderboard(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: ``z_gap``, the avg |z| (mean over seeds, then over the scenarios the method
    ran on) overall and per scenario (one column per scenario, in sigma), ``avg_gap`` (the
    same means of the gap in points: secondary), median speed-up, the number of runs with
    each flag and of runs. Ranked by ``z_gap``, ties by ``avg_gap``, then by speed-up (higher
    first); a method that diverged on any run ranks last (its ``z_gap`` and ``avg_gap`` are
    set to inf). With one seed every ``z_gap`` is NaN (no spread), so ``avg_gap`` ranks."""
    missing = [c for c in LEADERBOARD_COLUMNS if c not in rows]
    if missing:
        raise ConfigError(f"the leaderboard rows lack the columns {missing}: a leaderboard.csv "
                          "written before the verdicts in sigma; run `unlearnlab bench` again")
    methods, scenarios = rows["method"].unique(), rows["scenario"].unique()

    def per_scenario(column: str) -> pd.DataFrame:
        return (rows.groupby(["method", "scenario"])[column].mean().unstack()
                .reindex(index=methods, columns=scenarios))

    z, gap = per_scenario("z_gap"), per_scenario("avg_gap")
    table = pd.DataFrame(index=methods)
    table["z_gap"] = z.mean(axis=1)
    for scenario in z.columns:
        table[scenario] = z[scenario]
    table["avg_gap"] = gap.mean(axis=1)
    grouped = rows.groupby("method", sort=False)
    table["speedup"] = grouped["speedup"].median()
    for flag in FLAGS:
        table[flag] = grouped[flag].sum().astype(int)
    table["runs"] = grouped.size()
    diverged = table["diverged"] > 0
    table.loc[diverged, ["z_gap", "avg_gap"]] = float("inf")
    order = (table.assign(last=diverged)
             .sort_values(["last", "z_gap", "avg_gap", "speedup"],
                          ascending=[True, True, True, False]).index)
    return table.loc[order]


def leaderboard_markdown(rows: pd.DataFrame, seeds: int, quick: bool) -> str:
    """The leaderboard as a markdown table under a line saying what its numbers are."""
    table = leaderboard(rows)
    scenarios = [c for c in table.columns if c in set(rows["scenario"])]
    head = ["rank", "method", Z_GAP_HEADING, *scenarios, "avg gap (pts)", "speed-up ×",
            "flagged runs"]
    mode = " Quick mode." if quick else ""
    spread = ("" if seeds > 1 else " With one seed the retrained ensemble has no spread: "
              "avg |z| is n/a and the avg gap ranks.")
    reference = f"; {retrained_reference(seeds)}" if seeds > 1 else ""
    lines = [f"Ranked by avg |z|: how many standard deviations of the retrained ensemble a "
             f"method lies from retraining, averaged over the forget and retain accuracies "
             f"(train and test splits) and MIA efficacy (mean over {seeds} seeds, then over "
             f"the scenarios a method is meant for; lower is better{reference}). Scenario "
             f"columns: avg |z| there; avg gap: the same distance in accuracy/MIA points "
             f"(secondary); n/a: not meant for that scenario; flags: docs/leaderboard.md."
             f"{spread}{mode}",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, (method, row) in enumerate(table.iterrows(), 1):
        flags = ", ".join(f"{f.replace('_', '-')} ×{int(row[f])}" for f in FLAGS if row[f])
        cells = [str(rank), method, _value(row["z_gap"]), *(_value(row[s]) for s in scenarios),
                 _value(100 * row["avg_gap"]),
                 "n/a" if pd.isna(row["speedup"]) else f"{row['speedup']:.1f}", flags]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _value(value: float) -> str:
    return "diverged" if value == float("inf") else "n/a" if pd.isna(value) else f"{value:.2f}"
