"""Ensemble comparison (the thesis's netcomp notebooks): for each of N seeds, the untrained,
original and retrained baselines and every method applied to that seed's trained model, with
mean ± std tables against the retrained ensemble and the KL matrix on the forget set. Each
method is judged by its place in the retrained ensemble's spread (``verdict.avg_abs_z`` and
``verdict.ensemble_flags``); the gap in points is kept as a secondary column."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from . import cache, metrics
from .auto_preset import auto_presets
from .config import RunConfig
from .data import data_root
from .errors import ConfigError, DivergenceError
from .executor import Executor, check_fresh, open_executor
from .experiment import (
    check_data_root,
    check_method,
    check_task,
    create_for,
    prepare,
    run_method,
)
from .metrics import kl_matrix
from .outputs import atomic_path, output_folder, write_json
from .report import samples
from .scenario import Scenario, build_scenario
from .verdict import (
    GAP_KEYS,
    avg_abs_z,
    avg_gap,
    ensemble_flags,
    flag_counts_text,
    retrained_avg_abs_z,
    z_score,
)

# The baselines of every seed, named as in the run record.
log = logging.getLogger("unlearnlab")

BASELINES = ("untrained", "original", "retrained")
# The thesis's feature-forgetting scenario per dataset (Kastler 2025, section 6.2), plus the
# lab's own clean colour feature on colorized MNIST.
THESIS_SCENARIOS = {"mnist": "rest:mnist_sevens_with_crossbar",
                    "cmnist": "subset:mnist_sevens_with_crossbar",
                    "fashion_mnist": "subset:fashion_mnist_heeled_sandals"}
EXTRA_SCENARIOS = {"cmnist": "color:red:7"}
# Columns of the summary table (test split; the train split is in the CSV): the evaluation's
# accuracies and loss, the metrics that declare a summary label, and the average gap in points
# (secondary: the verdict is ``z_gap`` and the z-scores of ``GAP_KEYS``, shown first).
ACCURACY_COLUMNS = {"test_acc": "all", "retain_test_acc": "retain", "forget_test_acc": "forget",
                    "class_rest_test_acc": "rest of class",
                    "other_classes_test_acc": "other classes",
                    "forget_train_acc": "forget (train)", "forget_test_loss": "forget CE"}


def summary_columns() -> dict[str, str]:
    """{column: heading} of the summary table, in order."""
    return {**ACCURACY_COLUMNS,
            **{m.columns[0]: m.label for m in metrics.METRICS.values() if m.label},
            "avg_gap": "avg gap (pts)"}


def z_headings() -> dict[str, str]:
    """{``z_<key>``: heading} of the z-scores the verdict averages (``GAP_KEYS``), in order."""
    names = {**ACCURACY_COLUMNS, "retain_train_acc": "retain (train)",
             **{m.columns[0]: m.label for m in metrics.METRICS.values() if m.label}}
    return {f"z_{k}": f"z {names[k]}" for k in GAP_KEYS}


@dataclass
class Comparison:
    """``rows``: one row per (model, seed) with every metric; ``records``: the JSON record of
    each (method, seed); ``kl``: per seed, (names, matrix) of mean KL(P_row || P_col) on the
    forget training set; ``models``: per seed, the models by name; ``histories``: per seed,
    the per-epoch training history of the trained and retrained models."""

    rows: pd.DataFrame
    records: list[dict]
    kl: dict[int, tuple[list[str], np.ndarray]]
    models: dict[int, dict[str, nn.Module]]
    histories: dict[int, dict[str, list[dict]]]
    config: RunConfig | None = None

    def summary(self) -> pd.DataFrame:
        return summarize(self.rows)


# What an output folder of ``compare`` held before it carried ``outputs.OUTPUT_MARKER``: such a
# folder may be replaced by a new output; any other folder is refused.
OUTPUT_NAMES = ("results.csv", "summary.md", "kl.json", "*_seed*.json", ".*.tmp")


def compare(cfg: RunConfig, methods: list[str], seeds: int, out: Path | None = None,
            preset: str = "default", executor: str | Executor = "local") -> Comparison:
    """Run every method (a registry key or ``module:Class``; rows and files are named by the
    method's ``name``) on seeds 0..seeds-1 and (with ``out``) write the records, a CSV, the KL
    matrices and a markdown summary there.

    Everything is checked before any model is trained: the inputs' types, the methods and
    their parameters (also against the data: ``UnlearningMethod.check_task``), ``out`` and the
    data root's folders. ``out`` is written whole or not at all (``outputs.output_folder``): an
    interrupted comparison leaves an earlier output there untouched. ``executor``
    (``executor.parse_executor``) runs the seeds' training and unlearning
    (``run_comparison``)."""
    check_inputs(cfg, methods, seeds, out, preset)
    with open_executor(executor) as pool:
        check_fresh(pool, cfg.reuse)
        if out is None:
            return run_comparison(cfg, methods, seeds, None, preset,
                                  check_scenario(cfg, methods, preset), pool)
        check_out_not_data(Path(out), cfg.data_dir, "compare")
        with output_folder(Path(out), "compare", OUTPUT_NAMES) as folder:
            first = check_scenario(cfg, methods, preset)
            return run_comparison(cfg, methods, seeds, folder, preset, first, pool)


def check_inputs(cfg, methods, seeds, out, preset) -> None:
    """The types of ``compare``'s (and ``bench``'s) arguments, each a one-line ConfigError."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"cfg must be a RunConfig, got {type(cfg).__name__}")
    if isinstance(methods, str) or not isinstance(methods, list | tuple) \
            or not all(isinstance(m, str | type) for m in methods):
        raise ConfigError(f"methods must be a list of method names (empty: the baselines "
                          f"only), got {methods!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be a positive integer, got {seeds!r}")
    if out is not None and not isinstance(out, str | os.PathLike):
        raise ConfigError(f"out must be a folder path or None, got {type(out).__name__}")
    if not isinstance(preset, str):
        raise ConfigError(f"preset must be a str, got {type(preset).__name__}")


