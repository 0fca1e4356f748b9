"""Command line: ``unlearnlab run ...``. Parses, dispatches, prints; no experiment logic."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from . import bundle, demo
from .bench import bench, suite_scenarios
from .compare import compare, markdown
from .config import RunConfig
from .data import data_root, list_datasets, load_dataset
from .data.builtin import IDX_FILES
from .errors import BundleError, ConfigError, DataError, UnlearnlabError, one_line
from .executor import DEFAULT_RETRIES, parse_executor
from .experiment import check_data_root, check_method, run
from .figures import cli as figures_cli
from .methods import coerce_params, get_method, list_methods, parse_set_options
from .metrics import select_metrics
from .models import list_models
from .outputs import check_file_target, check_folder_target, write_json
from .record import summary


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message):
        raise ConfigError(f"{message} (see '{self.prog} --help')")


def _oversample(text: str) -> tuple[int, int]:
    cls, sep, factor = text.partition(":")
    if not sep or not cls.isdigit() or not factor.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not CLASS:FACTOR, e.g. 6:10")
    return int(cls), int(factor)


def _where() -> argparse.ArgumentParser:
    """Options of every command that trains or loads models: mode, data root, device."""
    w = argparse.ArgumentParser(add_help=False)
    w.add_argument("--quick", action="store_true",
                   help="small stratified subset and one training epoch (for CI)")
    w.add_argument("--data-dir", default=None, help="data root (default: $UNLEARNLAB_DATA or data)")
    w.add_argument("--device", default="auto", help="auto, cpu or cuda")
    w.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    return w


def _executor() -> argparse.ArgumentParser:
    """Where the training and unlearning jobs of compare, bench and forget-quality run."""
    e = argparse.ArgumentParser(add_help=False)
    e.add_argument("--executor", default="local", metavar="local|process:N|ray[:HOST:PORT]",
                   help="local: one job after another in this process (default); process:N: "
                   "N worker processes on this machine; ray: a Ray cluster (RAY_ADDRESS or "
                   "this machine's), ray:HOST:PORT its GCS address, ray://HOST:PORT through Ray "
                   "Client (docs/scaling.md)")
    e.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="K",
                   help="run a job whose worker died again, at most K times (default "
                   f"{DEFAULT_RETRIES}); a job that raises is never retried")
    e.add_argument("--gpus-per-job", type=float, default=None, metavar="F",
                   help="GPUs a Ray job reserves, e.g. 0.25 packs four on a GPU (default: by "
                   "architecture when the cluster has GPUs, else 0)")
    return e


def _pool(args):
    """The executor of ``--executor``, ``--retries`` and ``--gpus-per-job``."""
    return parse_executor(args.executor, retries=args.retries, gpus_per_job=args.gpus_per_job)


def _scenario() -> argparse.ArgumentParser:
    """The scenario of run, compare and tune: dataset and forget spec."""
    s = argparse.ArgumentParser(add_help=False)
    s.add_argument("--dataset", default="mnist", help=f"one of {', '.join(list_datasets())}")
    s.add_argument("--forget", default="class:6",
                   help="class:<c> | subset:<name> | rest:<name> | color:<color>:<c>")
    return s


def _common() -> argparse.ArgumentParser:
    """Options shared by run and compare."""
    c = argparse.ArgumentParser(add_help=False, parents=[_scenario(), _where()])
    c.add_argument("--preset", default="default",
                   help="named hyperparameter set of the method(s), e.g. paper, tuned, or auto "
                   "(a tuned preset of this scenario, else a short cached search; run, compare)")
    c.add_argument("--arch", default=None, help=f"one of {', '.join(list_models())}; default: "
                   "cnn for class forgetting, else mlp (convnet on cmnist)")
    c.add_argument("--oversample", type=_oversample, default=None, metavar="CLASS:FACTOR",
                   help="repeat one class FACTOR times in training (seed A used 6:10)")
    c.add_argument("--fresh", action="store_true", help="retrain even if a cached model matches")
    c.add_argument("--no-train", action="store_true",
                   help="refuse to train: fail unless matching cached models exist")
    c.add_argument("--metrics", default=None, metavar="A,B",
                   help="forget-set metrics to compute (default: all); relearn_steps is the "
                   "slowest")
    c.add_argument("--train-per-class", type=int, default=None, metavar="N",
                   help="train on a seeded stratified subset of N samples per class")
    c.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    return c


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unlearnlab", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _common()
    p = sub.add_parser("run", parents=[common],
                       help="train/load original and retrained models, unlearn, evaluate")
    p.add_argument("--method", default="relabel", help=f"one of {', '.join(list_methods())}, "
                   "or package.module:Class (docs/extending.md)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the JSON record here")
    c = sub.add_parser("compare", parents=[common, _executor()],
                       help="baseline ensembles and methods over N seeds, with summary tables")
    c.add_argument("--methods", required=True,
                   help="comma-separated registry keys or package.module:Class")
    c.add_argument("--seeds", type=int, default=5, help="ensemble size (seeds 0..N-1)")
    c.add_argument("--out", type=Path, required=True, help="output folder")
    b = sub.add_parser("bench", parents=[_where(), _executor()],
                       help="every method on the standard scenarios over N seeds: a "
                       "leaderboard by average gap to the retrained ensemble")
    b.add_argument("--methods", default=None, help="comma-separated registry keys or "
                   "package.module:Class (default: every registered method)")
    b.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per scenario")
    b.add_argument("--suite", default="standard", help="the scenarios: standard (the "
                   "leaderboard's, which the defaults were tuned on) or heldout (scenarios no "
                   "default or search has seen: docs/heldout.md)")
    b.add_argument("--presets", default="default", help="comma-separated presets, the first "
                   "ranked, each other one a column beside it (e.g. tuned,default,paper; "
                   "default: default)")
    b.add_argument("--out", type=Path, required=True, help="output folder")
    b.add_argument("--forget-quality", type=int, default=0, metavar="N",
                   help="also score every method on the random-forgetting scenarios with the "
                   "NeurIPS 2023 forget quality, N models per side (default: off)")
    r = sub.add_parser("rescore", help="recompute the forget-set metrics of saved run bundles "
                       "from their per-sample outputs and report differences")
    r.add_argument("path", type=Path, help="a run bundle, or a folder searched for bundles")
    r.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    t = sub.add_parser("tune", parents=[_scenario(), _where(), _executor()],
                       help="search a method's hyperparameters with Optuna against the "
                       "retrained ensemble on a held-out validation split; writes the best "
                       "trial as the preset 'tuned'")
    t.add_argument("--method", required=True, help="a method with a search space")
    t.add_argument("--trials", type=int, default=20, help="complete trials the study should "
                   "hold; a resumed study runs the rest, several workers share them")
    t.add_argument("--seeds", type=int, default=3, help="retrained ensemble: seeds 0..N-1")
    t.add_argument("--storage", default=None, metavar="URL", help="SQLAlchemy URL, e.g. "
                   "postgresql+psycopg://user:pw@host/db (default: SQLite in <data root>/studies)")
    t.add_argument("--study", default=None, help="study name (default: "
                   "<method>-<dataset>-<forget>, '-z' appended under --objective z, '-quick' "
                   "in quick mode)")
    t.add_argument("--objective", default="gap", metavar="gap|z",
                   help="what a trial minimises against the retrained ensemble: gap, the "
                   "average gap in points (default), or z, avg |z| in units of the retrained "
                   "spread (needs --seeds 2 or more; docs/tuning.md)")
    a = sub.add_parser("tune-all", parents=[_where(), _executor()],
                       help="tune every method with the same budget on every scenario of a "
                       "suite it is meant for; writes the winners as the scenarios' tuned "
                       "presets and a summary")
    a.add_argument("--suite", default="standard", help="the scenarios: standard (default)")
    a.add_argument("--scenarios", default=None, metavar="NAME,...",
                   help="only these scenarios of the suite, by short name (e.g. mnist-six)")
    a.add_argument("--methods", default="all", metavar="M1,M2|all",
                   help="methods with a search space (default all: every built-in one)")
    a.add_argument("--budget", type=int, default=30, metavar="K",
                   help="complete trials per study, the same for every method (default 30; "
                   "a resumed study counts the trials it holds)")
    a.add_argument("--seeds", type=int, default=3, help="retrained ensemble: seeds 0..N-1 "
                   "(default 3)")
    a.add_argument("--objective", default="z", metavar="z|gap",
                   help="z: avg |z| in units of the retrained spread (default); gap: the "
                   "average gap in points")
    a.add_argument("--out", type=Path, default=Path("results/tune_all"),
                   help="folder of tune_all.md and tune_all.json (default results/tune_all)")
    d = sub.add_parser("demo", help="seed A's experiment: class 6 over-represented x10, "
                       "forgotten by relearning it as 3 (falls back to digits without MNIST)")
    d.add_argument("--data-dir", default=None)
    d.add_argument("--quick", action="store_true")
    d.add_argument("--out", default="results/demo", help="folder of the demo's figures and "
                   "record (default results/demo)")
    d.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    q = sub.add_parser("forget-quality", parents=[common, _executor()],
                       help="the NeurIPS 2023 challenge's per-example forget-quality score: N "
                       "unlearned against N retrained models")
    q.add_argument("--method", required=True, help="a method (registry key or "
                   "package.module:Class), or the references retrain and original")
    q.add_argument("--models", type=int, default=32, help="models per side (default 32)")
    q.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter (repeatable)")
    q.add_argument("--seed", type=int, default=0, help="seed of the samples and the original")
    q.add_argument("--together", action="store_true",
                   help="train each side's missing models together as one batched model "
                   "(cached apart from models trained alone; see docs/performance.md)")
    q.add_argument("--out", type=Path, default=None,
                   help="bundle folder (default: <data root>/forget_quality/...)")
    q.add_argument("--json", type=Path, default=None, help="write the JSON record here")
    h = sub.add_parser("report", help="write one self-contained interactive HTML page "
                       "(Plotly) of a compare, bench or forget-quality folder: DIR/report.html")
    h.add_argument("dir", type=Path, help="the --out folder of compare or bench, or a "
                   "forget-quality bundle (or a folder of them)")
    h.add_argument("--data-dir", default=None, help="data root the forget-sample images are "
                   "read from (default: $UNLEARNLAB_DATA or data)")
    h.add_argument("--out", type=Path, default=None, help="the HTML file (default: "
                   "DIR/report.html; its links to the records work only inside DIR)")
    h.add_argument("--no-images", action="store_true",
                   help="leave the forget-sample grids out (no data root needed)")
    h.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    figures_cli.add_parser(sub, [_where()])
    return parser


def _config(args, **extra) -> RunConfig:
    metrics = None if args.metrics is None else select_metrics(
        [m.strip() for m in args.metrics.split(",") if m.strip()])
    return RunConfig(dataset=args.dataset, forget=args.forget, preset=args.preset,
                     quick=args.quick, arch=args.arch, oversample=args.oversample,
                     data_dir=args.data_dir, device=args.device, reuse=not args.fresh,
                     allow_train=not args.no_train, metrics=metrics,
                     train_per_class=args.train_per_class, epochs=args.epochs, **extra)


def cmd_run(args) -> int:
    method_cls = get_method(args.method)
    params = coerce_params(method_cls, parse_set_options(args.sets))
    cfg = _config(args, method=args.method, params=params, seed=args.seed)
    if args.json:
        check_file_target(args.json, "--json")
    result = run(cfg)
    if args.json:
        write_json(args.json, result.record)
    if "diverged" in result.record["flags"]:
        print(f"unlearnlab: error: {result.record['error']} (flagged record"
              f"{f' written to {args.json}' if args.json else ''})", file=sys.stderr)
        return 3
    print(summary(result.record))
    return 0


def cmd_compare(args) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--methods is empty: name at least one method, e.g. gemu,gefeu")
    # compare checks the methods (each once), the seeds and --out before any work.
    with _pool(args) as pool:
        comparison = compare(_config(args, method=methods[0]), methods, args.seeds, args.out,
                             args.preset, pool)
    print(markdown(comparison.summary(), f"{args.dataset} · forget {args.forget}"))
    print(f"wrote {args.out}/results.csv, summary.md, kl.json and one JSON record per run")
    _report(args.out, args.data_dir)
    return 0


def cmd_bench(args) -> int:
    methods = _names(args.methods, "--methods")
    scenarios = suite_scenarios(args.suite)
    cfg = RunConfig(quick=args.quick, data_dir=args.data_dir, device=args.device)
    with _pool(args) as pool:
        bench(cfg, methods, args.seeds, args.out, scenarios=scenarios,
              forget_quality_models=args.forget_quality, executor=pool,
              presets=_names(args.presets, "--presets"))
    print((args.out / "leaderboard.md").read_text())
    print(f"wrote {args.out}/leaderboard.md, leaderboard.csv and one folder per scenario")
    _report(args.out, args.data_dir)
    return 0


def cmd_rescore(args) -> int:
    """Rescore every bundle; a damaged one is reported on one stderr line and skipped. Exit
    status: 2 when any bundle was damaged, else 1 when any differs from its record, else 0."""
    folders = bundle.find(args.path)
    for folder in folders:  # each gets its rescored.json: refuse before rescoring any
        check_folder_target(folder, "rescore bundle")
    mismatched = damaged = 0
    for folder in folders:
        try:
            result = bundle.rescore(folder)
        except BundleError as exc:
            damaged += 1
            print(f"unlearnlab: error: {one_line(exc)}", file=sys.stderr)
            continue
        if result["differences"]:
            mismatched += 1
            for key, (stored, new) in result["differences"].items():
                print(f"{folder}: {key}: recorded {stored}, recomputed {new}")
    rescored = len(folders) - damaged
    print(f"rescored {rescored} bundle(s): {rescored - mismatched} match their records"
          f"{f', {mismatched} differ' if mismatched else ''}"
          f"{f'; {damaged} damaged, not rescored' if damaged else ''}"
          f"; wrote rescored.json in each rescored bundle")
    return 2 if damaged else 1 if mismatched else 0


def cmd_tune(args) -> int:
    from .tuning import TuneConfig, tune

    cfg = TuneConfig(dataset=args.dataset, forget=args.forget, method=args.method,
                     trials=args.trials, seeds=args.seeds, storage=args.storage,
                     study=args.study, quick=args.quick, data_dir=args.data_dir,
                     device=args.device, objective=args.objective)
    with _pool(args) as pool:
        result = tune(cfg, executor=pool)
    print(result.summary())
    if result.interrupted:
        print(f"unlearnlab: interrupted; the finished trials are kept in study "
              f"'{cfg.study_name}': run the same command to resume", file=sys.stderr)
        return 130
    return 0


def _names(text: str | None, option: str) -> list[str] | None:
    """A comma-separated option as a list (None when not given); empty is refused."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{option} is empty: name at least one or leave it out")
    return names


