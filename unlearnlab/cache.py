"""Content-addressed caches of trained, unlearned and evaluated models.

Each artefact is stored under a hash of everything it depends on (``store.model_path``) and
its stored key is compared again on load:

- a trained model: the dataset's checksum, the architecture and its code, the recipe and
  optimiser, the training code, the resolved forget set (``Scenario.forget_digest``, not the
  spec's text), quick mode, the seed and the package version;
- an unlearned model: the *content* of the original model it started from, the dataset's
  checksum, the resolved forget set, the method's resolved parameters and the code of the
  method's class and of the lab's methods package;
- the baselines' evaluations: the contents of the original and retrained models, the
  dataset's checksum, the split hash, the selected metrics and the code of the evaluation
  (metrics declared outside the package included).

Code enters a key as ``source_hash``: a hash of its syntax tree without docstrings, so that an
edit of prose keeps every cached model and an edit of code does not.

A trained or unlearned model is computed under its entry's claim file (``claim``): two
processes that need the same entry (two workers of a grid, two commands on one data root)
compute it once; the second waits and then loads it.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from filelock import FileLock, Timeout
from torch import nn

from . import __version__
from .batched_training import fit_ensemble
from .config import QUICK
from .data import stratified_rows
from .errors import CacheError, ConfigError, CorruptCacheError
from .evaluation import accuracy, mean_cross_entropy
from .metrics import METRICS
from .models import architecture, create_model
from .scenario import VALIDATION_SEED, Scenario
from .store import (
    config_key,
    content_digest,
    load_model,
    load_payload,
    model_path,
    save_model,
    save_payload,
)
from .training import OPTIMIZER, fit, predict, seed_everything

log = logging.getLogger("unlearnlab")

PACKAGE = Path(__file__).parent
# The per-epoch test curve of a training run uses a seeded stratified sample of this many test
# samples per class (evaluating all 10,000 after every epoch cost a quarter of the ConvNet's
# training time); the record's test metrics always use the whole test split.
CURVE_TEST_PER_CLASS = 200


# ------------------------------------------------------------------------------ code hashes

def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=256)
def _file_hash(path: Path, mtime_ns: int) -> str:
    tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def source_hash(paths: Iterable[Path]) -> str:
    """sha256 (16 hex digits) of the syntax trees of ``paths`` without docstrings, with their
    file names: comments, docstrings and formatting do not change it; code does."""
    entries = {(path.name, _file_hash(path, path.stat().st_mtime_ns))
               for path in {Path(p).resolve() for p in paths}}
    h = hashlib.sha256()
    for name, tree in sorted(entries):  # by name, so the hash does not depend on the location
        h.update(f"{name}:{tree};".encode())
    return h.hexdigest()[:16]


def source_file(obj) -> Path:
    """The file that defines ``obj`` (a class or function): its code enters cache keys, so
    code without a file (typed into an interpreter or a notebook cell) cannot be cached."""
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        path = None
    if not path or not Path(path).is_file():
        module = getattr(obj, "__module__", "?")
        raise ConfigError(f"cannot read the source of {module}.{obj.__qualname__}, so its "
                          "results cannot be cached safely; define it in a .py file and import "
                          "it (or use --method package.module:Class)")
    return Path(path)


def class_files(cls: type) -> list[Path]:
    """The files defining ``cls`` and its bases (``object`` and other built-ins aside)."""
    return [source_file(k) for k in cls.__mro__ if k.__module__ not in ("builtins", "abc")
            and not k.__module__.startswith("torch")]


def method_code_hash(method_cls: type) -> str:
    """The code an unlearned model depends on: the method's class and its bases, the lab's
    methods package (the helpers it shares) and the training loop."""
    return source_hash([*class_files(method_cls), *(PACKAGE / "methods").glob("*.py"),
                        PACKAGE / "training.py"])


def evaluation_code_hash() -> str:
    """The code a baseline evaluation depends on (scenario, prediction, evaluation, metrics,
    MIA, models), with the files of metrics registered outside the package."""
    own = [PACKAGE / f"{name}.py" for name in ("scenario", "experiment", "evaluation", "metrics",
                                                "mia", "models", "training")]
    return source_hash([*own, *(source_file(m.compute) for m in METRICS.values())])


def model_code_hash(arch: str) -> str:
    """The code a trained model depends on: its architecture's class and the training loop."""
    return source_hash([*class_files(architecture(arch).cls), PACKAGE / "training.py"])


