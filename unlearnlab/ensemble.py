"""The forget-quality protocol of the NeurIPS 2023 Machine Unlearning Challenge on the lab's
scenarios: one original model, N models retrained without the forget set and N runs of a
method on the original, scored sample by sample (``forget_quality``).

Protocol (Triantafillou et al. 2024, section 3; ``google-deepmind/unlearning_evaluation``):
the scenario's samples are fixed by the run's seed S; the original model has model seed S; the
retrained side has model seeds 0..N-1; the unlearned side is the method run N times on the one
original, with unlearning seeds 0..N-1. Two reference "methods" make F readable:

- ``retrain``: a second, disjoint set of N retrained models (model seeds N..2N-1), the best F
  any method can reach with N models per side;
- ``original``: N original models (model seeds N..2N-1), what no unlearning at all scores.

Every model is cached (``cache``): the retrained side is trained once per scenario and N, and
serves every method. Confidences are taken on the forget training samples (each once, without
an oversampled recipe's duplicates); retain accuracy on the retain training samples, test
accuracy on the test split.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch
from torch import nn

from . import cache, forget_quality
from .config import RunConfig
from .errors import BundleError, ConfigError
from .executor import Executor, check_fresh, open_executor
from .experiment import create_for
from .record import versions
from .scenario import Scenario, build_scenario
from .training import predict
from .verdict import retrained_avg_abs_z, z_score

log = logging.getLogger("unlearnlab")

REFERENCES = ("retrain", "original")
MAX_MODELS = 4096  # models per side; the score's buckets saturate long before this


def check(method: str, n_models, option: str = "--models") -> None:
    """One-line errors for a bad model count (given as ``option``), before any work."""
    if isinstance(n_models, bool) or not isinstance(n_models, int) or not (
            2 <= n_models <= MAX_MODELS):
        raise ConfigError(f"{option} must be an integer from 2 to {MAX_MODELS} (models per side; "
                          f"the challenge used 512), got {n_models}")
    if not isinstance(method, str) and not isinstance(method, type):
        raise ConfigError(f"method must be a name, 'module:Class', {' or '.join(REFERENCES)}")


def with_model_seed(sc: Scenario, seed: int) -> Scenario:
    """The scenario's samples with another model seed (its task rebuilt for that seed)."""
    return dataclasses.replace(sc, model_seed=seed, _task=None)


def _side(sc: Scenario, role: str, seeds: range, together: bool
          ) -> tuple[list[nn.Module], float]:
    scenarios = [with_model_seed(sc, seed) for seed in seeds]
    if together:
        loaded = cache.train_or_load_together(scenarios, role)
    else:
        loaded = [cache.train_or_load(s, role) for s in scenarios]
    return [model for model, _ in loaded], sum(meta["seconds"] for _, meta in loaded)


def _unlearned_side(sc: Scenario, method, n: int) -> tuple[list[nn.Module], float, dict]:
    original, meta = cache.train_or_load(sc, "original")
    models, seconds = [], 0.0
    for seed in range(n):
        model, meta_u = cache.unlearn_or_load(sc, method, original, meta["digest"], seed=seed)
        models.append(model)
        seconds += meta_u["seconds"]
    return models, seconds, meta


# A worker's last scenario: its jobs of one study share it (building it reads the dataset).
_WORKER_SCENARIO: list = []


def _worker_scenario(cfg: RunConfig) -> Scenario:
    if not (_WORKER_SCENARIO and _WORKER_SCENARIO[0] == cfg):
        _WORKER_SCENARIO[:] = [cfg, build_scenario(cfg)]
    return _WORKER_SCENARIO[1]


def _unlearner(method, cfg: RunConfig, sc: Scenario):
    return create_for(sc, method, cfg.preset, cfg.params)


def train_job(job: tuple[RunConfig, str, int]) -> float:
    """A worker's job: train (or find) the ``role`` model of model seed ``seed`` in the cache;
    returns its training seconds."""
    cfg, role, seed = job
    _, meta = cache.train_or_load(with_model_seed(_worker_scenario(cfg), seed), role)
    return meta["seconds"]


def unlearn_job(job: tuple[RunConfig, object, int]) -> float:
    """A worker's job: run ``method`` on the cached original with unlearning seed ``seed`` (or
    find the result) in the cache; returns its unlearning seconds."""
    cfg, method, seed = job
    sc = _worker_scenario(cfg)
    original, meta = cache.train_or_load(sc, "original")
    _, meta_u = cache.unlearn_or_load(sc, _unlearner(method, cfg, sc), original, meta["digest"],
                                      seed=seed)
    return meta_u["seconds"]