def cmd_tune_all(args) -> int:
    from .tune_all import TuneAllConfig, summary_markdown, tune_all

    methods = _names(args.methods, "--methods")
    cfg = TuneAllConfig(suite=args.suite, methods=None if methods == ["all"] else methods,
                        scenario_names=_names(args.scenarios, "--scenarios"),
                        budget=args.budget, seeds=args.seeds, objective=args.objective,
                        quick=args.quick, data_dir=args.data_dir, device=args.device)
    with _pool(args) as pool:
        result = tune_all(cfg, args.out, executor=pool)
    print(summary_markdown(result))
    print(f"wrote {args.out}/tune_all.md and tune_all.json; the winners run with --preset tuned"
          f"{f' --data-dir {args.data_dir}' if args.data_dir else ''}")
    if result.interrupted:
        print("unlearnlab: interrupted; the finished trials are kept: run the same command to "
              "resume", file=sys.stderr)
        return 130
    return 0


def cmd_forget_quality(args) -> int:
    from . import ensemble

    pool = _pool(args)
    reference = args.method in ensemble.REFERENCES
    params = {} if reference else coerce_params(get_method(args.method),
                                                 parse_set_options(args.sets))
    if reference and args.sets:
        raise ConfigError(f"--set does not apply to the reference '{args.method}'")
    ensemble.check(args.method, args.models)
    cfg = _config(args, method="finetune" if reference else args.method, params=params,
                  seed=args.seed)
    if not reference:
        check_method(cfg)
    if args.json:
        check_file_target(args.json, "--json")
    out = args.out or ensemble.default_folder(cfg, args.method, args.models, args.together)
    check_folder_target(out, "--out")
    check_data_root(cfg.data_dir)
    with pool:
        record = ensemble.study(cfg, args.method, args.models, together=args.together,
                                executor=pool)
    record = ensemble.write_bundle(out, record)
    if args.json:
        write_json(args.json, record)
    print(ensemble.summary(record))
    print(f"bundle: {out}")
    _report(out, args.data_dir)
    return 0