# ------------------------------------------------------------------------------ model keys

def model_config(sc: Scenario, role: str, together: bool = False) -> dict:
    """Everything that determines a trained ``original`` or ``retrained`` model; ``together``:
    trained with others as one batched model (``train_or_load_together``)."""
    cfg = sc.config
    return {"role": role, "dataset": sc.dataset.name, "data_checksum": sc.dataset.checksum,
            "arch": sc.arch, "arch_code": model_code_hash(sc.arch), "recipe": sc.recipe.to_dict(),
            "forget": sc.forget_digest if role == "retrained" else None,
            "quick": QUICK if cfg.quick else None, "seed": sc.model_seed,
            # an ensemble's models share the samples of the run's seed
            **({"data_seed": cfg.seed} if sc.model_seed != cfg.seed else {}),
            "version": __version__, "curve_test_per_class": CURVE_TEST_PER_CLASS,
            "optimizer": OPTIMIZER,
            **({"train_per_class": n} if (n := cfg.train_per_class) else {}),
            # the held-out rows depend on the forget set (stratified by membership)
            **({"validation": {"fraction": v, "seed": VALIDATION_SEED,
                               "forget": sc.forget_digest}}
               if (v := cfg.validation) else {}),
            **({"trainer": {"together": True,
                            "code": source_hash([PACKAGE / "batched_training.py"])}}
               if together else {})}


def _cached(sc: Scenario, config: dict, model: nn.Module) -> dict | None:
    """Load the cache entry for ``config`` into ``model`` when reuse is on and it exists (a
    damaged entry is reported, moved aside by ``store`` and rebuilt); raise under
    ``--no-train`` when there is none."""
    path = model_path(sc.root, config)
    if sc.config.reuse and path.exists():
        try:
            return load_model(path, model, config)
        except CorruptCacheError as exc:
            if not sc.config.allow_train:
                raise
            log.warning("%s; rebuilding it", exc)
    if not sc.config.allow_train:
        raise CacheError(f"no cached {config['role']} model for this configuration at '{path}'; "
                         "run without --no-train to train it")
    return None


@contextmanager
def claim(path: Path) -> Iterator[None]:
    """Hold the claim file of the cache entry at ``path`` (``<entry>.lock`` beside it, an OS
    lock through ``filelock``, released by the OS when its holder dies) while the entry is
    computed; a second process waits for it, then should look in the cache again. The empty
    lock file stays (removing it would let a third process lock a different file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process computing %s", path.name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def new_model(sc: Scenario) -> nn.Module:
    """A freshly initialised model of the scenario's architecture, seeded by its model seed
    (this is also the "untrained" baseline)."""
    seed_everything(sc.model_seed)
    return create_model(sc.arch, sc.dataset.in_channels, sc.dataset.num_classes).to(sc.device)


def _test_curve(sc: Scenario):
    """The per-epoch test loss and accuracy on the scenario's curve rows."""
    curve = stratified_rows(sc.test.y, CURVE_TEST_PER_CLASS, sc.config.seed)
    curve_x, curve_y = sc.test.x[curve], sc.test.y[curve]

    def test_metrics(m):
        logits = predict(m, curve_x, device=sc.device)
        return {"test_loss": mean_cross_entropy(logits, curve_y),
                "test_acc": accuracy(logits.argmax(1), curve_y)}
    return test_metrics


