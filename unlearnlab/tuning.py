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
import os
import socket
import time
from dataclasses import dataclass, field
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
from .verdict import GAP_KEYS, avg_gap

log = logging.getLogger("unlearnlab")

VALIDATION = 0.1  # share of the training set held out for the objective
METRICS = ["mia_efficacy"]  # the only forget-set metric the gap needs (the others are slow)
DIVERGED = 1.0  # objective of a trial that diverged: the largest possible average gap


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
    check_not_held_out(cfg.dataset, cfg.forget, "tune")
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
        unlearner = create_for(sc, method, params=params)
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
    result = evaluate(_worker_baselines(cfg), cfg.method, params)
    return {"value": result["value"], "gaps": result["gaps"], "diverged": result["diverged"],
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
            for key in ("worker", "gaps", "diverged", "seconds"):
                trial.set_user_attr(key, result[key])
            _progress(study, study.tell(trial, result["value"]))
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
            study.optimize(objective(bases, cfg.method), n_trials=todo,
                           callbacks=[_progress, stop], gc_after_trial=False)
        except KeyboardInterrupt:
            result.interrupted = True
        result.ran = own_count(study) - mine_before
    result.preset = write_preset(study, cfg)
    return result


__all__ = ["DIVERGED", "METRICS", "VALIDATION", "TuneConfig", "TuneResult", "baseline_job",
           "baselines", "ensemble_means", "evaluate", "trial_job", "tune"]
