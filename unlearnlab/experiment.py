"""One unlearning experiment: the baselines of a scenario (original, retrained and untrained
models, cached, with their evaluations), then a method on a copy of the original, assessed
against them into one JSON-ready record with its reproducibility bundle.

``unlearn_and_assess`` is the one path from a method to a scored model; ``run_method`` (the
record of ``run``, ``compare`` and ``bench``) and ``tuning`` (in memory, nothing written) both
take it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import bundle, cache
from .config import RunConfig
from .data import data_root
from .errors import ConfigError, DivergenceError
from .evaluation import evaluate_logits
from .forget import parse_forget
from .methods import create
from .methods.presets import AUTO
from .metrics import (
    Outputs,
    anamnesis_index,
    forget_metrics,
    model_metrics,
    parameter_distance,
    select_metrics,
)
from .outputs import check_folder_target
from .record import build_record, bundle_dir
from .scenario import Scenario, build_scenario, resolve_arch
from .training import predict, seed_everything
from .verdict import avg_gap, guard_flags

if TYPE_CHECKING:
    from .auto_preset import AutoPreset

log = logging.getLogger("unlearnlab")

ROLES = ("untrained", "original", "retrained", "unlearned")


@dataclass
class Baselines:
    """The models every method of one seed is judged against, with their evaluations (forget-set
    metrics included) and their logits on the probe sets. ``models["untrained"]`` is the seed's
    fresh initialisation: ZRF's reference, and a baseline of its own in ``compare``.
    ``metas[role]["digest"]`` is each trained model's content digest."""

    scenario: Scenario
    models: dict[str, nn.Module]
    metas: dict[str, dict]
    evaluations: dict[str, dict]
    outputs: dict[str, dict[str, torch.Tensor]]

    @property
    def digests(self) -> dict[str, str]:
        return {role: self.metas[role]["digest"] for role in ("original", "retrained")}


@dataclass
class RunResult:
    """``outputs``: the probe-set logits of the original, retrained and (unless the method
    diverged) unlearned models, as in ``Baselines.outputs``."""

    record: dict
    scenario: Scenario
    models: dict[str, nn.Module]
    histories: dict[str, list[dict]]
    outputs: dict[str, dict[str, torch.Tensor]]


def assess(sc: Scenario, model: nn.Module) -> tuple[dict, dict[str, torch.Tensor]]:
    """A model's evaluation and its logits on the probe sets, from one prediction pass."""
    logits = {"train": predict(model, sc.train.x, device=sc.device),
              "test": predict(model, sc.test.x, device=sc.device)}
    evaluation = evaluate_logits(logits, sc.train, sc.test, sc.masks, sc.dataset.num_classes,
                                 forget_class=sc.forget_class if sc.spec.is_feature else None)
    return evaluation, {name: logits[split][rows] for name, (split, rows) in sc.probe.items()}


def scored_outputs(sc: Scenario, outputs: dict[str, dict[str, torch.Tensor]]) -> Outputs:
    """The probe logits of every model with the probe labels, for the metrics."""
    return Outputs(sc.probe_labels(), dict(outputs), sc.config.seed)


def prepare(cfg: RunConfig, untrained: bool = False, scenario: Scenario | None = None
            ) -> Baselines:
    """Build the scenario (or take ``scenario``, built from ``cfg`` beforehand, e.g. to check
    the methods against it first) and train or load its original and retrained models, and
    evaluate them (with ``untrained``, the fresh initialisation is evaluated as a baseline)."""
    if scenario is not None and scenario.config != cfg:
        raise ConfigError("prepare: the scenario given was built from another configuration; "
                          "pass the RunConfig it was built from")
    sc = scenario if scenario is not None else build_scenario(cfg)
    models, metas = {"untrained": cache.new_model(sc).eval()}, {}
    for role in ("original", "retrained"):
        models[role], metas[role] = cache.train_or_load(sc, role)
    digests = {role: metas[role]["digest"] for role in ("original", "retrained")}
    evaluations, outputs = evaluate_baselines(sc, models, digests)
    if not untrained:
        del evaluations["untrained"]
    return Baselines(sc, models, metas, evaluations, outputs)