def train_or_load(sc: Scenario, role: str) -> tuple[nn.Module, dict]:
    """The cached ``original`` or ``retrained`` model, trained (and cached) when missing.
    ``meta["digest"]`` is the ``store.content_digest`` of its state dict."""
    config = model_config(sc, role)
    model = new_model(sc)
    meta = _cached(sc, config, model)
    if meta is None:
        with claim(model_path(sc.root, config)):
            meta = _cached(sc, config, model)  # another process may have trained it meanwhile
            if meta is None:
                return _train(sc, role, config, model)
    log.info("loaded the %s model (seed %d) from the cache", role, sc.model_seed)
    return model.to(sc.device).eval(), {**meta, "digest": content_digest(model.state_dict())}


def _train(sc: Scenario, role: str, config: dict, model: nn.Module) -> tuple[nn.Module, dict]:
    """``train_or_load``'s training of a model missing from the cache, saved there."""
    rows = sc.rows(role)
    r = sc.recipe
    log.info("training the %s model: %s on %s, %d epochs over %d samples", role, sc.arch,
             sc.dataset.name, r.epochs, len(rows))
    start = time.perf_counter()
    history = fit(model, sc.train.x[rows], sc.train.y[rows], epochs=r.epochs,
                  batch_size=r.batch_size, lr=r.lr, seed=sc.model_seed, device=sc.device,
                  desc=f"train {role} seed {sc.model_seed}", on_epoch=_test_curve(sc),
                  optimizer=r.optimizer, weight_decay=r.weight_decay)
    meta = {"config": config, "seconds": time.perf_counter() - start, "history": history,
            "train_samples": len(rows), "device": str(sc.device)}
    save_model(model_path(sc.root, config), model, meta)
    return model.eval(), {**meta, "digest": content_digest(model.state_dict())}


# Models trained together per call of ``fit_ensemble``: bounds the memory of the batched model
# and its optimiser state (the MLP: 16 x 7.6 MB of weights and moments).
TOGETHER_CHUNK = 16


def train_or_load_together(scs: Sequence[Scenario], role: str
                           ) -> list[tuple[nn.Module, dict]]:
    """``train_or_load`` for scenarios that differ only in their model seed, the missing models
    trained together, ``TOGETHER_CHUNK`` at a time (``batched_training.fit_ensemble``). Their
    keys name that trainer and its code: per step they equal ``fit`` only up to rounding, so
    they never stand in for a model trained alone, nor the reverse."""
    configs = [model_config(sc, role, together=True) for sc in scs]
    models = [new_model(sc) for sc in scs]
    metas = [_cached(sc, c, m) for sc, c, m in zip(scs, configs, models, strict=True)]
    missing = [i for i, meta in enumerate(metas) if meta is None]
    for first in range(0, len(missing), TOGETHER_CHUNK):
        chunk = missing[first:first + TOGETHER_CHUNK]
        sc, r = scs[chunk[0]], scs[chunk[0]].recipe
        rows = sc.rows(role)
        log.info("training %d %s models together: %s on %s, %d epochs over %d samples",
                 len(chunk), role, sc.arch, sc.dataset.name, r.epochs, len(rows))
        start = time.perf_counter()
        histories = fit_ensemble([models[i] for i in chunk], sc.train.x[rows], sc.train.y[rows],
                                 epochs=r.epochs, batch_size=r.batch_size, lr=r.lr,
                                 seeds=[scs[i].model_seed for i in chunk], device=sc.device,
                                 desc=f"train {role}", on_epoch=_test_curve(sc),
                                 optimizer=r.optimizer, weight_decay=r.weight_decay)
        seconds = (time.perf_counter() - start) / len(chunk)
        for i, history in zip(chunk, histories, strict=True):
            metas[i] = {"config": configs[i], "seconds": seconds, "history": history,
                        "train_samples": len(rows), "device": str(sc.device),
                        "trained_together": len(chunk)}
            save_model(model_path(sc.root, configs[i]), models[i], metas[i])
    return [(m.eval(), {**meta, "digest": content_digest(m.state_dict())})
            for m, meta in zip(models, metas, strict=True)]


