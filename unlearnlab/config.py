"""``RunConfig``: everything that determines one run, checked field by field on creation.

Every entry point (the CLI, the notebooks, the Python API, ``tune``) builds one, so a value of
the wrong type fails here, in one line, before any data is read or any model is trained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from .errors import ConfigError

# Quick mode: a stratified subset (per class) and one training epoch, so CI stays fast.
QUICK = {"train_per_class": 300, "test_per_class": 100, "epochs": 1}
# Seeds must fit every consumer: torch and NumPy take 64 bits, scikit-learn's random_state 32.
MAX_SEED = 2**32 - 1


@dataclass
class RunConfig:
    """Everything that determines a run. ``reuse`` is the notebooks' ``ALLREADY_TRAINED``:
    load matching cached models instead of retraining them; ``allow_train=False`` refuses to
    train when no matching model is cached (``--no-train``). ``metrics`` selects the
    forget-set metrics (None: every registered metric). ``train_per_class`` trains on a seeded
    stratified subset and ``epochs`` overrides the recipe's (e.g. a small, long-trained model
    that overfits, for membership inference). ``validation`` (a fraction, e.g. 0.1) holds out
    that share of the training set (``scenario.validation_rows``) from every model's training
    and evaluates on it in place of the test set, which is then never read: hyperparameter
    search (``tuning``) judges on it, so that the report's test numbers stay untouched."""

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

    def __post_init__(self):
        for name in ("dataset", "forget", "preset", "device"):
            _expect(name, getattr(self, name), str)
        if not isinstance(self.method, str) and not isinstance(self.method, type):
            raise ConfigError(f"method must be a registry key, 'module:Class' or a method class, "
                              f"got {type(self.method).__name__}")
        _expect("params", self.params, dict)
        for name in ("quick", "reuse", "allow_train"):
            _expect(name, getattr(self, name), bool)
        _integer("seed", self.seed, 0, MAX_SEED)
        if isinstance(self.data_dir, os.PathLike):
            self.data_dir = os.fspath(self.data_dir)
        for name in ("arch", "data_dir"):
            if getattr(self, name) is not None:
                _expect(name, getattr(self, name), str)
        for name in ("train_per_class", "epochs"):
            if getattr(self, name) is not None:
                _integer(name.replace("_", "-"), getattr(self, name), 1, None)
        if self.oversample is not None:
            pair = self.oversample
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ConfigError(f"oversample must be (class, factor), got {pair!r}")
            _integer("oversample class", pair[0], 0, None)
            _integer("oversample factor", pair[1], 1, None)
            self.oversample = (pair[0], pair[1])
        if self.metrics is not None:
            if not isinstance(self.metrics, list | tuple) or not all(
                    isinstance(m, str) for m in self.metrics):
                raise ConfigError(f"metrics must be a list of metric names, got {self.metrics!r}")
            self.metrics = list(self.metrics)
            from .metrics import select_metrics  # lazy: metrics imports torch and the MIAs

            select_metrics(self.metrics)  # an unknown name fails here, not after training
        v = self.validation
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                              or not 0 < v <= 0.5):
            raise ConfigError(f"validation must be a fraction in (0, 0.5], got {v!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _expect(name: str, value, kind: type) -> None:
    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {type(value).__name__} "
                          f"{value!r}")


def _integer(name: str, value, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = (f"between {low} and {high}" if high is not None
                 else "a positive integer" if low == 1 else f"at least {low}")
        raise ConfigError(f"{name} must be {bound}, got {value}")
