"""One unlearning experiment: data -> original and retrained models (cached) -> method ->
evaluation of all three -> one JSON-ready record."""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import __version__, bundle, mia
from .data import Dataset, Split, data_root, load_dataset, oversample, stratified_rows
from .errors import CacheError, ConfigError, DivergenceError, SpecError
from .evaluation import accuracy, evaluate_logits, guard_flags, mean_cross_entropy
from .forget import ForgetSpec, forget_class, forget_masks, parse_forget
from .methods import UnlearnTask, create, get_method
from .metrics import Outputs, avg_gap, forget_metrics, parameter_distance, select_metrics
from .metrics import relearn_steps as relearn_steps_of
from .models import create_model
from .store import config_key, load_model, load_payload, model_path, save_model, save_payload
from .training import OPTIMIZER, Recipe, fit, pick_device, predict, recipe_for, seed_everything

log = logging.getLogger("unlearnlab")

# Quick mode: a stratified subset (per class) and one training epoch, so CI stays fast.
QUICK = {"train_per_class": 300, "test_per_class": 100, "epochs": 1}
# The per-epoch test curve of a training run uses a seeded stratified sample of this many test
# samples per class (evaluating all 10,000 after every epoch cost a quarter of the ConvNet's
# training time); the record's test metrics always use the whole test split.
CURVE_TEST_PER_CLASS = 200
# Seeds the held-out validation split (``RunConfig.validation``): fixed, so every run seed holds
# out the same rows and the retrained ensemble is evaluated on one validation set.
VALIDATION_SEED = 1009


@dataclass
class RunConfig:
    """Everything that determines a run. ``reuse`` is the notebooks' ``ALLREADY_TRAINED``:
    load matching cached models instead of retraining them; ``allow_train=False`` refuses to
    train when no matching model is cached (``--no-train``). ``metrics`` selects the
    forget-set metrics (None: all of ``metrics.METRICS`` plus ``relearn_steps``).
    ``train_per_class`` trains on a seeded stratified subset and ``epochs`` overrides the
    recipe's (e.g. a small, long-trained model that overfits, for membership inference).
    ``validation`` (a fraction, e.g. 0.1) holds out that share of the training set (see
    ``validation_rows``) from every model's training and evaluates on it in place of the test
    set, which is then never read: hyperparameter search (``tuning``) judges on it, so that the
    report's test numbers stay untouched by the search."""

    dataset: str = "mnist"
    forget: str = "class:6"
    method: str = "relabel"
    params: dict = field(default_factory=dict)
    preset: str = "default"
    seed: int = 0
    quick: bool = False
    arch: str | None = None
    oversample: tuple[int, int] | None = None
    data_dir: str | None = None
    device: str = "auto"
    reuse: bool = True
    allow_train: bool = True
    metrics: list[str] | None = None
    train_per_class: int | None = None
    epochs: int | None = None
    validation: float | None = None


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
    forget_class: int
    # The forget-set metrics' samples: set name -> (split, positions), see ``metrics.Outputs``.
    probe: dict[str, tuple[str, torch.Tensor]]
    task: UnlearnTask | None = field(default=None, repr=False)  # built by ``unlearn_task``

    @property
    def kind(self) -> str:
        """The forgetting scenario: "feature" (a subset of a class) or "class"."""
        return self.spec.scenario

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
                "version": __version__, "curve_test_per_class": CURVE_TEST_PER_CLASS,
                "optimizer": OPTIMIZER,
                **({"train_per_class": n} if (n := self.config.train_per_class) else {}),
                # the held-out rows depend on the forget spec (stratified by membership)
                **({"validation": {"fraction": v, "seed": VALIDATION_SEED,
                                   "forget": str(self.spec)}}
                   if (v := self.config.validation) else {})}


