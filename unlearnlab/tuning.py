"""Hyperparameter search against the retrained ensemble, with Optuna (Akiba et al. 2019,
"Optuna: A Next-generation Hyperparameter Optimization Framework", KDD).

Objective (minimised), for a method M with hyperparameters h on seeds s = 0..K-1:

    J(h) = 1/K sum_s avg_gap(E(M_h(original_s)), mean_s' E(retrained_s'))

with E(model) the evaluation of a model and ``verdict.avg_gap`` the mean absolute difference
over ``GAP_KEYS`` (forget/retain accuracy of train and held-out samples, and MIA-efficacy), as
``compare.against_ensemble`` scores a method in the report: the gap to the retrained
ensemble's means, not to one paired retrained model. A run that diverges on any seed scores
``DIVERGED`` (1, the largest gap possible). Everything is computed on a validation split held
out from training (``experiment.RunConfig.validation``: a seeded 10 % of the training set,
stratified by class and forget membership, removed from the training of both the original and
the retrained models, whose cache keys name it): the test set the report uses is never read.

The thesis's study (seed notes D5) minimised KL(unlearned || retrained) on all training data
of one randomly drawn model pair per trial, on MNIST only, and searched a gradient-ascent lr it
never applied; here the reference is an ensemble, the data is held out, and the searched
hyperparameters are the ones the method runs with (each method's ``search_space``).

A study lives in an Optuna storage: SQLite under ``<data root>/studies/optuna.db`` by default,
or any SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``) shared by ``unlearnlab tune``
processes on several machines. ``trials`` is the study's target of complete trials: a stopped
study is resumed by running the same command, and workers on one study share the work. The
sampler is TPE (Bergstra et al. 2011), seeded. The best trial is written to
``<data root>/presets/tuned.json`` and runs as ``--preset tuned`` (``methods.presets``).

The module is longer than the lab's others (about 400 lines) because a study is one workflow
whose parts share ``TuneConfig`` and its storage: setup and storage, the objective, the study's
resumption and its preset file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .config import MAX_SEED, RunConfig
from .data import data_root, dataset_spec
from .errors import ConfigError
from .experiment import Baselines, check_data_root, check_task, prepare, unlearn_and_assess
from .forget import parse_forget
from .methods import create, get_method
from .methods.presets import TUNED_FILE, read_tuned
from .outputs import check_file_target, write_json
from .scenario import Scenario, build_scenario, resolve_arch
from .verdict import GAP_KEYS, avg_gap

log = logging.getLogger("unlearnlab")

VALIDATION = 0.1  # share of the training set held out for the objective
METRICS = ["mia_efficacy"]  # the only forget-set metric the gap needs (the others are slow)
DIVERGED = 1.0  # objective of a trial that diverged: the largest possible average gap
STUDIES = Path("studies") / "optuna.db"


@dataclass
class TuneConfig:
    """One study: the scenario (``dataset``, ``forget``, ``quick``), the method, the study's
    target of complete ``trials``, the ensemble size ``seeds`` (seeds 0..seeds-1), where the
    study lives (``storage`` URL, default SQLite in the data root; ``study`` name, default
    ``<method>-<dataset>-<forget>``, with ``-quick`` in quick mode) and ``sampler_seed``.
    ``reuse`` loads matching cached baselines (the notebooks' ``ALLREADY_TRAINED``)."""

    dataset: str = "mnist"
    forget: str = "class:6"
    method: str = "gradient_ascent"
    trials: int = 20
    seeds: int = 3
    storage: str | None = None
    study: str | None = None
    quick: bool = False
    data_dir: str | None = None
    device: str = "auto"
    reuse: bool = True
    validation: float = VALIDATION
    sampler_seed: int = 0

    def run_config(self, seed: int) -> RunConfig:
        return RunConfig(dataset=self.dataset, forget=self.forget, method=self.method,
                         seed=seed, quick=self.quick, data_dir=self.data_dir,
                         device=self.device, reuse=self.reuse, metrics=list(METRICS),
                         validation=self.validation)

    @property
    def study_name(self) -> str:
        return self.study or (f"{self.method}-{self.dataset}-{self.forget}"
                              f"{'-quick' if self.quick else ''}")

    def unlearner(self, **params):
        """The method with its default preset for the study's dataset, scenario kind and
        architecture, ``params`` on top."""
        spec = parse_forget(self.forget)
        return create(self.method, dataset=self.dataset, scenario=spec.scenario,
                      arch=resolve_arch(self.run_config(0), spec), params=params)

    @property
    def setup(self) -> dict:
        """What the objective depends on; a study resumed with another setup is refused."""
        spec = parse_forget(self.forget)
        return {"method": self.method, "dataset": self.dataset, "forget": str(spec),
                "arch": resolve_arch(self.run_config(0), spec), "seeds": self.seeds,
                "quick": self.quick, "validation": self.validation}


@dataclass
class TuneResult:
    """The study after this process's work; ``preset`` is the entry written to ``path``
    (None when no trial is complete); ``ran``: trials this process finished."""

    study: object  # optuna.Study
    preset: dict | None
    path: Path
    ran: int = 0
    interrupted: bool = False
    config: TuneConfig = field(default_factory=TuneConfig)

    def summary(self) -> str:
        entry, name = self.preset, self.config.study_name
        head = (f"study '{name}' ({public_url(storage_url(self.config))}): "
                f"{complete_trials(self.study)} complete trials, {self.ran} run by this process")
        if entry is None:
            return head + "; no complete trial yet, so no preset was written"
        params = ", ".join(f"{k}={_short(v)}" for k, v in entry["searched"].items())
        hint = "run it with --preset tuned"
        if self.config.data_dir:  # --preset tuned reads the presets of the data root it is given
            hint += f" --data-dir {self.config.data_dir}"
        return (f"{head}\nbest trial #{entry['trial']}: average gap {100 * entry['value']:.2f} "
                f"points on the validation split; {params}\nwrote {self.path} ({hint})")


# ------------------------------------------------------------------------------- checks

def check(cfg: TuneConfig) -> None:
    """Fail on a bad input before any data is read or any storage is opened: the fields'
    types, the method, the preset file (``check_preset_file``) and every folder the study
    writes (the data root's models/, presets/ and, with the default storage, studies/)."""
    if not isinstance(cfg, TuneConfig):
        raise ConfigError(f"tune takes a TuneConfig, got {type(cfg).__name__}")
    for name in ("storage", "study"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be a str or None, got {type(value).__name__} "
                              f"{value!r}")
    seed = cfg.sampler_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"sampler_seed must be an integer between 0 and {MAX_SEED}, got "
                          f"{seed!r}")
    cfg.run_config(0)  # RunConfig checks dataset, forget, method, quick, data_dir, device, ...
    dataset_spec(cfg.dataset)
    parse_forget(cfg.forget)
    method = get_method(cfg.method)
    if not method.tunable():
        method.search_space(None)  # raises the one-line ConfigError naming tunable methods
    for name in ("trials", "seeds"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {value}")
    if not cfg.study_name.strip():
        raise ConfigError("--study is empty: name the study or leave the option out")
    written = {"models": "caches the ensemble's models there",
               "presets": "writes the best trial to presets/tuned.json"}
    if not cfg.storage:
        written["studies"] = "keeps the study in studies/optuna.db"
    check_data_root(cfg.data_dir, written)
    public_url(storage_url(cfg))  # a malformed --storage URL fails here
    path = data_root(cfg.data_dir) / TUNED_FILE
    check_file_target(path, "tuned preset file")
    check_preset_file(path, cfg.method)


def check_preset_file(path: Path, method: str) -> None:
    """Raise ``ConfigError`` unless ``write_preset`` can add ``method``'s entry to the preset
    file at ``path`` (missing, or a JSON object whose ``method`` entry, if any, is an object).
    The file holds every method's tuned presets, so the advice names what to repair, never
    to delete the file."""
    if not path.is_file():
        return
    keep = "it holds the tuned presets of every method, so repair it rather than delete it"
    try:
        content = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"tuned presets '{path}' are not valid JSON ({exc}); {keep}, or move "
                          "it aside to start a new file") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"tuned presets '{path}' must hold a JSON object {{method: {{dataset: "
                          f"entry}}}}, not a {type(content).__name__}; {keep}, or move it aside")
    entry = content.get(method)
    if entry is not None and not isinstance(entry, dict):
        raise ConfigError(f"tuned presets '{path}': the entry '{method}' must be an object "
                          "{dataset: entry}; fix or remove that entry (the other methods' "
                          "entries stay as they are)")


