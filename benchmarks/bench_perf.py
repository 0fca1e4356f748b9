"""Performance benchmark: the lab's in-memory tensor pipeline against the seeds' style of a
torchvision ``Dataset`` + ``DataLoader`` with per-sample transforms, on the same model, data and
number of optimiser steps, measured side by side in one run.

The lab's models keep conv weights channels-last (``models.create_model``). The DataLoader runs
use the very same model (so their ratio isolates the data pipeline) and, in the "seed set-up"
column, a copy in the default NCHW layout, as the seeds' code had it (data pipeline and memory
layout together).

Prints a table of median images/s over repeated runs and the ratio, and writes JSON.
Usage: python benchmarks/bench_perf.py [--data-dir data] [--steps 120] [--repeats 3]
                                       [--out benchmarks/results/perf.json]
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms

from unlearnlab.data import data_root, load_dataset
from unlearnlab.experiment import versions
from unlearnlab.models import create_model
from unlearnlab.store import write_json
from unlearnlab.training import predict, recipe_for, seed_everything


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
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    for s in range(steps):
        idx = order[s * batch_size:(s + 1) * batch_size]
        _step(model, optimizer, x[idx], y[idx])


def loader_pipeline(model, dataset, steps, batch_size, workers, seed=0):
    """The seeds' loop: a torchvision dataset decoded per sample through PIL and transforms."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
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


def measure(fn, images, repeats):
    """Median images/s over ``repeats`` timed runs after one warm-up run."""
    fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates), rates


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eval-images", type=int, default=10_000,
                    help="training images predicted in the evaluation comparison")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/perf.json"))
    args = ap.parse_args(argv)
    root = data_root(args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, name in (("cnn", "mnist"), ("mlp", "mnist"), ("convnet", "cmnist")):
            ds = load_dataset(name, args.data_dir)
            tv = torchvision_dataset(name, root, Path(tmp))
            batch = recipe_for(arch).batch_size
            images = args.steps * batch
            seed_everything(0)
            model = create_model(arch, ds.in_channels)
            lab, lab_runs = measure(lambda m=model, d=ds, b=batch: tensor_pipeline(
                m, d.train.x, d.train.y, args.steps, b), images, args.repeats)
            entry = {"arch": arch, "dataset": name, "batch_size": batch, "steps": args.steps,
                     "tensor_images_per_s": lab, "tensor_runs": lab_runs}
            nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
            for key, net, workers in (("w0", model, 0), ("w2", model, 2), ("seed", nchw, 0)):
                rate, runs = measure(lambda m=net, t=tv, b=batch, w=workers: loader_pipeline(
                    m, t, args.steps, b, w), images, args.repeats)
                entry[f"loader_{key}_images_per_s"] = rate
                entry[f"loader_{key}_runs"] = runs
                entry[f"ratio_vs_loader_{key}"] = lab / rate
            eval_images = min(args.eval_images, len(tv))
            subset = torch.utils.data.Subset(tv, range(eval_images))
            lab_eval, _ = measure(lambda m=model, x=ds.train.x[:eval_images]: predict(m, x),
                                  eval_images, args.repeats)
            loader_eval, _ = measure(lambda m=nchw, t=subset: loader_predict(m, t), eval_images,
                                     args.repeats)
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
    result = {"training_throughput": rows, "threads": torch.get_num_threads(),
              "versions": versions(), "steps": args.steps, "repeats": args.repeats}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
