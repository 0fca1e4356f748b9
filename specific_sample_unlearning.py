"""Notebook-facing entry to seed A's class forgetting (Fabbri 2024): over- or under-represent
one class in the training set, then forget it by freezing ``fc1``/``fc2`` and relearning it as
another class (the ``relabel`` method). Everything delegates to ``unlearnlab``."""

from __future__ import annotations

import torch

from unlearnlab.config import RunConfig
from unlearnlab.data import oversample, undersample
from unlearnlab.experiment import RunResult, run


def adjust_class_representation(labels, class_to_adjust: int = 6, i: float = 2,
                                reduce_to: int = 100, duplication_factor: int = 10,
                                seed: int = 0) -> torch.Tensor:
    """Training positions with ``class_to_adjust`` re-balanced, as in the seed: ``i > 1``
    over-represents it (it appears ``duplication_factor`` times in total), ``0 < i < 1``
    under-represents it (``reduce_to`` samples, a seeded random choice where the seed kept the
    first ones). ``i`` is only a switch, not a factor. Anything else raises ``ValueError``."""
    labels = torch.as_tensor(labels)
    if i > 1:
        return oversample(labels, class_to_adjust, duplication_factor)
    if 0 < i < 1:
        return undersample(labels, class_to_adjust, reduce_to, seed)
    raise ValueError(f"i must be > 1 (over-represent) or between 0 and 1 (under-represent), "
                     f"got {i}")


def class_distribution(labels, rows=None) -> dict[int, int]:
    """Number of samples per class in ``labels`` (restricted to the positions ``rows``, which
    may repeat, when given), for every class from 0 to the largest label."""
    labels = torch.as_tensor(labels)
    if rows is not None:
        labels = labels[torch.as_tensor(rows)]
    return {c: int(n) for c, n in enumerate(torch.bincount(labels).tolist())}


def class_forgetting(dataset: str = "mnist", forget: int = 6, target: int = 3,
                 oversample_factor: int | None = 10, reuse: bool = True, quick: bool = False,
                 data_dir: str | None = None, **params) -> RunResult:
    """Seed A's experiment: train on ``dataset`` with class ``forget`` repeated
    ``oversample_factor`` times (None or 1: no oversampling), then relearn ``forget`` as
    ``target`` with the ``relabel`` method, next to the model retrained without ``forget``.
    ``reuse`` loads matching cached models (the notebooks' ``ALLREADY_TRAINED``); ``params``
    are further ``relabel`` hyperparameters (``epochs``, ``freeze``, ``lr``, ``batch_size``)."""
    factor = oversample_factor if oversample_factor and oversample_factor > 1 else None
    return run(RunConfig(dataset=dataset, forget=f"class:{forget}", method="relabel",
                         params={"target": target, **params},
                         oversample=(forget, factor) if factor else None, quick=quick,
                         data_dir=data_dir, reuse=reuse))
