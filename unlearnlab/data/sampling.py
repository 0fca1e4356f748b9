"""Seeded row selections over a split's labels: stratified samples, over- and
under-representation of one class."""

from __future__ import annotations

import torch

from ..errors import DataError


def stratified_rows(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted positions of a seeded stratified sample: ``per_class`` samples of each class
    (all of a smaller class)."""
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(labels):
        rows = torch.nonzero(labels == c).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=gen)[:per_class]])
    return torch.sort(torch.cat(keep)).values


def oversample(labels: torch.Tensor, cls: int, factor: int) -> torch.Tensor:
    """Training positions in which class ``cls`` appears ``factor`` times in total (seed A's
    ``create_overrepresented_dataset``); all other samples appear once."""
    if factor < 1:
        raise DataError(f"oversampling factor must be >= 1, got {factor}")
    rows = torch.arange(len(labels))
    is_cls = labels == cls
    return torch.cat([rows[~is_cls], rows[is_cls].repeat(factor)])


def undersample(labels: torch.Tensor, cls: int, keep: int, seed: int) -> torch.Tensor:
    """Training positions in which class ``cls`` is reduced to ``keep`` random samples (seed A
    kept the first ``keep``; a seeded random choice avoids that ordering bias)."""
    rows = torch.arange(len(labels))
    members = rows[labels == cls]
    gen = torch.Generator().manual_seed(seed)
    chosen = members[torch.randperm(len(members), generator=gen)[:keep]]
    return torch.sort(torch.cat([rows[labels != cls], chosen])).values
