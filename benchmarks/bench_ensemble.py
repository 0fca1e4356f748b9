"""Cost of the forget-quality test's ensembles: N retrained models trained one after the other
(``training.fit``, what ``unlearnlab forget-quality`` does) against the same N models trained
together as one batched model (``training.fit_ensemble``: ``torch.func.stack_module_state`` +
``vmap``), measured side by side in one run, in interleaved rounds.

Both sides train the scenario's retrained models (MNIST random 10 %, MLP, full data, the
architecture's recipe) from the same initial weights and shuffle seeds; the script prints
seconds per model of each side and their ratio per round, how far the two sides' weights lie
apart after the first optimiser step and after full training, and the test accuracy of each
side (mean and std over its models): trained together, the models are not tolerance-equal to
the sequential ones after many steps (rounding grows), so the check that matters is that they
are distributed alike.

Usage: python benchmarks/bench_ensemble.py [--data-dir data] [--models 8] [--rounds 2]
           [--threads 0] [--epochs E] [--out benchmarks/results/ensemble.json]
(``--threads 0``: torch's default, one per core.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from unlearnlab.batched_training import fit_ensemble
from unlearnlab.config import RunConfig
from unlearnlab.ensemble import with_model_seed
from unlearnlab.models import create_model
from unlearnlab.outputs import write_json
from unlearnlab.record import versions
from unlearnlab.scenario import build_scenario
from unlearnlab.training import fit, predict, seed_everything


def initial_models(sc, seeds):
    models = []
    for seed in seeds:
        seed_everything(with_model_seed(sc, seed).model_seed)
        models.append(create_model(sc.arch, sc.dataset.in_channels, sc.dataset.num_classes))
    return models


def max_weight_difference(a, b) -> float:
    return max(float((pa - pb).abs().max())
               for ma, mb in zip(a, b, strict=True)
               for pa, pb in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True))


def test_accuracy(models, sc) -> list[float]:
    return [float((predict(m, sc.test.x).argmax(1) == sc.test.y).double().mean())
            for m in models]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sc = build_scenario(RunConfig(dataset="mnist", forget="random:0.1", arch="mlp",
                                  data_dir=args.data_dir))
    r = sc.recipe
    epochs = args.epochs or r.epochs
    rows = sc.rows("retrained")
    x, y = sc.train.x[rows], sc.train.y[rows]
    train = dict(epochs=epochs, batch_size=r.batch_size, lr=r.lr)
    print(f"MNIST random 10 %, MLP: {len(rows)} samples, {epochs} epochs, {args.models} models "
          f"per side and round, {torch.get_num_threads()} threads")

    first_step = {}
    one = dict(epochs=1, batch_size=r.batch_size, lr=r.lr)
    seeds = list(range(2))
    alone = initial_models(sc, seeds)
    for m, s in zip(alone, seeds, strict=True):
        fit(m, x[:r.batch_size], y[:r.batch_size], seed=s, **one)
    together = initial_models(sc, seeds)
    fit_ensemble(together, x[:r.batch_size], y[:r.batch_size], seeds=seeds, **one)
    first_step["max_weight_difference"] = max_weight_difference(alone, together)
    print(f"after one step: weights differ by at most {first_step['max_weight_difference']:.2e}")

    rounds = []
    for k in range(args.rounds):
        seeds = list(range(k * args.models, (k + 1) * args.models))
        start = time.perf_counter()
        sequential = initial_models(sc, seeds)
        for m, s in zip(sequential, seeds, strict=True):
            fit(m, x, y, seed=s, **train)
        seconds_sequential = time.perf_counter() - start
        start = time.perf_counter()
        batched = initial_models(sc, seeds)
        fit_ensemble(batched, x, y, seeds=seeds, **train)
        seconds_batched = time.perf_counter() - start
        acc_s, acc_b = test_accuracy(sequential, sc), test_accuracy(batched, sc)
        rounds.append({"seeds": seeds,
                       "seconds_per_model": {"sequential": seconds_sequential / len(seeds),
                                             "batched": seconds_batched / len(seeds)},
                       "ratio": seconds_sequential / seconds_batched,
                       "max_weight_difference": max_weight_difference(sequential, batched),
                       "test_acc": {"sequential": acc_s, "batched": acc_b}})
        print(f"round {k + 1}: sequential {seconds_sequential / len(seeds):.2f} s/model, "
              f"batched {seconds_batched / len(seeds):.2f} s/model, sequential/batched "
              f"{rounds[-1]['ratio']:.2f}x; weights differ by at most "
              f"{rounds[-1]['max_weight_difference']:.3f}; test acc % sequential "
              f"{100 * np.mean(acc_s):.2f} ± {100 * np.std(acc_s, ddof=1):.2f}, batched "
              f"{100 * np.mean(acc_b):.2f} ± {100 * np.std(acc_b, ddof=1):.2f}")
    result = {"scenario": "mnist random:0.1 mlp", "epochs": epochs, "models": args.models,
              "threads": torch.get_num_threads(), "first_step": first_step, "rounds": rounds,
              "median_ratio": statistics.median(r["ratio"] for r in rounds),
              "versions": versions()}
    print(f"median sequential/batched: {result['median_ratio']:.2f}x")
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