def storage_url(cfg: TuneConfig) -> str:
    """``cfg.storage``, or SQLite at ``<data root>/studies/optuna.db`` (absolute path)."""
    if cfg.storage:
        return cfg.storage
    return f"sqlite:///{(data_root(cfg.data_dir) / STUDIES).resolve()}"


def public_url(url: str) -> str:
    """The storage URL without its password (for logs and the preset file)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"--storage '{url}' is not a database URL ({exc}); e.g. "
                          "sqlite:///studies.db or postgresql+psycopg://user@host/db") from exc
    return parsed.render_as_string(hide_password=True)  # user:***@host


def open_storage(cfg: TuneConfig):
    """An Optuna RDB storage for ``storage_url(cfg)``; a bad URL or an unreachable or
    unusable database is a one-line ConfigError."""
    import optuna

    url = storage_url(cfg)
    public = public_url(url)
    if url.startswith("sqlite:///") and not cfg.storage:
        (data_root(cfg.data_dir) / STUDIES).parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url)
            except (IntegrityError, ProgrammingError):
                # Workers started together on a fresh database race to create Optuna's
                # tables; the loser finds them made when it tries again.
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
    except Exception as exc:  # driver, connection and schema errors all end here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"cannot open the study storage '{public}': {type(exc).__name__}: "
                          f"{reason[:200]}") from exc


# ---------------------------------------------------------------------------- objective

def baselines(cfg: TuneConfig, first: Scenario | None = None) -> list[Baselines]:
    """The original and retrained models of seeds 0..seeds-1 on the validation setup,
    trained or loaded once per process and shared by every trial (``first``: seed 0's
    scenario, already built by ``check_scenario``)."""
    return [prepare(cfg.run_config(seed), scenario=first if seed == 0 else None)
            for seed in range(cfg.seeds)]


def check_scenario(cfg: TuneConfig) -> Scenario:
    """Seed 0's scenario, with the method's default parameters checked against its data
    (``UnlearningMethod.check_task``) before the study is opened or a model trained."""
    sc = build_scenario(cfg.run_config(0))
    check_task(sc, cfg.unlearner())
    return sc


def ensemble_means(bases: list[Baselines]) -> dict[str, float]:
    """The retrained ensemble's mean of every ``GAP_KEYS`` entry (seeds with a value)."""
    means = {}
    for key in GAP_KEYS:
        values = [b.evaluations["retrained"].get(key) for b in bases]
        values = [v for v in values if v is not None]
        if values:
            means[key] = float(np.mean(values))
    return means


