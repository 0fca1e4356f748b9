"""The report in a real browser: Debian's chromium driven by Playwright (never Playwright's own
browser download). One quick bench (gradient ascent on MNIST class 6 and random 10 %, two
seeds, forget quality with 2 models per side) gives all three kinds of report: the bench, one
scenario's compare folder and the forget-quality bundles. ``make test`` installs chromium
(``make chromium``); without it these tests skip, and fail under ``$CI``. Screenshots go to
``test-artifacts/`` (git-ignored)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, link_real_data, skip_or_fail

from unlearnlab.bench import bench
from unlearnlab.cli import main
from unlearnlab.config import RunConfig

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts"
SCENARIOS = (("mnist", "class:6", "mlp"), ("mnist", "random:0.1", "mlp"))


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="playwright is in requirements.txt")
    executable = shutil.which("chromium")
    if executable is None:
        skip_or_fail("chromium not found: `make chromium` installs Debian's package (needs root)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def reports(real_data, tmp_path_factory) -> dict[str, Path]:
    """The three reports of one quick bench: {"bench", "compare", "forget-quality": path}."""
    tmp = tmp_path_factory.mktemp("report-browser")
    root = link_real_data(real_data, tmp / "data")
    out = tmp / "bench"
    cfg = RunConfig(quick=True, data_dir=str(root))
    bench(cfg, ["gradient_ascent"], seeds=2, out=out, scenarios=SCENARIOS,
          forget_quality_models=2)
    assert main(["report", str(out), "--data-dir", str(root)]) == 0
    assert main(["report", str(out / "mnist-six"), "--data-dir", str(root)]) == 0
    quality = out / "mnist-random-10" / "forget_quality"
    assert main(["report", str(quality), "--data-dir", str(root)]) == 0
    return {"bench": out / "report.html", "compare": out / "mnist-six" / "report.html",
            "forget-quality": quality / "report.html"}


def _open(browser, path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def _rendered(page, scope: str = "") -> None:
    """Wait until every figure of the open sections has its Plotly svg."""
    page.wait_for_function(
        "s => { const f = [...document.querySelectorAll(s + ' .figure[data-rendered]')];"
        " return f.length > 0 && f.every(d => d.classList.contains('js-plotly-plot')"
        " && d.querySelector('.main-svg')); }", arg=scope)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.mark.parametrize("kind", ["bench", "compare"])
def test_leaderboard_sorts_and_a_method_opens_its_rendered_detail(browser, reports, kind):
    page, errors = _open(browser, reports[kind], 1280)
    visible = page.locator(".figure").count() - page.locator("details .figure").count()
    if visible:
        _rendered(page)
    assert page.locator(".js-plotly-plot").count() == visible  # closed sections wait
    _shot(page, f"report_{kind}_leaderboard")
    table = page.locator("#leaderboard table")
    header = table.locator("th", has_text="speed-up")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    column = _column(table, "speed-up")
    values = [float(v) for v in column]
    assert values == sorted(values)
    header.click()
    assert [float(v) for v in _column(table, "speed-up")] == sorted(values, reverse=True)
    link = table.locator("a.method-link", has_text="gradient_ascent")
    link.click()
    detail = page.locator("#method-gradient_ascent")
    assert detail.get_attribute("open") is not None
    _rendered(page, "#method-gradient_ascent")
    expected = detail.locator(".figure").count()
    assert expected >= 3  # accuracy, confusion and loss-MIA figures at least
    assert detail.locator(".js-plotly-plot").count() == expected
    assert detail.locator(".card img").count() > 0  # the forget-sample grids
    _shot(page, f"report_{kind}_detail")
    assert errors == []
    page.close()


def _column(table, heading: str) -> list[str]:
    headings = [t.strip(" ↕▲▼") for t in table.locator("thead th").all_inner_texts()]
    index = next(i for i, h in enumerate(headings) if h.startswith(heading)) + 1
    return table.locator(f"tbody tr td:nth-child({index})").all_inner_texts()


def test_forget_quality_report_renders_its_figure(browser, reports):
    page, errors = _open(browser, reports["forget-quality"], 1280)
    _rendered(page)
    assert page.locator(".js-plotly-plot").count() == page.locator(".figure").count() == 1
    rows = page.locator("#forget-quality tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["retrain", "original", "gradient_ascent"]
    _shot(page, "report_forget_quality")
    assert errors == []
    page.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_page_fits_the_width_and_the_table_scrolls_inside(browser, reports, width):
    page, errors = _open(browser, reports["bench"], width)
    page.locator("a.method-link").first.click()
    _rendered(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wrap = page.locator("#leaderboard .table-wrap")
    inner, outer = wrap.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert outer <= width and (inner > outer or width > 390)  # scrolls inside its container
    _shot(page, f"report_bench_{width}px")
    assert errors == []
    page.close()