def unlearned_config(sc: Scenario, method, original_digest: str, seed: int) -> dict:
    """Everything that determines an unlearned model."""
    return {"role": "unlearned", "dataset": sc.dataset.name,
            "data_checksum": sc.dataset.checksum, "arch": sc.arch, "original": original_digest,
            "forget": sc.forget_digest,
            "method": method.name, "params": method.params, "seed": seed,
            "version": __version__, "code": method_code_hash(type(method))}


def unlearn_or_load(sc: Scenario, method, original: nn.Module, original_digest: str,
                    seed: int | None = None) -> tuple[nn.Module, dict]:
    """Run ``method`` on a copy of ``original`` (whose state dict's ``content_digest`` is
    ``original_digest``) with unlearning seed ``seed`` (default: the scenario's model seed),
    or load the cached result of the same method, code, hyperparameters, seed and original
    model."""
    seed = sc.model_seed if seed is None else seed
    config = unlearned_config(sc, method, original_digest, seed)
    model = new_model(sc)
    meta = _cached(sc, config, model)
    if meta is None:
        with claim(model_path(sc.root, config)):
            meta = _cached(sc, config, model)  # another process may have run it meanwhile
            if meta is None:
                return _unlearn(sc, method, original, config, seed)
    log.info("loaded the model unlearned by %s (%s preset, seed %d) from the cache",
             method.name, method.preset, seed)
    return model.eval(), meta


def _unlearn(sc: Scenario, method, original: nn.Module, config: dict,
             seed: int) -> tuple[nn.Module, dict]:
    """``unlearn_or_load``'s run of ``method`` missing from the cache, saved there."""
    task = sc.task if seed == sc.task.seed else dataclasses.replace(sc.task, seed=seed)
    seed_everything(seed)
    log.info("unlearning with %s (%s preset, seed %d)", method.name, method.preset, seed)
    start = time.perf_counter()
    unlearned = method.unlearn(original, task)
    meta = {"config": config, "seconds": time.perf_counter() - start,
            "phases": method.timings, "history": method.history, "device": str(sc.device)}
    save_model(model_path(sc.root, config), unlearned, meta)
    return unlearned.eval(), meta


def baselines_config(sc: Scenario, digests: dict[str, str], metrics: list[str]) -> dict:
    """Everything the baselines' evaluations depend on."""
    return {"role": "baselines", "dataset": sc.dataset.name,
            "data_checksum": sc.dataset.checksum, "arch": sc.arch, "seed": sc.config.seed,
            "original": digests["original"], "retrained": digests["retrained"], "metrics": metrics,
            "split_hash": sc.split_hash, "code": evaluation_code_hash()}


def load_baselines(sc: Scenario, config: dict) -> tuple[dict, dict] | None:
    """The cached (evaluations, outputs) for ``config``, or None."""
    path = model_path(sc.root, config)
    if not (sc.config.reuse and path.exists()):
        return None
    try:
        payload = load_payload(path, config, required=("evaluations", "outputs"))
    except CorruptCacheError as exc:
        log.warning("%s; recomputing it", exc)
        return None
    log.info("loaded the baselines' evaluation (seed %d) from the cache", sc.config.seed)
    return payload["evaluations"], payload["outputs"]


def save_baselines(sc: Scenario, config: dict, evaluations: dict, outputs: dict) -> None:
    save_payload(model_path(sc.root, config), {"evaluations": evaluations, "outputs": outputs,
                                               "meta": {"config": config}})


def bundle_key(sc: Scenario, digests: dict[str, str], method) -> str:
    """The key of a run's bundle folder: the contents of its models, the method and its
    parameters and the selected metrics."""
    return config_key({"original": digests["original"], "retrained": digests["retrained"],
                       "forget": sc.forget_digest, "method": method.name,
                       "params": method.params, "metrics": sc.config.metrics,
                       "code": method_code_hash(type(method))})