def evaluate(bases: list[Baselines], method: str, params: dict) -> dict:
    """Unlearn each seed's original model with ``method`` and ``params`` (in memory: nothing
    is cached or written) and score it against the retrained ensemble.

    Returns {"value": J, "gaps": per-seed avg_gap (None where diverged), "diverged": seeds,
    "evaluations": per-seed evaluation of the unlearned model (None where diverged)}."""
    reference = ensemble_means(bases)
    gaps, evaluations, diverged = [], [], []
    for base in bases:
        sc = base.scenario
        unlearner = create(method, dataset=sc.dataset.name, scenario=sc.kind,
                           arch=sc.arch, params=params)
        _, _, evaluation, _ = unlearn_and_assess(base, unlearner, cached=False)
        evaluations.append(evaluation)
        if evaluation is None:
            gaps.append(None)
            diverged.append(sc.config.seed)
        else:
            gaps.append(avg_gap(evaluation, reference))
    if diverged or any(g is None for g in gaps):
        value = DIVERGED
    else:
        value = float(np.mean(gaps))
    return {"value": value, "gaps": gaps, "diverged": diverged, "evaluations": evaluations}


def objective(bases: list[Baselines], method: str):
    """The Optuna objective: draw h from the method's ``search_space``, return J(h); the
    per-seed gaps, the worker and the seconds go into the trial's user attributes."""
    method_cls = get_method(method)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def run_trial(trial) -> float:
        params = method_cls.search_space(trial)
        start = time.perf_counter()
        result = evaluate(bases, method, params)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("gaps", result["gaps"])
        trial.set_user_attr("diverged", result["diverged"])
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        return result["value"]

    return run_trial


# -------------------------------------------------------------------------------- study

