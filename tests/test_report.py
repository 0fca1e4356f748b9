"""The report builder (``unlearnlab report``): what kind of folder it takes, which sections a
folder's data give, and a self-contained page. Built from one quick real comparison (MNIST
class 6, the MLP, two seeds); the page in a real browser: tests/test_report_browser.py."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from conftest import link_real_data

from unlearnlab.cli import main
from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.report import samples
from unlearnlab.report.build import write_report
from unlearnlab.report.study import detect

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quick_compare(real_data, tmp_path_factory):
    """{"out": a compare folder (gradient_ascent, 2 seeds, quick), "root": its data root}."""
    tmp = tmp_path_factory.mktemp("report")
    root = link_real_data(real_data, tmp / "data")
    cfg = RunConfig(dataset="mnist", forget="class:6", arch="mlp", quick=True,
                    data_dir=str(root), method="gradient_ascent")
    compare(cfg, ["gradient_ascent"], seeds=2, out=tmp / "cmp")
    return {"out": tmp / "cmp", "root": root}


def test_compare_keeps_seed0_per_sample_outputs_as_float16(quick_compare):
    folder = quick_compare["out"] / samples.FOLDER
    assert sorted(p.name for p in folder.iterdir()) == ["baselines.npz", "gradient_ascent.npz"]
    with np.load(folder / "gradient_ascent.npz") as data:
        assert {data[k].dtype for k in data.files} == {np.dtype(np.float16)}
    loaded = samples.load(quick_compare["out"], "gradient_ascent")
    assert set(loaded.logits) == {"original", "retrained", "unlearned"}
    split, rows = loaded.rows["forget_train"]
    assert split == "train" and len(rows) == len(loaded.logits["unlearned"]["forget_train"])


def test_compare_report_has_every_section_and_is_self_contained(quick_compare, tmp_path):
    out = tmp_path / "cmp"
    shutil.copytree(quick_compare["out"], out)
    page = write_report(out, quick_compare["root"]).read_text()
    assert detect(out) == "compare"
    for section in ('id="leaderboard"', 'id="methods"', 'id="configuration"',
                    'id="method-gradient_ascent"', "forget samples (seed 0)"):
        assert section in page
    assert 'id="overview"' not in page and 'id="forget-quality"' not in page  # a bench's only
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page
    assert page.count("Plotly.newPlot") == 1 and page.count("window.PlotlyConfig") <= 1
    # accuracy, confusion and loss-MIA figures of the one method
    assert len(re.findall(r'class="figure"', page)) == 3
    assert 'href="gradient_ascent_seed0.json"' in page
    assert '<div class="card"><img alt="forget sample' in page
    assert re.search(r"under-forgetting \(\d of 2 seeds\)|flags: none", page)


def test_without_per_sample_files_their_sections_are_absent(quick_compare, tmp_path):
    out = tmp_path / "cmp"
    shutil.copytree(quick_compare["out"], out)
    shutil.rmtree(out / samples.FOLDER)
    page = write_report(out, tmp_path / "no-data-root").read_text()  # needs no data root
    assert "forget samples (seed 0)" not in page and '<div class="card">' not in page
    assert len(re.findall(r'class="figure"', page)) == 2
    assert "keeps no per-sample outputs" in page


def test_images_need_the_data_the_study_ran_on(quick_compare, tmp_path):
    with pytest.raises(ConfigError, match="data root .* does not exist"):
        write_report(quick_compare["out"], tmp_path / "missing", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    page = write_report(quick_compare["out"], tmp_path / "missing", tmp_path / "r.html",
                        images_shown=False).read_text()
    assert '<div class="card">' not in page
    # written outside the study folder: record paths as text, never as broken links
    assert 'href="gradient_ascent_seed0.json"' not in page
    assert "<code>gradient_ascent_seed0.json</code>" in page


def test_a_folder_that_is_no_lab_output_is_one_line_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="is not a lab output; expected a compare folder"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a folder" in err
