"""``--preset auto``: a method's hyperparameters for a scenario nobody tuned it on, from a short
search before the run, cached for that scenario.

A run with preset ``auto`` takes, first match wins:

1. the ``tuned`` preset that ``--preset tuned`` would read (``presets.lookup_tuned``: the
   scenario's entry, else the dataset's), when it was tuned on this very scenario: the same
   forget spec, architecture and quick mode, and a run without ``oversample``,
   ``train_per_class`` or ``epochs`` (``unlearnlab tune`` sets none);
2. an earlier auto search of this scenario, cached as ``<data root>/presets/auto/<dataset>/
   <method>-<key>.json`` (``--fresh`` searches again);
3. a new search: ``AUTO_TRIALS`` trials of the method's ``search_space``, each scored by
   ``tuning``'s objective J (the mean over seeds 0..``AUTO_SEEDS``-1 of the average gap of the
   unlearned model to the retrained ensemble's means, on the validation split held out from
   training: the test set is never read), the default preset as the first trial (so the
   result is never worse than the default on the validation split), the others drawn by TPE
   seeded with ``AUTO_SAMPLER_SEED``. With 8 trials TPE is still in its random start-up: the
   search is the default against 7 seeded random draws from the search space. The study lives
   in memory; its best trial is cached and the run uses it.

``--set`` values apply on top of the chosen values; the search does not see them, so the cache
serves runs with and without overrides alike.

The cache is a folder of its own, not the tuned-preset file: a tuned preset is a user's
deliberate study (20 trials, 3 seeds by default) that ``--preset tuned`` serves on any scenario
of its dataset, while an auto search is a small budget spent on one scenario; writing it to
``tuned.json`` would silently replace a hand-made preset, and serve it to other scenarios. An
entry's name is a hash of everything the search depends on (``search_key``): the method's name
and code, each seed's trained models' cache keys (dataset checksum, architecture and its code,
recipe, resolved forget set, quick mode, training subset, validation split), the samples in
each role, the evaluation code and the budget. A search with any other input has another key,
and a stored entry's key is compared again on load, so no run is served a search made on other
inputs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .cache import evaluation_code_hash, method_code_hash, model_config
from .config import RunConfig
from .data import data_root
from .errors import ConfigError
from .experiment import prepare
from .forget import parse_forget
from .heldout import check_not_held_out
from .methods import create, get_method
from .methods.base import UnlearningMethod
from .methods.presets import AUTO, lookup_tuned
from .outputs import write_json
from .scenario import Scenario, build_scenario, resolve_arch
from .store import config_key
from .tuning import DIVERGED, METRICS, VALIDATION, evaluate

log = logging.getLogger("unlearnlab")

# The budget of a search: a few trials, as ``run`` waits for it; two seeds, so that the gap is
# averaged over two model pairs rather than fitted to one.
AUTO_TRIALS = 8
AUTO_SEEDS = 2
AUTO_SAMPLER_SEED = 0
AUTO_FOLDER = Path("presets") / "auto"


@dataclass
class AutoPreset:
    """The values of preset ``auto`` for one method on one scenario: ``params``, the method's
    full hyperparameters (without ``--set`` overrides), and ``record``, where they came from
    (the run record's ``auto_preset``)."""

    params: dict
    record: dict


def budget() -> dict:
    """The search's budget as the record and the cache key name it."""
    return {"trials": AUTO_TRIALS, "seeds": AUTO_SEEDS, "validation": VALIDATION,
            "sampler": "TPE", "sampler_seed": AUTO_SAMPLER_SEED, "metrics": list(METRICS)}


def method_class(method) -> type[UnlearningMethod]:
    return method if isinstance(method, type) else get_method(method)


def check_searchable(method) -> None:
    """Raise a one-line ``ConfigError`` when ``method`` declares no search space."""
    cls = method_class(method)
    if not cls.tunable():
        raise ConfigError(f"{cls.name} declares no search space, so --preset {AUTO} cannot "
                          "search it; use --preset default")


def search_configs(cfg: RunConfig) -> list[RunConfig]:
    """The run configurations of the search's seeds: ``cfg``'s scenario (dataset, forget set,
    architecture, mode, recipe options) with the validation split held out, the default
    preset and only the metrics the objective needs."""
    return [replace(cfg, seed=seed, params={}, preset="default", validation=VALIDATION,
                    metrics=list(METRICS)) for seed in range(AUTO_SEEDS)]


def search_key(cls: type[UnlearningMethod], scenarios: list[Scenario]) -> dict:
    """Everything a search's result depends on (see the module's docstring)."""
    return {"role": "auto_preset", "method": cls.name, "code": method_code_hash(cls),
            "forget": str(scenarios[0].spec), "evaluation_code": evaluation_code_hash(),
            "models": [[model_config(sc, role) for role in ("original", "retrained")]
                       for sc in scenarios],
            "split_hashes": [sc.split_hash for sc in scenarios], "budget": budget()}


def cache_path(cfg: RunConfig, cls: type[UnlearningMethod], key: dict) -> Path:
    """``<data root>/presets/auto/<dataset>/<method>-<hash of key>.json``."""
    return (data_root(cfg.data_dir) / AUTO_FOLDER / cfg.dataset
            / f"{cls.name}-{config_key(key)}.json")


def tuned_for_scenario(cls: type[UnlearningMethod], cfg: RunConfig) -> AutoPreset | None:
    """The tuned preset ``--preset tuned`` would read, if it was tuned on ``cfg``'s scenario."""
    spec = parse_forget(cfg.forget)
    arch = resolve_arch(cfg, spec)
    found = lookup_tuned(cls.name, cfg.dataset, cfg.data_dir, str(spec), arch)
    if found is None or cfg.oversample or cfg.train_per_class or cfg.epochs:
        return None
    path, entry = found
    if (entry.get("forget"), entry.get("arch"), entry.get("quick")) != (
            str(spec), arch, cfg.quick):
        return None
    params = create(cls, preset="tuned", dataset=cfg.dataset, scenario=spec.scenario,
                    arch=arch, data_dir=cfg.data_dir, forget=str(spec)).params
    return AutoPreset(params, {"source": "tuned", "path": str(path),
                               "study": entry.get("study"), "trials": entry.get("trials"),
                               "seeds": entry.get("seeds"), "value": entry.get("value")})


def read_cached(path: Path, key: dict) -> dict | None:
    """The cached search at ``path`` if it holds ``key``; a damaged or foreign entry is
    reported and searched again (the search writes the entry anew)."""
    import json

    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        log.warning("auto preset cache '%s' is not valid JSON (%s); searching again", path, exc)
        return None
    if not isinstance(entry, dict) or entry.get("key") != key \
            or not isinstance(entry.get("params"), dict):
        log.warning("auto preset cache '%s' holds another search; searching again", path)
        return None
    return entry


def resolve(cfg: RunConfig) -> AutoPreset:
    """The values of preset ``auto`` for ``cfg``'s method and scenario: a tuned preset made on
    this scenario, else a cached search, else a new search (written to the cache)."""
    cls = method_class(cfg.method)
    check_searchable(cls)
    check_not_held_out(cfg.dataset, cfg.forget, f"--preset {AUTO}")
    tuned = tuned_for_scenario(cls, cfg)
    if tuned is not None:
        log.info("preset auto: %s on %s forget %s has a tuned preset for this scenario in %s; "
                 "using it, no search", cls.name, cfg.dataset, cfg.forget,
                 tuned.record["path"])
        return tuned
    configs = search_configs(cfg)
    scenarios = [build_scenario(c) for c in configs]
    key = search_key(cls, scenarios)
    path = cache_path(cfg, cls, key)
    entry = read_cached(path, key) if cfg.reuse else None
    reused = entry is not None
    if reused:
        log.info("preset auto: reusing the search of %s on %s forget %s cached in %s (%d trials "
                 "x %d seeds, gap %.2f points on the validation split)", cls.name, cfg.dataset,
                 cfg.forget, path, AUTO_TRIALS, AUTO_SEEDS, 100 * entry["value"])
    else:
        entry = search(cls, scenarios, key)
        write_json(path, entry)
        log.info("preset auto: best trial %d, gap %.2f points on the validation split "
                 "(default preset: %.2f); cached in %s", entry["trial"], 100 * entry["value"],
                 100 * entry["default_value"], path)
    record = {"source": "search", "reused": reused, "path": str(path), "key": config_key(key),
              "budget": entry["budget"], "searched": entry["searched"], "value": entry["value"],
              "default_value": entry["default_value"], "trial": entry["trial"]}
    return AutoPreset(dict(entry["params"]), record)


def search(cls: type[UnlearningMethod], scenarios: list[Scenario], key: dict) -> dict:
    """Run the search on ``scenarios`` (one per seed, validation split held out) and return
    the cache entry: the best trial's full ``params`` and ``searched`` values, its objective
    ``value``, the default preset's, and every trial."""
    import optuna

    first = scenarios[0]
    default = create(cls, dataset=first.dataset.name, scenario=first.kind, arch=first.arch)
    log.info("preset auto: no tuned preset for %s on %s forget %s (%s); searching %d trials x "
             "%d seeds on the validation split (%.0f %% of the training set, held out), the "
             "default preset first; the validation models of each seed are trained first "
             "unless cached", cls.name, first.dataset.name, first.spec, first.arch,
             AUTO_TRIALS, AUTO_SEEDS, 100 * VALIDATION)
    start = time.perf_counter()
    bases = [prepare(sc.config, scenario=sc) for sc in scenarios]
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # progress comes from _progress
    sampler = optuna.samplers.TPESampler(seed=AUTO_SAMPLER_SEED)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    # The first trial is the default preset: the result is never worse on the validation split.
    study.enqueue_trial({k: v for k, v in default.params.items()
                         if isinstance(v, int | float | str)})

    def run_trial(trial) -> float:
        result = evaluate(bases, cls, cls.search_space(trial))
        trial.set_user_attr("gaps", result["gaps"])
        return result["value"]

    searching = time.perf_counter()
    study.optimize(run_trial, n_trials=AUTO_TRIALS, callbacks=[_progress(searching)],
                   gc_after_trial=False)
    best = study.best_trial
    if best.value >= DIVERGED:
        log.warning("preset auto: every trial of %s diverged; the run uses the default preset",
                    cls.name)
    searched = dict(best.params)
    params = create(cls, dataset=first.dataset.name, scenario=first.kind, arch=first.arch,
                    params=searched).params
    return {"method": cls.name, "dataset": first.dataset.name, "forget": str(first.spec),
            "arch": first.arch, "quick": first.config.quick, "budget": budget(),
            "params": params, "searched": searched, "value": best.value,
            "trial": best.number, "default_value": study.trials[0].value,
            "trials": [{"number": t.number, "params": t.params, "value": t.value,
                        "gaps": t.user_attrs.get("gaps")} for t in study.trials],
            "objective": "mean over seeds of avg_gap to the retrained ensemble's means on a "
                         f"{VALIDATION:.0%} validation split held out from training",
            "seconds": round(time.perf_counter() - start, 3), "key": key,
            "written": datetime.now(UTC).isoformat(timespec="seconds")}


def _progress(start: float):
    """One log line per trial; after the first (the default preset), the time the others
    should take at its pace."""

    def report(study, trial) -> None:
        best = study.best_trial
        log.info("preset auto: trial %d/%d: gap %.4f | best %.4f (trial %d)", trial.number + 1,
                 AUTO_TRIALS, trial.value, best.value, best.number)
        if trial.number == 0:
            seconds = time.perf_counter() - start
            log.info("preset auto: the default preset took %.1f s, so the search needs about "
                     "%.0f s more", seconds, seconds * (AUTO_TRIALS - 1))

    return report


def auto_presets(cfg: RunConfig, methods, preset: str) -> dict:
    """{method: ``AutoPreset``} of ``compare``'s methods on ``cfg``'s scenario when ``preset``
    is ``auto``, else {}."""
    if preset != AUTO:
        return {}
    return {m: resolve(replace(cfg, method=m, params={}, preset=AUTO)) for m in methods}


__all__ = ["AUTO_FOLDER", "AUTO_SEEDS", "AUTO_TRIALS", "AutoPreset", "auto_presets",
           "check_searchable", "resolve", "search_key"]