def warm(executor: Executor, cfg: RunConfig, sc: Scenario, method, n: int) -> None:
    """Train and unlearn every model of a study that the cache lacks on ``executor``'s workers
    (the same calls as the sequential code, so that it then finds each one): first the
    retrained side, the reference side or the original, then the N unlearning runs."""
    training = [("retrained", seed) for seed in range(n)]
    if method in REFERENCES:
        role = "retrained" if method == "retrain" else "original"
        training += [(role, seed) for seed in range(n, 2 * n)]
    else:
        training.append(("original", sc.model_seed))
    executor.map(train_job, [(cfg, role, seed) for role, seed in dict.fromkeys(training)])
    if method not in REFERENCES:
        executor.map(unlearn_job, [(cfg, method, seed) for seed in range(n)])


def _accuracy(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
              device) -> np.ndarray:
    return np.array([float((predict(m, x, device=device).argmax(1) == y).double().mean())
                     for m in models])


def _confidences(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                 device) -> np.ndarray:
    logits = torch.stack([predict(m, x, device=device) for m in models])
    return forget_quality.logit_confidence(logits.numpy(), y.numpy())


def study(cfg: RunConfig, method, n_models: int, together: bool = False,
          executor: str | Executor = "local") -> dict:
    """Score ``method`` (a registry key, ``module:Class``, a class, or one of ``REFERENCES``)
    on ``cfg``'s scenario with ``n_models`` models per side. Returns the record: forget
    quality F, final score, per side the retain / test / forget accuracies (mean and std) and
    seconds, and ``arrays`` (per-example eps and both sides' confidences) for the bundle.
    ``together``: the retrained (and reference) models missing from the cache are trained
    together (``cache.train_or_load_together``) instead of one after the other.
    ``executor`` (``executor.parse_executor``): with ``process:N`` the models the cache lacks
    are trained and unlearned on its workers first (``warm``), then loaded here from the
    cache; ``together`` is refused with it."""
    check(method, n_models)
    with open_executor(executor) as pool:
        check_fresh(pool, cfg.reuse)
        if together and not pool.in_process:
            raise ConfigError(f"--together trains a side as one batched model in one process; "
                              f"with --executor {pool.spec} leave --together out (the workers "
                              "train the models apart), or use --executor local")
        sc = build_scenario(cfg)
        unlearner = None if method in REFERENCES else _unlearner(method, cfg, sc)
        start = time.perf_counter()
        if not pool.in_process:
            warm(pool, cfg, sc, method, n_models)
        return _study(cfg, sc, method, unlearner, n_models, together, start)


def _study(cfg: RunConfig, sc: Scenario, method, unlearner, n: int, together: bool,
           start: float) -> dict:
    """``study``'s scoring, every model trained, unlearned or loaded here through the cache."""
    name = method if unlearner is None else unlearner.name
    retrained, seconds_r = _side(sc, "retrained", range(n), together)
    if method == "retrain":
        side, seconds_u = _side(sc, "retrained", range(n, 2 * n), together)
    elif method == "original":
        side, seconds_u = _side(sc, "original", range(n, 2 * n), together)
    else:
        side, seconds_u, _ = _unlearned_side(sc, unlearner, n)
    forget = sc.masks["train"]
    retain = ~forget
    x_f, y_f = sc.train.x[forget], sc.train.y[forget]
    conf_u = _confidences(side, x_f, y_f, sc.device)
    conf_r = _confidences(retrained, x_f, y_f, sc.device)
    epsilons = forget_quality.example_epsilons(conf_u, conf_r)
    quality = forget_quality.forget_quality(epsilons, n)
    sides, accuracies = {}, {}
    for label, models, seconds in (("unlearned", side, seconds_u),
                                   ("retrained", retrained, seconds_r)):
        acc = {"retain": _accuracy(models, sc.train.x[retain], sc.train.y[retain], sc.device),
               "test": _accuracy(models, sc.test.x, sc.test.y, sc.device),
               "forget": _accuracy(models, x_f, y_f, sc.device)}
        accuracies[label] = acc
        sides[label] = {**{f"{k}_acc_mean": float(v.mean()) for k, v in acc.items()},
                        **{f"{k}_acc_std": float(v.std(ddof=1)) for k, v in acc.items()},
                        "seconds": seconds}
    u, r = sides["unlearned"], sides["retrained"]
    # Each unlearned model placed in the retrained side's spread, as compare places each run.
    z = {k: np.array([z_score(float(a), r[f"{k}_acc_mean"], r[f"{k}_acc_std"]) for a in v])
         for k, v in accuracies["unlearned"].items()}
    final = forget_quality.final_score(quality, u["retain_acc_mean"], r["retain_acc_mean"],
                                       u["test_acc_mean"], r["test_acc_mean"])
    log.info("forget quality of %s with %d models per side: F %.4f, final %.4f", name, n,
             quality, final)
    return {"dataset": sc.dataset.name, "arch": sc.arch, "forget": str(sc.spec),
            "method": name, "params": None if unlearner is None else unlearner.params,
            "preset": None if unlearner is None else unlearner.preset,
            "seed": cfg.seed, "quick": cfg.quick, "models": n, "together": together,
            "forget_quality": quality, "final_score": final,
            "z": {f"{k}_acc": float(v.mean()) for k, v in z.items()},
            "z_gap": float(np.mean([np.abs(v).mean() for v in z.values()])),
            "z_gap_retrained": retrained_avg_abs_z(n),
            "forget_samples": int(forget.sum()), "sides": sides,
            "epsilon_median": float(np.median(epsilons)),
            "seconds_total": time.perf_counter() - start,
            "recipe": sc.recipe.to_dict(), "data_checksum": sc.dataset.checksum,
            "split_hash": sc.split_hash, "forget_digest": sc.forget_digest,
            "run_config": {**dataclasses.asdict(cfg), "method": name}, "versions": versions(),
            "arrays": {"epsilons": epsilons, "unlearned_confidence": conf_u,
                       "retrained_confidence": conf_r}}


