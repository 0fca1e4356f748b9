"""The figure sets of the repository's ``assets/`` folder, each a function that draws one set
from results already computed and returns the paths it wrote (every file atomically:
``base.save_figure``, ``outputs.write_json``, ``outputs.atomic_path``).

- the README's class forgetting (seed A, Fabbri 2024): ``class_forgetting_config`` names the
  run, ``write_class_forgetting`` draws its ``RunResult``;
- the thesis scenarios (Kastler 2025; ``compare.THESIS_SCENARIOS``): ``write_thesis_figures``
  draws one dataset's ``Comparison``, ``thesis_section``/``thesis_markdown`` write the summary;
- a saved benchmark: ``write_bench_figures`` draws what ``bench_records.load_bench`` read;
- forget-quality studies: ``write_forget_quality_figures`` draws what
  ``forget_quality.load_studies`` read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from ..compare import BASELINES, Comparison, markdown
from ..config import RunConfig
from ..errors import UnlearnlabError
from ..experiment import RunResult
from ..outputs import write_json
from . import comparison, result
from .bench import plot_confusion_delta, plot_gap_bars, plot_mia_distributions
from .bench_records import (
    feature_scenarios,
    load_outputs,
    loss_mia_scores,
    pick_run,
    ranked_methods,
)
from .forget_quality import plot_epsilon_histograms, plot_forget_quality_bars, scenario_title

# The README's class-forgetting figures: file name -> figure of the run.
CLASS_FORGETTING = {
    "class_forgetting_curves.png": result.training_curves,
    "class_forgetting_confusion.png": result.confusion_matrices,
    "class_forgetting_per_class.png": result.per_class_accuracy,
    "class_forgetting_predictions.png": result.forget_predictions,
    "class_forgetting_weights.png": result.weight_heatmap,
    "class_forgetting_pca.png": result.pca_features,
}
CLASS_FORGETTING_RECORD = "class_forgetting.json"
THESIS_METHODS = ("gradient_ascent", "gemu", "gefeu")
CONFUSION_CANDIDATES = ("gemu", "gefeu")  # the thesis's confusion figure shows the better one
THESIS_RESULTS = "thesis_results.md"


# --- class forgetting -------------------------------------------------------------------------

def class_forgetting_config(quick: bool = False, data_dir: str | None = None,
                            device: str = "auto") -> RunConfig:
    """Seed A's class forgetting: MNIST with class 6 over-represented x10, forgotten by
    relearning it as 3 (``relabel``), models reused from the cache (the configuration of
    ``specific_sample_unlearning.class_forgetting`` with its defaults)."""
    return RunConfig(dataset="mnist", forget="class:6", method="relabel", params={"target": 3},
                     oversample=(6, 10), quick=quick, data_dir=data_dir, reuse=True,
                     device=device)


def write_class_forgetting(run: RunResult, out: Path) -> list[Path]:
    """``<out>/class_forgetting_*.png`` and the run's record ``<out>/class_forgetting.json``."""
    written = []
    for name, make in CLASS_FORGETTING.items():
        plt.close(make(run, save=out / name))
        written.append(out / name)
    write_json(out / CLASS_FORGETTING_RECORD, run.record)
    return [*written, out / CLASS_FORGETTING_RECORD]


# --- thesis scenarios -------------------------------------------------------------------------

def best_method(cmp: Comparison, candidates: Sequence[str] = CONFUSION_CANDIDATES) -> str | None:
    """The candidate method (else any method of ``cmp``) whose mean forget and retain test
    accuracies are closest to the retrained ensemble's: smallest |Δ forget| + |Δ retain|.
    None when every run of those methods diverged (no accuracies)."""
    table = cmp.summary()
    methods = [m for m in candidates if m in table.index]
    methods = methods or [m for m in table.index if m not in BASELINES]
    if not methods:
        raise ValueError("the comparison has no method to choose from")
    gaps = (table.loc[methods, "forget_test_acc_gap"].abs()
            + table.loc[methods, "retain_test_acc_gap"].abs()).dropna()
    return str(gaps.idxmin()) if len(gaps) else None


def write_thesis_figures(dataset: str, cmp: Comparison,
                         out: Path) -> tuple[list[Path], str | None]:
    """Write ``thesis_<dataset>_accuracy.png`` (accuracy per subset, train and test),
    ``thesis_<dataset>_kl.png`` (KL matrix on the forget set) and
    ``thesis_<dataset>_confusion_<method>.png`` (confusion matrices against the retrained
    ensemble for ``best_method``; the other candidate's figure from an earlier run is removed).
    Returns the paths and the method of the confusion figure (None, and no confusion figure,
    when every run of the candidates diverged)."""
    best = best_method(cmp)
    figures = {
        out / f"thesis_{dataset}_accuracy.png":
            lambda path: comparison.ensemble_accuracy_boxes(cmp, split="both", save=path),
        out / f"thesis_{dataset}_kl.png": lambda path: comparison.kl_heatmap(cmp, save=path),
    }
    if best is not None:
        figures[out / f"thesis_{dataset}_confusion_{best}.png"] = \
            lambda path: comparison.confusion_vs_retrained(cmp, best, save=path)
    for path, make in figures.items():
        plt.close(make(path))
    for other in CONFUSION_CANDIDATES:  # a figure of an earlier run's choice would be stale
        if other != best:
            (out / f"thesis_{dataset}_confusion_{other}.png").unlink(missing_ok=True)
    return list(figures), best