def check_out_not_data(out: Path, data_dir: str | None, command: str) -> None:
    """Refuse an output folder that is the data root or holds it: writing the output whole
    would replace the datasets and caches."""
    root, target = data_root(data_dir).resolve(), out.resolve()
    if target == root or target in root.parents:
        raise ConfigError(f"{command} --out '{out}' is the data root or a folder holding it; "
                          "name a folder of its own, e.g. results/<name>")


def check_scenario(cfg: RunConfig, methods, preset: str) -> Scenario:
    """Seed 0's scenario, after checking the data root's folders, each method with its preset
    and each method against the scenario's data: a wrong name, parameter or class fails here,
    before any model is trained. Names that resolve to one method twice are refused."""
    checked = [check_method(replace(cfg, method=m, params={}, preset=preset)) for m in methods]
    names = [m.name for m in checked]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"methods: names a method twice ('{twice[0]}'); name each method once")
    check_data_root(cfg.data_dir)
    first = build_scenario(replace(cfg, seed=0))
    for method in checked:
        check_task(first, method)
    return first


def run_comparison(cfg: RunConfig, methods, seeds: int, out: Path | None, preset: str,
                   first: Scenario, executor: str | Executor = "local",
                   where: str = "") -> Comparison:
    """``compare``'s work once checked, writing straight into ``out`` (a folder of its own);
    ``first`` is seed 0's scenario. Each seed and method is announced as a log line,
    ``"<where>seed j/n"`` (and ``" · method i/m <name>"``): ``where`` says where a caller is,
    e.g. bench's ``"scenario 2/6 mnist-six · "``.

    With workers (``process:N``), each seed is first a job on them (``warm_seed``: its
    baselines trained and evaluated, every method run, into the caches), then the sequential
    loop below finds every model and baseline evaluation in the caches and assesses the
    methods, builds the records, the KL matrices and the models kept for the figures here: the
    cache is the only thing the two share, so the records cannot depend on the executor."""
    autos = auto_presets(cfg, methods, preset)  # preset auto: found or searched once per method
    jobs = [(replace(cfg, seed=seed), tuple(methods), preset,
             {m: a.params for m, a in autos.items()}) for seed in range(seeds)]
    with open_executor(executor) as pool:
        check_fresh(pool, cfg.reuse)
        if not pool.in_process:
            pool.map(warm_seed, jobs)
        # With local the loop below does each seed's job itself: it reports them as jobs.
        seed_jobs = pool.track(warm_seed, jobs) if pool.in_process else jobs
    rows, records, kls, all_models, histories = [], [], {}, {}, {}
    for seed, _ in enumerate(seed_jobs):
        at = f"{where}seed {seed + 1}/{seeds}"
        log.info("%s: the baselines (seed %d)", at, seed)
        names = []
        base = prepare(replace(cfg, seed=seed), untrained=True,
                       scenario=first if seed == 0 else None)
        models = {role: base.models[role] for role in BASELINES}
        logits = dict(base.outputs)  # probe-set logits
        keep_samples = out is not None and seed == 0  # the report's per-sample file
        if keep_samples:
            samples.write_baselines(Path(out), base.scenario.probe,
                                    base.scenario.probe_labels(), logits)
        for role, evaluation in base.evaluations.items():
            rows.append({"model": role, "seed": seed, **_flat(evaluation)})
        for i, method in enumerate(methods, 1):
            log.info("%s · method %d/%d %s", at, i, len(methods), method)
            result = run_method(base, method, preset=preset, auto=autos.get(method))
            name = result.record["method"]
            names.append(name)
            records.append(result.record)
            evaluation = result.record["models"]["unlearned"]
            if evaluation is not None:  # a diverged run has no model and no metrics
                models[name] = result.models["unlearned"]
                logits[name] = result.outputs["unlearned"]
                if keep_samples:
                    samples.write_method(Path(out), name, logits[name])
            rows.append({"model": name, "seed": seed, **_flat(evaluation or {}),
                         "diverged": evaluation is None,
                         "seconds": result.record["seconds"]["unlearn"],
                         "retrain_seconds": result.record["seconds"]["retrained"]})
            if out is not None:
                write_json(Path(out) / f"{name}_seed{seed}.json", result.record)
        kls[seed] = _full_kl(kl_matrix({name: logits[name]["forget_train"] for name in models}),
                             [*BASELINES, *names])
        all_models[seed] = models
        histories[seed] = {"original": base.metas["original"]["history"],
                           "retrained": base.metas["retrained"]["history"]}
    frame = against_ensemble(flag(pd.DataFrame(rows)))
    comparison = Comparison(frame, records, kls, all_models, histories, cfg)
    if out is not None:
        write_outputs(comparison, Path(out), cfg)
    return comparison