def evaluate_baselines(sc: Scenario, models: dict[str, nn.Module],
                       digests: dict[str, str]) -> tuple[dict, dict]:
    """The evaluations (forget-set metrics included) and probe logits of the untrained,
    original and retrained models, cached under everything they depend on: a warm run
    (``ALLREADY_TRAINED``) reads them instead of predicting again."""
    names = select_metrics(sc.config.metrics)
    config = cache.baselines_config(sc, digests, names)
    cached = cache.load_baselines(sc, config)
    if cached is not None:
        return cached
    evaluations, outputs = {}, {}
    for name, model in models.items():
        evaluations[name], outputs[name] = assess(sc, model)
    scores = forget_metrics(scored_outputs(sc, outputs), names, roles=("original", "retrained"))
    for role, values in scores.items():
        evaluations[role].update(values)
    evaluations["retrained"].update(
        model_metrics(names, models["retrained"], models["original"], sc.task))
    cache.save_baselines(sc, config, evaluations, outputs)
    return evaluations, outputs


def unlearn_and_assess(base: Baselines, method, cached: bool = True
                       ) -> tuple[nn.Module | None, dict, dict | None, dict]:
    """Unlearn ``base``'s original model with ``method`` (an ``UnlearningMethod``), through the
    cache (``cached``) or in memory, and evaluate the result with every selected metric.

    Returns (model, meta, evaluation, outputs): ``meta`` holds seconds, phases and history;
    ``outputs`` the baselines' probe logits plus the unlearned model's. A method that diverges
    gives (None, meta with ``error``, None, baseline outputs): never NaN numbers."""
    sc = base.scenario
    original = base.models["original"]
    outputs = dict(base.outputs)
    try:
        if cached:
            model, meta = cache.unlearn_or_load(sc, method, original, base.digests["original"])
        else:
            seed_everything(sc.config.seed)
            model, meta = method.unlearn(original, sc.task), {"seconds": None}
    except DivergenceError as exc:
        return None, {"seconds": None, "phases": method.timings, "history": method.history,
                      "error": str(exc)}, None, outputs
    names = select_metrics(sc.config.metrics)
    evaluation, outputs["unlearned"] = assess(sc, model)
    evaluation.update(forget_metrics(scored_outputs(sc, outputs), names,
                                     roles=("unlearned",))["unlearned"])
    evaluation.update(model_metrics(names, model, original, sc.task))
    return model, meta, evaluation, outputs


def create_for(sc: Scenario, method, preset: str = "default", params=None, auto=None):
    """``methods.create`` for ``sc``'s dataset, scenario kind, architecture and data root
    (``auto``: preset auto's values)."""
    return create(method, preset=preset, dataset=sc.dataset.name, scenario=sc.kind,
                  arch=sc.arch, data_dir=sc.config.data_dir, params=params, auto=auto,
                  forget=str(sc.spec))


def run_method(base: Baselines, name, params: dict | None = None,
               preset: str = "default", bundle_folder: Path | None = None,
               auto: AutoPreset | None = None) -> RunResult:
    """Unlearn the original model of ``base`` with method ``name`` (a registry key,
    ``module:Class`` or a class), build the JSON record and write the run's reproducibility
    bundle (to ``bundle_folder``, default ``record.bundle_dir``). Preset ``auto`` needs
    ``auto``, its resolved values (``auto_preset.resolve``), which the record names as
    ``auto_preset``."""
    sc = base.scenario
    method = create_for(sc, name, preset, params, None if auto is None else auto.params)
    original, retrained = base.models["original"], base.models["retrained"]
    unlearned, meta_u, evaluation, outputs = unlearn_and_assess(base, method)
    evaluations = {"original": base.evaluations["original"],
                   "retrained": base.evaluations["retrained"], "unlearned": evaluation}
    if unlearned is None:
        results = {"flags": ["diverged"], "distances": None, "avg_gap": None,
                   "speedup_vs_retrain": None}
    else:
        seconds = meta_u["seconds"]
        results = {"flags": guard_flags(evaluation, evaluations["retrained"]),
                   "distances": {
                       "unlearned_to_original": parameter_distance(unlearned, original),
                       "unlearned_to_retrained": parameter_distance(unlearned, retrained),
                       "retrained_to_original": parameter_distance(retrained, original)},
                   "avg_gap": avg_gap(evaluation, evaluations["retrained"]),
                   "speedup_vs_retrain": (base.metas["retrained"]["seconds"] / seconds
                                          if seconds else None)}
    record = build_record(sc, method, evaluations, base.metas, meta_u, **results,
                          anamnesis_index=anamnesis_index(evaluations),
                          **({"auto_preset": {**auto.record, "overrides": dict(params or {})}}
                             if auto is not None else {}),
                          error=meta_u.get("error"))
    folder = bundle_folder or bundle_dir(sc, method.name,
                                         cache.bundle_key(sc, base.digests, method))
    record["bundle"] = str(folder)
    bundle.write(folder, record, scored_outputs(sc, outputs), sc.probe)
    models = {"original": original, "retrained": retrained, "unlearned": unlearned}
    histories = {"original": base.metas["original"]["history"],
                 "retrained": base.metas["retrained"]["history"], "unlearn": meta_u["history"]}
    return RunResult(record, sc, models, histories, outputs)


