"""Datasets held in memory as tensors.

Every split is decoded once into ``x`` (float32, N x C x 28 x 28, pixel values in [0, 1]),
``y`` (int64 labels) and ``index`` (the sample's position in its source file, so that
hand-labelled forget lists address samples by it). Training loops index these tensors
directly; nothing is decoded per sample.

Data root layout (torchvision's):
``<root>/MNIST/raw/*.gz``, ``<root>/FashionMNIST/raw/*.gz``,
``<root>/colorized-MNIST/{training,testing}/<digit>/<color>_<i>.png`` and
``<root>/forget_sets/*.json``. The root is ``data/`` unless ``--data-dir`` or the
``UNLEARNLAB_DATA`` environment variable says otherwise.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

DATASETS = ("mnist", "fashion_mnist", "cmnist", "digits")
COLORS = ("red", "green", "blue")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))

# The raw folder and the four IDX files of each torchvision dataset, with the MD5s torchvision
# publishes for them (``torchvision.datasets.MNIST.resources``; ``tests/test_data.py`` checks this
# copy against it), so that loading local files does not import torchvision (~1 s a process).
IDX_FILES = {
    "mnist": ("MNIST", (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"))),
    "fashion_mnist": ("FashionMNIST",
                      (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                       ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                       ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                       ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"))),
}

# Per-folder digest of colorized-MNIST: sha256 over "<file> <sha256 of file>\n" lines in
# sorted order, truncated to 16 hex digits, with the folder's file count.
CMNIST_DIGESTS = {
    "testing/0": (980, "7ab712f7e8a2c1c3"), "testing/1": (1135, "6f5d43bbadb2c8a9"),
    "testing/2": (1032, "1db13578afea01b3"), "testing/3": (1010, "185c52da06bf4ddc"),
    "testing/4": (982, "4f313c835a960e62"), "testing/5": (892, "4e4a57824f9e964d"),
    "testing/6": (958, "ec234a9b9350f1e8"), "testing/7": (1028, "480abd7cc9140b98"),
    "testing/8": (974, "d7381f99f29d51b3"), "testing/9": (1009, "e0ec21563b61efa4"),
    "training/0": (868, "431e65988c90a0ce"), "training/1": (1000, "702718ba69074d3a"),
    "training/2": (858, "76feeeb561f28268"), "training/3": (909, "0ccc24f972e401df"),
    "training/4": (883, "913b959122b44f4d"), "training/5": (764, "bb68172caf1c1b19"),
    "training/6": (893, "69ceff7a5fb8ddf9"), "training/7": (948, "b260ec562c743e5e"),
    "training/8": (835, "17af2e513206efcd"), "training/9": (877, "02bafce1c9a88956"),
}


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
    """A dataset's two splits with the digest of the files they were read from."""

    name: str
    train: Split
    test: Split
    checksum: str
    classes: tuple[str, ...]

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir``, else ``$UNLEARNLAB_DATA``, else ``data``."""
    return Path(data_dir or os.environ.get("UNLEARNLAB_DATA") or "data")


def check_dataset_name(name: str) -> str:
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
    return name


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load (once per process) and verify dataset ``name`` from the data root."""
    check_dataset_name(name)
    root = data_root(data_dir)
    if name != "digits" and not root.is_dir():
        raise DataError(f"data root '{root}' does not exist: create it and put the datasets there, "
                        "or pass --data-dir / set UNLEARNLAB_DATA")
    return _load_cached(name, str(root.resolve()))