def complete_trials(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def load_study(cfg: TuneConfig):
    """Create or load (``load_if_exists``) the study, checking that a loaded study was made
    with the same setup. Its sampler is TPE (``constant_liar`` for parallel workers) seeded by
    ``sampler_seed``, the study name and the number of trials already in the study, so a
    resumed study does not redraw its first trials and two studies draw independently.
    (Workers started at the same moment on an empty study draw the same first random
    trials; start them a trial apart to avoid that.)"""
    import optuna

    storage = open_storage(cfg)
    name = cfg.study_name
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                load_if_exists=True)
    setup = study.user_attrs.get("setup")
    if setup is None:
        study.set_user_attr("setup", cfg.setup)
    elif setup != cfg.setup:
        differ = ", ".join(f"{k}={setup.get(k)}" for k in sorted(cfg.setup)
                           if setup.get(k) != cfg.setup[k])
        raise ConfigError(f"study '{name}' was made with another setup ({differ}); use the "
                          "same options or another --study")
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ConfigError(f"study '{name}' maximises; the gap must be minimised: use --study")
    if not study.trials:
        # Warm start: the first trial runs the shipped default, so the tuned preset is never
        # worse than it on the validation split (``skip_if_exists``: two fresh workers).
        study.enqueue_trial(default_params(cfg), skip_if_exists=True)
    seed = cfg.sampler_seed + zlib.crc32(name.encode()) + len(study.trials)
    sampler = optuna.samplers.TPESampler(seed=seed % 2**32, constant_liar=True)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def default_params(cfg: TuneConfig) -> dict:
    """The method's ``default`` preset for the study's dataset, scenario kind and architecture
    (the parameters it does not search are ignored by Optuna)."""
    params = cfg.unlearner().params
    return {k: v for k, v in params.items() if isinstance(v, int | float | str)}


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _progress(study, trial) -> None:
    """One log line per finished trial: number, value, best so far and parameters."""
    from optuna.trial import TrialState

    params = " ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if trial.state != TrialState.COMPLETE:
        log.info("trial %d %s: %s", trial.number, trial.state.name.lower(), params)
        return
    best = study.best_trial
    log.info("trial %d: gap %.4f | best %.4f (trial %d) | %s", trial.number, trial.value,
             best.value, best.number, params)


def tune(cfg: TuneConfig) -> TuneResult:
    """Run the study until it holds ``cfg.trials`` complete trials (this process and any
    other worker together) and write its best trial as the ``tuned`` preset. Ctrl-C stops
    after marking the running trial failed; the finished ones stay in the storage."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    check(cfg)
    # Progress comes from _progress. Optuna's own warning on a failed trial carries the
    # traceback of the error (a Ctrl-C too), which then reaches the CLI as one line anyway.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study(cfg)  # an unreachable storage fails before the data is read
    first = check_scenario(cfg)
    path = data_root(cfg.data_dir) / TUNED_FILE
    result = TuneResult(study, None, path, config=cfg)
    todo = cfg.trials - complete_trials(study)
    if todo > 0:
        log.info("study '%s': %d of %d trials to run; preparing the baselines of %d seed(s)",
                 cfg.study_name, todo, cfg.trials, cfg.seeds)
        bases = baselines(cfg, first)
        mine_before = _own_count(study)
        stop = MaxTrialsCallback(cfg.trials, states=(TrialState.COMPLETE,))
        try:
            study.optimize(objective(bases, cfg.method), n_trials=todo,
                           callbacks=[_progress, stop], gc_after_trial=False)
        except KeyboardInterrupt:
            result.interrupted = True
        result.ran = _own_count(study) - mine_before
    result.preset = write_preset(study, cfg)
    return result


def _own_count(study) -> int:
    """Complete trials of this process (user attribute ``worker``)."""
    from optuna.trial import TrialState

    worker = f"{socket.gethostname()}:{os.getpid()}"
    return sum(t.user_attrs.get("worker") == worker
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


# ------------------------------------------------------------------------------- preset

@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path``'s lock file (read-modify-write by several workers)."""
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def preset_entry(study, cfg: TuneConfig) -> dict | None:
    """The best trial as a preset entry: the full resolved hyperparameters (``params``), the
    searched ones, the score and where it came from. None without a complete trial."""
    if complete_trials(study) == 0:
        return None
    best = study.best_trial
    return {"params": cfg.unlearner(**best.params).params, "searched": dict(best.params),
            "value": best.value, "trial": best.number, "trials": complete_trials(study),
            "study": cfg.study_name, "storage": public_url(storage_url(cfg)), **cfg.setup,
            "objective": "mean over seeds of avg_gap to the retrained ensemble's means on a "
                         f"{cfg.validation:.0%} validation split held out from training",
            "written": datetime.now(UTC).isoformat(timespec="seconds")}


def write_preset(study, cfg: TuneConfig) -> dict | None:
    """Write the study's best trial into ``<data root>/presets/tuned.json`` under
    [method][dataset] (atomically, under a file lock; other entries are kept)."""
    entry = preset_entry(study, cfg)
    if entry is None:
        return None
    path = data_root(cfg.data_dir) / TUNED_FILE
    with _locked(path):
        content = read_tuned(path)
        content.setdefault(cfg.method, {})[cfg.dataset] = entry
        write_json(path, content)
    return entry


__all__ = ["DIVERGED", "METRICS", "VALIDATION", "TuneConfig", "TuneResult", "baselines",
           "ensemble_means", "evaluate", "load_study", "tune", "write_preset"]