def warm_seed(job: tuple[RunConfig, tuple, str, dict]) -> None:
    """A worker's job: one seed's baselines trained and evaluated and each method run on its
    original, into the caches, by the calls ``run_comparison``'s loop makes (``prepare``, then
    ``cache.unlearn_or_load`` as ``run_method`` does), so that the loop then finds them;
    ``autos``: preset ``auto``'s values per method, found once before the jobs."""
    cfg, methods, preset, autos = job
    base = prepare(cfg, untrained=True)
    sc = base.scenario
    for name in methods:
        method = create_for(sc, name, preset, auto=autos.get(name))
        try:
            cache.unlearn_or_load(sc, method, base.models["original"], base.digests["original"])
        except DivergenceError:
            pass  # nothing is cached; the loop runs the method again and records the divergence


def _flat(evaluation: dict) -> dict:
    """The scalar metrics of one evaluation (lists such as confusion matrices stay out)."""
    return {k: v for k, v in evaluation.items() if not isinstance(v, list)}


def _full_kl(kl: tuple[list[str], np.ndarray], names: list[str]) -> tuple[list[str], np.ndarray]:
    """Place a KL matrix into the full list of names, NaN for models that diverged."""
    have, matrix = kl
    full = np.full((len(names), len(names)), np.nan)
    pos = [names.index(n) for n in have]
    full[np.ix_(pos, pos)] = matrix
    return names, full


# The flags of a method run: ``verdict.ensemble_flags`` in its order, then a diverged loss.
FLAGS = ("collapse", "retain_damage", "over_forgetting", "under_forgetting", "diverged")


def ensemble_reference(rows: pd.DataFrame, keys) -> tuple[dict, dict]:
    """The retrained ensemble's mean and std (ddof 1; NaN with one retrained model: no
    spread) of each of ``keys`` present in ``rows``."""
    retrained = rows[rows["model"] == "retrained"]
    keys = [k for k in keys if k in rows]
    return ({k: _num(retrained[k].mean()) for k in keys},
            {k: _num(retrained[k].std(ddof=1)) for k in keys})


