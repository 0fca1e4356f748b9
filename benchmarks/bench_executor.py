"""Wall time of one ``compare`` grid run with ``--executor local``, with ``process:N`` and on a
local Ray cluster of N one-CPU workers, side by side in one run, each side in a fresh data root
(every baseline trained and every method run cold), and whether every side's records equal
``local``'s (``scripts/compare_records.py``'s comparison, timings and paths aside).

Per side it prints the wall time, the throughput (jobs per minute; a job is one seed's
``compare.warm_seed``) and the speed-up over ``local`` as ratios, and the fixed start-up alone
(the pool's N spawned workers importing torch and the lab, or Ray's local cluster, each then
running one trivial job per worker). The overhead per job is the side's wall time minus
``local``'s and its start-up, over the jobs. Every side trains with this process's thread count
(``OMP_NUM_THREADS``; see docs/scaling.md), so run it with ``OMP_NUM_THREADS=1`` for identical
records on a machine of 2 cores. ``--no-ray`` leaves the Ray side out.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_executor.py [--data-dir data]
           [--dataset mnist] [--forget class:6] [--arch mlp] [--seeds 4]
           [--methods finetune,gradient_ascent] [--metrics mia_efficacy] [--workers 2]
           [--no-ray] [--out benchmarks/results/executor.json]
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import tempfile
import time
from contextlib import contextmanager
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


@contextmanager
def executor_for(side: str, workers: int):
    """The executor of a side; ``ray`` runs on a local Ray cluster of ``workers`` CPUs started
    here (no dashboard: it is not what is timed), stopped on leaving."""
    if side != "ray":
        with parse_executor(side) as pool:
            yield pool
        return
    import ray

    # A cluster of this machine for the benchmark's minute: no token file left in ~/.ray.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=workers, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    try:
        with parse_executor("ray") as pool:
            yield pool
    finally:
        ray.shutdown()


def start_up_seconds(side: str, workers: int) -> float:
    start = time.perf_counter()
    with executor_for(side, workers) as pool:
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
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--full", action="store_true",
                        help="full data and recipes instead of quick mode (jobs of minutes)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    pooled = f"process:{args.workers}"
    sides = ["local", pooled, *([] if args.no_ray else ["ray"])]
    compare_records = runpy.run_path(str(REPO / "scripts" / "compare_records.py"))
    mode = "full" if args.full else "quick"
    print(f"compare {args.dataset} forget {args.forget} ({args.arch}, {mode}), {args.seeds} "
          f"seeds, methods {', '.join(methods)}, metrics {args.metrics}; "
          f"{torch.get_num_threads()} thread(s) here, {parse_executor(pooled).threads} per "
          f"worker of {pooled} and per Ray task ({args.workers} one-CPU workers)")
    with tempfile.TemporaryDirectory() as tmp:
        seconds, outs = {}, {}
        for side in sides:
            folder = Path(tmp) / side.replace(":", "")
            cfg = RunConfig(dataset=args.dataset, forget=args.forget, arch=args.arch,
                            quick=not args.full, metrics=args.metrics.split(","),
                            data_dir=str(fresh_root(Path(args.data_dir), folder)))
            outs[side] = folder / "out"
            start = time.perf_counter()
            with executor_for(side, args.workers) as pool:
                compare(cfg, methods, args.seeds, outs[side] / "cmp", executor=pool)
            seconds[side] = time.perf_counter() - start
            print(f"{side:>10}: {seconds[side]:6.1f} s", flush=True)
        before = compare_records["records"](outs["local"])
        differing = {}
        for side in sides[1:]:
            after = compare_records["records"](outs[side])
            differing[side] = sorted(
                name for name in before.keys() | after.keys()
                if name not in before or name not in after or
                compare_records["differences"](before[name], after[name],
                                               compare_records["VOLATILE"]))
    start_up = {side: start_up_seconds(side, args.workers) for side in sides[1:]}
    jobs = args.seeds
    print("\n| side | wall s | jobs/min | speed-up vs local | start-up alone s | "
          "overhead per job s | records |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = {}
    for side in sides:
        rows[side] = {
            "seconds": seconds[side], "jobs_per_minute": 60 * jobs / seconds[side],
            "speedup": seconds["local"] / seconds[side],
            "start_up_seconds": start_up.get(side, 0.0),
            "overhead_per_job_seconds": (seconds[side] - seconds["local"]
                                         - start_up.get(side, 0.0)) / jobs,
            "records_differing": differing.get(side, [])}
        r = rows[side]
        same = (f"{len(before)}, {'identical' if not r['records_differing'] else 'DIFFER'}"
                if side != "local" else str(len(before)))
        print(f"| {side} | {r['seconds']:.1f} | {r['jobs_per_minute']:.1f} | "
              f"{r['speedup']:.2f}x | {r['start_up_seconds']:.1f} | "
              f"{r['overhead_per_job_seconds']:+.1f} | {same} |")
    result = {"dataset": args.dataset, "forget": args.forget, "arch": args.arch,
              "seeds": args.seeds, "methods": methods, "metrics": args.metrics,
              "threads": torch.get_num_threads(), "workers": args.workers, "sides": rows,
              "records": len(before), "load_average": os.getloadavg(),
              "versions": versions()}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