def validation_rows(labels: torch.Tensor, forget: torch.Tensor, fraction: float,
                    seed: int = VALIDATION_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(held out, kept): sorted positions of a seeded sample of round(``fraction`` x n) rows of
    every stratum (class x forget membership, so the validation split holds the same share of
    the forget set as of every class) and the remaining positions. Disjoint, covering all."""
    gen = torch.Generator().manual_seed(seed)
    strata = labels * 2 + forget.long()
    held = []
    for stratum in torch.unique(strata):
        rows = (strata == stratum).nonzero().squeeze(1)
        held.append(rows[torch.randperm(len(rows), generator=gen)[:round(fraction * len(rows))]])
    held_out = torch.sort(torch.cat(held)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[held_out] = False
    return held_out, keep.nonzero().squeeze(1)


def build_scenario(cfg: RunConfig) -> Scenario:
    spec = parse_forget(cfg.forget)
    get_method(cfg.method)  # fail on an unknown method before any data is read
    dataset = load_dataset(cfg.dataset, cfg.data_dir)
    arch = cfg.arch or default_arch(cfg.dataset, spec)
    recipe = recipe_for(arch, oversample=tuple(cfg.oversample) if cfg.oversample else None)
    train, test = dataset.train, dataset.test
    for name in ("train_per_class", "epochs"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value}")
    # Masks of the whole dataset (so no subset hides a wrong entry of a forget list), carried
    # along every subset below: a mask is a function of each row alone.
    masks = forget_masks(spec, dataset, cfg.data_dir)
    if cfg.validation is not None:
        v = cfg.validation
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 0.5:
            raise ConfigError(f"validation must be a fraction in (0, 0.5], got {v}")
        val_rows, fit_rows = validation_rows(train.y, masks["train"], v)
        # The validation split plays the test role; the test set itself is never read.
        test, train = train.subset(val_rows), train.subset(fit_rows)
        masks = {"train": masks["train"][fit_rows], "test": masks["train"][val_rows]}
    epochs = cfg.epochs or (QUICK["epochs"] if cfg.quick else None)
    if epochs:
        recipe = recipe_for(arch, epochs=epochs, oversample=recipe.oversample)
    per_class = cfg.train_per_class or (QUICK["train_per_class"] if cfg.quick else None)
    if per_class:
        keep = stratified_rows(train.y, per_class, cfg.seed)
        train, masks["train"] = train.subset(keep), masks["train"][keep]
    if cfg.quick and cfg.validation is None:
        keep = stratified_rows(test.y, QUICK["test_per_class"], cfg.seed)
        test, masks["test"] = test.subset(keep), masks["test"][keep]
    if not masks["train"].any():
        where = ("outside the validation split" if cfg.validation is not None
                 else f"of dataset '{dataset.name}'")
        raise SpecError(f"forget spec '{spec}' selects no training sample {where}; choose a "
                        "spec that matches the data")
    rows = torch.arange(len(train))
    if recipe.oversample:
        cls, factor = recipe.oversample
        if not 0 <= cls < dataset.num_classes:
            raise ConfigError(f"oversample class {cls} is not a class of {dataset.name}")
        rows = oversample(train.y, cls, factor)
    return Scenario(cfg, dataset, spec, arch, recipe, train, test, masks, rows,
                    pick_device(cfg.device), forget_class(spec, dataset, cfg.data_dir),
                    probe_rows(masks, cfg.seed))


def probe_rows(masks: dict[str, torch.Tensor], seed: int) -> dict[str, tuple[str, torch.Tensor]]:
    """The forget samples of train and test, and a seeded balanced MIA shadow sample of
    retain-train members and retain-test non-members."""
    retain = {s: (~masks[s]).nonzero().squeeze(1) for s in ("train", "test")}
    member, nonmember = mia.shadow_rows(len(retain["train"]), len(retain["test"]), seed)
    return {"forget_train": ("train", masks["train"].nonzero().squeeze(1)),
            "forget_test": ("test", masks["test"].nonzero().squeeze(1)),
            "member": ("train", retain["train"][torch.as_tensor(member, dtype=torch.long)]),
            "nonmember": ("test", retain["test"][torch.as_tensor(nonmember, dtype=torch.long)])}


def split_hash(sc: Scenario) -> str:
    """sha256 of the training rows, the forget masks and the probe rows: two runs with the same
    hash used the same samples in the same roles."""
    h = hashlib.sha256()
    for tensor in (sc.train_rows, sc.masks["train"], sc.masks["test"],
                   *(rows for _, rows in sc.probe.values())):
        h.update(tensor.to(torch.int64).numpy().tobytes())
    return h.hexdigest()


def _cached(sc: Scenario, config: dict, model: nn.Module) -> dict | None:
    """Load the cache entry for ``config`` into ``model`` when reuse is on and it exists;
    raise under ``--no-train`` when it is missing."""
    path = model_path(sc.root, config)
    if sc.config.reuse and path.exists():
        return load_model(path, model, config)
    if not sc.config.allow_train:
        raise CacheError(f"no cached {config['role']} model for this configuration at '{path}'; "
                         "run without --no-train to train it")
    return None


def new_model(sc: Scenario) -> nn.Module:
    """A freshly initialised model of the scenario's architecture, seeded by the run's seed
    (this is also the "untrained" baseline)."""
    seed_everything(sc.config.seed)
    return create_model(sc.arch, sc.dataset.in_channels, sc.dataset.num_classes).to(sc.device)


def train_or_load(sc: Scenario, role: str) -> tuple[nn.Module, dict]:
    """The cached ``original`` or ``retrained`` model, trained (and cached) when missing."""
    config = sc.model_config(role)
    model = new_model(sc)
    meta = _cached(sc, config, model)
    if meta is not None:
        return model.to(sc.device).eval(), meta
    rows = sc.rows(role)
    r = sc.recipe
    log.info("training the %s model: %s on %s, %d epochs over %d samples", role, sc.arch,
             sc.dataset.name, r.epochs, len(rows))

    curve = stratified_rows(sc.test.y, CURVE_TEST_PER_CLASS, sc.config.seed)
    curve_x, curve_y = sc.test.x[curve], sc.test.y[curve]

    def test_metrics(m):
        logits = predict(m, curve_x, device=sc.device)
        return {"test_loss": mean_cross_entropy(logits, curve_y),
                "test_acc": accuracy(logits.argmax(1), curve_y)}

    start = time.perf_counter()
    history = fit(model, sc.train.x[rows], sc.train.y[rows], epochs=r.epochs,
                  batch_size=r.batch_size, lr=r.lr, seed=sc.config.seed, device=sc.device,
                  desc=f"train {role}", on_epoch=test_metrics)
    seconds = time.perf_counter() - start
    meta = {"config": config, "seconds": seconds, "history": history,
            "train_samples": len(rows), "device": str(sc.device)}
    save_model(model_path(sc.root, config), model, meta)
    return model.eval(), meta


def code_hash(paths: list[Path]) -> str:
    """sha256 of source files (names and contents), so that results of edited code are never
    reused, even within one package version."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def method_code_hash() -> str:
    """The code of the methods package and the training loop they share."""
    here = Path(__file__).parent
    return code_hash([*(here / "methods").glob("*.py"), here / "training.py"])


def evaluation_code_hash() -> str:
    """The code a baseline evaluation depends on (prediction, evaluation, metrics, MIA)."""
    here = Path(__file__).parent
    return code_hash([here / f"{name}.py" for name in ("experiment", "evaluation", "metrics",
                                                       "mia", "models", "training")])


def unlearn_or_load(sc: Scenario, method, original: nn.Module) -> tuple[nn.Module, dict]:
    """Run ``method`` on a copy of ``original``, or load the cached result of the same method,
    hyperparameters and original model."""
    config = {"role": "unlearned", "dataset": sc.dataset.name, "arch": sc.arch,
              "original": sc.model_config("original"), "forget": str(sc.spec),
              "method": method.name, "params": method.params, "seed": sc.config.seed,
              "version": __version__, "code": method_code_hash()}
    model = new_model(sc)
    meta = _cached(sc, config, model)
    if meta is not None:
        return model.eval(), meta
    seed_everything(sc.config.seed)
    log.info("unlearning with %s (%s preset)", method.name, method.preset)
    start = time.perf_counter()
    unlearned = method.unlearn(original, unlearn_task(sc))
    seconds = time.perf_counter() - start
    meta = {"config": config, "seconds": seconds, "phases": method.timings,
            "history": method.history, "device": str(sc.device)}
    save_model(model_path(sc.root, config), unlearned, meta)
    return unlearned.eval(), meta


@dataclass
class RunResult:
    """``outputs``: the probe-set logits of the original, retrained and (unless the method
    diverged) unlearned models, as in ``Baselines.outputs``."""

    record: dict
    scenario: Scenario
    models: dict[str, nn.Module]
    histories: dict[str, list[dict]]
    outputs: dict[str, dict[str, torch.Tensor]]


def unlearn_task(sc: Scenario) -> UnlearnTask:
    """The forget and retain training samples (with an oversampled recipe's duplicates) of the
    scenario, built once per scenario: every method and relearn run of a seed shares them (and
    none writes into them)."""
    if sc.task is None:
        rows = sc.train_rows
        forget = sc.masks["train"][rows]
        x, y = sc.train.x[rows], sc.train.y[rows]
        sc.task = UnlearnTask(x[forget], y[forget], x[~forget], y[~forget],
                              sc.dataset.num_classes, sc.recipe, sc.device, sc.config.seed,
                              sc.dataset.name)
    return sc.task


@dataclass
class Baselines:
    """The models every method of one seed is judged against, with their evaluations (forget-set
    metrics included) and their logits on the probe sets. ``models["untrained"]`` is the seed's
    fresh initialisation: ZRF's random model, and a baseline of its own in ``compare``."""

    scenario: Scenario
    models: dict[str, nn.Module]
    metas: dict[str, dict]
    evaluations: dict[str, dict]
    outputs: dict[str, dict[str, torch.Tensor]]


def assess(sc: Scenario, model: nn.Module) -> tuple[dict, dict[str, torch.Tensor]]:
    """A model's evaluation and its logits on the probe sets, from one prediction pass."""
    logits = {"train": predict(model, sc.train.x, device=sc.device),
              "test": predict(model, sc.test.x, device=sc.device)}
    evaluation = evaluate_logits(logits, sc.train, sc.test, sc.masks, sc.dataset.num_classes,
                                 forget_class=sc.forget_class if sc.spec.is_feature else None)
    return evaluation, {name: logits[split][rows] for name, (split, rows) in sc.probe.items()}


def probe_labels(sc: Scenario) -> dict[str, torch.Tensor]:
    splits = {"train": sc.train, "test": sc.test}
    return {name: splits[split].y[rows] for name, (split, rows) in sc.probe.items()}


def scored_outputs(sc: Scenario, outputs: dict[str, dict[str, torch.Tensor]]) -> Outputs:
    """``Outputs`` for the metrics, naming the untrained model ``random`` (ZRF's reference)."""
    logits = {("random" if k == "untrained" else k): v for k, v in outputs.items()}
    return Outputs(probe_labels(sc), logits, sc.config.seed)


def relearn(sc: Scenario, model: nn.Module, original: nn.Module) -> dict:
    """``metrics.relearn_steps`` on the scenario's forget and retain training samples."""
    task = unlearn_task(sc)
    steps, reached = relearn_steps_of(model, task.forget_x, task.forget_y, task.retain_x,
                                   task.retain_y, original, sc.config.seed)
    return {"relearn_steps": steps, "relearn_reached": reached}


def prepare(cfg: RunConfig, untrained: bool = False) -> Baselines:
    """Build the scenario and train or load its original and retrained models, and evaluate
    them (with ``untrained``, the fresh initialisation is evaluated as a baseline too)."""
    sc = build_scenario(cfg)
    models, metas = {"untrained": new_model(sc).eval()}, {}
    for role in ("original", "retrained"):
        models[role], metas[role] = train_or_load(sc, role)
    evaluations, outputs = evaluate_baselines(sc, models)
    if not untrained:
        del evaluations["untrained"]
    return Baselines(sc, models, metas, evaluations, outputs)


def evaluate_baselines(sc: Scenario, models: dict[str, nn.Module]) -> tuple[dict, dict]:
    """The evaluations (forget-set metrics included) and probe logits of the untrained,
    original and retrained models, cached beside their checkpoints under everything they
    depend on: a warm run (``ALLREADY_TRAINED``) reads them instead of predicting again."""
    names = select_metrics(sc.config.metrics)
    config = {"role": "baselines", "dataset": sc.dataset.name, "arch": sc.arch,
              "seed": sc.config.seed, "original": sc.model_config("original"),
              "retrained": sc.model_config("retrained"), "metrics": names,
              "split_hash": split_hash(sc), "code": evaluation_code_hash()}
    path = model_path(sc.root, config)
    if sc.config.reuse and path.exists():
        payload = load_payload(path, config)
        return payload["evaluations"], payload["outputs"]
    evaluations, outputs = {}, {}
    for name, model in models.items():
        evaluations[name], outputs[name] = assess(sc, model)
    scores = forget_metrics(scored_outputs(sc, outputs), names, roles=("original", "retrained"))
    for role, values in scores.items():
        evaluations[role].update(values)
    if "relearn_steps" in names:
        evaluations["retrained"].update(relearn(sc, models["retrained"], models["original"]))
    save_payload(path, {"evaluations": evaluations, "outputs": outputs,
                        "meta": {"config": config}})
    return evaluations, outputs


def run_method(base: Baselines, name: str, params: dict | None = None,
               preset: str = "default", bundle_dir: Path | None = None) -> RunResult:
    """Unlearn the original model of ``base`` with one method, build the JSON record and write
    the run's reproducibility bundle (to ``bundle_dir``, default ``default_bundle_dir``)."""
    sc = base.scenario
    names = select_metrics(sc.config.metrics)
    method = create(name, preset=preset, dataset=sc.dataset.name, scenario=sc.kind,
                    arch=sc.arch, data_dir=sc.config.data_dir, params=params)
    original, retrained = base.models["original"], base.models["retrained"]
    try:
        unlearned, meta_u = unlearn_or_load(sc, method, original)
    except DivergenceError as exc:
        # A diverged method yields a flagged record without metrics, never NaN numbers.
        unlearned, meta_u, error = None, {"seconds": None, "phases": method.timings,
                                          "history": method.history}, str(exc)
    else:
        error = None
    evaluations = {"original": base.evaluations["original"],
                   "retrained": base.evaluations["retrained"], "unlearned": None}
    outputs = dict(base.outputs)
    if unlearned is None:
        flags, distances, gap, speedup = ["diverged"], None, None, None
    else:
        evaluation, outputs["unlearned"] = assess(sc, unlearned)
        evaluation.update(forget_metrics(scored_outputs(sc, outputs), names,
                                         roles=("unlearned",))["unlearned"])
        if "relearn_steps" in names:
            evaluation.update(relearn(sc, unlearned, original))
        evaluations["unlearned"] = evaluation
        flags = guard_flags(evaluation, evaluations["retrained"])
        gap = avg_gap(evaluation, evaluations["retrained"])
        speedup = (base.metas["retrained"]["seconds"] / meta_u["seconds"]
                   if meta_u["seconds"] else None)
        distances = {"unlearned_to_original": parameter_distance(unlearned, original),
                     "unlearned_to_retrained": parameter_distance(unlearned, retrained),
                     "retrained_to_original": parameter_distance(retrained, original)}
    record = {
        "dataset": sc.dataset.name, "arch": sc.arch, "forget": str(sc.spec), "method": name,
        "params": method.params, "preset": method.preset, "seed": sc.config.seed,
        "quick": sc.config.quick, "models": evaluations, "flags": flags,
        "seconds": {"original": base.metas["original"]["seconds"],
                    "retrained": base.metas["retrained"]["seconds"],
                    "unlearn": meta_u["seconds"], "unlearn_phases": meta_u["phases"]},
        "distances": distances,
        "avg_gap": gap,
        "speedup_vs_retrain": speedup,
        "anamnesis_index": anamnesis_index(evaluations),
        **({"error": error} if error else {}),
        "recipe": sc.recipe.to_dict(),
        "sizes": {"train": len(sc.train), "test": len(sc.test),
                  "forget_train": int(sc.masks["train"].sum()),
                  "forget_test": int(sc.masks["test"].sum()),
                  "train_rows": len(sc.train_rows)},
        "data_checksum": sc.dataset.checksum,
        "split_hash": split_hash(sc),
        "run_config": {**asdict(sc.config), "method": name, "params": method.params,
                       "preset": method.preset},
        "device": str(sc.device),
        "versions": versions(),
    }
    folder = bundle_dir or default_bundle_dir(sc, method)
    record["bundle"] = str(folder)
    bundle.write(folder, record, scored_outputs(sc, outputs), sc.probe)
    models = {"original": original, "retrained": retrained, "unlearned": unlearned}
    histories = {"original": base.metas["original"]["history"],
                 "retrained": base.metas["retrained"]["history"], "unlearn": meta_u["history"]}
    return RunResult(record, sc, models, histories, outputs)


def anamnesis_index(evaluations: dict) -> float | None:
    """AIN = relearn steps of the unlearned model / those of the retrained model (Chundawat et
    al. 2023, "Zero-shot machine unlearning"); about 1 when the forgotten knowledge is as hard
    to relearn as if it had never been learned, near 0 when it comes straight back."""
    unlearned, retrained = evaluations.get("unlearned") or {}, evaluations["retrained"]
    steps_u, steps_r = unlearned.get("relearn_steps"), retrained.get("relearn_steps")
    if steps_u is None or not steps_r:
        return None
    return steps_u / steps_r


def default_bundle_dir(sc: Scenario, method) -> Path:
    """``<data root>/runs/<dataset>/<method>-seed<s>-<hash of the run's configuration>``."""
    key = config_key({"original": sc.model_config("original"),
                      "retrained": sc.model_config("retrained"), "method": method.name,
                      "params": method.params, "metrics": sc.config.metrics})
    return sc.root / "runs" / sc.dataset.name / f"{method.name}-seed{sc.config.seed}-{key}"


def run(cfg: RunConfig) -> RunResult:
    """Train or load the original and retrained models, unlearn, evaluate all three."""
    spec = parse_forget(cfg.forget)
    create(cfg.method, preset=cfg.preset, dataset=cfg.dataset, scenario=spec.scenario,
           arch=cfg.arch or default_arch(cfg.dataset, spec), data_dir=cfg.data_dir,
           params=cfg.params)  # fail early
    return run_method(prepare(cfg), cfg.method, cfg.params, cfg.preset)


def versions() -> dict:
    import numpy
    import sklearn

    return {"unlearnlab": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}
