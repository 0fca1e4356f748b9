"""A dataset in memory: two splits of image tensors with the digest of their source.

Every split holds ``x`` (float32, N x C x H x W, pixel values in [0, 1]), ``y`` (int64 labels)
and ``index`` (the sample's position in its source, so that hand-labelled forget lists address
samples by it). Training loops index these tensors directly; nothing is decoded per sample.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError


@dataclass(frozen=True)
class Split:
    """One split in memory: images ``x`` in [0, 1], labels ``y``, source positions ``index``,
    and for colorized MNIST the background colour id ``color`` (index into ``COLORS``)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    color: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, rows: torch.Tensor) -> Split:
        """The samples at ``rows`` (a long tensor of positions in this split)."""
        color = None if self.color is None else self.color[rows]
        return Split(self.x[rows], self.y[rows], self.index[rows], color)


@dataclass(frozen=True)
class Dataset:
    """A dataset's two splits with the digest of what they were read from. ``list_source``
    names the file family that hand-labelled forget lists of this dataset index (e.g. "MNIST"
    for MNIST and colorized MNIST); None: the dataset takes no forget lists."""

    name: str
    train: Split
    test: Split
    checksum: str
    classes: tuple[str, ...]
    list_source: str | None = None

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir``, else ``$UNLEARNLAB_DATA``, else ``data``."""
    return Path(data_dir or os.environ.get("UNLEARNLAB_DATA") or "data")


def tensor_digest(*tensors: torch.Tensor) -> str:
    """sha256 (16 hex digits) over the dtype, shape and bytes of ``tensors``: the checksum of
    a dataset given as tensors, so that its models are cached by content."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def from_tensors(name: str, train: tuple[torch.Tensor, torch.Tensor],
                 test: tuple[torch.Tensor, torch.Tensor],
                 classes: tuple[str, ...] | None = None) -> Dataset:
    """A ``Dataset`` from ``(x, y)`` pairs: ``x`` float N x C x H x W in [0, 1], ``y`` int64
    labels 0..K-1. ``index`` is each sample's position; the checksum is ``tensor_digest`` of
    all four tensors. Raises ``DataError`` on a shape, dtype or range it cannot use."""
    splits = []
    for split, (x, y) in (("train", train), ("test", test)):
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            raise DataError(f"dataset '{name}': {split} must be a pair of tensors (x, y)")
        if x.dim() != 4 or not x.is_floating_point():
            raise DataError(f"dataset '{name}': {split} x must be a float tensor N x C x H x W, "
                            f"got {x.dtype} of shape {tuple(x.shape)}")
        if y.dim() != 1 or y.dtype != torch.int64 or len(y) != len(x) or len(y) == 0:
            raise DataError(f"dataset '{name}': {split} y must be a non-empty int64 vector with "
                            f"one label per image, got {y.dtype} of shape {tuple(y.shape)}")
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"dataset '{name}': {split} pixel values must lie in [0, 1]; scale "
                            "the images first")
        splits.append(Split(x.float().contiguous(), y.clone(), torch.arange(len(y))))
    num_classes = int(max(splits[0].y.max(), splits[1].y.max())) + 1
    if int(min(splits[0].y.min(), splits[1].y.min())) < 0:
        raise DataError(f"dataset '{name}': labels must be 0..K-1")
    classes = tuple(classes) if classes is not None else tuple(str(c) for c in range(num_classes))
    if len(classes) < num_classes:
        raise DataError(f"dataset '{name}': {len(classes)} class names for labels up to "
                        f"{num_classes - 1}; name every class")
    if splits[0].x.shape[1:] != splits[1].x.shape[1:]:
        raise DataError(f"dataset '{name}': train and test images differ in shape")
    return Dataset(name, splits[0], splits[1],
                   tensor_digest(train[0], train[1], test[0], test[1]), classes)
