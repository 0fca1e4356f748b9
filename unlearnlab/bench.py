"""The leaderboard: every method on the standard scenarios over N seeds, each judged against
the retrained ensemble of its scenario (``compare``), ranked by avg |z|: how many of that
ensemble's standard deviations a method lies from retraining (``verdict.avg_abs_z``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from . import ensemble
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
from .executor import Executor, check_fresh, open_executor
from .forget import parse_forget
from .heldout import HELDOUT_NAMES, HELDOUT_SCENARIOS
from .methods import get_method, list_methods
from .methods.presets import AUTO, TUNED
from .outputs import atomic_path, output_folder
from .ranking import LEVEL, bootstrap_interval, overlap_groups
from .verdict import flag_counts_text

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
               ("fashion_mnist", "random:0.1"): "fashion-random-10",
               **HELDOUT_NAMES}
# The scenario suites ``unlearnlab bench --suite`` selects: the standard one the defaults were
# tuned on, and the held-out one that no default, preset or search has seen (``heldout``).
SUITES = {"standard": STANDARD_SCENARIOS, "heldout": HELDOUT_SCENARIOS}


def scenario_name(dataset: str, forget: str) -> str:
    """The leaderboard's name of a scenario: the short name of its canonical spec (``mnist`` and
    ``random:0.10:0`` give ``mnist-random-10``), else ``<dataset>-<canonical spec>`` with ':'
    as '-' (``random:0.2`` gives ``mnist-random-0.2``)."""
    canonical = str(parse_forget(forget))
    return (SHORT_NAMES.get((dataset, canonical))
            or f"{dataset}-{canonical.replace(':', '-')}")


# What an output folder of ``bench`` held before it carried ``outputs.OUTPUT_MARKER`` (see
# ``compare.OUTPUT_NAMES``): the leaderboard and one folder per scenario.
OUTPUT_NAMES = ("leaderboard.md", "leaderboard.csv", ".*.tmp", "mnist-*", "fashion-*",
                "cmnist-*", "fashion_mnist-*", "digits-*")

# The folder (under a bench's ``--out``) and the file of the presets run beside the ranked one.
BESIDE_FOLDER, BESIDE_CSV = "presets", "presets.csv"


def has_preset(method: str, preset: str) -> bool:
    """Whether ``method`` (a registry key or ``module:Class``) can run ``preset``: ``default``,
    ``tuned`` and ``auto`` are every method's (``tuned`` then needs its entry); a named preset
    (``paper``, ``thesis``) only a method that declares it."""
    return preset in ("default", TUNED, AUTO) or preset in get_method(method).presets


def check_presets(presets, methods: list[str]) -> tuple[str, ...]:
    """``presets`` as a tuple, the first the ranked one: a non-empty list of distinct names,
    the first held by every method (a method without it would be missing from the ranking),
    each of the others by one method at least."""
    if isinstance(presets, str) or not isinstance(presets, list | tuple) or not presets or \
            not all(isinstance(p, str) and p for p in presets):
        raise ConfigError(f"--presets must name presets, e.g. tuned,default,paper; got "
                          f"{presets!r}")
    if len(set(presets)) < len(presets):
        raise ConfigError(f"--presets names a preset twice ({','.join(presets)}); name each once")
    ranked, *beside = presets
    lacking = [m for m in methods if not has_preset(m, ranked)]
    if lacking:
        raise ConfigError(f"method '{lacking[0]}' has no preset '{ranked}', which the "
                          f"leaderboard ranks (the first of --presets); leave it out with "
                          f"--methods or rank another preset")
    for preset in beside:
        if not any(has_preset(m, preset) for m in methods):
            raise ConfigError(f"no method has the preset '{preset}' of --presets; leave it out")
    return tuple(presets)


def suite_scenarios(suite: str) -> tuple[tuple[str, str, str | None], ...]:
    """The scenarios of ``suite``, a key of ``SUITES``."""
    if suite not in SUITES:
        raise ConfigError(f"--suite {suite!r} is not a scenario suite; choose one of "
                          f"{', '.join(SUITES)}")
    return SUITES[suite]


def bench(cfg: RunConfig, methods: list[str] | None = None, seeds: int = 5,
          out: Path | None = None,
          scenarios: tuple[tuple[str, str, str | None], ...] = STANDARD_SCENARIOS,
          forget_quality_models: int = 0, executor: str | Executor = "local",
          presets: tuple[str, ...] = ("default",)) -> pd.DataFrame:
    """Run ``compare`` for every scenario (writing each under ``out/<scenario>``) with the
    methods (registry keys or ``module:Class``) meant for its kind
    (``UnlearningMethod.scenarios``) and return one row per
    (scenario, method, seed) with its avg |z| (``z_gap``) and z-scores against the retrained
    ensemble, the average gap in points (``avg_gap``), speed-up and flags; with
    ``out``, also write ``leaderboard.md`` and ``leaderboard.csv``. With
    ``forget_quality_models`` N > 0, every method on a random-forgetting scenario also gets its
    NeurIPS 2023 forget quality with N models per side (``ensemble.study``, beside the
    references ``retrain`` and ``original``): columns ``forget_quality`` and ``final_score``
    of the rows, ``forget_quality.csv``, a table in ``leaderboard.md`` and one bundle per
    method under ``out/<scenario>/forget_quality/``.

    Every scenario and its methods are checked (as in ``compare``) before the first model is
    trained, and ``out`` is written whole or not at all (``outputs.output_folder``).
    ``executor`` (``executor.parse_executor``) runs every comparison's and forget-quality
    study's training and unlearning; one pool of workers serves them all.

    ``presets``: the first is ranked (every method runs it); each other one also runs, on the
    same models and seeds, for the methods that have it (``has_preset``), into
    ``out/presets/<preset>/<scenario>`` and ``presets.csv``, and its avg |z| and rank become a
    column of ``leaderboard.md`` (``leaderboard_markdown``'s ``beside``). The returned rows
    are the ranked preset's; every row names its ``preset``."""
    if methods is None or (isinstance(methods, list | tuple) and not methods):
        methods = list_methods()
    check_inputs(cfg, methods, seeds, out, "default")
    presets = check_presets(presets, methods)
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
    if forget_quality_models:
        if presets[0] != "default":
            raise ConfigError(f"--forget-quality scores the default presets, and --presets ranks "
                              f"'{presets[0]}': run the forget-quality bench without --presets")
        ensemble.check("retrain", forget_quality_models, "--forget-quality")
        if not any(_is_random(scenario) for _, scenario, _ in plan):
            raise ConfigError("--forget-quality scores random-forgetting scenarios and the bench "
                              "has none; add one or leave --forget-quality out")
    with open_executor(executor) as pool:
        check_fresh(pool, cfg.reuse)
        if out is None:
            return _bench(plan, seeds, None, cfg.quick, forget_quality_models, pool, presets)
        check_out_not_data(Path(out), cfg.data_dir, "bench")
        with output_folder(Path(out), "bench", OUTPUT_NAMES) as folder:
            return _bench(plan, seeds, folder, cfg.quick, forget_quality_models, pool,
                          presets)


def _is_random(scenario: RunConfig) -> bool:
    return parse_forget(scenario.forget).scenario == "random"


def forget_quality_rows(plan: list, n_models: int, out: Path | None,
                        executor: str | Executor = "local") -> pd.DataFrame:
    """One row per (random-forgetting scenario, method or reference): F, the final score, the
    avg |z| of the unlearned side and the median eps, with ``n_models`` models per side; each
    study's bundle under ``out/<scenario>/forget_quality/<method>``."""
    rows = []
    for name, scenario, chosen in plan:
        if not _is_random(scenario):
            continue
        for method in (*ensemble.REFERENCES, *chosen):
            record = ensemble.study(scenario, method, n_models, executor=executor)
            if out is not None:
                record = ensemble.write_bundle(
                    Path(out) / name / "forget_quality" / ensemble.folder_name(method), record)
            rows.append({"scenario": name, "method": record["method"], "models": n_models,
                         **{k: record[k] for k in ("forget_quality", "final_score", "z_gap",
                                                   "epsilon_median", "seconds_total")}})
    return pd.DataFrame(rows)


def _bench(plan: list, seeds: int, out: Path | None, quick: bool,
           forget_quality_models: int = 0, executor: str | Executor = "local",
           presets: tuple[str, ...] = ("default",)) -> pd.DataFrame:
    """``bench``'s work: every scenario and preset checked first (a missing tuned entry fails
    here), then compared; writes into ``out``."""
    runs = [(name, scenario, preset, [m for m in chosen if has_preset(m, preset)])
            for name, scenario, chosen in plan for preset in presets]
    runs = [run for run in runs if run[3]]
    firsts = [check_scenario(scenario, chosen, preset) for _, scenario, preset, chosen in runs]
    frames = []
    for i, ((name, scenario, preset, chosen), first) in enumerate(zip(runs, firsts, strict=True),
                                                                  1):
        folder = None if out is None else (
            Path(out) / name if preset == presets[0] else Path(out) / BESIDE_FOLDER / preset
            / name)
        comparison = run_comparison(scenario, chosen, seeds, folder, preset, first, executor,
                                    where=f"run {i}/{len(runs)} {name}, preset {preset} · ")
        rows = comparison.rows[~comparison.rows["model"].isin(BASELINES)]
        rows = rows.rename(columns={"model": "method"})
        rows.insert(0, "scenario", name)
        rows.insert(2, "preset", preset)
        rows["speedup"] = rows["retrain_seconds"] / rows["seconds"]
        frames.append(rows)
    every = pd.concat(frames, ignore_index=True)
    ranked = every["preset"] == presets[0]
    rows, beside = every[ranked].reset_index(drop=True), every[~ranked].reset_index(drop=True)
    quality = None
    if forget_quality_models:
        quality = forget_quality_rows(plan, forget_quality_models, out, executor)
        rows = rows.merge(quality[["scenario", "method", "forget_quality", "final_score"]],
                          on=["scenario", "method"], how="left")
    if out is not None:
        with atomic_path(Path(out) / "leaderboard.csv") as tmp:
            rows.to_csv(tmp, index=False)
        if quality is not None:
            with atomic_path(Path(out) / "forget_quality.csv") as tmp:
                quality.to_csv(tmp, index=False)
        if len(beside):
            with atomic_path(Path(out) / BESIDE_CSV) as tmp:
                beside.to_csv(tmp, index=False)
        with atomic_path(Path(out) / "leaderboard.md") as tmp:
            tmp.write_text(leaderboard_markdown(rows, seeds, quick, quality, beside))
    return rows


# The columns a leaderboard is computed from (``leaderboard.csv`` of a bench run).
LEADERBOARD_COLUMNS = ("scenario", "method", "z_gap", "avg_gap", "speedup", *FLAGS)


def leaderboard(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: ``z_gap``, the avg |z| (mean over seeds, then over the scenarios the method
    ran on) overall and per scenario (one column per scenario, in sigma), ``avg_gap`` (the
    same means of the gap in points: secondary), median speed-up, the number of runs with
    each flag and of runs. Ranked by ``z_gap``, ties by ``avg_gap``, then by speed-up (higher
    first); a method that diverged on any run ranks last (its ``z_gap`` and ``avg_gap`` are
    set to inf). With one seed every ``z_gap`` is NaN (no spread), so ``avg_gap`` ranks.

    ``z_gap_low`` and ``z_gap_high`` bound the 95 % bootstrap interval of ``z_gap`` over seeds
    (``ranking.bootstrap_interval``), ``group`` the rank group of methods whose intervals
    overlap (``ranking.overlap_groups``: 1, 2, ... in rank order). With one seed, and for a
    method that diverged, there is no interval and no group (NaN, ``pd.NA``): the one-seed
    ranking by ``avg_gap`` has no spread over seeds to resample."""
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
    interval = bootstrap_interval(rows, "z_gap").reindex(methods)
    table["z_gap_low"], table["z_gap_high"] = interval["low"], interval["high"]
    for scenario in z.columns:
        table[scenario] = z[scenario]
    table["avg_gap"] = gap.mean(axis=1)
    if "forget_quality" in rows:
        table["forget_quality"] = rows.groupby("method")["forget_quality"].mean()
    grouped = rows.groupby("method", sort=False)
    table["speedup"] = grouped["speedup"].median()
    for flag in FLAGS:
        table[flag] = grouped[flag].sum().astype(int)
    table["runs"] = grouped.size()
    diverged = table["diverged"] > 0
    table.loc[diverged, ["z_gap", "avg_gap"]] = float("inf")
    table.loc[diverged, ["z_gap_low", "z_gap_high"]] = float("nan")
    order = (table.assign(last=diverged)
             .sort_values(["last", "z_gap", "avg_gap", "speedup"],
                          ascending=[True, True, True, False]).index)
    table = table.loc[order]
    table.insert(0, "group", pd.array(overlap_groups(table["z_gap_low"], table["z_gap_high"]),
                                      dtype="Int64"))
    return table


def leaderboard_markdown(rows: pd.DataFrame, seeds: int, quick: bool,
                         quality: pd.DataFrame | None = None,
                         beside: pd.DataFrame | None = None) -> str:
    """The leaderboard as a markdown table under a line saying what its numbers are: per
    method its rank, its rank group and avg |z| with its 95 % interval as "score [low, high]"
    (``leaderboard``); with the rows of ``forget_quality_rows``, a column F and the
    forget-quality table below it; with ``beside`` (rows of other presets, ``presets.csv``),
    one column per preset: the method's avg |z| under it and its rank among the methods that
    have it. A function of its arguments only, so it renders again from saved CSVs."""
    table = leaderboard(rows)
    ranked = rows["preset"].iloc[0] if "preset" in rows and len(rows) else "default"
    others = {} if beside is None or not len(beside) else {
        preset: leaderboard(group) for preset, group in beside.groupby("preset", sort=False)}
    scenarios = [c for c in table.columns if c in set(rows["scenario"])]
    with_f = "forget_quality" in table
    head = ["rank", "group", "method", f"{Z_GAP_HEADING} [{LEVEL * 100:g} % interval]",
            *scenarios, "avg gap (pts)",
            *(["F"] if with_f else []), "speed-up ×", "flagged runs",
            *(f"{p}: {Z_GAP_HEADING} (rank)" for p in others)]
    mode = " Quick mode." if quick else ""
    spread = ("" if seeds > 1 else " With one seed the retrained ensemble has no spread: "
              "avg |z| is n/a and the avg gap ranks, with no interval and no groups.")
    interval = (f" [low, high]: {LEVEL * 100:g} % bootstrap interval of avg |z| over the "
                f"seeds (resampled within each scenario); group: from the best method down, a "
                f"method joins the current group when its low end is at most the high end of "
                f"the group's best method, else it opens the next (docs/leaderboard.md): read "
                f"the methods of one group as tied at these seeds."
                if seeds > 1 else "")
    reference = f"; {retrained_reference(seeds)}" if seeds > 1 else ""
    columns = (f" Preset columns ({', '.join(others)}): the same avg |z| with that preset, on "
               f"the same models and seeds, and the method's rank among the methods that have "
               f"it; n/a: the method has no such preset." if others else "")
    lines = [f"Preset `{ranked}`, ranked by avg |z|: how many standard deviations of the "
             f"retrained ensemble a method lies from retraining, averaged over the forget and "
             f"retain accuracies (train and test splits) and MIA efficacy (mean over {seeds} "
             f"seeds, then over the scenarios a method is meant for; lower is better"
             f"{reference}). Scenario columns: avg |z| there; avg gap: the same distance in "
             f"accuracy/MIA points (secondary); n/a: not meant for that scenario; flags: "
             f"docs/leaderboard.md."
             f"{interval}{columns}{spread}{mode}",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, (method, row) in enumerate(table.iterrows(), 1):
        flags = flag_counts_text({f: row[f] for f in FLAGS}, row["runs"], "runs")
        group = "n/a" if pd.isna(row["group"]) else str(row["group"])
        score = _value(row["z_gap"]) + ("" if pd.isna(row["z_gap_low"]) else
                                        f" [{row['z_gap_low']:.2f}, {row['z_gap_high']:.2f}]")
        cells = [str(rank), group, method, score, *(_value(row[s]) for s in scenarios),
                 _value(100 * row["avg_gap"]),
                 *([_value(row["forget_quality"], 3)] if with_f else []),
                 "n/a" if pd.isna(row["speedup"]) else f"{row['speedup']:.1f}", flags,
                 *(_beside_cell(board, method) for board in others.values())]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    return text if quality is None else text + "\n" + forget_quality_markdown(quality)


def _beside_cell(board: pd.DataFrame, method: str) -> str:
    if method not in board.index:
        return "n/a"
    return f"{_value(board.loc[method, 'z_gap'])} (#{list(board.index).index(method) + 1})"


def forget_quality_markdown(quality: pd.DataFrame) -> str:
    """Per random-forgetting scenario: the references, then the methods by F (higher is
    better), with the final score, the unlearned side's avg |z| and the median eps."""
    n = int(quality["models"].iloc[0])
    lines = [f"Forget quality F (NeurIPS 2023 challenge; {n} models per side, one original "
             f"model, seed 0; higher is better, 1 = no forget sample told apart from "
             f"retraining). `retrain`: {n} more retrained models, the best reachable at this "
             f"N; `original`: {n} original models, no unlearning. Column F above: the mean "
             f"over the random-forgetting scenarios.", ""]
    for name, group in quality.groupby("scenario", sort=False):
        refs = group[group["method"].isin(ensemble.REFERENCES)]
        methods = group[~group["method"].isin(ensemble.REFERENCES)].sort_values(
            "forget_quality", ascending=False)
        lines += [f"**{name}**", "", "| method | F | final score | avg |z| | median ε |",
                  "|---|---|---|---|---|"]
        for _, row in pd.concat([refs, methods]).iterrows():
            lines.append(f"| {row['method']} | {row['forget_quality']:.3f} | "
                         f"{row['final_score']:.3f} | {_value(row['z_gap'])} | "
                         f"{row['epsilon_median']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _value(value: float, digits: int = 2) -> str:
    return ("diverged" if value == float("inf") else "n/a" if pd.isna(value)
            else f"{value:.{digits}f}")
