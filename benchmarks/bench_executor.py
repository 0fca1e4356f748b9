"""Wall time of one ``compare`` grid run with ``--executor local`` and with ``process:N``, side
by side in one run, each side in a fresh data root (every baseline trained and every method
run cold), and whether the two sides' records are identical (``scripts/compare_records.py``'s
comparison, timings and paths aside).

The script also times the pool's start-up alone (N spawned workers importing torch and the
lab, then one trivial job each): the fixed cost a ``process:N`` grid pays before its first job.
Both sides train with this process's thread count (``OMP_NUM_THREADS``; see docs/scaling.md),
so run it with ``OMP_NUM_THREADS=1`` for identical records on a machine of 2 cores.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_executor.py [--data-dir data]
           [--dataset mnist] [--forget class:6] [--arch mlp] [--seeds 4]
           [--methods finetune,gradient_ascent] [--metrics mia_efficacy] [--workers 2]
           [--out benchmarks/results/executor.json]
"""

from __future__ import annotations

import argparse
import runpy
import tempfile
import time
from pathlib import Path

import torch

from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.executor import parse_executor
from unlearnlab.outputs import write_json
from unlearnlab.record import versions

REPO = Path(__file__).resolve().parents[1]
LINKED = ("MNIST", "FashionMNIST", "colorized-MNIST", "forget_sets")


def fresh_root(real: Path, folder: Path) -> Path:
    """A data root of its own (no cached model) whose datasets link into ``real``."""
    root = folder / "data"
    root.mkdir(parents=True)
    for name in LINKED:
        if (real / name).exists():
            (root / name).symlink_to((real / name).resolve(), target_is_directory=True)
    return root


def start_up_seconds(spec: str, workers: int) -> float:
    start = time.perf_counter()
    with parse_executor(spec) as pool:
        pool.map(abs, range(workers))
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--forget", default="class:6")
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--methods", default="finetune,gradient_ascent")
    parser.add_argument("--metrics", default="mia_efficacy")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    pooled = f"process:{args.workers}"
    compare_records = runpy.run_path(str(REPO / "scripts" / "compare_records.py"))
    print(f"compare {args.dataset} forget {args.forget} ({args.arch}, quick), {args.seeds} "
          f"seeds, methods {', '.join(methods)}, metrics {args.metrics}; "
          f"{torch.get_num_threads()} thread(s) here, {parse_executor(pooled).threads} per "
          f"worker of {pooled}")
    with tempfile.TemporaryDirectory() as tmp:
        seconds, outs = {}, {}
        for spec in ("local", pooled):
            folder = Path(tmp) / spec.replace(":", "")
            cfg = RunConfig(dataset=args.dataset, forget=args.forget, arch=args.arch,
                            quick=True, metrics=args.metrics.split(","),
                            data_dir=str(fresh_root(Path(args.data_dir), folder)))
            outs[spec] = folder / "out"
            start = time.perf_counter()
            compare(cfg, methods, args.seeds, outs[spec] / "cmp", executor=spec)
            seconds[spec] = time.perf_counter() - start
            print(f"{spec:>10}: {seconds[spec]:6.1f} s", flush=True)
        before = compare_records["records"](outs["local"])
        after = compare_records["records"](outs[pooled])
        differing = sorted(name for name in before.keys() | after.keys()
                           if name not in before or name not in after or
                           compare_records["differences"](before[name], after[name],
                                                          compare_records["VOLATILE"]))
    start_up = start_up_seconds(pooled, args.workers)
    ratio = seconds["local"] / seconds[pooled]
    print(f"speed-up of {pooled} over local: {ratio:.2f}x; pool start-up alone "
          f"{start_up:.1f} s; records: {len(before)} per side, "
          f"{'all identical' if not differing else f'{len(differing)} differ'}")
    result = {"dataset": args.dataset, "forget": args.forget, "arch": args.arch,
              "seeds": args.seeds, "methods": methods, "metrics": args.metrics,
              "threads": torch.get_num_threads(), "seconds": seconds, "speedup": ratio,
              "pool_start_up_seconds": start_up, "records": len(before),
              "records_differing": differing, "versions": versions()}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