def flag(rows: pd.DataFrame) -> pd.DataFrame:
    """Flag each method run against the retrained ensemble (``verdict.ensemble_flags``):
    collapse, retain damage, over- and under-forgetting; diverged runs are flagged where they
    happened. Baseline rows are never flagged."""
    mean, std = ensemble_reference(rows, GAP_KEYS)
    rows = rows.copy()
    if "diverged" not in rows:
        rows["diverged"] = False
    rows["diverged"] = rows["diverged"].fillna(False).astype(bool)
    flags = [[] if model in BASELINES or diverged else ensemble_flags(_present(row), mean, std)
             for model, diverged, row in zip(rows["model"], rows["diverged"],
                                             rows.to_dict("records"), strict=True)]
    for name in FLAGS[:-1]:
        rows[name] = [name in f for f in flags]
    return rows


def against_ensemble(rows: pd.DataFrame) -> pd.DataFrame:
    """Judge every method row against the retrained *ensemble*: ``z_gap`` = the mean |z| over
    ``GAP_KEYS`` (``verdict.avg_abs_z``, the primary verdict), ``avg_gap`` to the ensemble's
    means in points (secondary; replacing the per-seed gap of the records) and ``z_<key>`` =
    (value - retrained mean) / max(retrained std (ddof 1), ``verdict.Z_FLOOR``) for
    ``z_keys()``. Baseline rows get NaN; with one retrained model (no spread) every z is NaN."""
    rows = rows.copy()
    keys = [k for k in z_keys() if k in rows]
    mean, std = ensemble_reference(rows, keys)
    is_method = ~rows["model"].isin(BASELINES) & ~rows["diverged"]
    records = rows.to_dict("records")
    rows["z_gap"] = [_nan(avg_abs_z(_present(r), mean, std)) if m else np.nan
                     for r, m in zip(records, is_method, strict=True)]
    rows["avg_gap"] = [avg_gap(_present(r), mean) if m else np.nan
                       for r, m in zip(records, is_method, strict=True)]
    for k in keys:
        rows[f"z_{k}"] = [z_score(_num(r.get(k)), mean[k], std[k]) if m else np.nan
                          for r, m in zip(records, is_method, strict=True)]
    return rows


def z_keys() -> list[str]:
    """The metrics placed in the retrained ensemble's spread as ``z_<key>`` columns: the
    average gap's keys and every metric declared ``zscored``."""
    return list(dict.fromkeys((*GAP_KEYS, *metrics.columns("zscored"))))


def _num(value):
    return None if value is None or pd.isna(value) else float(value)


def _nan(value):
    return np.nan if value is None else value


def _present(row: dict) -> dict:
    return {k: _num(row.get(k)) for k in GAP_KEYS}


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model: ``z_gap`` (the verdict: mean |z| per seed) as mean and std over seeds, the
    mean over seeds of each z-score the verdict averages (``z_headings``), mean and std over
    seeds of the summary columns present with the gap of each mean to the retrained mean
    (accuracy fractions; secondary), and the count of each flag."""
    columns = [c for c in summary_columns() if c in rows and rows[c].notna().any()]
    order = [m for m in (*BASELINES, *rows["model"].unique()) if m in set(rows["model"])]
    order = list(dict.fromkeys(order))
    grouped = rows.groupby("model", sort=False)
    table = pd.DataFrame(index=order)
    if "z_gap" in rows:
        table["z_gap_mean"] = grouped["z_gap"].mean().loc[order]
        table["z_gap_std"] = grouped["z_gap"].std(ddof=0).loc[order]
    for c in z_headings():
        if c in rows and rows[c].notna().any():
            table[c] = grouped[c].mean().loc[order]
    mean, std = grouped[columns].mean().loc[order], grouped[columns].std(ddof=0).loc[order]
    for c in columns:
        table[f"{c}_mean"], table[f"{c}_std"] = mean[c], std[c]
        table[f"{c}_gap"] = mean[c] - mean.loc["retrained", c]
    table["seeds"] = grouped.size().loc[order]
    for name in FLAGS:
        table[name] = grouped[name].sum().loc[order].astype(int)
    if "seconds" in rows:
        table["seconds"] = grouped["seconds"].median().loc[order]
        table["retrain_seconds"] = grouped["retrain_seconds"].median().loc[order]
    return table


# The heading of the verdict column; '|' is escaped, as a markdown table splits cells on it.
Z_GAP_HEADING = "avg \\|z\\| (σ)"


def retrained_reference(seeds: int) -> str:
    """What an independently retrained model's avg |z| would be with ``seeds`` seeds
    (``verdict.retrained_avg_abs_z``), as a phrase for the legends of the tables."""
    if seeds < 2:
        return "n/a with one seed: one retrained model has no spread"
    if seeds == 2:
        return ("with 2 seeds even a retrained model has no finite expected avg |z|: the spread "
                "of two models is too poorly known, use 3 seeds or more")
    return (f"an independently retrained model scores about {retrained_avg_abs_z(seeds):.2f} "
            f"with {seeds} seeds")


def summary_legend(seeds: int) -> str:
    """The line under ``markdown``'s table: what avg |z| is and how to read it."""
    return ("avg |z|: mean |z| over the z columns, z = (value − retrained mean) / retrained "
            "std, so a method lies on average that many σ from retraining (lower is better; "
            f"{retrained_reference(seeds)}). Accuracies in % (mean ± std over seeds); avg gap "
            "and Δ: the same distance in points (secondary). Flags: docs/leaderboard.md.")