def check_method(cfg: RunConfig):
    """Construct ``cfg``'s method for its scenario: an unknown method, preset or parameter
    fails here, before any data is read or model trained. Preset ``auto`` is checked with no
    searched values (a method without a search space is refused); its search runs later."""
    spec = parse_forget(cfg.forget)
    if cfg.preset == AUTO:
        from .auto_preset import check_searchable  # lazy: auto_preset builds on this module

        check_searchable(cfg.method)
    return create(cfg.method, preset=cfg.preset, dataset=cfg.dataset, scenario=spec.scenario,
                  arch=resolve_arch(cfg, spec), data_dir=cfg.data_dir, params=cfg.params,
                  auto={} if cfg.preset == AUTO else None, forget=cfg.forget)


def forget_classes(sc: Scenario) -> list[int]:
    """The classes of the scenario's forget training samples, sorted."""
    return sorted(int(c) for c in sc.train.y[sc.masks["train"]].unique())


def check_task(sc: Scenario, method) -> None:
    """``method``'s parameters against the scenario's data (``UnlearningMethod.check_task``):
    run once the scenario is built, before any model is trained."""
    method.check_task(sc.dataset.num_classes, forget_classes(sc))


# Folders of the data root every run writes: cached models, and the run's bundle.
WRITTEN = {"models": "caches its models and evaluations under models/ and always writes its "
                     "bundle under runs/, even when every model is cached",
           "runs": "always writes the run's bundle under runs/, even when every model is "
                   "cached"}


def check_data_root(data_dir: str | None, written: dict[str, str] = WRITTEN) -> None:
    """Raise ``ConfigError`` unless the data root's folders in ``written`` (name: why it is
    written) can be written, before any data is read. A run needs them even when every model
    is cached, as it always writes its bundle under ``runs/``."""
    root = data_root(data_dir)
    for name, why in written.items():
        try:
            check_folder_target(root / name, "data root folder")
        except ConfigError as exc:
            raise ConfigError(f"{exc}; the command {why} (pass --data-dir with a writable data "
                              "root)") from None


def check_before_work(cfg: RunConfig) -> Scenario:
    """Every check that needs no training, in order: the method and its parameters, the data
    root's writable folders, then the scenario (data read here) and the method against it.
    Returns the scenario, for ``prepare``."""
    method = check_method(cfg)
    check_data_root(cfg.data_dir)
    sc = build_scenario(cfg)
    check_task(sc, method)
    return sc


def run(cfg: RunConfig) -> RunResult:
    """Train or load the original and retrained models, unlearn, evaluate all three. Preset
    ``auto`` first finds or searches its values (``auto_preset.resolve``)."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"run takes a RunConfig, got {type(cfg).__name__}")
    sc = check_before_work(cfg)
    auto = None
    if cfg.preset == AUTO:
        from .auto_preset import resolve

        auto = resolve(cfg)
    return run_method(prepare(cfg, scenario=sc), cfg.method, cfg.params, cfg.preset,
                      auto=auto)
