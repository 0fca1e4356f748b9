"""The JSON record of one run and where its reproducibility bundle goes."""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .scenario import Scenario


def build_record(sc: Scenario, method, evaluations: dict, metas: dict[str, dict],
                 unlearn_meta: dict, **results) -> dict:
    """The record of ``method`` on ``sc``: what ran (resolved configuration, recipe, sizes,
    checksums, split hash, device, versions), each model's evaluation and the ``results``
    (flags, distances, avg_gap, speedup_vs_retrain, anamnesis_index, error)."""
    return {
        "dataset": sc.dataset.name, "arch": sc.arch, "forget": str(sc.spec), "method": method.name,
        "params": method.params, "preset": method.preset, "seed": sc.config.seed,
        "quick": sc.config.quick, "models": evaluations, "flags": results.pop("flags"),
        "seconds": {"original": metas["original"]["seconds"],
                    "retrained": metas["retrained"]["seconds"],
                    "unlearn": unlearn_meta["seconds"], "unlearn_phases": unlearn_meta["phases"]},
        **{k: v for k, v in results.items() if k != "error" or v},
        "recipe": sc.recipe.to_dict(),
        "sizes": {"train": len(sc.train), "test": len(sc.test),
                  "forget_train": int(sc.masks["train"].sum()),
                  "forget_test": int(sc.masks["test"].sum()),
                  "train_rows": len(sc.train_rows)},
        "data_checksum": sc.dataset.checksum,
        "split_hash": sc.split_hash,
        "run_config": {**asdict(sc.config), "method": method.name, "params": method.params,
                       "preset": method.preset},
        "device": str(sc.device),
        "versions": versions(),
    }


def bundle_dir(sc: Scenario, method_name: str, key: str) -> Path:
    """``<data root>/runs/<dataset>/<method>-seed<s>-<key>`` (``cache.bundle_key``)."""
    return sc.root / "runs" / sc.dataset.name / f"{method_name}-seed{sc.config.seed}-{key}"


def versions() -> dict:
    import numpy
    import sklearn

    return {"unlearnlab": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}
