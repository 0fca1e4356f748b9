"""The figures of one run (``unlearnlab.figures.run`` and ``weights``) and the shared role
vocabulary (``style``) on small synthetic values: each returns a Figure with the expected
panels, labels and drawn values. Seconds, CPU, no data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from unlearnlab.compare import BASELINES  # noqa: E402
from unlearnlab.figures import run, style, weights  # noqa: E402
from unlearnlab.metrics import ALL_ROLES  # noqa: E402

HISTORY = [{"epoch": e, "loss": 1.0 / e, "acc": 0.5 + 0.1 * e, "test_loss": 1.2 / e,
            "test_acc": 0.45 + 0.1 * e} for e in (1, 2, 3)]
UNLEARN = [{"epoch": e, "loss": 0.5 / e, "acc": 0.6 + 0.1 * e} for e in (1, 2)]


def test_every_role_has_one_colour_from_the_record_and_baseline_names():
    assert set(style.ROLE_COLORS) == set(BASELINES) | set(ALL_ROLES)
    assert list(style.ROLE_COLORS) == [style.UNTRAINED, style.ORIGINAL, style.RETRAINED,
                                       style.UNLEARNED]
    assert list(style.RUN_TITLES) == [style.ORIGINAL, style.UNLEARNED, style.RETRAINED]
    palette = style.ensemble_palette([*BASELINES, "gemu", "gemu (thesis preset)", "other"])
    assert palette["gemu (thesis preset)"] == style.lighter(style.METHOD_COLORS["gemu"])
    assert palette["other"] == style.EXTRA_COLORS[0]


def test_phase_curves_put_unlearning_after_training():
    ax = run.plot_accuracy(HISTORY, UNLEARN, final_test=0.7).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "train 1", "train 2", "train 3", "unlearn 1", "unlearn 2"]
    unlearning = next(line for line in ax.lines if line.get_label() == run.UNLEARN_LABEL)
    assert list(unlearning.get_xdata()) == [4, 5]
    assert unlearning.get_ydata() == pytest.approx([70.0, 80.0])  # percent
    with pytest.raises(ValueError, match="metric must be"):
        run.plot_phase_curves(HISTORY, UNLEARN, "f1")


def test_curves_side_by_side_share_one_legend():
    fig = run.plot_curves(HISTORY, UNLEARN, final_test_acc=0.7, final_test_loss=0.4)
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy (%)", "mean cross-entropy loss"]
    assert len(fig.legends) == 1


def test_confusion_matrices_share_one_scale_and_one_colour_bar():
    matrices = {"a": np.eye(3, dtype=int) * 5, "b": np.eye(3, dtype=int) * 9}
    fig = run.plot_confusion_matrices(matrices, labels=["x", "y", "z"])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    assert all(ax.collections[0].get_clim() == (0, 9) for ax in panels)
    assert len(fig.axes) == 3


def test_per_class_bars_highlight_the_forgotten_class():
    per_class = {role: [0.9, 0.8, None if role == style.UNLEARNED else 0.7]
                 for role in style.RUN_TITLES}
    ax = run.plot_per_class_accuracy(per_class, highlight=1).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "forgotten class", *style.RUN_TITLES]
    assert [t.get_text() for t in ax.texts] == ["80.0"] * 3
    counts = {role: [3, 0, 1] for role in style.RUN_TITLES}
    ax = run.plot_forget_predictions(counts, highlight=0).axes[0]
    assert ax.get_ylabel() == "number of forgotten test samples"


def test_pca_is_fitted_on_the_first_entry():
    rng = np.random.default_rng(0)
    features = {"before": rng.standard_normal((40, 6)), "after": rng.standard_normal((40, 6))}
    fig = run.plot_pca(features, np.arange(40) % 4, highlight=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert "PCA fitted here" in titles[0] and titles[1] == "after"
    assert "2 (forgotten)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_weight_heatmaps_share_a_scale_per_colour_bar_label(tmp_path):
    """Before and after (label "weight") share one scale, the change keeps its own."""
    path = tmp_path / "w.png"
    fig = weights.plot_weight_heatmaps({"before": np.ones((3, 4)), "after": 3 * np.ones((3, 4)),
                                        "Δ": -2 * np.ones((3, 4))},
                                       cbar_labels=["weight", "weight", "change"], path=path)
    assert isinstance(fig, Figure) and path.read_bytes()[:4] == b"\x89PNG"
    meshes = [ax.collections[0] for ax in fig.axes if ax.get_title()]
    assert [m.get_clim() for m in meshes] == [(-3.0, 3.0), (-3.0, 3.0), (-2.0, 2.0)]
    with pytest.raises(ValueError, match="2-D matrix"):
        weights.plot_weight_heatmap(np.ones(3))
