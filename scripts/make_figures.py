"""Make the README figures of seed A's class forgetting (MNIST, class 6 over-represented x10,
relearned as 3) and its JSON record.

    python scripts/make_figures.py                    # full run, models reused from the cache
    python scripts/make_figures.py --quick --out /tmp/figs

Writes ``<out>/class_forgetting_*.png`` and ``<out>/class_forgetting.json``, each atomically
(a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the root modules (plot_generator, ...) when run as a script

import plot_generator  # noqa: E402
from specific_sample_unlearning import forget_class  # noqa: E402
from unlearnlab.errors import UnlearnlabError  # noqa: E402
from unlearnlab.store import write_json  # noqa: E402

FIGURES = {
    "class_forgetting_curves.png": plot_generator.training_curves,
    "class_forgetting_confusion.png": plot_generator.confusion_matrices,
    "class_forgetting_per_class.png": plot_generator.per_class_accuracy,
    "class_forgetting_predictions.png": plot_generator.forget_predictions,
    "class_forgetting_weights.png": plot_generator.weight_heatmap,
    "class_forgetting_pca.png": plot_generator.pca_features,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small stratified subset and one training epoch (for CI)")
    parser.add_argument("--data-dir", default=None,
                        help="data root (default: $UNLEARNLAB_DATA or data)")
    parser.add_argument("--out", type=Path, default=REPO / "assets",
                        help="output folder (default: the repository's assets/)")
    args = parser.parse_args(argv)
    try:
        result = forget_class(dataset="mnist", forget=6, target=3, oversample_factor=10,
                              reuse=True, quick=args.quick, data_dir=args.data_dir)
    except UnlearnlabError as exc:
        print(f"make_figures: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make_figures: interrupted; nothing partial was written", file=sys.stderr)
        return 130
    for name, make in FIGURES.items():
        plt.close(make(result, save=args.out / name))
        print(args.out / name)
    write_json(args.out / "class_forgetting.json", result.record)
    print(args.out / "class_forgetting.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
