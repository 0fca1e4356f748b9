"""The report page: one self-contained HTML file per study folder (``write_report``).

Every script and style is inlined (plotly.js once, then one JSON block per figure), so the file
opens offline and as an e-mail attachment. Sections appear only when their data are there: the
leaderboard (sortable; a method's name opens its section), the avg |z| map of a bench, forget
quality, per method and scenario its accuracy against the retrained ensemble's spread, test
confusion and its difference to retraining, per-class accuracy, the loss-MIA histograms and
forget-sample grids (from the study's per-sample files, ``samples``), and the configuration
with links to the records.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..compare import FLAGS, retrained_reference
from ..data import DIGIT_CLASSES, FASHION_CLASSES
from ..errors import ConfigError
from ..outputs import atomic_path, check_file_target
from ..ranking import LEVEL
from . import figures, images, samples
from .study import QualityStudy, ScenarioStudy, Study, load

REPORT = "report.html"
FLAG_NAMES = {f: f.replace("_", "-") for f in FLAGS}


def write_report(folder: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 out: str | os.PathLike | None = None, images_shown: bool = True) -> Path:
    """Write the report of the study ``folder`` (a compare, bench or forget-quality output) to
    ``out`` (default ``folder/report.html``), atomically; returns its path. ``data_dir``: the
    data root the forget-sample images are read from (checked against the records' dataset
    checksum and split hash); ``images_shown=False`` leaves those grids out. Everything is
    read and checked before the file is written."""
    folder = Path(folder)
    target = Path(out) if out is not None else folder / REPORT
    study = load(folder)
    check_file_target(target, "report --out")
    page = render(study, data_dir, images_shown, target)
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target


class _Page:
    """The figures of a page, numbered in order, each kept as its JSON block."""

    def __init__(self):
        self.blocks: list[str] = []

    def figure(self, spec: dict) -> str:
        ident = f"fig-{len(self.blocks)}"
        text = json.dumps(spec, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        self.blocks.append(f'<script type="application/json" id="{ident}">{text}</script>')
        return f'<div class="figure" data-figure="{ident}"></div>'


def _e(value) -> str:
    return html.escape(str(value))


def _anchor(name: str) -> str:
    return "method-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _num(value, digits: int = 2, scale: float = 1.0) -> tuple[str, str]:
    """(text, sort key) of a number; '' sorts last, 'n/a' and 'diverged' read as such."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value):
        return "n/a", ""
    if value == float("inf"):
        return "diverged", "1e300"
    return f"{scale * value:.{digits}f}", repr(float(value))


