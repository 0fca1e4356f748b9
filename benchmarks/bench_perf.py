"""Performance benchmark: the lab's in-memory tensor pipeline against the seeds' style of a
torchvision ``Dataset`` + ``DataLoader`` with per-sample transforms, on the same model, data and
number of optimiser steps, measured side by side in one run.

The lab's models keep conv weights channels-last (``models.create_model``), pool before the
ReLU (``models.pool_relu``) and train with fused Adam (``training.adam``); the first two give
bitwise the seeds' results, fused Adam the same update up to float rounding. The DataLoader
runs use the very same model and optimiser (so their ratio isolates the data pipeline) and, in
the "seed set-up" column, the seeds' code as it was: NCHW layout, ReLU before pooling and
torch's default Adam loop, fed by the DataLoader.

With ``--grid`` it also times the thesis grid end to end (``unlearnlab compare`` on the three
thesis scenarios, untrained/trained/retrained + gradient ascent, GEMU and GeFeU x ``--seeds``,
default presets, every metric), one process per dataset: cold in a fresh data root, then warm
(``ALLREADY_TRAINED``: the baselines are loaded from that root's cache; the unlearned models
and run bundles are deleted first, so every method runs again). Then, on the grid's cached
models, each (dataset, method, seed) unlearning run is repeated ``--repeats`` times in one
process after a warm-up run: its median wall seconds over the retrained model's training
seconds is that run's cost, free of a single timing's noise.

Prints a table of median images/s over repeated runs and the ratio, and writes JSON.
Usage: python benchmarks/bench_perf.py [--data-dir data] [--steps 120] [--repeats 5]
           [--grid [--seeds 5] [--grid-root NEW_DIR] [--quick]] [--out benchmarks/results/perf.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torchvision
from torch import nn
from torchvision import transforms

from unlearnlab import models
from unlearnlab.cache import train_or_load
from unlearnlab.compare import THESIS_SCENARIOS
from unlearnlab.config import RunConfig
from unlearnlab.data import data_root, load_dataset
from unlearnlab.methods import create
from unlearnlab.models import create_model, recipe_for
from unlearnlab.outputs import write_json
from unlearnlab.record import versions
from unlearnlab.scenario import build_scenario
from unlearnlab.training import adam, predict, seed_everything

GRID_METHODS = ("gradient_ascent", "gemu", "gefeu")
DATA_ENTRIES = ("MNIST", "FashionMNIST", "colorized-MNIST", "forget_sets")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step(model, optimizer, xb, yb):
    loss = nn.functional.cross_entropy(model(xb), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def tensor_pipeline(model, x, y, steps, batch_size, seed=0):
    """The lab's loop: shuffle positions with a seeded generator, index in-memory tensors."""
    optimizer = adam(model.parameters(), 1e-3)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    for s in range(steps):
        idx = order[s * batch_size:(s + 1) * batch_size]
        _step(model, optimizer, x[idx], y[idx])


def loader_pipeline(model, dataset, steps, batch_size, workers, seed=0, make_optimizer=adam):
    """The seeds' loop: a torchvision dataset decoded per sample through PIL and transforms."""
    optimizer = make_optimizer(model.parameters(), 1e-3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=workers,
                                         generator=torch.Generator().manual_seed(seed))
    for s, (xb, yb) in enumerate(loader):
        if s == steps:
            break
        _step(model, optimizer, xb, yb)


@torch.no_grad()
def loader_predict(model, dataset, batch_size=1000):
    """The seeds' evaluation: the same model over a DataLoader of per-sample transforms."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    return torch.cat([model(xb) for xb, _ in loader])


def seed_pool_relu(x):
    """The seeds' order of a conv block: ReLU, then 2x2 max-pool."""
    return nn.functional.max_pool2d(torch.relu(x), 2)


def seed_adam(params, lr):
    """torch's default Adam on the CPU (the per-parameter loop), as the seeds built it."""
    return torch.optim.Adam(params, lr=lr)


