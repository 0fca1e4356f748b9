"""The figure sets of ``assets/`` (``unlearnlab.figures.assets``) and ``unlearnlab figures``:
the thesis set on a tiny synthetic comparison, the class-forgetting run's configuration and
the command's one-line errors. Seconds, CPU, no data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from test_figures_ensemble import make_comparison  # noqa: E402

import specific_sample_unlearning  # noqa: E402
from unlearnlab import cli  # noqa: E402
from unlearnlab.figures import assets  # noqa: E402


def test_thesis_figures_pick_the_method_closest_to_retrained(tmp_path):
    cmp = make_comparison(methods=("gradient_ascent", "gemu", "gefeu"), seeds=2)
    retrained = cmp.rows["model"] == "retrained"
    for column in ("forget_test_acc", "retain_test_acc"):
        cmp.rows.loc[cmp.rows["model"] == "gefeu", column] = cmp.rows.loc[retrained,
                                                                          column].to_numpy()
        cmp.rows.loc[cmp.rows["model"] == "gradient_ascent", column] = cmp.rows.loc[
            retrained, column].to_numpy()  # closer still, but not a candidate
    assert assets.best_method(cmp) == "gefeu"
    stale = tmp_path / "thesis_mnist_confusion_gemu.png"
    stale.write_bytes(b"old")
    paths, best = assets.write_thesis_figures("mnist", cmp, tmp_path)
    assert best == "gefeu"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths) == [
        "thesis_mnist_accuracy.png", "thesis_mnist_confusion_gefeu.png", "thesis_mnist_kl.png"]
    section = assets.thesis_section("mnist", "mnist · 2 seeds", cmp, paths, best)
    assert section[0] == "## mnist" and "![thesis_mnist_kl](thesis_mnist_kl.png)" in section[-2]
    text = assets.thesis_markdown(section, quick=True, seeds=2, methods=["gemu"])
    assert "`unlearnlab figures thesis`: quick mode" in text and text.endswith("\n".join(section))


def test_class_forgetting_is_the_notebooks_run(monkeypatch):
    """The command draws the run ``specific_sample_unlearning.class_forgetting`` makes with its
    defaults: the same configuration, so the same cached models and numbers."""
    seen = []
    monkeypatch.setattr(specific_sample_unlearning, "run", seen.append)
    specific_sample_unlearning.class_forgetting(quick=True, data_dir="somewhere")
    assert seen == [assets.class_forgetting_config(quick=True, data_dir="somewhere")]


@pytest.mark.parametrize("argv, message", [
    (["figures"], "required: kind"),
    (["figures", "thesis", "--seeds", "0"], "need --seeds >= 1"),
    (["figures", "thesis", "--datasets", "mnist,svhn"], "(got svhn)"),
    (["figures", "bench"], "required: dir"),
])
def test_bad_options_are_one_line_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