def _cell(text: str, sort: str | None = None, cls: str = "") -> str:
    attrs = (f' data-sort="{_e(sort)}"' if sort is not None else "") + \
            (f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{text}</td>"


def _table(head: list[str], rows: list[str], sortable: bool = True, text_columns=()) -> str:
    cells = "".join(
        f'<th class="{"sortable " if sortable else ""}{"text" if i in text_columns else ""}">'
        f"{_e(h)}</th>" for i, h in enumerate(head))
    return (f'<div class="table-wrap"><table><thead><tr>{cells}</tr></thead><tbody>'
            f'{"".join(rows)}</tbody></table></div>')


def flag_text(row, unit: str, total: int) -> str:
    """The flags of a method as "collapse (2 of 5 seeds), retain-damage (5 of 5 seeds)"."""
    parts = [f"{FLAG_NAMES[f]} ({int(row[f])} of {total} {unit})" for f in FLAGS
             if f in row and row[f]]
    return ", ".join(parts) or "none"


# ------------------------------------------------------------------------------ sections

def leaderboard_section(study: Study) -> str:
    board = study.board
    bench = study.kind == "bench"
    scenarios = list(study.scenarios) if bench else []
    seeds = max(s.seeds for s in study.scenarios.values())
    unit = "runs" if bench else "seeds"
    head = ["rank", "group", "method", f"avg |z| (σ) [{LEVEL * 100:g} % interval]",
            *scenarios, "avg gap (pts)", *(["F"] if "forget_quality" in board else []),
            "speed-up ×", "flagged runs" if bench else "flags"]
    rows = []
    for rank, (method, row) in enumerate(board.iterrows(), 1):
        score, key = _num(row["z_gap"])
        if not pd.isna(row["z_gap_low"]):
            score += f" [{row['z_gap_low']:.2f}, {row['z_gap_high']:.2f}]"
        group = "" if pd.isna(row["group"]) else str(int(row["group"]))
        cells = [_cell(str(rank), str(rank)), _cell(group or "n/a", group),
                 _cell(f'<a class="method-link" href="#{_anchor(method)}">{_e(method)}</a>',
                       method, "text"),
                 _cell(_e(score), key)]
        for s in scenarios:
            cells.append(_cell(*_num(row[s])))
        cells.append(_cell(*_num(row["avg_gap"], scale=100)))
        if "forget_quality" in board:
            cells.append(_cell(*_num(row["forget_quality"], 3)))
        cells.append(_cell(*_num(row["speedup"], 1)))
        cells.append(_cell(_e(flag_text(row, unit, int(row["runs"]))), None, "flags"))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    reference = retrained_reference(seeds)
    legend = (f"avg |z|: how many standard deviations of the retrained ensemble a method lies "
              f"from retraining, averaged over forget and retain accuracy (train and test) "
              f"and MIA efficacy; lower is better ({reference}). Interval: {LEVEL * 100:g} % "
              f"bootstrap over the seeds; methods of one group are tied at these seeds. Avg gap: "
              f"the same distance in points (secondary). Click a header to sort, a method to "
              f"open its section.")
    title = "Leaderboard" if bench else "Summary"
    return (f'<section id="leaderboard"><h2>{title}</h2><p class="legend">{_e(legend)}</p>'
            f'{_table(head, rows, text_columns={2})}</section>')


def overview_section(study: Study, page: _Page) -> str:
    if study.kind != "bench" or len(study.scenarios) < 2:
        return ""
    spec = figures.zscore_heatmap(study.board, list(study.scenarios))
    return f'<section id="overview"><h2>avg |z| per scenario</h2>{page.figure(spec)}</section>'


def quality_table(quality: dict[str, QualityStudy]) -> str:
    head = ["method", "F", "final score", "avg |z|", "median ε", "models", "retain %",
            "test %", "forget % (unlearned)", "forget % (retrained)"]
    rows = []
    for name, q in quality.items():
        r = q.record
        u, t = r["sides"]["unlearned"], r["sides"]["retrained"]
        cells = [_cell(_e(name), name, "text"), _cell(*_num(r["forget_quality"], 3)),
                 _cell(*_num(r["final_score"], 3)), _cell(*_num(r.get("z_gap"))),
                 _cell(*_num(r["epsilon_median"])), _cell(str(r["models"]), str(r["models"])),
                 _cell(*_num(u["retain_acc_mean"], scale=100)),
                 _cell(*_num(u["test_acc_mean"], scale=100)),
                 _cell(*_num(u["forget_acc_mean"], scale=100)),
                 _cell(*_num(t["forget_acc_mean"], scale=100))]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(head, rows, text_columns={0})


def quality_section(title: str, quality: dict[str, QualityStudy], page: _Page,
                    link_base: Path | None, folder: Path) -> str:
    if not quality:
        return ""
    n = next(iter(quality.values())).record["models"]
    rank = {"retrain": 0, "original": 1}  # the references first, then the methods by F
    ordered = dict(sorted(quality.items(), key=lambda kv: (rank.get(kv[0], 2),
                                                           -kv[1].record["forget_quality"])))
    spec = figures.epsilon_buckets({k: q.epsilons for k, q in ordered.items()}, n)
    legend = ("Forget quality F (NeurIPS 2023 challenge): per forget sample, how well an "
              "attacker tells the N unlearned from the N retrained models (ε); F is the mean "
              "of the ε buckets' points, 1 = no sample told apart. retrain: N more retrained "
              "models (the ceiling at this N); original: N originals (no unlearning).")
    links = ", ".join(_link(q.folder / "record.json", link_base, folder, name)
                      for name, q in ordered.items())
    return (f"<h3>{_e(title)}</h3><p class=\"legend\">{_e(legend)}</p>{quality_table(ordered)}"
            f"{page.figure(spec)}<p class=\"note\">records: {links}</p>")


def _classes(dataset: str, count: int) -> list[str]:
    names = FASHION_CLASSES if dataset == "fashion_mnist" else DIGIT_CLASSES
    return list(names) if len(names) == count else [str(i) for i in range(count)]


def _runs(scenario: ScenarioStudy, method: str) -> list[dict]:
    return [r for r in scenario.records.get(method, []) if r["models"].get("unlearned")]


def per_class_table(scenario: ScenarioStudy, method: str) -> str:
    runs = _runs(scenario, method)
    if not runs or "per_class_test_acc" not in runs[0]["models"]["unlearned"]:
        return ""

    def stack(role):
        return np.array([r["models"][role]["per_class_test_acc"] for r in runs], dtype=float)

    o, t, u = stack("original"), stack("retrained"), stack("unlearned")
    names = _classes(runs[0]["dataset"], o.shape[1])
    rows = []
    for c, name in enumerate(names):
        delta = u[:, c].mean() - t[:, c].mean()
        rows.append("<tr>" + "".join([
            _cell(_e(name), name, "text"), _cell(*_num(o[:, c].mean(), 1, 100)),
            _cell(_e(f"{100 * t[:, c].mean():.1f} ± {100 * t[:, c].std():.1f}"),
                  repr(t[:, c].mean())),
            _cell(_e(f"{100 * u[:, c].mean():.1f} ± {100 * u[:, c].std():.1f}"),
                  repr(u[:, c].mean())),
            _cell(_e(f"{100 * delta:+.1f}"), repr(delta))]) + "</tr>")
    head = ["class", "original %", "retrained % (mean ± sd)", "unlearned % (mean ± sd)",
            "Δ to retrained (pts)"]
    return (f"<h4>per-class test accuracy over {len(runs)} seeds</h4>"
            f"{_table(head, rows, text_columns={0})}")


def confusion_figure(scenario: ScenarioStudy, method: str, page: _Page) -> str:
    runs = _runs(scenario, method)
    if not runs or "confusion_test" not in runs[0]["models"]["unlearned"]:
        return ""
    u = np.mean([r["models"]["unlearned"]["confusion_test"] for r in runs], axis=0)
    t = np.mean([r["models"]["retrained"]["confusion_test"] for r in runs], axis=0)
    return page.figure(figures.confusion(u, t, _classes(runs[0]["dataset"], len(u)), len(runs)))


def grid_html(grids: images.Grids, classes: list[str]) -> str:
    def card(c: images.Card) -> str:
        lines = [f"true {_e(classes[c.label])}"] + [
            f"{role[0]}: {_e(classes[k])} ({p:.2f})" for role, (k, p) in c.predictions.items()]
        return (f'<div class="card"><img alt="forget sample, class {_e(classes[c.label])}" '
                f'src="data:image/png;base64,{c.png}">{"<br>".join(lines)}</div>')

    parts = []
    for key, what in (("kept", "the unlearned model still classifies as the original did, "
                               "the retrained model does not"),
                      ("changed", "the unlearned model classifies differently from the "
                                  "original, the retrained model does not")):
        shown = getattr(grids, key)
        parts.append(f"<p class=\"note\">{grids.counts[key]} of {grids.total} forget samples "
                     f"{what}{'; the most confident ' + str(len(shown)) if shown else ''}"
                     f" (o: original, u: unlearned, r: retrained; class and probability):</p>")
        if shown:
            parts.append(f'<div class="grid">{"".join(card(c) for c in shown)}</div>')
    return "<h4>forget samples (seed 0)</h4>" + "".join(parts)


def method_section(study: Study, method: str, page: _Page, data_dir, images_shown: bool,
                   scenarios_cache: dict, link_base: Path | None) -> str:
    parts = []
    for name, scenario in study.scenarios.items():
        if method not in scenario.records:
            continue
        runs = study.runs[(study.runs["scenario"] == name) & (study.runs["method"] == method)]
        z = runs["z_gap"].astype(float)
        unit_total = len(runs)
        flags = flag_text(runs[list(FLAGS)].sum(), "seeds", unit_total)
        record = scenario.records[method][0]
        summary = (f"avg |z| {z.mean():.2f} ± {z.std(ddof=0):.2f} over {unit_total} seeds; "
                   f"avg gap {100 * runs['avg_gap'].mean():.2f} pts; median speed-up "
                   f"{runs['speedup'].median():.1f}×; flags: {flags}. Preset "
                   f"{record.get('preset')}, parameters {json.dumps(record.get('params'))}."
                   if z.notna().any() else f"flags: {flags}")
        body = [f"<p class=\"note\">{_e(summary)}</p>",
                page.figure(figures.accuracy_spread(scenario.rows, method)),
                confusion_figure(scenario, method, page), per_class_table(scenario, method)]
        if method in scenario.samples:
            outputs = samples.load(scenario.folder, method)
            body.append(page.figure(figures.mia_losses(outputs, method)))
            if images_shown:
                key = scenario.folder
                if key not in scenarios_cache:
                    scenarios_cache[key] = images.scenario_of(
                        _seed0(scenario), data_dir)
                sc = scenarios_cache[key]
                body.append(grid_html(images.grids(outputs, sc),
                                      _classes(record["dataset"], sc.dataset.num_classes)))
        if method in scenario.quality:
            refs = {k: scenario.quality[k] for k in ("retrain", "original")
                    if k in scenario.quality}
            q = {**refs, method: scenario.quality[method]}
            n = q[method].record["models"]
            body.append(page.figure(figures.epsilon_buckets({k: v.epsilons for k, v in q.items()},
                                                            n)))
        files = [_link(scenario.folder / r["_file"], link_base, study.folder,
                       f"seed {r['seed']}") for r in scenario.records[method]]
        if method in scenario.samples:
            files.append(_link(scenario.folder / samples.FOLDER / f"{method}.npz", link_base,
                               study.folder, "per-sample outputs (seed 0)"))
        body.append(f"<p class=\"note\">records: {', '.join(files)}</p>")
        title = f"<h3>{_e(name)}</h3>" if study.kind == "bench" else ""
        parts.append(title + "".join(body))
    return (f'<details class="method" id="{_anchor(method)}"><summary>{_e(method)}</summary>'
            f'{"".join(parts)}</details>')


def _seed0(scenario: ScenarioStudy) -> dict:
    """The seed-0 record of a scenario: its per-sample files are seed 0's."""
    for runs in scenario.records.values():
        for record in runs:
            if record["seed"] == 0:
                return record
    raise ConfigError(f"report: '{scenario.folder}' has per-sample files but no seed-0 record; "
                      "run the study again")


def _link(path: Path, link_base: Path | None, folder: Path, text: str) -> str:
    """A relative link to ``path`` when the report lies inside the study folder (its links
    then travel with it), else the path relative to the study folder as plain text."""
    if link_base is None:
        return f"{_e(text)} (<code>{_e(path.relative_to(folder))}</code>)"
    return f'<a href="{_e(os.path.relpath(path, link_base).replace(os.sep, "/"))}">{_e(text)}</a>'


def config_section(study: Study) -> str:
    rows = []
    items = study.scenarios.items() if study.scenarios else []
    for name, scenario in items:
        r = _seed0(scenario)
        seeds = sorted({rec["seed"] for runs in scenario.records.values() for rec in runs})
        values = {"dataset": r["dataset"], "architecture": r["arch"], "forget": r["forget"],
                  "seeds": ", ".join(map(str, seeds)), "quick mode": r["quick"],
                  "recipe": json.dumps(r["recipe"]), "sizes": json.dumps(r["sizes"]),
                  "data checksum": r["data_checksum"], "split hash (seed 0)": r["split_hash"],
                  "device": r["device"], "versions": json.dumps(r["versions"]),
                  "presets": ", ".join(sorted({f"{m}: {runs[0].get('preset')}" for m, runs
                                               in scenario.records.items()}))}
        rows.append(f"<h3>{_e(name)}</h3>" + _kv(values))
    for name, q in study.quality.items():
        r = q.record
        values = {"dataset": r["dataset"], "architecture": r["arch"], "forget": r["forget"],
                  "models per side": r["models"], "seed": r["seed"], "quick mode": r["quick"],
                  "recipe": json.dumps(r["recipe"]), "data checksum": r["data_checksum"],
                  "split hash": r["split_hash"], "versions": json.dumps(r["versions"]),
                  "parameters": json.dumps(r.get("params"))}
        rows.append(f"<h3>{_e(name)}</h3>" + _kv(values))
    return f'<section id="configuration"><h2>Configuration</h2>{"".join(rows)}</section>'


def _kv(values: dict) -> str:
    body = "".join(f'<tr><th class="text">{_e(k)}</th><td>{_e(v)}</td></tr>'
                   for k, v in values.items())
    return f'<div class="table-wrap kv"><table><tbody>{body}</tbody></table></div>'


# -------------------------------------------------------------------------------- page

def _asset(name: str) -> str:
    return resources.files("unlearnlab.report").joinpath(name).read_text(encoding="utf-8")


def render(study: Study, data_dir=None, images_shown: bool = True,
           target: Path | None = None) -> str:
    """The report page of ``study`` as one HTML string (see the module docstring);
    ``target``: where it will be written (links to the records are relative to it when it
    lies inside the study folder)."""
    from plotly.offline import get_plotlyjs

    page = _Page()
    link_base = None
    if target is not None:
        parent = Path(target).resolve().parent
        if parent == study.folder.resolve() or study.folder.resolve() in parent.parents:
            link_base = parent
    sections = []
    if study.kind == "forget-quality":
        first = next(iter(study.quality.values())).record
        title = (f"forget quality · {first['dataset']} · forget {first['forget']} · "
                 f"{first['models']} models per side")
        body = quality_section("Forget quality", study.quality, page, link_base, study.folder)
        sections.append(f'<section id="forget-quality"><h2>Forget quality</h2>{body}</section>')
    else:
        seeds = max(s.seeds for s in study.scenarios.values())
        if study.kind == "bench":
            title = (f"bench · {len(study.scenarios)} scenarios · {len(study.board)} methods · "
                     f"{seeds} seeds")
        else:
            title = f"compare · {next(iter(study.scenarios))} · {seeds} seeds"
        sections.append(leaderboard_section(study))
        sections.append(overview_section(study, page))
        quality = "".join(quality_section(name, s.quality, page, link_base, study.folder)
                          for name, s in study.scenarios.items())
        if quality:
            sections.append(f'<section id="forget-quality"><h2>Forget quality</h2>{quality}'
                            "</section>")
        cache: dict = {}
        details = "".join(method_section(study, m, page, data_dir, images_shown, cache,
                                         link_base) for m in study.board.index)
        with_samples = any(s.samples for s in study.scenarios.values())
        note = ("" if with_samples else " This folder keeps no per-sample outputs (written "
                "by compare since the report exists), so the loss-MIA histograms and the "
                "forget-sample grids are absent.")
        sections.append(f'<section id="methods"><h2>Methods</h2><p class="legend">Per method '
                        f"and scenario: accuracy against the retrained ensemble's spread, "
                        f"test confusion and its difference to retraining, per-class "
                        f"accuracy.{_e(note)}</p>{details}</section>")
    sections.append(config_section(study))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_asset('page.css')}</style>"
            f"<script>{get_plotlyjs()}</script></head><body><main>"
            f"<h1>unlearnlab report: {_e(title)}</h1>"
            f"<p class=\"note\">Written by unlearnlab {_e(__version__)} from "
            f"<code>{_e(study.folder.name)}</code>; self-contained, opens offline.</p>"
            f"{''.join(sections)}</main>{''.join(page.blocks)}"
            f"<script>{_asset('page.js')}</script></body></html>\n")