def is_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether the files of ``name`` are present locally (no download, no verification)."""
    root = data_root(data_dir)
    if name == "digits":
        return True
    if name == "cmnist":
        return (root / "colorized-MNIST" / "training").is_dir()
    folder, files = IDX_FILES[name]
    return all((root / folder / "raw" / f).is_file() for f, _ in files)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: str) -> Dataset:
    if name == "digits":
        return _load_digits()
    if name == "cmnist":
        return _load_cmnist(Path(root))
    return _load_idx_dataset(name, Path(root))


def _torchvision_class(name: str):
    import torchvision.datasets as tvd
    return {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]


def _load_idx_dataset(name: str, root: Path) -> Dataset:
    """MNIST / Fashion-MNIST from the four original IDX ``.gz`` files.

    Missing files are fetched with torchvision's downloader (needs a network); every file is
    then checked against the MD5 torchvision publishes for it (``IDX_FILES``) before it is read.
    """
    folder, files = IDX_FILES[name]
    raw = root / folder / "raw"
    if not all((raw / f).is_file() for f, _ in files):
        try:
            _torchvision_class(name)(str(root), train=True, download=True)
        except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError offline
            raise DataError(f"{name} files are missing under '{raw}' and could not be downloaded "
                            f"({type(exc).__name__}); copy the four .gz files there") from exc
    for filename, md5 in files:
        if hashlib.md5((raw / filename).read_bytes(), usedforsecurity=False).hexdigest() != md5:
            raise DataError(f"checksum mismatch for '{raw / filename}': the file is corrupted or "
                            "truncated; replace it with the original file")
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(raw / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz")
        x = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
        y = torch.from_numpy(labels.astype(np.int64))
        splits[split] = Split(x, y, torch.arange(len(y)))
    checksum = _digest(md5 for _, md5 in files)
    classes = FASHION_CLASSES if name == "fashion_mnist" else DIGIT_CLASSES
    return Dataset(name, splits["train"], splits["test"], checksum, classes)


def _read_idx(path: Path) -> np.ndarray:
    """Decode one gzipped IDX file (big-endian header: magic, then one int32 per dimension)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_cmnist(root: Path) -> Dataset:
    """Colorized MNIST: ``<color>_<i>.png`` under ``{training,testing}/<digit>/``, where ``i`` is
    the MNIST position in the same split. Each folder is checked against ``CMNIST_DIGESTS``."""
    from PIL import Image

    base = root / "colorized-MNIST"
    if not base.is_dir():
        raise DataError(f"colorized-MNIST not found under '{base}'; copy the PNG tree there "
                        "(training/<digit>/<color>_<i>.png and testing/...)")
    splits = {}
    for split, folder in (("train", "training"), ("test", "testing")):
        images, labels, indices, colors = [], [], [], []
        for digit in range(10):
            key = f"{folder}/{digit}"
            files = sorted((base / key).glob("*.png")) if (base / key).is_dir() else []
            # Verify the folder before decoding anything: a corrupted PNG must be reported as
            # a checksum mismatch, not surface as a PIL decoding error.
            blobs = [path.read_bytes() for path in files]
            lines = [f"{path.name} {hashlib.sha256(blob).hexdigest()}\n"
                     for path, blob in zip(files, blobs, strict=True)]
            count, digest = CMNIST_DIGESTS[key]
            actual = hashlib.sha256("".join(lines).encode()).hexdigest()[:16]
            if len(files) != count or actual != digest:
                raise DataError(f"checksum mismatch in '{base / key}' ({len(files)} files, "
                                f"expected {count}): a PNG is missing, extra or corrupted; "
                                "copy the folder again")
            for path, blob in zip(files, blobs, strict=True):
                color, _, idx = path.stem.partition("_")
                with Image.open(io.BytesIO(blob)) as im:
                    images.append(np.asarray(im.convert("RGB")))
                labels.append(digit)
                indices.append(int(idx))
                colors.append(COLORS.index(color))
        order = np.lexsort((np.array(colors), np.array(indices)))
        x = torch.from_numpy(np.stack(images)[order]).permute(0, 3, 1, 2).float().div_(255.0)
        splits[split] = Split(x.contiguous(), torch.tensor(labels)[order],
                              torch.tensor(indices)[order], torch.tensor(colors)[order])
    checksum = _digest(d for _, d in sorted(CMNIST_DIGESTS.values()))
    return Dataset("cmnist", splits["train"], splits["test"], checksum, DIGIT_CLASSES)


def _load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), upsampled to 28x28 bilinearly, with a
    fixed stratified 75/25 train/test split: the offline default that needs no files."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear",
                                        align_corners=False).clamp_(0.0, 1.0)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    positions = np.arange(len(y))
    train_pos, test_pos = train_test_split(positions, test_size=0.25, stratify=bunch.target,
                                           random_state=0)
    splits = {}
    for split, pos in (("train", np.sort(train_pos)), ("test", np.sort(test_pos))):
        rows = torch.from_numpy(pos)
        splits[split] = Split(x[rows].contiguous(), y[rows], rows.clone())
    checksum = _digest([hashlib.sha256(bunch.images.tobytes()).hexdigest()])
    return Dataset("digits", splits["train"], splits["test"], checksum, DIGIT_CLASSES)


def _digest(parts) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


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
