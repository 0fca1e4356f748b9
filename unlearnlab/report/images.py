"""The forget samples a report shows as images: the ones the unlearned model still classifies
as the original did where the retrained model does not (forgetting that did not happen), and
the reverse (a change retraining would not make), read by row from the dataset the study ran
on, whose checksum and split hash must match the study's record.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

from ..config import RunConfig
from ..data import data_root
from ..errors import ConfigError
from ..scenario import Scenario, build_scenario
from .samples import Samples

CARDS_PER_GRID = 8  # the grids show the most confident cases; the counts say how many exist
NO_IMAGES = "or pass --no-images to leave the forget-sample grids out"


@dataclass
class Card:
    """One forget sample: its image (a base64 PNG), true label, and each model's predicted
    class with its softmax probability (``predictions[role] = (class, probability)``)."""

    png: str
    label: int
    predictions: dict[str, tuple[int, float]]


@dataclass
class Grids:
    """The two grids of one method: ``kept`` (unlearned = original != retrained) and
    ``changed`` (unlearned != original = retrained), with how many forget samples each case
    has in all (``counts``) out of ``total``."""

    kept: list[Card]
    changed: list[Card]
    counts: dict[str, int]
    total: int


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def scenario_of(record: dict, data_dir) -> Scenario:
    """The scenario a record ran on, rebuilt from its ``run_config`` over the data root
    ``data_dir``; a missing root, another dataset checksum or another split is a one-line
    ``ConfigError``."""
    root = data_root(data_dir)
    if not root.is_dir():
        raise ConfigError(f"report: data root '{root}' does not exist: the forget-sample grids "
                          f"read images from the dataset the study ran on; pass --data-dir "
                          f"{NO_IMAGES}")
    config = record["run_config"]
    known = {k: v for k, v in config.items() if k in RunConfig.field_names()}
    if known.get("oversample") is not None:
        known["oversample"] = tuple(known["oversample"])
    sc = build_scenario(RunConfig(**{**known, "data_dir": str(root), "device": "cpu"}))
    if sc.dataset.checksum != record["data_checksum"]:
        raise ConfigError(f"report: dataset '{sc.dataset.name}' in data root '{root}' has "
                          f"checksum {sc.dataset.checksum}, the study ran on "
                          f"{record['data_checksum']}; pass --data-dir with the data it ran on "
                          f"{NO_IMAGES}")
    if sc.split_hash != record["split_hash"]:
        raise ConfigError(f"report: the samples rebuilt from data root '{root}' differ from the "
                          f"study's (split hash {sc.split_hash[:12]}, recorded "
                          f"{record['split_hash'][:12]}); pass --data-dir with the data it ran "
                          f"on {NO_IMAGES}")
    return sc


def png(image: np.ndarray) -> str:
    """A C x H x W image in [0, 1] as a base64 PNG (grey for one channel, else RGB)."""
    from PIL import Image

    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    picture = (Image.fromarray(pixels[0], "L") if pixels.shape[0] == 1
               else Image.fromarray(np.moveaxis(pixels[:3], 0, -1), "RGB"))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def grids(outputs: Samples, sc: Scenario, per_grid: int = CARDS_PER_GRID) -> Grids:
    """The kept and changed forget training samples of one method (seed 0), each grid the
    ``per_grid`` most confident cases: kept by the unlearned model's probability of the
    original's class, changed by the retrained model's."""
    name = "forget_train"
    split, rows = outputs.rows[name]
    probs = {role: softmax(outputs.logits[role][name])
             for role in ("original", "unlearned", "retrained")}
    pred = {role: p.argmax(axis=1) for role, p in probs.items()}
    kept = (pred["unlearned"] == pred["original"]) & (pred["retrained"] != pred["original"])
    changed = (pred["unlearned"] != pred["original"]) & (pred["retrained"] == pred["original"])
    original_class = pred["original"][:, None]
    images = (sc.train if split == "train" else sc.test).x

    def cards(mask: np.ndarray, by: str) -> list[Card]:
        where = np.flatnonzero(mask)
        strength = np.take_along_axis(probs[by], original_class, axis=1)[where, 0]
        chosen = where[np.argsort(-strength, kind="stable")[:per_grid]]
        return [Card(png(images[int(rows[i])].numpy()), int(outputs.labels[name][i]),
                     {role: (int(pred[role][i]), float(probs[role][i, pred[role][i]]))
                      for role in ("original", "unlearned", "retrained")})
                for i in chosen]

    return Grids(cards(kept, "unlearned"), cards(changed, "retrained"),
                 {"kept": int(kept.sum()), "changed": int(changed.sum())}, len(rows))
