"""The JSON record of one run and where its reproducibility bundle goes."""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__, metrics
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


def _fmt(value) -> str:
    return "   n/a" if value is None else f"{100 * value:6.2f}"


def summary(record: dict) -> str:
    """The record as the text ``unlearnlab run`` prints: accuracies of each model, the MIA
    scores beside their chance levels, seconds, the average gap, the bundle and the flags."""
    lines = [f"{record['dataset']} / {record['arch']} / forget {record['forget']} / "
             f"{record['method']} / seed {record['seed']}{' / quick' if record['quick'] else ''}",
             f"{'model':<10} {'test':>6} {'forget':>6} {'retain':>6} {'f-train':>7}   (accuracy %, "
             "forget/retain on test)"]
    for name, m in record["models"].items():
        if m is None:
            continue
        lines.append(f"{name:<10} {_fmt(m['test_acc'])} {_fmt(m['forget_test_acc'])} "
                     f"{_fmt(m['retain_test_acc'])} {_fmt(m['forget_train_acc'])}")
    scored = [metric for metric in metrics.METRICS.values() if metric.chance is not None
              and any(metric.columns[0] in (m or {}) for m in record["models"].values())]
    if scored:
        lines.append(f"{'MIA':<10} " + " ".join(f"{m.name.removeprefix('mia_'):>17}"
                                                for m in scored) + "   (score / chance level)")
        for name, m in record["models"].items():
            if m is not None:
                lines.append(f"{name:<10} " + " ".join(
                    _pair(m.get(metric.columns[0]), m.get(metric.chance)
                          if isinstance(metric.chance, str) else metric.chance)
                    for metric in scored))
    s = record["seconds"]
    lines.append(f"seconds: original {s['original']:.1f}, retrained {s['retrained']:.1f}, "
                 f"unlearn {s['unlearn']:.1f}")
    if record.get("avg_gap") is not None:
        lines.append(f"average gap to retrained: {100 * record['avg_gap']:.2f} points; "
                     f"speed-up vs retraining: {record['speedup_vs_retrain']:.1f}x")
    if record.get("bundle"):
        lines.append(f"bundle: {record['bundle']}")
    if record["flags"]:
        lines.append(f"flags: {', '.join(record['flags'])}")
    return "\n".join(lines)


def _pair(score, chance) -> str:
    def f(v):
        return "  n/a" if v is None else f"{v:5.3f}"
    return f"{f(score):>8} / {f(chance):>6}"
