"""``unlearnlab figures``: draw the figure sets of ``assets/`` (``figures.assets``).

    unlearnlab figures class-forgetting [--quick] [--out assets]
    unlearnlab figures thesis [--quick] [--seeds 5] [--presets default,thesis] [--results DIR]
    unlearnlab figures bench RESULTS_DIR [--out assets] [--mia-method M] [--seed S]
    unlearnlab figures forget-quality BUNDLE_DIR... [--out assets]

``class-forgetting`` runs seed A's class forgetting (models reused from the cache) and draws
it; ``thesis`` compares gradient ascent, GEMU and GeFeU with the baseline ensembles on each
thesis scenario, draws them and writes ``thesis_results.md``; ``bench`` draws the folder of a
finished ``unlearnlab bench`` run (nothing is recomputed; with its forget-quality bundles, their
figures too) and prints its leaderboard;
``forget-quality`` draws the bundles of ``unlearnlab forget-quality`` runs of one scenario and
N: each method's per-example eps beside the ``retrain`` and ``original`` references. Drawing
modules are imported only here, after the backend is chosen, so other commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError

OUT_HELP = "output folder (default: assets, the repository's when run from its root)"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``figures`` and its four kinds on ``subparsers``; ``parents`` hold the
    options of commands that train or load models (--quick, --data-dir, --device, --debug)."""
    parser = subparsers.add_parser("figures", help="draw the figures of assets/: the README's "
                                   "class forgetting, the thesis scenarios, a saved bench or "
                                   "forget-quality studies")
    kinds = parser.add_subparsers(dest="kind", required=True, parser_class=type(parser))
    c = kinds.add_parser("class-forgetting", parents=parents,
                         help="seed A's class forgetting (MNIST, class 6 over-represented "
                         "x10, relearned as 3): its figures and JSON record")
    c.add_argument("--out", type=Path, default=Path("assets"), help=OUT_HELP)
    t = kinds.add_parser("thesis", parents=parents,
                         help="the thesis scenarios: ensembles over N seeds, their figures and "
                         "thesis_results.md")
    t.add_argument("--out", type=Path, default=Path("assets"), help=OUT_HELP)
    t.add_argument("--seeds", type=int, default=5, help="ensemble size (default 5)")
    t.add_argument("--methods", default=None,
                   help="comma-separated method keys (default gradient_ascent,gemu,gefeu)")
    t.add_argument("--datasets", default=None,
                   help="comma-separated datasets (default: every thesis scenario's)")
    t.add_argument("--presets", default="default,thesis",
                   help="comma-separated presets; figures are drawn for the first, the others "
                   "add a summary table each (default: default,thesis)")
    t.add_argument("--results", type=Path, default=None,
                   help="also write each dataset's records, CSV and KL to DIR/<dataset>")
    b = kinds.add_parser("bench", help="the figures of a saved `unlearnlab bench` folder, and "
                         "its leaderboard")
    b.add_argument("dir", type=Path, help="the --out folder of `unlearnlab bench`")
    b.add_argument("--out", type=Path, default=Path("assets"), help=OUT_HELP)
    b.add_argument("--mia-method", default=None,
                   help="method of the MIA figures (default: the best-ranked per scenario)")
    b.add_argument("--seed", type=int, default=None,
                   help="seed of the MIA figures (default: the method's first finished)")
    b.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    q = kinds.add_parser("forget-quality",
                         help="per-example eps histograms and F of forget-quality bundles of "
                         "one scenario and N, beside the retrain and original references")
    q.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE_DIR",
                   help="bundle folders of `unlearnlab forget-quality`: the retrain and "
                   "original references and the methods, one scenario, one N")
    q.add_argument("--out", type=Path, default=Path("assets"), help=OUT_HELP)
    q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the kind of ``unlearnlab figures`` that ``args`` names; 0 on success."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # a notebook calling main keeps its backend
        matplotlib.use("Agg")
    handler = {"class-forgetting": _class_forgetting, "thesis": _thesis,
               "bench": _bench, "forget-quality": _forget_quality}[args.kind]
    try:
        return handler(args)
    except OSError as exc:
        raise ConfigError(f"cannot read or write a file: {exc}") from exc