def _report(folder: Path, data_dir: str | None, out: Path | None = None,
            images_shown: bool = True) -> Path:
    """Write the HTML report of a study folder (``report.write_report``) and say where."""
    from .report.build import write_report  # lazy: Plotly loads only when a report is written

    path = write_report(folder, data_dir, out, images_shown)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
    return path


def cmd_report(args) -> int:
    _report(args.dir, args.data_dir, args.out, not args.no_images)
    return 0


def cmd_demo(args) -> int:
    """Seed A's experiment on MNIST (``unlearnlab.demo``); on scikit-learn's digits only when
    the MNIST files are missing and cannot be downloaded. A damaged MNIST file is an error,
    never a fallback. Prints the run's summary, what its MIA numbers mean and where the
    forgotten sixes went; writes its figures to ``--out``."""
    check_folder_target(args.out, "demo --out")
    print(f"unlearnlab demo: seed A's class forgetting; {demo.EXPECTED_TIME}.", flush=True)
    dataset = "mnist"
    folder, files = IDX_FILES["mnist"]
    raw = data_root(args.data_dir) / folder / "raw"
    missing = not all((raw / name).is_file() for name, _ in files)
    try:
        load_dataset("mnist", args.data_dir)
    except DataError as exc:
        if not missing:
            raise
        print(f"MNIST is not available ({exc}); running the demo on scikit-learn's digits instead")
        dataset = "digits"
    result = run(demo.demo_config(dataset, args.quick, args.data_dir))
    print(summary(result.record))
    print("what the MIA scores say (membership-inference attacks on the forgotten training "
          "images; read each against the retrained model's row):", *demo.mia_lines(result.record),
          sep="\n")
    import matplotlib

    matplotlib.use("Agg")  # files only: the demo may run without a display
    demo.write_figures(result, Path(args.out))
    print(demo.where_forgotten_went(result.record, result.scenario.dataset.classes))
    print(f"figures: {Path(args.out).resolve()}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started with SIGINT ignored (``nohup cmd &``): SIGINT still stops a command cleanly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="unlearnlab: %(message)s", stream=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "figures":
            check_folder_target(args.out, "figures --out")
        return {"run": cmd_run, "compare": cmd_compare, "bench": cmd_bench,
                "rescore": cmd_rescore, "tune": cmd_tune, "tune-all": cmd_tune_all,
                "demo": cmd_demo,
                "forget-quality": cmd_forget_quality, "report": cmd_report,
                "figures": figures_cli.main}[args.command](args)
    except UnlearnlabError as exc:
        if debug:
            raise
        print(f"unlearnlab: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearnlab: interrupted; nothing partial was written", file=sys.stderr)
        return 130