ARRAYS = "forget_quality.npz"


def default_folder(cfg: RunConfig, method: str, n_models: int, together: bool = False):
    """``<data root>/forget_quality/<dataset>/<method>-n<N>-seed<s>-<hash of the command's
    configuration>``."""
    from .data import data_root
    from .store import config_key

    key = config_key({**dataclasses.asdict(cfg), "data_dir": None, "method": str(method),
                      "models": n_models, **({"together": True} if together else {})})
    return data_root(cfg.data_dir) / "forget_quality" / cfg.dataset / (
        f"{folder_name(method)}-n{n_models}-seed{cfg.seed}-{key}")


def folder_name(method) -> str:
    """A method (registry key, ``module:Class`` or reference) as a folder name."""
    return str(method).replace(":", "-").replace(".", "-")


def write_bundle(folder, record: dict) -> dict:
    """Write ``record`` (without its arrays) as ``record.json`` and its arrays as
    ``forget_quality.npz`` into ``folder``, atomically; return the JSON record."""
    from pathlib import Path

    from .bundle import RECORD
    from .outputs import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = record["arrays"]
    with atomic_path(folder / ARRAYS) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    saved = {k: v for k, v in record.items() if k != "arrays"}
    saved["kind"] = "forget_quality"
    write_json(folder / RECORD, saved)
    return saved


def rescore_bundle(folder, record: dict) -> dict:
    """Recompute the per-example eps and F from the confidences of a forget-quality bundle;
    {"forget_quality": F, "differences": {...}} (eps compared exactly, F within 1e-12)."""
    from pathlib import Path

    path = Path(folder) / ARRAYS
    try:
        with np.load(path, allow_pickle=False) as data:
            conf_u, conf_r = data["unlearned_confidence"], data["retrained_confidence"]
            stored = data["epsilons"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise BundleError(f"bundle '{folder}': {ARRAYS} cannot be read ({exc}); run "
                          "`unlearnlab forget-quality` again") from exc
    epsilons = forget_quality.example_epsilons(conf_u, conf_r)
    quality = forget_quality.forget_quality(epsilons, conf_u.shape[0])
    differences = {}
    if not np.array_equal(epsilons, stored):
        differences["epsilons"] = ("stored", f"{int((epsilons != stored).sum())} differ")
    if not np.isclose(quality, record.get("forget_quality", np.nan), rtol=0, atol=1e-12):
        differences["forget_quality"] = (record.get("forget_quality"), quality)
    return {"bundle": str(folder), "forget_quality": quality, "differences": differences}


def summary(record: dict) -> str:
    """The forget-quality record as the text ``unlearnlab forget-quality`` prints."""
    u, r = record["sides"]["unlearned"], record["sides"]["retrained"]
    lines = [f"{record['dataset']} / {record['arch']} / forget {record['forget']} "
             f"({record['forget_samples']} samples) / {record['method']} / {record['models']} "
             f"models per side{' / quick' if record['quick'] else ''}",
             f"forget quality F {record['forget_quality']:.4f}, final score "
             f"{record['final_score']:.4f} (median eps {record['epsilon_median']:.2f})",
             *([f"avg |z| {record['z_gap']:.2f} (a retrained model: "
                f"{record['z_gap_retrained']:.2f}); z of retain {record['z']['retain_acc']:+.2f}"
                f", test {record['z']['test_acc']:+.2f}, forget {record['z']['forget_acc']:+.2f}"
                " (in the retrained side's std)"] if "z" in record else []),
             f"{'side':<10} {'retain':>14} {'test':>14} {'forget':>14}   (accuracy %, "
             "mean ± std)"]
    for name, side in (("unlearned", u), ("retrained", r)):
        lines.append(f"{name:<10} " + " ".join(
            f"{100 * side[f'{k}_acc_mean']:7.2f} ± {100 * side[f'{k}_acc_std']:4.2f}"
            for k in ("retain", "test", "forget")))
    return "\n".join(lines)