def thesis_section(dataset: str, title: str, cmp: Comparison, paths: Sequence[Path],
                   best: str | None) -> list[str]:
    """The lines of one dataset's section of ``thesis_results.md``: its summary table, the
    choice of the confusion figure and the figures."""
    figures = "\n".join(f"![{p.stem}]({p.name})" for p in paths)
    candidates = ", ".join(f"`{m}`" for m in CONFUSION_CANDIDATES)
    choice = (f"Confusion matrices: `{best}`, the one of {candidates} with the smaller "
              "|Δ forget| + |Δ retain|." if best is not None else
              f"No confusion figure: every run of {candidates} diverged.")
    return [f"## {dataset}", "", markdown(cmp.summary(), title), choice, "", figures, ""]


def thesis_markdown(sections: Sequence[str], quick: bool, seeds: int,
                    methods: Sequence[str]) -> str:
    """``thesis_results.md``: a header saying how the results were made, then ``sections``."""
    mode = "quick mode (a small stratified subset, one training epoch)" if quick else \
        "full data"
    head = ["# Thesis scenarios: unlearnlab results", "",
            f"Generated by `unlearnlab figures thesis`: {mode}, {seeds} seeds per "
            f"ensemble, methods {', '.join(f'`{m}`' for m in methods)} with the lab's default "
            "hyperparameters. Accuracies in % (mean ± std over seeds, test split unless "
            "marked); Δ is the gap of a method's mean to the retrained ensemble's mean, in "
            "points; \"forget CE\" is the mean cross-entropy on the forget test set.", ""]
    return "\n".join(head + list(sections))


# --- a saved benchmark ------------------------------------------------------------------------

def write_bench_figures(bench: Mapping, out: Path, mia_method: str | None = None,
                        seed: int | None = None) -> tuple[list[Path], dict[str, str]]:
    """Draw a loaded bench (``bench_records.load_bench``) into ``out``:

    - ``bench_gap.png``: every method's avg |z| to the retrained ensemble on a log axis (the
      average gap in points for a bench of one seed, which has no spread), one panel per
      scenario;
    - ``bench_confusion_delta_<scenario>.png``: per feature scenario, the test confusion matrix
      of every method's unlearned models minus the retrained models' (means over seeds);
    - ``bench_mia_<scenario>.png``: per scenario, the per-sample loss on forget-train and
      forget-test of the original, retrained and unlearned models of the best-ranked method
      there (or ``mia_method``; scenarios without it are left out) at ``seed``, from its run
      bundle.

    Returns the paths written and, per scenario whose MIA figure was skipped because its
    bundle is missing, the reason.
    """
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
    skipped = {}
    for name in bench["scenarios"]:
        if mia_method is not None and mia_method not in bench["scenarios"][name]["records"]:
            continue
        record = pick_run(bench, name, mia_method, seed)
        try:
            outputs = load_outputs(record)
        except UnlearnlabError as exc:
            skipped[name] = str(exc)
            continue
        written.append(out / f"bench_mia_{name}.png")
        plt.close(plot_mia_distributions(
            outputs, scores=loss_mia_scores(record), path=written[-1],
            title=f"{name} · {record['method']} (seed {record['seed']}): per-sample loss on "
                  "the forget set (dashed: medians)"))
    return written, skipped


# --- forget quality ---------------------------------------------------------------------------

def forget_quality_stem(studies: Mapping) -> str:
    """``forget_quality_<dataset>_<forget spec>_n<N>``, the spec's characters that do not belong
    in a file name replaced by ``-``."""
    scenario = studies["scenario"]
    spec = re.sub(r"[^A-Za-z0-9_.]+", "-", scenario["forget"]).strip("-")
    return f"forget_quality_{scenario['dataset']}_{spec}_n{studies['models']}"


def write_forget_quality_figures(studies: Mapping, out: Path) -> list[Path]:
    """Draw forget-quality studies of one scenario and N (``forget_quality.load_studies``) into
    ``out``: ``<stem>_epsilons.png`` (per-example eps histograms, the references as outlines)
    and, when a method is among them, ``<stem>_scores.png`` (F per method against the
    references); ``<stem>`` is ``forget_quality_stem``. Returns the paths written."""
    stem, n = forget_quality_stem(studies), studies["models"]
    title = scenario_title(studies)
    written = [out / f"{stem}_epsilons.png"]
    plt.close(plot_epsilon_histograms(
        studies["epsilons"], n, path=written[-1],
        title=f"Per-example ε, {n} models per side (outlines: the references)\n{title}"))
    if len(studies["epsilons"]) > 2:
        written.append(out / f"{stem}_scores.png")
        plt.close(plot_forget_quality_bars(
            studies["epsilons"], n, path=written[-1],
            title=f"Forget quality F, {n} models per side\n{title}"))
    return written
