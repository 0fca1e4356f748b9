"""One unlearning experiment: data -> original and retrained models (cached) -> method ->
evaluation of all three -> one JSON-ready record."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .data import Dataset, Split, data_root, load_dataset, oversample, stratified_rows
from .errors import CacheError, ConfigError
from .evaluation import evaluate, mean_cross_entropy
from .forget import ForgetSpec, forget_masks, parse_forget
from .methods import UnlearnTask, get_method
from .models import create_model
from .store import load_model, model_path, remove_stale_temporaries, save_model
from .training import Recipe, fit, pick_device, predict, recipe_for, seed_everything

# Quick mode: a stratified subset (per class) and one training epoch, so CI stays fast.
QUICK = {"train_per_class": 300, "test_per_class": 100, "epochs": 1}


@dataclass
class RunConfig:
    """Everything that determines a run. ``reuse`` is the notebooks' ``ALLREADY_TRAINED``:
    load matching cached models instead of retraining them; ``allow_train=False`` refuses to
    train when no matching model is cached (``--no-train``)."""

    dataset: str = "mnist"
    forget: str = "class:6"
    method: str = "relabel"
    params: dict = field(default_factory=dict)
    seed: int = 0
    quick: bool = False
    arch: str | None = None
    oversample: tuple[int, int] | None = None
    data_dir: str | None = None
    device: str = "auto"
    reuse: bool = True
    allow_train: bool = True


def default_arch(dataset: str, spec: ForgetSpec) -> str:
    """Class forgetting uses seed A's CNN; feature forgetting the thesis's models (ConvNet on
    colorized MNIST, MLP otherwise)."""
    if not spec.is_feature:
        return "cnn"
    return "convnet" if dataset == "cmnist" else "mlp"


@dataclass
class Scenario:
    """A resolved run: the samples used, the forget masks over them and the recipe.
    ``train_rows`` are positions in ``train`` with the duplicates of an oversampled recipe."""

    config: RunConfig
    dataset: Dataset
    spec: ForgetSpec
    arch: str
    recipe: Recipe
    train: Split
    test: Split
    masks: dict[str, torch.Tensor]
    train_rows: torch.Tensor
    device: torch.device

    @property
    def root(self) -> Path:
        return data_root(self.config.data_dir)

    def rows(self, role: str) -> torch.Tensor:
        """Training positions for ``original`` (all) or ``retrained`` (without the forget set)."""
        if role == "retrained":
            return self.train_rows[~self.masks["train"][self.train_rows]]
        return self.train_rows

    def model_config(self, role: str) -> dict:
        """Everything that determines a trained model; its hash names the cache entry."""
        return {"role": role, "dataset": self.dataset.name, "data_checksum": self.dataset.checksum,
                "arch": self.arch, "recipe": self.recipe.to_dict(),
                "forget": str(self.spec) if role == "retrained" else None,
                "quick": QUICK if self.config.quick else None, "seed": self.config.seed,
                "version": __version__}


def build_scenario(cfg: RunConfig) -> Scenario:
    spec = parse_forget(cfg.forget)
    get_method(cfg.method)  # fail on an unknown method before any data is read
    dataset = load_dataset(cfg.dataset, cfg.data_dir)
    arch = cfg.arch or default_arch(cfg.dataset, spec)
    recipe = recipe_for(arch, oversample=tuple(cfg.oversample) if cfg.oversample else None)
    train, test = dataset.train, dataset.test
    if cfg.quick:
        recipe = recipe_for(arch, epochs=QUICK["epochs"], oversample=recipe.oversample)
        train = train.subset(stratified_rows(train.y, QUICK["train_per_class"], cfg.seed))
        test = test.subset(stratified_rows(test.y, QUICK["test_per_class"], cfg.seed))
    masks = forget_masks(spec, Dataset(dataset.name, train, test, dataset.checksum,
                                       dataset.classes), cfg.data_dir)
    rows = torch.arange(len(train))
    if recipe.oversample:
        cls, factor = recipe.oversample
        if not 0 <= cls < dataset.num_classes:
            raise ConfigError(f"oversample class {cls} is not a class of {dataset.name}")
        rows = oversample(train.y, cls, factor)
    return Scenario(cfg, dataset, spec, arch, recipe, train, test, masks, rows,
                    pick_device(cfg.device))


def train_or_load(sc: Scenario, role: str) -> tuple[nn.Module, dict]:
    """The cached ``original`` or ``retrained`` model, trained (and cached) when missing."""
    config = sc.model_config(role)
    path = model_path(sc.root, config)
    remove_stale_temporaries(path.parent)
    model = create_model(sc.arch, sc.dataset.in_channels, sc.dataset.num_classes)
    if sc.config.reuse and path.exists():
        meta = load_model(path, model, config)
        return model.to(sc.device).eval(), meta
    if not sc.config.allow_train:
        raise CacheError(f"no cached {role} model for this configuration at '{path}'; "
                         "run without --no-train to train it")
    seed_everything(sc.config.seed)
    model = create_model(sc.arch, sc.dataset.in_channels, sc.dataset.num_classes)
    rows = sc.rows(role)
    r = sc.recipe

    def test_metrics(m):
        logits = predict(m, sc.test.x, device=sc.device)
        return {"test_loss": mean_cross_entropy(logits, sc.test.y),
                "test_acc": (logits.argmax(1) == sc.test.y).float().mean().item()}

    start = time.perf_counter()
    history = fit(model, sc.train.x[rows], sc.train.y[rows], epochs=r.epochs,
                  batch_size=r.batch_size, lr=r.lr, seed=sc.config.seed, device=sc.device,
                  desc=f"train {role}", on_epoch=test_metrics)
    seconds = time.perf_counter() - start
    meta = {"config": config, "seconds": seconds, "history": history,
            "train_samples": len(rows), "device": str(sc.device)}
    save_model(path, model, meta)
    return model.eval(), meta


@dataclass
class RunResult:
    record: dict
    scenario: Scenario
    models: dict[str, nn.Module]
    histories: dict[str, list[dict]]


def unlearn_task(sc: Scenario) -> UnlearnTask:
    rows = sc.train_rows
    forget = sc.masks["train"][rows]
    x, y = sc.train.x[rows], sc.train.y[rows]
    return UnlearnTask(x[forget], y[forget], x[~forget], y[~forget], sc.dataset.num_classes,
                       sc.recipe, sc.device, sc.config.seed)


def run(cfg: RunConfig) -> RunResult:
    """Train or load the original and retrained models, unlearn, evaluate all three."""
    sc = build_scenario(cfg)
    method_cls = get_method(cfg.method)
    method = method_cls(**cfg.params)
    original, meta_o = train_or_load(sc, "original")
    retrained, meta_r = train_or_load(sc, "retrained")
    seed_everything(cfg.seed)
    start = time.perf_counter()
    unlearned = method.unlearn(original, unlearn_task(sc))
    unlearn_seconds = time.perf_counter() - start
    models = {"original": original, "retrained": retrained, "unlearned": unlearned}
    record = {
        "dataset": sc.dataset.name, "arch": sc.arch, "forget": str(sc.spec), "method": cfg.method,
        "params": method.params, "seed": cfg.seed, "quick": cfg.quick,
        "models": {name: evaluate(m, sc.train, sc.test, sc.masks, sc.dataset.num_classes,
                                  sc.device) for name, m in models.items()},
        "seconds": {"original": meta_o["seconds"], "retrained": meta_r["seconds"],
                    "unlearn": unlearn_seconds},
        "recipe": sc.recipe.to_dict(),
        "sizes": {"train": len(sc.train), "test": len(sc.test),
                  "forget_train": int(sc.masks["train"].sum()),
                  "forget_test": int(sc.masks["test"].sum()),
                  "train_rows": len(sc.train_rows)},
        "data_checksum": sc.dataset.checksum,
        "device": str(sc.device),
        "versions": versions(),
    }
    histories = {"original": meta_o["history"], "retrained": meta_r["history"],
                 "unlearn": method.history}
    return RunResult(record, sc, models, histories)


def versions() -> dict:
    import numpy
    import sklearn

    return {"unlearnlab": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}
