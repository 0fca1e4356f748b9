"""``unlearnlab tune-all``: every tunable method searched with the same budget on every scenario
of a suite it is meant for, so that a leaderboard of tuned presets compares methods rather than
tuning effort (DeepUnlearn's protocol: one Optuna budget per method, against retraining).

Protocol: for every method with a search space (``methods.tunable_methods``; every built-in
method) and every scenario of the suite (``bench.SUITES``) whose kind the method
declares (``UnlearningMethod.scenarios``), one ``tuning.tune`` study that ends holding exactly
``budget`` complete trials (a resumed study counts the trials it already holds; one holding
more is refused, as its best would have had a larger budget), each trial scored on the
validation split (``tuning.VALIDATION``, held out from training) against the retrained
ensemble of seeds 0..``seeds``-1 by ``objective`` (default ``z``: avg |z|, the leaderboard's
verdict in units of the retrained spread). The first trial of a fresh study is the method's
default preset. Each winner is written as the scenario's tuned entry
(``presets.scenario_key``), never as a dataset-level one: a suite has several scenarios per
dataset, and the dataset's entry would be whichever study ran last.

The summary (``<out>/tune_all.md`` and ``tune_all.json``) is rewritten after every study, so an
interrupted run leaves the studies it finished; the same command resumes the rest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bench import SUITES, scenario_name, suite_scenarios
from .config import MAX_SEED
from .errors import ConfigError
from .executor import Executor, check_fresh, open_executor
from .experiment import check_task
from .forget import parse_forget
from .methods import get_method
from .methods.registry import tunable_methods
from .outputs import atomic_path, check_file_target, check_folder_target, write_json
from .scenario import build_scenario
from .studies import check_setup, complete_trials, open_storage
from .tuning import OBJECTIVES, VALIDATION, TuneConfig, short_value, tune
from .tuning import check as check_study

log = logging.getLogger("unlearnlab")

BUDGET = 30  # complete trials per study: the default, the same for every method
SEEDS = 3  # retrained ensemble: the smallest with a finite expected avg |z| of retraining
OBJECTIVE = "z"
SUMMARY_FILES = ("tune_all.md", "tune_all.json")


@dataclass
class TuneAllConfig:
    """The searches of ``tune_all``: the ``suite`` (a key of ``bench.SUITES``; not
    ``heldout``), narrowed to ``scenario_names`` (short names, ``bench.scenario_name``; None:
    all), the ``methods`` (registry keys; None: every tunable method), the ``budget`` of
    complete trials per study, the ensemble size ``seeds``, the ``objective``
    (``tuning.OBJECTIVES``) and where the models live (``quick``, ``data_dir``, ``device``,
    ``reuse``)."""

    suite: str = "standard"
    methods: list[str] | None = None
    scenario_names: list[str] | None = None
    budget: int = BUDGET
    seeds: int = SEEDS
    objective: str = OBJECTIVE
    quick: bool = False
    data_dir: str | None = None
    device: str = "auto"
    reuse: bool = True
    sampler_seed: int = 0


@dataclass
class Cell:
    """One study of the plan: a method on a scenario (``name``: its short name)."""

    name: str
    config: TuneConfig


@dataclass
class TuneAllResult:
    """Every study's row (``row``), in plan order; ``planned``: studies in the plan;
    ``interrupted``: Ctrl-C stopped the run."""

    config: TuneAllConfig
    rows: list[dict] = field(default_factory=list)
    planned: int = 0
    seconds: float = 0.0
    interrupted: bool = False


# ------------------------------------------------------------------------------ the plan

def _methods(cfg: TuneAllConfig) -> list[str]:
    if cfg.methods is None:
        return tunable_methods()
    if not isinstance(cfg.methods, list | tuple) or not cfg.methods or not all(
            isinstance(m, str) and m for m in cfg.methods):
        raise ConfigError(f"--methods must name methods, e.g. finetune,scrub, or all; got "
                          f"{cfg.methods!r}")
    chosen = list(dict.fromkeys(cfg.methods))
    for name in chosen:
        if not get_method(name).tunable():  # an unknown method fails in get_method
            raise ConfigError(f"method '{name}' declares no search space, so tune-all cannot "
                              f"tune it; tunable: {', '.join(tunable_methods())}")
    return chosen


def _scenarios(cfg: TuneAllConfig, scenarios) -> list[tuple[str, str, str | None]]:
    if scenarios is None:
        if cfg.suite == "heldout":
            raise ConfigError("tune-all refuses --suite heldout: its scenarios are kept out of "
                              "every search so that they measure the defaults (docs/heldout.md)"
                              f"; choose one of {', '.join(s for s in SUITES if s != 'heldout')}")
        scenarios = suite_scenarios(cfg.suite)
    if cfg.scenario_names is None:
        return list(scenarios)
    names = {scenario_name(d, f): (d, f, a) for d, f, a in scenarios}
    if not isinstance(cfg.scenario_names, list | tuple) or not cfg.scenario_names:
        raise ConfigError("--scenarios is empty: name scenarios of the suite or leave it out")
    unknown = [n for n in cfg.scenario_names if n not in names]
    if unknown:
        raise ConfigError(f"--scenarios: '{unknown[0]}' is not a scenario of the suite; choose "
                          f"among {', '.join(names)}")
    return [names[n] for n in dict.fromkeys(cfg.scenario_names)]


def plan(cfg: TuneAllConfig, scenarios=None) -> list[Cell]:
    """The studies of ``cfg``: per scenario (of the suite, or ``scenarios``, a list of
    (dataset, forget, arch) triples) each chosen method meant for its kind, in that order.
    Checks the fields; a bad one is a one-line ``ConfigError``."""
    if not isinstance(cfg, TuneAllConfig):
        raise ConfigError(f"tune_all takes a TuneAllConfig, got {type(cfg).__name__}")
    for name in ("budget", "seeds"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {value!r}")
    seed = cfg.sampler_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"sampler_seed must be an integer between 0 and {MAX_SEED}, got "
                          f"{seed!r}")
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {cfg.objective!r} is not an objective; choose one of "
                          f"{', '.join(OBJECTIVES)}")
    methods = _methods(cfg)
    cells = []
    for dataset, forget, arch in _scenarios(cfg, scenarios):
        kind = parse_forget(forget).scenario
        for method in methods:
            if kind in get_method(method).scenarios:
                cells.append(Cell(scenario_name(dataset, forget), TuneConfig(
                    dataset=dataset, forget=forget, arch=arch, method=method,
                    trials=cfg.budget, seeds=cfg.seeds, objective=cfg.objective,
                    quick=cfg.quick, data_dir=cfg.data_dir, device=cfg.device,
                    reuse=cfg.reuse, sampler_seed=cfg.sampler_seed, dataset_entry=False)))
    if not cells:
        raise ConfigError("none of the methods is meant for any of the scenarios (each method's "
                          "`scenarios`); choose other methods or scenarios")
    return cells


def check_budgets(cells: list[Cell]) -> None:
    """Refuse a study that already exists with another setup or with more complete trials
    than the budget (its best trial would have had a larger budget than the others')."""
    import optuna

    storage = open_storage(cells[0].config)  # one data root, so one storage for every study
    existing = set(optuna.study.get_all_study_names(storage))
    for cell in cells:
        cfg = cell.config
        if cfg.study_name not in existing:
            continue
        study = optuna.load_study(study_name=cfg.study_name, storage=storage)
        setup = study.user_attrs.get("setup")
        if setup is not None:
            check_setup(cfg.study_name, setup, cfg)
        done = complete_trials(study)
        if done > cfg.trials:
            raise ConfigError(f"study '{cfg.study_name}' already holds {done} complete trials, "
                              f"more than --budget {cfg.trials}: use --budget {done} or more "
                              "for every method, or another data root")


def check(cfg: TuneAllConfig, out: Path | None, scenarios=None) -> list[Cell]:
    """The plan, with every study checked (``tuning.check``), the output files, the studies
    already stored (``check_budgets``) and each method's default parameters against each
    scenario's data (one scenario build per scenario), before any model is trained."""
    cells = plan(cfg, scenarios)
    for cell in cells:
        check_study(cell.config)
    if out is not None:
        check_folder_target(Path(out), "tune-all --out")
        for name in SUMMARY_FILES:
            check_file_target(Path(out) / name, "tune-all summary")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # progress comes from tuning's lines
    check_budgets(cells)
    built = {}
    for cell in cells:
        cfg = cell.config
        key = (cfg.dataset, cfg.forget, cfg.arch)
        if key not in built:
            built[key] = build_scenario(cfg.run_config(0))
        check_task(built[key], cfg.unlearner())
    return cells


# ------------------------------------------------------------------------------- the run

def tune_all(cfg: TuneAllConfig, out: Path | None = None, executor: str | Executor = "local",
             scenarios=None) -> TuneAllResult:
    """Run every study of ``plan(cfg, scenarios)`` to ``cfg.budget`` complete trials, one after
    another on one ``executor`` (its workers run each study's trials in rounds), writing each
    winner as its scenario's tuned entry and, with ``out``, the summary after every study.
    Everything is checked first (``check``). Ctrl-C stops after the running study has saved its
    finished trials and written its best (``TuneAllResult.interrupted``)."""
    cells = check(cfg, out, scenarios)
    result = TuneAllResult(cfg, planned=len(cells))
    start = time.perf_counter()
    log.info("tune-all: %d studies (%d complete trials each, %d seeds, objective %s)",
             len(cells), cfg.budget, cfg.seeds, cfg.objective)
    with open_executor(executor) as pool:
        check_fresh(pool, cfg.reuse)
        for i, cell in enumerate(cells, 1):
            log.info("tune-all %d/%d: %s on %s", i, len(cells), cell.config.method, cell.name)
            began = time.perf_counter()
            study = tune(cell.config, executor=pool)
            result.rows.append(row(cell, study, time.perf_counter() - began))
            result.seconds = time.perf_counter() - start
            result.interrupted = study.interrupted
            if out is not None:
                write_summary(Path(out), result)
            if study.interrupted:
                break
    return result


def row(cell: Cell, study, seconds: float) -> dict:
    """A study's line of the summary: the trials it holds and this run ran, the best value and
    parameters, the first trial's value (the default preset in a study this lab started) and
    the wall time of this run's part."""
    cfg, entry = cell.config, study.preset
    first = study.study.trials[0] if study.study.trials else None
    return {"method": cfg.method, "scenario": cell.name, "dataset": cfg.dataset,
            "forget": cfg.forget, "arch": cfg.setup["arch"], "study": cfg.study_name,
            "trials": complete_trials(study.study), "ran": study.ran,
            "value": None if entry is None else entry["value"],
            "best_trial": None if entry is None else entry["trial"],
            "default_value": first.value if first is not None and first.value is not None
            else None,
            "params": None if entry is None else entry["searched"],
            "seconds": round(seconds, 3), "interrupted": study.interrupted}


# ----------------------------------------------------------------------------- the summary

def protocol(cfg: TuneAllConfig) -> dict:
    """What every study shared: the budget, the seeds, the objective and the validation
    split."""
    definition = TuneConfig(objective=cfg.objective).objective_definition
    return {"suite": cfg.suite, "budget": cfg.budget, "seeds": cfg.seeds,
            "objective": cfg.objective, "objective_definition": definition,
            "validation": VALIDATION, "quick": cfg.quick, "sampler": "TPE",
            "sampler_seed": cfg.sampler_seed}


def summary_record(result: TuneAllResult) -> dict:
    return {**protocol(result.config), "planned": result.planned, "done": len(result.rows),
            "interrupted": result.interrupted, "seconds": round(result.seconds, 3),
            "studies": result.rows}


def _value(value, objective: str) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "diverged"
    return f"{value:.3f}" if objective == "z" else f"{100 * value:.2f}"


def summary_markdown(result: TuneAllResult) -> str:
    """The summary as markdown: the protocol on top, then one line per study."""
    cfg = result.config
    # "|" would end a markdown table cell: escaped in the headings
    unit = r"avg \|z\| (retrained std)" if cfg.objective == "z" else "average gap (points)"
    state = ("interrupted; " if result.interrupted else "") + \
        f"{len(result.rows)} of {result.planned} studies done"
    lines = [f"tune-all: suite {cfg.suite}{', quick mode' if cfg.quick else ''}; every study "
             f"holds {cfg.budget} complete trials; retrained ensemble of {cfg.seeds} seeds "
             f"(0..{cfg.seeds - 1}); objective {cfg.objective}, the "
             f"{TuneConfig(objective=cfg.objective).objective_definition}; TPE sampler seed "
             f"{cfg.sampler_seed}; the first trial of a fresh study is the default preset. "
             f"{state}, {result.seconds:.0f} s. The winners are the scenarios' tuned entries "
             f"(--preset tuned).", "",
             f"| method | scenario | trials (run now) | best: {unit} | default: {unit} | "
             "best params | wall s |", "|---|---|---|---|---|---|---|"]
    for r in result.rows:
        params = ", ".join(f"{k}={short_value(v)}" for k, v in (r["params"] or {}).items())
        lines.append(f"| {r['method']} | {r['scenario']} | {r['trials']} ({r['ran']}) | "
                     f"{_value(r['value'], cfg.objective)} | "
                     f"{_value(r['default_value'], cfg.objective)} | {params or 'n/a'} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, result: TuneAllResult) -> None:
    """``out/tune_all.json`` (``summary_record``) and ``out/tune_all.md``, atomically."""
    write_json(out / "tune_all.json", summary_record(result))
    with atomic_path(out / "tune_all.md") as tmp:
        tmp.write_text(summary_markdown(result))


__all__ = ["BUDGET", "OBJECTIVE", "SEEDS", "TuneAllConfig", "TuneAllResult", "check", "plan",
           "summary_markdown", "tune_all"]