def markdown(table: pd.DataFrame, title: str = "") -> str:
    """The summary as a markdown table: first the verdict, avg |z| (mean ± std over seeds),
    and the mean z-score of each metric it averages; then accuracies, MIA scores and the
    average gap in % as mean ± std, the loss as mean ± std and the gap of the means to the
    retrained mean in points (secondary); the median seconds and the flags. A legend line
    follows the table."""
    headings = summary_columns()
    columns = [c for c in headings if f"{c}_mean" in table]
    zs = {c: h for c, h in z_headings().items() if c in table}
    verdict = ["z_gap"] if "z_gap_mean" in table else []
    head = ["model", *([Z_GAP_HEADING] if verdict else []), *zs.values(),
            *(headings[c] for c in columns), "Δ retain", "Δ forget", "seconds", "flags"]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, row in table.iterrows():
        cells = [model]
        for c in verdict:
            mean, std = row[f"{c}_mean"], row[f"{c}_std"]
            cells.append("" if model in BASELINES else "n/a" if pd.isna(mean) else
                         f"{mean:.1f} ± {std:.1f}")
        for c in zs:
            cells.append("" if pd.isna(row[c]) else f"{row[c]:+.1f}")
        for c in columns:
            scale, digits = (1, 3) if c.endswith("_test_loss") else (100, 1)
            mean, std = row[f"{c}_mean"], row[f"{c}_std"]
            cells.append("n/a" if pd.isna(mean) else
                         f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}")
        for c in ("retain_test_acc", "forget_test_acc"):
            gap = row.get(f"{c}_gap")
            cells.append("" if model in BASELINES or gap is None or pd.isna(gap)
                         else f"{100 * gap:+.1f}")
        seconds = row.get("seconds")
        cells.append("" if seconds is None or pd.isna(seconds) else f"{seconds:.2f}")
        cells.append(flag_counts_text({name: row[name] for name in FLAGS}, row["seeds"],
                                      "seeds"))
        lines.append("| " + " | ".join(cells) + " |")
    seeds = int(table.loc["retrained", "seeds"]) if "retrained" in table.index else 1
    return "\n".join([*lines, "", summary_legend(seeds)]) + "\n"


def write_outputs(comparison: Comparison, out: Path, cfg: RunConfig) -> None:
    with atomic_path(out / "results.csv") as tmp:
        comparison.rows.to_csv(tmp, index=False)
    names = comparison.kl[0][0]
    with warnings.catch_warnings():
        # A diverged method's row is NaN on every seed: its mean is NaN (written as null).
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_kl = np.nanmean([m for _, m in comparison.kl.values()], axis=0)
    per_seed = {seed: matrix.tolist() for seed, (_, matrix) in comparison.kl.items()}
    write_json(out / "kl.json", {"names": names, "definition": "mean KL(P_row || P_col) on the "
                                 "forget training set, averaged over seeds",
                                 "mean": mean_kl.tolist(), "per_seed": per_seed})
    title = f"{cfg.dataset} · forget {cfg.forget} · {len(comparison.kl)} seeds"
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown(comparison.summary(), title))
