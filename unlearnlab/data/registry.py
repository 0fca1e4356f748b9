"""The dataset registry: name -> how to load it, and which architecture each scenario kind
uses on it by default.

Built-in datasets register in ``builtin.py``; a user adds one from Python, either with a
loader (``register_dataset("mine", load=lambda root: ...)``) or from tensors
(``register_tensors("mine", (x, y), (x_test, y_test))``), and then names it like a built-in one
in ``RunConfig(dataset="mine")``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from ..registry import Registry
from .dataset import Dataset, data_root, from_tensors

# The architecture of each scenario kind when a run names none: seed A's CNN for whole
# classes, the thesis's MLP for features (a dataset may refine this, as colorized MNIST does).
# Random forgetting takes the feature architecture, as the methods take their feature defaults.
DEFAULT_ARCH = {"class": "cnn", "feature": "mlp"}


@dataclass(frozen=True)
class DatasetSpec:
    """``load(root) -> Dataset`` reads and verifies the files under the data root ``root``
    (``needs_root=False``: it reads none); ``default_arch`` maps a scenario kind to an
    architecture name."""

    name: str
    load: Callable[[Path], Dataset]
    default_arch: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ARCH))
    needs_root: bool = True


DATASETS: Registry[DatasetSpec] = Registry("dataset", DataError)


def register_dataset(name: str, load: Callable[[Path], Dataset], *,
                     default_arch: Mapping[str, str] | None = None, needs_root: bool = True,
                     replace: bool = False) -> DatasetSpec:
    """Register ``load`` under ``name``. Registering a taken name is an error unless
    ``replace`` (a notebook that re-runs its cell); replacing clears the loaded copy."""
    origin = getattr(load, "__module__", "?") + ":" + getattr(load, "__qualname__", "?")
    arch = {**DEFAULT_ARCH, **(default_arch or {})}
    unknown = set(arch) - set(DEFAULT_ARCH)
    if unknown:
        raise ConfigError(f"default_arch of dataset '{name}' names scenario kind "
                          f"'{sorted(unknown)[0]}'; use {' and '.join(DEFAULT_ARCH)}")
    spec = DATASETS.add(name, DatasetSpec(name, load, arch, needs_root), origin, replace)
    _load_cached.cache_clear()
    return spec


def register_tensors(name: str, train: tuple[torch.Tensor, torch.Tensor],
                     test: tuple[torch.Tensor, torch.Tensor], *,
                     classes: tuple[str, ...] | None = None,
                     default_arch: Mapping[str, str] | None = None,
                     replace: bool = False) -> Dataset:
    """Register a dataset given as tensors (see ``dataset.from_tensors``) and return it. Its
    checksum is a digest of the tensors, so models trained on other tensors under the same
    name are never served from the cache."""
    dataset = from_tensors(name, train, test, classes)
    register_dataset(name, lambda root: dataset, default_arch=default_arch, needs_root=False,
                     replace=replace)
    return dataset


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def default_arch(dataset: str, kind: str) -> str:
    """The architecture a run on ``dataset`` uses for scenario ``kind`` ("class", "feature" or
    "random") when it names none: the one policy every command follows."""
    return dataset_spec(dataset).default_arch["feature" if kind == "random" else kind]


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load (once per process and data root) and verify dataset ``name``."""
    spec = dataset_spec(name)
    root = data_root(data_dir)
    if spec.needs_root and not root.is_dir():
        raise DataError(f"data root '{root}' does not exist: create it and put the datasets there, "
                        "or pass --data-dir / set UNLEARNLAB_DATA")
    return _load_cached(name, str(root.resolve()) if spec.needs_root else "")


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: str) -> Dataset:
    dataset = DATASETS.get(name).load(Path(root))
    if not isinstance(dataset, Dataset) or dataset.name != name:
        raise DataError(f"the loader of dataset '{name}' must return a Dataset named '{name}'")
    return dataset
