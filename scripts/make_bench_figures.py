"""Draw the comparison figures of a saved benchmark and print its leaderboard.

    python scripts/make_bench_figures.py results/bench                 # into assets/
    python scripts/make_bench_figures.py /tmp/bench --out /tmp/figs

Reads the folder written by ``unlearnlab bench --out DIR`` (nothing is recomputed) and writes,
each atomically (a temporary file in the same folder, then a rename):

- ``bench_gap.png``: every method's average gap to retrain, one panel per scenario;
- ``bench_confusion_delta_<scenario>.png``: per feature scenario, the test confusion matrix of
  every method's unlearned models minus the retrained models' (means over seeds);
- ``bench_mia_<scenario>.png``: per scenario, the per-sample loss on forget-train and
  forget-test of the original, retrained and unlearned models of the best-ranked method there
  (or ``--mia-method``), from its run bundle; skipped with a note when the bundle is missing.

Then prints ``DIR/leaderboard.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout's package when run as a script

from unlearnlab.bench_plots import (  # noqa: E402
    feature_scenarios,
    load_bench,
    load_outputs,
    loss_mia_scores,
    pick_run,
    plot_confusion_delta,
    plot_gap_bars,
    plot_mia_distributions,
    ranked_methods,
)
from unlearnlab.errors import UnlearnlabError  # noqa: E402


def make_figures(folder: Path, out: Path, mia_method: str | None = None,
                 seed: int | None = None) -> list[Path]:
    """Write the figures of the bench in ``folder`` into ``out``; returns the paths written."""
    bench = load_bench(folder)
    written = [out / "bench_gap.png"]
    plt.close(plot_gap_bars(bench["rows"], path=written[-1]))
    for name in feature_scenarios(bench):
        scenario = bench["scenarios"][name]
        methods = [m for m in ranked_methods(bench, name) if m in scenario["records"]]
        written.append(out / f"bench_confusion_delta_{name}.png")
        plt.close(plot_confusion_delta(scenario["records"], methods=methods,
                                       labels=scenario["classes"],
                                       title=f"{name}: test confusion matrix, unlearned − "
                                             "retrained (mean over seeds)",
                                       path=written[-1]))
    for name in bench["scenarios"]:
        if mia_method is not None and mia_method not in bench["scenarios"][name]["records"]:
            continue
        record = pick_run(bench, name, mia_method, seed)
        try:
            outputs = load_outputs(record)
        except UnlearnlabError as exc:
            print(f"make_bench_figures: skipped the MIA figure of {name}: {exc}",
                  file=sys.stderr)
            continue
        written.append(out / f"bench_mia_{name}.png")
        plt.close(plot_mia_distributions(
            outputs, scores=loss_mia_scores(record), path=written[-1],
            title=f"{name} · {record['method']} (seed {record['seed']}): per-sample loss on "
                  "the forget set (dashed: medians)"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the --out folder of `unlearnlab bench`")
    parser.add_argument("--out", type=Path, default=REPO / "assets",
                        help="output folder (default: the repository's assets/)")
    parser.add_argument("--mia-method", default=None,
                        help="method of the MIA figures (default: the best-ranked per scenario)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the MIA figures (default: the method's first finished)")
    args = parser.parse_args(argv)
    try:
        written = make_figures(args.dir, args.out, args.mia_method, args.seed)
        markdown = (args.dir / "leaderboard.md").read_text()
    except (UnlearnlabError, OSError) as exc:
        print(f"make_bench_figures: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make_bench_figures: interrupted; nothing partial was written", file=sys.stderr)
        return 130
    print(markdown, end="")
    print(f"\nwrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
