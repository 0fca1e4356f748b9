"""The built-in datasets: MNIST, Fashion-MNIST, colorized MNIST and scikit-learn's digits,
each decoded once into tensors and verified against published checksums.

Data root layout (torchvision's):
``<root>/MNIST/raw/*.gz``, ``<root>/FashionMNIST/raw/*.gz``,
``<root>/colorized-MNIST/{training,testing}/<digit>/<color>_<i>.png`` and
``<root>/forget_sets/*.json``. The root is ``data/`` unless ``--data-dir`` or the
``UNLEARNLAB_DATA`` environment variable says otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset, Split
from .registry import register_dataset

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
    return Dataset(name, splits["train"], splits["test"], checksum, classes, folder)


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
    return Dataset("cmnist", splits["train"], splits["test"], checksum, DIGIT_CLASSES, "MNIST")


def _load_digits(root: Path | None = None) -> Dataset:
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


register_dataset("mnist", lambda root: _load_idx_dataset("mnist", root))
register_dataset("fashion_mnist", lambda root: _load_idx_dataset("fashion_mnist", root))
# The thesis's ConvNet for colour features: the MLP sees no colour structure.
register_dataset("cmnist", _load_cmnist, default_arch={"feature": "convnet"})
register_dataset("digits", _load_digits, needs_root=False)
