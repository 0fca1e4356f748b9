"""Hyperparameter search against the retrained ensemble, with Optuna (Akiba et al. 2019,
"Optuna: A Next-generation Hyperparameter Optimization Framework", KDD).

Objectives (minimised), for a method M with hyperparameters h on seeds s = 0..K-1, chosen by
``TuneConfig.objective``:

    gap: J(h)   = 1/K sum_s avg_gap(E(M_h(original_s)), mean_s' E(retrained_s'))
    z:   J_z(h) = 1/K sum_s avg_abs_z(E(M_h(original_s)), mean_s' E(retrained_s'),
                                      std_s' E(retrained_s'))

with E(model) the evaluation of a model, ``verdict.avg_gap`` the mean absolute difference over
``GAP_KEYS`` (forget/retain accuracy of train and held-out samples, and MIA-efficacy) and
``verdict.avg_abs_z`` the mean over the same keys of |z|, the difference in units of the
retrained ensemble's standard deviation (ddof 1, floored at ``verdict.Z_FLOOR``): the verdict
``compare.against_ensemble`` ranks methods by, so ``z`` needs two seeds or more. Both score
against the retrained ensemble, not one paired retrained model. A run that diverges on any seed
scores ``DIVERGED`` (1, the largest gap possible) under ``gap`` and ``DIVERGED_Z`` (infinity:
avg |z| has no largest value) under ``z``. ``gap`` stays the default, so that the studies and
presets made before ``z`` existed resume and compare unchanged.

Everything is computed on a validation split held out from training
(``experiment.RunConfig.validation``: a seeded 10 % of the training set, stratified by class
and forget membership, removed from the training of both the original and the retrained
models, whose cache keys name it): the test set the report uses is never read.

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

With an executor of workers (``tune(cfg, executor="process:4")``, ``--executor ray``), this
process keeps the study and its seeded sampler and the workers only evaluate: the baselines
are trained once on the workers (``baseline_job``), then trials are asked in rounds of as many
as the executor runs at once, their J(h) computed by ``trial_job`` on the workers and told to
the study here. A trial's value depends only on its parameters (every seed comes from the
configuration, the thread count from the executor), and the parameters only on the sampler's
seed and the round size, never on which worker ran what or when it finished.

Where a study lives (storage, resumption, the preset file) is ``studies``'s concern.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .config import MAX_SEED, RunConfig
from .data import data_root, dataset_spec
from .errors import ConfigError
from .executor import Executor, check_fresh, open_executor
from .experiment import (
    Baselines,
    check_data_root,
    check_task,
    create_for,
    prepare,
    unlearn_and_assess,
)
from .forget import parse_forget
from .heldout import check_not_held_out
from .methods import create, get_method
from .methods.presets import TUNED_FILE
from .outputs import check_file_target
from .scenario import Scenario, build_scenario, resolve_arch
from .studies import (
    check_preset_file,
    complete_trials,
    load_study,
    own_count,
    public_url,
    storage_url,
    write_preset,
)
from .verdict import GAP_KEYS, avg_abs_z, avg_gap

log = logging.getLogger("unlearnlab")

VALIDATION = 0.1  # share of the training set held out for the objective
METRICS = ["mia_efficacy"]  # the only forget-set metric the gap needs (the others are slow)
DIVERGED = 1.0  # objective of a trial that diverged: the largest possible average gap
DIVERGED_Z = math.inf  # the same under the z objective, which has no largest value
# The objectives a study can minimise (module docstring), each with its name in the log lines.
OBJECTIVES = {"gap": "gap", "z": "avg |z|"}
# The user attributes of a trial: who ran it, its per-seed scores (z_gaps: z objective only),
# its seconds.
TRIAL_ATTRS = ("worker", "gaps", "z_gaps", "diverged", "seconds")


@dataclass
class TuneConfig:
    """One study: the scenario (``dataset``, ``forget``, ``arch``: None for the dataset's
    default, ``quick``), the method, the study's target of complete ``trials``, the ensemble
    size ``seeds`` (seeds 0..seeds-1), the ``objective`` (``OBJECTIVES``), where the study
    lives (``storage`` URL, default SQLite in the data root; ``study`` name, default
    ``<method>-<dataset>-<forget>``, then ``-<arch>`` when one is named, ``-z`` under the z
    objective and ``-quick`` in quick mode) and ``sampler_seed``. ``reuse`` loads matching
    cached baselines (the notebooks' ``ALLREADY_TRAINED``). The best trial is written as the
    scenario's tuned entry and, with ``dataset_entry``, as the dataset's too
    (``studies.write_preset``)."""

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
    arch: str | None = None
    objective: str = "gap"
    dataset_entry: bool = True

    def run_config(self, seed: int) -> RunConfig:
        return RunConfig(dataset=self.dataset, forget=self.forget, method=self.method,
                         seed=seed, quick=self.quick, data_dir=self.data_dir,
                         device=self.device, reuse=self.reuse, metrics=list(METRICS),
                         validation=self.validation, arch=self.arch)

    @property
    def study_name(self) -> str:
        # A gap study keeps the name it had before objectives were an option, so it resumes.
        return self.study or (f"{self.method}-{self.dataset}-{self.forget}"
                              f"{f'-{self.arch}' if self.arch else ''}"
                              f"{'-z' if self.objective == 'z' else ''}"
                              f"{'-quick' if self.quick else ''}")

    @property
    def objective_definition(self) -> str:
        """What the study minimises, in words (the tuned entry's ``objective_definition``)."""
        score = ("avg_abs_z (the mean |z|, z the difference to the retrained ensemble's mean in "
                 "units of its std)" if self.objective == "z"
                 else "avg_gap to the retrained ensemble's means")
        return (f"mean over seeds of {score} on a {self.validation:.0%} validation split held "
                "out from training")

    def unlearner(self, **params):
        """The method with its default preset for the study's dataset, scenario kind and
        architecture, ``params`` on top."""
        spec = parse_forget(self.forget)
        return create(self.method, dataset=self.dataset, scenario=spec.scenario,
                      arch=resolve_arch(self.run_config(0), spec), params=params)

    def default_params(self) -> dict:
        """The method's ``default`` preset for the study's dataset, scenario kind and
        architecture (the parameters it does not search are ignored by Optuna)."""
        params = self.unlearner().params
        return {k: v for k, v in params.items() if isinstance(v, int | float | str)}

    @property
    def setup(self) -> dict:
        """What the objective depends on; a study resumed with another setup is refused."""
        spec = parse_forget(self.forget)
        return {"method": self.method, "dataset": self.dataset, "forget": str(spec),
                "arch": resolve_arch(self.run_config(0), spec), "seeds": self.seeds,
                "quick": self.quick, "validation": self.validation,
                "objective": self.objective}


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
        params = ", ".join(f"{k}={short_value(v)}" for k, v in entry["searched"].items())
        hint = "run it with --preset tuned"
        if self.config.data_dir:  # --preset tuned reads the presets of the data root it is given
            hint += f" --data-dir {self.config.data_dir}"
        return (f"{head}\nbest trial #{entry['trial']}: {value_text(entry['value'], self.config)}"
                f" on the validation split; {params}\nwrote {self.path} ({hint})")


def value_text(value: float, cfg: TuneConfig) -> str:
    """An objective value as the summary reads it: points of average gap, or sigma."""
    if cfg.objective == "z":
        return f"avg |z| {value:.2f} retrained std"
    return f"average gap {100 * value:.2f} points"


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
    check_not_held_out(cfg.dataset, cfg.forget, "tune")
    method = get_method(cfg.method)
    if not method.tunable():
        method.search_space(None)  # raises the one-line ConfigError naming tunable methods
    for name in ("trials", "seeds"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be a positive integer, got {value}")
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {cfg.objective!r} is not an objective; choose one of "
                          f"{', '.join(OBJECTIVES)}")
    if cfg.objective == "z" and cfg.seeds < 2:
        raise ConfigError(f"--objective z needs --seeds 2 or more (one retrained model has no "
                          f"spread), got {cfg.seeds}")
    if not isinstance(cfg.dataset_entry, bool):
        raise ConfigError(f"dataset_entry must be a bool, got {cfg.dataset_entry!r}")
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


def ensemble_moments(bases: list[Baselines]) -> tuple[dict[str, float], dict[str, float]]:
    """The retrained ensemble's mean of every ``GAP_KEYS`` entry (seeds with a value) and its
    standard deviation (ddof 1) where two seeds or more have one (one value has no spread)."""
    means, stds = {}, {}
    for key in GAP_KEYS:
        values = [b.evaluations["retrained"].get(key) for b in bases]
        values = [v for v in values if v is not None]
        if values:
            means[key] = float(np.mean(values))
        if len(values) >= 2:
            stds[key] = float(np.std(values, ddof=1))
    return means, stds


def evaluate(bases: list[Baselines], method: str, params: dict,
             objective: str = "gap") -> dict:
    """Unlearn each seed's original model with ``method`` and ``params`` (in memory: nothing
    is cached or written) and score it against the retrained ensemble by ``objective``.

    Returns {"value": J (or J_z), "gaps": per-seed avg_gap (None where diverged), "diverged":
    seeds, "evaluations": per-seed evaluation of the unlearned model (None where diverged)};
    under ``z`` also "z_gaps": per-seed avg_abs_z (None where diverged)."""
    reference, stds = ensemble_moments(bases)
    spread = stds if objective == "z" else None
    gaps, z_gaps, evaluations, diverged = [], [], [], []
    for base in bases:
        sc = base.scenario
        unlearner = create_for(sc, method, params=params)
        _, _, evaluation, _ = unlearn_and_assess(base, unlearner, cached=False)
        evaluations.append(evaluation)
        if evaluation is None:
            gaps.append(None)
            z_gaps.append(None)
            diverged.append(sc.config.seed)
        else:
            gaps.append(avg_gap(evaluation, reference))
            if spread is not None:
                z_gaps.append(avg_abs_z(evaluation, reference, spread))
    scores, worst = (z_gaps, DIVERGED_Z) if objective == "z" else (gaps, DIVERGED)
    value = worst if diverged or any(v is None for v in scores) else float(np.mean(scores))
    return {"value": value, "gaps": gaps, **({"z_gaps": z_gaps} if objective == "z" else {}),
            "diverged": diverged, "evaluations": evaluations}


def objective(bases: list[Baselines], method: str, score: str = "gap"):
    """The Optuna objective: draw h from the method's ``search_space``, return J(h) (``score``
    ``z``: J_z(h)); the per-seed gaps (and avg |z|), the worker and the seconds go into the
    trial's user attributes."""
    method_cls = get_method(method)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def run_trial(trial) -> float:
        params = method_cls.search_space(trial)
        start = time.perf_counter()
        result = evaluate(bases, method, params, score)
        trial.set_user_attr("worker", worker)
        for key in TRIAL_ATTRS[1:-1]:
            if key in result:
                trial.set_user_attr(key, result[key])
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        return result["value"]

    return run_trial


# -------------------------------------------------------------------------------- study

def short_value(value) -> str:
    """A parameter value as the log lines and summaries print it: floats to 3 digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _progress(study, trial, label: str = OBJECTIVES["gap"]) -> None:
    """One log line per finished trial: number, value (``label``: what it is), best so far and
    parameters."""
    from optuna.trial import TrialState

    params = " ".join(f"{k}={short_value(v)}" for k, v in trial.params.items())
    if trial.state != TrialState.COMPLETE:
        log.info("trial %d %s: %s", trial.number, trial.state.name.lower(), params)
        return
    best = study.best_trial
    log.info("trial %d: %s %.4f | best %.4f (trial %d) | %s", trial.number, label, trial.value,
             best.value, best.number, params)


# One process's baselines of the last study it evaluated trials of (a worker of an executor runs
# many trials of one study: it loads the baselines from the cache once).
_WORKER_BASELINES: dict[str, list[Baselines]] = {}


def _worker_baselines(cfg: TuneConfig) -> list[Baselines]:
    key = repr(cfg)
    if key not in _WORKER_BASELINES:
        _WORKER_BASELINES.clear()
        _WORKER_BASELINES[key] = baselines(cfg)
    return _WORKER_BASELINES[key]


def baseline_job(job: tuple[TuneConfig, int]) -> None:
    """A worker's job: seed ``seed``'s original and retrained models of the study trained
    (or found) in the cache, with their baseline evaluations."""
    cfg, seed = job
    prepare(cfg.run_config(seed))


def trial_job(job: tuple[TuneConfig, int, dict]) -> dict:
    """A worker's job: J(h) of trial ``number`` with parameters ``params`` (``evaluate``), with
    the worker that ran it and its seconds."""
    cfg, _, params = job
    start = time.perf_counter()
    result = evaluate(_worker_baselines(cfg), cfg.method, params, cfg.objective)
    return {"value": result["value"], "gaps": result["gaps"], "diverged": result["diverged"],
            **({"z_gaps": result["z_gaps"]} if "z_gaps" in result else {}),
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "seconds": round(time.perf_counter() - start, 3)}


trial_job.describe = lambda job: f"trial {job[1]} of {job[0].study_name}"
baseline_job.describe = lambda job: f"baselines of {job[0].study_name}, seed {job[1]}"


def _tune_on(pool: Executor, study, cfg: TuneConfig) -> int:
    """The trials the study lacks, in rounds of ``pool.workers`` on the pool's workers (see the
    module docstring); returns how many this call completed. A round whose jobs fail (or
    Ctrl-C) marks its trials failed and raises."""
    from optuna.trial import TrialState

    method_cls = get_method(cfg.method)
    progress = partial(_progress, label=OBJECTIVES[cfg.objective])
    pool.map(baseline_job, [(cfg, seed) for seed in range(cfg.seeds)])
    ran = 0
    while (todo := cfg.trials - complete_trials(study)) > 0:
        trials = [study.ask() for _ in range(min(pool.workers, todo))]
        jobs = [(cfg, t.number, method_cls.search_space(t)) for t in trials]
        try:
            results = pool.map(trial_job, jobs)
        except BaseException:
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise
        for trial, result in zip(trials, results, strict=True):
            for key in TRIAL_ATTRS:
                if key in result:
                    trial.set_user_attr(key, result[key])
            progress(study, study.tell(trial, result["value"]))
            ran += 1
    return ran


def tune(cfg: TuneConfig, executor: str | Executor = "local") -> TuneResult:
    """Run the study until it holds ``cfg.trials`` complete trials (this process and any
    other worker together) and write its best trial as the ``tuned`` preset. Ctrl-C stops
    after marking the running trial failed; the finished ones stay in the storage.
    ``executor`` (``executor.parse_executor``): with workers, the trials run on them in
    rounds (``_tune_on``)."""
    check(cfg)
    with open_executor(executor) as pool:
        check_fresh(pool, cfg.reuse)
        return _tune(cfg, pool)


def _tune(cfg: TuneConfig, pool: Executor) -> TuneResult:
    """``tune``'s work once checked."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

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
        if not pool.in_process:
            try:
                result.ran = _tune_on(pool, study, cfg)
            except KeyboardInterrupt:
                result.interrupted = True
            result.preset = write_preset(study, cfg)
            return result
        bases = baselines(cfg, first)
        mine_before = own_count(study)
        stop = MaxTrialsCallback(cfg.trials, states=(TrialState.COMPLETE,))
        try:
            study.optimize(objective(bases, cfg.method, cfg.objective), n_trials=todo,
                           callbacks=[partial(_progress, label=OBJECTIVES[cfg.objective]), stop],
                           gc_after_trial=False)
        except KeyboardInterrupt:
            result.interrupted = True
        result.ran = own_count(study) - mine_before
    result.preset = write_preset(study, cfg)
    return result


__all__ = ["DIVERGED", "DIVERGED_Z", "METRICS", "OBJECTIVES", "VALIDATION", "TuneConfig",
           "TuneResult", "baseline_job", "baselines", "ensemble_moments",
           "evaluate", "trial_job", "tune", "value_text"]
