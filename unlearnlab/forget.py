"""Forget specifications: which training samples a model must forget.

Grammar (one parser, used by the CLI, the notebooks and the API):

- ``class:<c>``          every sample of class ``c`` (0-9);
- ``subset:<name>``      the samples listed in ``<root>/forget_sets/<name>.json``;
- ``rest:<name>``        that list's class minus the listed samples (how the thesis forgot
                         MNIST sevens without a crossbar);
- ``color:<color>:<c>``  colorized MNIST only: class ``c`` on one background colour;
- ``random:<fraction>[:<split seed>]``  a seeded sample of the training set, stratified by class
                         (``random_rows``): round(``fraction`` x n_c) samples of every class c,
                         fixed by the split seed (default 0), never by a run's seed.

A list addresses samples by their position in the original IDX file of each split. Colorized
MNIST files are named ``<color>_<i>.png`` with ``i`` the MNIST position, so an MNIST list
selects them through ``i``.

Random forgetting selects no test sample: its test forget mask is all False (the test split is
the forget set's non-member reference instead, see ``scenario.probe_rows``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import torch

from .data import COLORS, Dataset, Split, data_root
from .errors import ConfigError, DataError, SpecError

KINDS = ("class", "subset", "rest", "color", "random")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# A random spec's fraction is a plain decimal (no sign, exponent, nan or inf) and its split
# seed an ASCII integer short enough for int() (which refuses over 4,300 digits).
_FRACTION = re.compile(r"0?\.[0-9]+")
_SPLIT_SEED = re.compile(r"0*([0-9]{1,10})")
MAX_SPLIT_SEED = 2**32 - 1
# The split sizes of the source files the built-in datasets' lists index (``Dataset.list_source``;
# colorized MNIST holds fewer images than the MNIST positions its lists use). Another source's
# positions are bounded by its dataset's own.
_SOURCE_SIZES = {"MNIST": {"train": 60000, "test": 10000},
                 "FashionMNIST": {"train": 60000, "test": 10000}}


@dataclass(frozen=True)
class ForgetSpec:
    kind: str
    cls: int | None = None
    name: str | None = None
    color: str | None = None
    fraction: float | None = None
    split_seed: int | None = None

    def __str__(self) -> str:
        if self.kind == "class":
            return f"class:{self.cls}"
        if self.kind == "color":
            return f"color:{self.color}:{self.cls}"
        if self.kind == "random":
            # positional shortest round-trip digits: repr() would write 1e-05
            text = f"random:{format(Decimal(repr(self.fraction)), 'f')}"
            return text if self.split_seed == 0 else f"{text}:{self.split_seed}"
        return f"{self.kind}:{self.name}"

    @property
    def is_feature(self) -> bool:
        """True when the spec forgets part of one class rather than a whole class (random
        forgetting draws from every class, so it is neither)."""
        return self.kind not in ("class", "random")

    @property
    def scenario(self) -> str:
        """The scenario kind methods choose their defaults by: "class", "feature" or
        "random"."""
        if self.kind == "random":
            return "random"
        return "feature" if self.is_feature else "class"


def _class_number(text: str, spec: str) -> int:
    # ASCII digits only, one significant digit: int() of a Unicode or 5,000-digit string
    # would accept odd input or raise ValueError instead of SpecError.
    if not re.fullmatch(r"0*[0-9]", text):
        raise SpecError(f"forget spec '{spec}': class must be a number from 0 to 9, got '{text}'")
    return int(text)


def _random_spec(rest: str, spec: str) -> ForgetSpec:
    fraction_text, _, seed_text = rest.partition(":")
    fraction = float(fraction_text) if _FRACTION.fullmatch(fraction_text) else math.nan
    if not 0 < fraction < 1:  # also nan: a text that is no plain decimal
        raise SpecError(f"forget spec '{spec}': fraction must be a decimal between 0 and 1 "
                        f"(exclusive), e.g. random:0.1, got '{fraction_text}'")
    if not seed_text and not rest.endswith(":"):
        return ForgetSpec("random", fraction=fraction, split_seed=0)
    digits = _SPLIT_SEED.fullmatch(seed_text)
    if digits is None or int(digits.group(1)) > MAX_SPLIT_SEED:
        raise SpecError(f"forget spec '{spec}': split seed must be an integer from 0 to "
                        f"{MAX_SPLIT_SEED}, e.g. random:0.1:1, got '{seed_text}'")
    return ForgetSpec("random", fraction=fraction, split_seed=int(digits.group(1)))


def parse_forget(text: str) -> ForgetSpec:
    """Parse a forget specification string (see the module docstring)."""
    if not isinstance(text, str) or ":" not in text:
        raise SpecError(f"forget spec '{text}' is malformed: use class:<c>, subset:<name>, "
                        "rest:<name>, color:<color>:<c> or random:<fraction>[:<split seed>]")
    kind, _, rest = text.partition(":")
    if kind == "class":
        return ForgetSpec("class", cls=_class_number(rest, text))
    if kind in ("subset", "rest"):
        if not _NAME.fullmatch(rest):  # match() + '$' would accept a trailing newline
            raise SpecError(f"forget spec '{text}': '{rest}' is not a forget-set name "
                            "(letters, digits, '_', '-', '.')")
        return ForgetSpec(kind, name=rest)
    if kind == "color":
        color, _, cls = rest.partition(":")
        if color not in COLORS:
            raise SpecError(f"forget spec '{text}': colour must be one of {', '.join(COLORS)}")
        return ForgetSpec("color", cls=_class_number(cls, text), color=color)
    if kind == "random":
        return _random_spec(rest, text)
    raise SpecError(f"forget spec '{text}': unknown kind '{kind}'; use one of {', '.join(KINDS)}")


def load_forget_list(name: str, dataset: Dataset, data_dir=None) -> dict:
    """Read and validate ``forget_sets/<name>.json`` for ``dataset``: it must be JSON, index
    the dataset's source file, stay in range and list only samples of its class."""
    path = data_root(data_dir) / "forget_sets" / f"{name}.json"
    if not path.is_file():
        raise DataError(f"forget set '{name}' not found at '{path}': copy the forget_sets "
                        "folder into the data root or fix the name")
    try:
        content = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"forget set '{path}' cannot be read ({exc.strerror or exc}); check "
                        "its permissions") from exc
    except (ValueError, RecursionError) as exc:  # also over-long integers and deep nesting
        raise DataError(f"forget set '{path}' is not valid JSON ({_first_line(exc)}); restore "
                        "the original file") from exc
    if not isinstance(content, dict) or not {"dataset", "class", "train", "test"} <= content.keys():
        raise DataError(f"forget set '{path}' lacks the keys dataset, class, train and test")
    source = dataset.list_source
    if source is None or content["dataset"] != source:
        raise DataError(f"forget set '{name}' indexes {_shown(content['dataset'])} but dataset "
                        f"'{dataset.name}' needs a {source or 'class:'} list; pick a matching set")
    sizes = _SOURCE_SIZES.get(source) or {s: int(getattr(dataset, s).index.max()) + 1
                                           for s in ("train", "test")}
    cls, last = content["class"], dataset.num_classes - 1
    # bool is an int in Python: JSON true would otherwise be taken as class 1
    if not _is_int(cls) or not 0 <= cls <= last:
        raise DataError(f"forget set '{path}': class must be an integer 0-{last}, got "
                        f"{_shown(cls)}; fix the 'class' field")
    for split_name in ("train", "test"):
        items = content[split_name]
        if not isinstance(items, list) or not all(_is_int(i) for i in items):
            raise DataError(f"forget set '{path}': '{split_name}' must be a list of integers "
                            "(not booleans, floats or strings); fix that field")
        bad = [i for i in items if not 0 <= i < sizes[split_name]]
        if bad:
            raise DataError(f"forget set '{path}': {split_name} index {bad[0]} is out of range "
                            f"0-{sizes[split_name] - 1}; fix the list")
        split: Split = getattr(dataset, split_name)
        listed = torch.isin(split.index, torch.tensor(items, dtype=torch.long))
        wrong = listed & (split.y != cls)
        if wrong.any():
            pos = int(split.index[wrong][0])
            raise DataError(f"forget set '{path}': {split_name} sample {pos} has label "
                            f"{int(split.y[wrong][0])}, not the set's class {cls}; fix the list")
    return content


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value) -> str:
    """A JSON value as one short line for a message."""
    text = value if isinstance(value, str) and value.isprintable() else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def forget_digest(masks: dict[str, torch.Tensor], dataset: Dataset) -> str:
    """sha256 (hex) of the samples ``masks`` select: for train then test, the sorted source
    identifiers (``index``, the position in the source file, and on colorized MNIST the
    background colour too) of the selected samples. Two specs or list files that select the
    same samples have the same digest; any added or dropped sample changes it. ``masks`` are
    those of ``forget_masks`` over the whole dataset (before any subset of a run)."""
    h = hashlib.sha256()
    for split_name in ("train", "test"):
        split: Split = getattr(dataset, split_name)
        mask = masks[split_name]
        if mask.dtype != torch.bool or mask.shape != split.y.shape:
            raise ConfigError(f"forget mask '{split_name}' is not a boolean mask over the "
                              f"{len(split.y)} samples of dataset '{dataset.name}'; pass the "
                              "masks of forget_masks for that dataset")
        ids = split.index[mask].to(torch.int64)
        if split.color is not None:
            ids = ids * len(COLORS) + split.color[mask].to(torch.int64)
        h.update(f"{split_name}:{len(ids)}:".encode())
        h.update(torch.sort(ids).values.numpy().tobytes())
    return h.hexdigest()