def time_rounds(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each named function in each of ``repeats`` rounds, after one warm-up
    call each. Every round times each function once, in turn, so that a change in the machine's
    background load falls on all of them alike instead of on whichever ran at that moment."""
    for fn in fns.values():
        fn()
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    return runs


def measure(fns: dict, images: int, repeats: int) -> dict[str, tuple[float, list[float]]]:
    """(median, all) images/s of each named function over ``time_rounds``."""
    rates = {name: [images / s for s in seconds]
             for name, seconds in time_rounds(fns, repeats).items()}
    return {name: (statistics.median(r), r) for name, r in rates.items()}


def with_block(block, fn):
    """``fn`` run with ``block`` as the models' conv-block order (``models.pool_relu``)."""
    def run():
        with mock.patch.object(models, "pool_relu", block):
            fn()
    return run


def torchvision_dataset(name, root: Path, tmp: Path):
    """The torchvision dataset the seeds used, with their per-sample transforms. IDX datasets
    are extracted from the local .gz files into ``tmp`` (torchvision accepts them by MD5)."""
    if name == "cmnist":
        # The thesis decoded each colorized PNG per access; ToTensor gives [0, 1] like the lab.
        return torchvision.datasets.ImageFolder(root / "colorized-MNIST" / "training",
                                                transform=transforms.ToTensor())
    cls = torchvision.datasets.MNIST
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f, _ in cls.resources:
        target = raw / f
        if not target.exists():
            target.symlink_to((root / "MNIST" / "raw" / f).resolve())
    # Models normalise internally, so the loader's transform only converts to [0, 1], the same
    # input the tensor pipeline feeds (the seed's Normalize lives inside the lab's CNN).
    return cls(str(tmp), train=True, download=True, transform=transforms.ToTensor())


def high_water_mb(pid: int) -> float:
    """A running process's peak resident memory (``VmHWM``). Polled, because the rusage of a
    child carries its parent's peak across fork and exec on Linux."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has just exited
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines()
                 if line.startswith("VmHWM:")), 0.0)


def fresh_root(source: Path, dest: Path) -> Path:
    """A data root at ``dest`` holding only links to the datasets and forget lists of
    ``source``: no cached model."""
    dest.mkdir(parents=True)
    for name in DATA_ENTRIES:
        if (source / name).exists():
            (dest / name).symlink_to((source / name).resolve(), target_is_directory=True)
    return dest


def run_grid(root: Path, out: Path, seeds: int, quick: bool) -> dict:
    """``unlearnlab compare`` on each thesis scenario, one process each: wall seconds and peak
    RSS per dataset and in all."""
    rows, start = {}, time.perf_counter()
    for dataset, forget in THESIS_SCENARIOS.items():
        cmd = [sys.executable, "-m", "unlearnlab", "compare", "--dataset", dataset, "--forget",
               forget, "--methods", ",".join(GRID_METHODS), "--seeds", str(seeds),
               "--data-dir", str(root), "--out", str(out / dataset), *(["--quick"] * quick)]
        log = out / f"{dataset}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with log.open("w") as stderr:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
            peak = 0.0
            while proc.poll() is None:
                peak = max(peak, high_water_mb(proc.pid))
                time.sleep(0.2)
        if proc.returncode:
            sys.exit(f"bench_perf: the grid run failed ({' '.join(cmd)}):\n"
                     f"{log.read_text()[-2000:]}")
        rows[dataset] = {"seconds": time.perf_counter() - t, "peak_rss_mb": peak}
    return {"seconds": time.perf_counter() - start, "datasets": rows,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows.values())}


def method_times(out: Path, seeds: int) -> dict:
    """Per dataset and method, from the grid's records: the unlearning wall seconds and their
    ratio to the retrained model's training seconds (same run), mean and max over seeds."""
    table = {}
    for dataset in THESIS_SCENARIOS:
        for method in GRID_METHODS:
            records = [json.loads((out / dataset / f"{method}_seed{s}.json").read_text())
                       for s in range(seeds)]
            ratios = [r["seconds"]["unlearn"] / r["seconds"]["retrained"] for r in records]
            table[f"{dataset}/{method}"] = {
                "unlearn_seconds_mean": statistics.mean(r["seconds"]["unlearn"] for r in records),
                "retrain_seconds_mean": statistics.mean(r["seconds"]["retrained"]
                                                        for r in records),
                "ratio_mean": statistics.mean(ratios), "ratio_max": max(ratios)}
    return table


def repeated_method_times(root: Path, seeds: int, quick: bool, repeats: int) -> dict:
    """Per dataset and method, each seed's unlearning run repeated ``repeats`` times after one
    warm-up run, on the models cached in ``root``: per seed the median seconds and their ratio
    to that seed's retraining seconds (as recorded when it was trained); the mean and max of
    those ratios over seeds, and the slowest single repeat's ratio."""
    table = {}
    for dataset, forget in THESIS_SCENARIOS.items():
        per_method = {method: [] for method in GRID_METHODS}
        for seed in range(seeds):
            sc = build_scenario(RunConfig(dataset=dataset, forget=forget, data_dir=root,
                                          seed=seed, quick=quick))
            original, _ = train_or_load(sc, "original")
            _, retrained = train_or_load(sc, "retrained")
            task = sc.task
            for method in GRID_METHODS:
                unlearner = create(method, dataset=dataset, scenario=sc.kind, arch=sc.arch)

                def run(m=unlearner, s=seed, o=original, t=task):
                    seed_everything(s)
                    m.unlearn(o, t)

                (times,) = time_rounds({method: run}, repeats).values()
                per_method[method].append({"seed": seed, "runs_s": times,
                                           "median_s": statistics.median(times),
                                           "retrain_s": retrained["seconds"]})
        for method, rows in per_method.items():
            ratios = [r["median_s"] / r["retrain_s"] for r in rows]
            table[f"{dataset}/{method}"] = {
                "seeds": rows, "ratio_mean": statistics.mean(ratios), "ratio_max": max(ratios),
                "slowest_repeat_ratio": max(max(r["runs_s"]) / r["retrain_s"] for r in rows)}
    return table


def time_grid(source: Path, seeds: int, quick: bool, tmp: Path, root: Path,
              repeats: int) -> dict:
    """The thesis grid cold (in the fresh data root ``root``) then warm (cached baselines,
    methods rerun)."""
    root = fresh_root(source, root)
    cold = run_grid(root, tmp / "grid-cold", seeds, quick)
    for path in (root / "models").rglob("unlearned-*"):
        path.unlink()
    shutil.rmtree(root / "runs", ignore_errors=True)
    warm = run_grid(root, tmp / "grid-warm", seeds, quick)
    result = {"seeds": seeds, "quick": quick, "methods": list(GRID_METHODS), "cold": cold,
              "warm": warm, "method_times": method_times(tmp / "grid-cold", seeds),
              "method_times_repeated": repeated_method_times(root, seeds, quick, repeats)}
    print(f"thesis grid, {seeds} seeds{' (quick)' if quick else ''}: cold "
          f"{cold['seconds'] / 60:.2f} min (peak RSS {cold['peak_rss_mb']:.0f} MB) | warm "
          f"{warm['seconds'] / 60:.2f} min (peak RSS {warm['peak_rss_mb']:.0f} MB)")
    for name in THESIS_SCENARIOS:
        print(f"{'':4}{name:<14} cold {cold['datasets'][name]['seconds']:6.1f} s | warm "
              f"{warm['datasets'][name]['seconds']:6.1f} s")
    for key, row in result["method_times"].items():
        again = result["method_times_repeated"][key]
        print(f"{'':4}{key:<30} {row['unlearn_seconds_mean']:6.2f} s, ratio to retraining "
              f"mean {row['ratio_mean']:.3f} max {row['ratio_max']:.3f} | median of {repeats} "
              f"repeats: mean {again['ratio_mean']:.3f} max {again['ratio_max']:.3f} "
              f"(slowest repeat {again['slowest_repeat_ratio']:.3f})")
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eval-images", type=int, default=10_000,
                    help="training images predicted in the evaluation comparison")
    ap.add_argument("--grid", action="store_true",
                    help="also time the thesis grid cold and warm (about 10 minutes)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the grid (default 5)")
    ap.add_argument("--quick", action="store_true", help="run the grid in quick mode (tests)")
    ap.add_argument("--grid-root", type=Path, default=None,
                    help="new data root for the grid, kept afterwards with its cached models "
                         "(default: a temporary one)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/perf.json"))
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.grid_root is not None and args.grid_root.exists():
        ap.error(f"--grid-root '{args.grid_root}' exists; the cold grid needs a new folder")
    root = data_root(args.data_dir)
    rows, grid = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for arch, name in (("cnn", "mnist"), ("mlp", "mnist"), ("convnet", "cmnist")):
            ds = load_dataset(name, args.data_dir)
            tv = torchvision_dataset(name, root, Path(tmp))
            batch = recipe_for(arch).batch_size
            images = args.steps * batch
            seed_everything(0)
            model = create_model(arch, ds.in_channels)
            nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
            # (column, model, workers, conv block order, optimiser)
            setups = (("w0", model, 0, models.pool_relu, adam),
                      ("w2", model, 2, models.pool_relu, adam),
                      ("seed", nchw, 0, seed_pool_relu, seed_adam))
            train = {"tensor": lambda m=model, d=ds, b=batch: tensor_pipeline(
                m, d.train.x, d.train.y, args.steps, b)}
            for key, net, workers, block, make_optimizer in setups:
                train[key] = with_block(block, lambda m=net, t=tv, b=batch, w=workers,
                                        o=make_optimizer: loader_pipeline(
                                            m, t, args.steps, b, w, make_optimizer=o))
            rates = measure(train, images, args.repeats)
            lab, lab_runs = rates["tensor"]
            entry = {"arch": arch, "dataset": name, "batch_size": batch, "steps": args.steps,
                     "tensor_images_per_s": lab, "tensor_runs": lab_runs}
            for key, *_ in setups:
                rate, runs = rates[key]
                entry[f"loader_{key}_images_per_s"] = rate
                entry[f"loader_{key}_runs"] = runs
                entry[f"ratio_vs_loader_{key}"] = lab / rate
            eval_images = min(args.eval_images, len(tv))
            subset = torch.utils.data.Subset(tv, range(eval_images))
            evals = measure({"tensor": lambda m=model, x=ds.train.x[:eval_images]: predict(m, x),
                             "seed": with_block(seed_pool_relu,
                                                lambda m=nchw, t=subset: loader_predict(m, t))},
                            eval_images, args.repeats)
            lab_eval, loader_eval = evals["tensor"][0], evals["seed"][0]
            entry.update({"eval_images": eval_images, "eval_tensor_images_per_s": lab_eval,
                          "eval_loader_seed_images_per_s": loader_eval,
                          "eval_ratio": lab_eval / loader_eval,
                          "peak_rss_mb_so_far": peak_rss_mb()})
            rows.append(entry)
            print(f"{arch:>8} on {name:<6} tensor {lab:8.0f} img/s | DataLoader w0 "
                  f"{entry['loader_w0_images_per_s']:7.0f} (x{entry['ratio_vs_loader_w0']:.2f}) "
                  f"| w2 {entry['loader_w2_images_per_s']:7.0f} "
                  f"(x{entry['ratio_vs_loader_w2']:.2f}) | seed set-up "
                  f"{entry['loader_seed_images_per_s']:7.0f} "
                  f"(x{entry['ratio_vs_loader_seed']:.2f})\n{'':17}evaluation of "
                  f"{eval_images:,} training images: lab {lab_eval:8.0f} img/s | seed set-up "
                  f"{loader_eval:7.0f} (x{lab_eval / loader_eval:.2f}); peak RSS "
                  f"{entry['peak_rss_mb_so_far']:.0f} MB", flush=True)
        if args.grid:
            grid = time_grid(root, args.seeds, args.quick, Path(tmp),
                             args.grid_root or Path(tmp) / "grid-root", args.repeats)
    result = {"training_throughput": rows, "thesis_grid": grid, "threads": torch.get_num_threads(),
              "versions": versions(), "steps": args.steps, "repeats": args.repeats}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
