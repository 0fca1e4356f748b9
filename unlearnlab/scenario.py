"""A resolved run: which samples train each model, which are forgotten, which the metrics
probe, and the recipe; built once from a ``RunConfig`` before any model is trained."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import mia
from .config import QUICK, RunConfig
from .data import Dataset, Split, data_root, default_arch, load_dataset, oversample, stratified_rows
from .errors import ConfigError, SpecError
from .forget import ForgetSpec, class_of, forget_digest, forget_masks, parse_forget
from .methods import UnlearnTask
from .models import recipe_for
from .training import Recipe, pick_device

# Seeds the held-out validation split (``RunConfig.validation``): fixed, so every run seed holds
# out the same rows and the retrained ensemble is evaluated on one validation set.
VALIDATION_SEED = 1009


@dataclass
class Scenario:
    """A resolved run: the samples used, the forget masks over them and the recipe.
    ``train_rows`` are positions in ``train`` with the duplicates of an oversampled recipe;
    ``probe`` maps each forget-set metric's sample set to (split, positions), see
    ``metrics.Outputs``."""

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
    # None for random forgetting, whose samples come from every class.
    forget_class: int | None
    probe: dict[str, tuple[str, torch.Tensor]]
    # What the forget spec resolved to (``forget_digest``): the cache keys use it, not the
    # spec's text, so that no cached model outlives an edited forget list.
    forget_digest: str
    # Seeds a model's initialisation and shuffles; the run's seed (``config.seed``) unless an
    # ensemble varies the models over one fixed set of samples (``ensemble``).
    model_seed: int
    _task: UnlearnTask | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """The forgetting scenario: "class", "feature" (a subset of a class) or "random" (a
        stratified sample of the training set)."""
        return self.spec.scenario

    @property
    def root(self) -> Path:
        return data_root(self.config.data_dir)

    def rows(self, role: str) -> torch.Tensor:
        """Training positions for ``original`` (all) or ``retrained`` (without the forget set)."""
        if role == "retrained":
            return self.train_rows[~self.masks["train"][self.train_rows]]
        return self.train_rows

    @property
    def task(self) -> UnlearnTask:
        """The forget and retain training samples (with an oversampled recipe's duplicates),
        built once: every method and relearn run of a seed shares them (none writes into
        them)."""
        if self._task is None:
            rows = self.train_rows
            forget = self.masks["train"][rows]
            x, y = self.train.x[rows], self.train.y[rows]
            self._task = UnlearnTask(x[forget], y[forget], x[~forget], y[~forget],
                                     self.dataset.num_classes, self.recipe, self.device,
                                     self.model_seed, self.dataset.name)
        return self._task

    def probe_labels(self) -> dict[str, torch.Tensor]:
        splits = {"train": self.train, "test": self.test}
        return {name: splits[split].y[rows] for name, (split, rows) in self.probe.items()}

    @property
    def split_hash(self) -> str:
        """sha256 of the training rows, the forget masks and the probe rows: two runs with the
        same hash used the same samples in the same roles."""
        h = hashlib.sha256()
        for tensor in (self.train_rows, self.masks["train"], self.masks["test"],
                       *(rows for _, rows in self.probe.values())):
            h.update(tensor.to(torch.int64).numpy().tobytes())
        return h.hexdigest()


def resolve_arch(cfg: RunConfig, spec: ForgetSpec) -> str:
    """The run's architecture: the configured one, else the dataset's default for the kind
    (``data.default_arch``)."""
    return cfg.arch or default_arch(cfg.dataset, spec.scenario)


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
    dataset = load_dataset(cfg.dataset, cfg.data_dir)
    arch = resolve_arch(cfg, spec)
    recipe = recipe_for(arch, oversample=tuple(cfg.oversample) if cfg.oversample else None)
    train, test = dataset.train, dataset.test
    # Masks of the whole dataset (so no subset hides a wrong entry of a forget list), carried
    # along every subset below: a mask is a function of each row alone.
    masks = forget_masks(spec, dataset, cfg.data_dir)
    digest = forget_digest(masks, dataset)
    if cfg.validation is not None:
        val_rows, fit_rows = validation_rows(train.y, masks["train"], cfg.validation)
        # The validation split plays the test role; the test set itself is never read.
        test, train = train.subset(val_rows), train.subset(fit_rows)
        held_out = masks["train"][val_rows]
        if spec.scenario == "random":
            # as on the test split: random forgetting has no forget-test part, its held-out
            # draws are test-role samples like the others
            held_out = torch.zeros_like(held_out)
        masks = {"train": masks["train"][fit_rows], "test": held_out}
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
                    pick_device(cfg.device), class_of(spec, dataset, cfg.data_dir),
                    probe_rows(masks, cfg.seed, test_reference=spec.scenario == "random"),
                    digest, cfg.seed)


def probe_rows(masks: dict[str, torch.Tensor], seed: int, test_reference: bool = False
               ) -> dict[str, tuple[str, torch.Tensor]]:
    """The forget samples of train and test, and a seeded balanced MIA shadow sample of
    retain-train members and retain-test non-members.

    With ``test_reference`` (random forgetting: the test split holds no forget sample, and
    every test sample is a non-member from the forget set's distribution), ``forget_test`` is
    instead a seeded half, floor(n/2), of the retain-test samples (the first entries of
    ``torch.randperm`` with a generator seeded by ``seed``), and the shadow non-members come
    from the other half, so that no attacker is scored on samples it was fitted to."""
    retain = {s: (~masks[s]).nonzero().squeeze(1) for s in ("train", "test")}
    forget_test = masks["test"].nonzero().squeeze(1)
    if test_reference:
        order = torch.randperm(len(retain["test"]), generator=torch.Generator().manual_seed(seed))
        half = len(order) // 2
        forget_test = torch.sort(retain["test"][order[:half]]).values
        retain["test"] = torch.sort(retain["test"][order[half:]]).values
    member, nonmember = mia.shadow_rows(len(retain["train"]), len(retain["test"]), seed)
    return {"forget_train": ("train", masks["train"].nonzero().squeeze(1)),
            "forget_test": ("test", forget_test),
            "member": ("train", retain["train"][torch.as_tensor(member, dtype=torch.long)]),
            "nonmember": ("test", retain["test"][torch.as_tensor(nonmember, dtype=torch.long)])}