def random_draw_seed(split_seed: int) -> int:
    """The seed of a random forget set's generator: the first 8 bytes (big-endian) of
    sha256("unlearnlab random forget set <split seed>"). Seeding with the split seed itself
    would repeat the draws of ``data.stratified_rows`` (quick mode) under the same run seed,
    making every quick training subset a part of the forget set."""
    digest = hashlib.sha256(f"unlearnlab random forget set {split_seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def random_rows(labels: torch.Tensor, fraction: float, split_seed: int) -> torch.Tensor:
    """Sorted positions of a seeded sample stratified by class: for every class c present in
    ``labels``, in ascending order, the first round(``fraction`` x n_c) entries of
    ``torch.randperm(n_c)`` index the class's positions (ascending). One ``torch.Generator``,
    seeded with ``random_draw_seed(split_seed)``, serves the classes in that order. ``round``
    is Python's (halves to even)."""
    gen = torch.Generator().manual_seed(random_draw_seed(split_seed))
    chosen = []
    for c in torch.unique(labels):
        rows = (labels == c).nonzero().squeeze(1)
        chosen.append(rows[torch.randperm(len(rows), generator=gen)[:round(fraction * len(rows))]])
    return torch.sort(torch.cat(chosen)).values


def forget_masks(spec: ForgetSpec | str, dataset: Dataset,
                 data_dir=None) -> dict[str, torch.Tensor]:
    """Boolean masks ``{"train": ..., "test": ...}`` of the samples ``spec`` selects. A random
    spec draws ``random_rows`` over the whole training split and selects no test sample.

    Raises ``SpecError`` when the spec selects no training sample (never a silent no-op) or
    every one of them (nothing would be left to retrain on).
    """
    spec = parse_forget(spec) if isinstance(spec, str) else spec
    if spec.kind == "color" and dataset.name != "cmnist":
        raise SpecError(f"forget spec '{spec}' needs colour backgrounds: use --dataset cmnist")
    listed = None
    if spec.kind in ("subset", "rest"):
        listed = load_forget_list(spec.name, dataset, data_dir)
    masks = {}
    for split_name in ("train", "test"):
        split: Split = getattr(dataset, split_name)
        if spec.kind == "random":
            mask = torch.zeros(len(split.y), dtype=torch.bool)
            if split_name == "train":
                mask[random_rows(split.y, spec.fraction, spec.split_seed)] = True
        elif spec.kind == "class":
            mask = split.y == spec.cls
        elif spec.kind == "color":
            mask = (split.y == spec.cls) & (split.color == COLORS.index(spec.color))
        else:
            in_list = torch.isin(split.index, torch.tensor(listed[split_name], dtype=torch.long))
            mask = in_list if spec.kind == "subset" else (split.y == listed["class"]) & ~in_list
        masks[split_name] = mask
    if not masks["train"].any():
        raise SpecError(f"forget spec '{spec}' selects no training sample of dataset "
                        f"'{dataset.name}'; choose a spec that matches the data")
    if masks["train"].all():
        raise SpecError(f"forget spec '{spec}' selects every training sample of dataset "
                        f"'{dataset.name}', leaving none to retrain on; choose a smaller set")
    return masks


def class_of(spec: ForgetSpec, dataset: Dataset, data_dir=None) -> int | None:
    """The class the forgotten samples belong to; None for random forgetting, which draws
    from every class."""
    if spec.kind == "random":
        return None
    if spec.cls is not None:
        return spec.cls
    return int(load_forget_list(spec.name, dataset, data_dir)["class"])