def _class_forgetting(args) -> int:
    from ..experiment import run
    from .assets import class_forgetting_config, write_class_forgetting

    result = run(class_forgetting_config(args.quick, args.data_dir, args.device))
    for path in write_class_forgetting(result, args.out):
        print(path)
    return 0


def _names(text: str | None, default) -> list[str]:
    return list(default) if text is None else [n for n in text.split(",") if n]


def _thesis(args) -> int:
    from ..compare import THESIS_SCENARIOS, compare, markdown
    from ..config import RunConfig
    from ..outputs import atomic_path
    from .assets import (
        THESIS_METHODS,
        THESIS_RESULTS,
        thesis_markdown,
        thesis_section,
        write_thesis_figures,
    )

    methods = _names(args.methods, THESIS_METHODS)
    presets = _names(args.presets, ())
    datasets = _names(args.datasets, THESIS_SCENARIOS)
    unknown = [d for d in datasets if d not in THESIS_SCENARIOS]
    if args.seeds < 1 or not methods or not presets or unknown:
        raise ConfigError(f"need --seeds >= 1, at least one method and datasets among "
                          f"{', '.join(THESIS_SCENARIOS)}" + (f" (got {', '.join(unknown)})"
                                                             if unknown else ""))
    sections = []
    for dataset in datasets:
        forget = THESIS_SCENARIOS[dataset]
        print(f"== {dataset}: forget {forget}, {args.seeds} seeds", flush=True)
        cfg = RunConfig(dataset=dataset, forget=forget, quick=args.quick,
                        data_dir=args.data_dir, device=args.device)
        results = args.results / dataset if args.results is not None else None
        cmp = compare(cfg, methods, args.seeds, out=results, preset=presets[0])
        paths, best = write_thesis_figures(dataset, cmp, args.out)
        print("\n".join(str(p) for p in paths), flush=True)
        title = f"{dataset} · forget {forget} · {args.seeds} seeds"
        sections += thesis_section(dataset, title, cmp, paths, best)
        for preset in presets[1:]:
            other = compare(cfg, methods, args.seeds, preset=preset,
                            out=None if results is None else results / preset)
            sections += [markdown(other.summary(), f"{title} · `{preset}` preset"), ""]
    path = args.out / THESIS_RESULTS
    with atomic_path(path) as tmp:
        tmp.write_text(thesis_markdown(sections, args.quick, args.seeds, methods))
    print(path)
    return 0


def _bench(args) -> int:
    from .assets import write_bench_figures, write_forget_quality_figures
    from .bench_records import LEADERBOARD_MD, load_bench
    from .forget_quality import load_studies

    bench = load_bench(args.dir)
    if bench["markdown"] is None:
        raise ConfigError(f"'{args.dir}' holds no {LEADERBOARD_MD}: pass the --out folder of a "
                          "finished `unlearnlab bench` run")
    written, skipped = write_bench_figures(bench, args.out, args.mia_method, args.seed)
    # `bench --forget-quality N` leaves one bundle per method of each random scenario
    for scenario in sorted(p for p in Path(args.dir).glob("*/forget_quality") if p.is_dir()):
        bundles = sorted(p for p in scenario.iterdir() if p.is_dir())
        written += write_forget_quality_figures(load_studies(bundles), args.out)
    for name, why in skipped.items():
        print(f"unlearnlab figures: skipped the MIA figure of {name}: {why}", file=sys.stderr)
    print(bench["markdown"], end="")
    print(f"\nwrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


def _forget_quality(args) -> int:
    from .assets import write_forget_quality_figures
    from .forget_quality import load_studies

    studies = load_studies(args.bundles)
    written = write_forget_quality_figures(studies, args.out)
    for name, record in studies["records"].items():
        print(f"{name:<24} F {record['forget_quality']:.4f}   final score "
              f"{record['final_score']:.4f}")
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0
