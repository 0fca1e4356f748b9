"""The ensemble figures (``unlearnlab.figures.ensemble``, ``weights`` and the ``Comparison``
figures of ``unlearnlab.figures.comparison``) on a tiny synthetic comparison: each returns a
Figure with the expected axes, labels and drawn values, and writes a file only when asked.
Seconds, CPU, no data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from unlearnlab.compare import FLAGS, Comparison, flag  # noqa: E402
from unlearnlab.figures import comparison, ensemble, run, style, weights  # noqa: E402

SEEDS = 3
METHOD = "gemu"
MODELS = ("untrained", "original", "retrained", METHOD)
SUBSETS = ("forget", "class_rest", "other_classes", "all")


def _tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 10))


def _row(model: str, seed: int, rng: np.random.Generator) -> dict:
    """Metrics of the shape ``evaluation.evaluate`` gives for feature forgetting."""
    level = {"untrained": 0.1, "original": 0.9, "retrained": 0.85}.get(model, 0.8)
    row = {"model": model, "seed": seed}
    for split in ("train", "test"):
        row[f"{split}_acc"] = level + 0.01 * rng.standard_normal()
        row[f"retain_{split}_acc"] = level + 0.01 * rng.standard_normal()
        for subset in SUBSETS:
            row[f"{subset}_{split}_acc"] = level + 0.01 * rng.standard_normal()
            row[f"{subset}_{split}_loss"] = (2.3 if model == "untrained" else 0.3) + rng.random()
    row["test_loss"] = row["all_test_loss"]
    return row


def _confusion(rng: np.random.Generator) -> list[list[int]]:
    return (np.eye(10, dtype=int) * 90 + rng.integers(0, 3, (10, 10))).tolist()


def make_comparison(methods=(METHOD,), seeds: int = SEEDS) -> Comparison:
    """A ``Comparison`` with the structure of ``compare.compare``: rows per (model, seed),
    one record per (method, seed), a KL matrix per seed, models and training histories."""
    rng = np.random.default_rng(0)
    names = ["untrained", "original", "retrained", *methods]
    rows, records, kl, models, histories = [], [], {}, {}, {}
    for seed in range(seeds):
        rows += [_row(name, seed, rng) for name in names]
        trained = _tiny_model(seed)
        models[seed] = {"untrained": _tiny_model(seed), "original": trained}
        for name in names[2:]:
            model = _tiny_model(seed)
            model.load_state_dict(trained.state_dict())
            with torch.no_grad():
                model[1].weight.add_(0.1 * torch.randn_like(model[1].weight))
                if name == "retrained":
                    model[3].weight.add_(0.1 * torch.randn_like(model[3].weight))
                else:
                    model[3].bias.zero_()  # leaves fc2.weight unchanged: a zero distance
                    model[3].weight.copy_(trained[3].weight)
            models[seed][name] = model
        for name in methods:
            evaluations = {role: {"confusion_test": _confusion(rng)}
                           for role in ("original", "retrained", "unlearned")}
            records.append({"dataset": "mnist", "forget": "rest:mnist_sevens_with_crossbar",
                            "method": name, "seed": seed, "models": evaluations})
        matrix = rng.random((len(names), len(names))) * 3
        np.fill_diagonal(matrix, 0.0)
        kl[seed] = (names, matrix)
        histories[seed] = {role: [{"epoch": e, "loss": 1.0 / e + 0.1 * seed, "acc": 0.5 + 0.1 * e,
                                   "test_loss": 1.2 / e, "test_acc": 0.45 + 0.1 * e + 0.01 * seed}
                                  for e in (1, 2, 3)] for role in ("original", "retrained")}
    return Comparison(flag(pd.DataFrame(rows)), records, kl, models, histories)


@pytest.fixture(scope="module")
def cmp() -> Comparison:
    return make_comparison()


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _ticklabels(ax, axis: str = "x") -> list[str]:
    getter = ax.get_xticklabels if axis == "x" else ax.get_yticklabels
    return [t.get_text() for t in getter()]


# --- box plots --------------------------------------------------------------------------------

def test_accuracy_boxes_have_one_panel_per_split_and_all_subsets(cmp):
    fig = comparison.ensemble_accuracy_boxes(cmp, split="both")
    assert isinstance(fig, Figure)
    train_ax, test_ax = fig.axes
    assert "train split" in train_ax.get_title() and "test split" in test_ax.get_title()
    assert f"{SEEDS} seeds per box" in test_ax.get_title()
    assert _ticklabels(test_ax) == ["all", "retain", "forget", "rest of class", "other classes"]
    assert test_ax.get_ylabel() == "test accuracy (%)"
    legend = [t.get_text() for t in train_ax.get_legend().get_texts()]
    assert legend == [ensemble.UNTRAINED_LABEL, *MODELS[1:]]
    assert test_ax.get_legend() is None  # one legend for both panels


def test_accuracy_boxes_of_one_split(cmp):
    fig = comparison.ensemble_accuracy_boxes(cmp, split="test")
    assert len(fig.axes) == 1
    assert "test split" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="split"):
        comparison.ensemble_accuracy_boxes(cmp, split="validation")


def test_accuracy_boxes_are_in_percent_and_show_every_seed(cmp):
    """Every seed of every trained model is a dot; the untrained model is a dashed line at its
    mean (or a note at the axis's foot), so the axis spans only the boxes' values."""
    ax = ensemble.plot_subset_boxes(cmp.rows, "test").axes[0]
    dots = np.concatenate([np.ma.getdata(c.get_offsets())[:, 1] for c in ax.collections
                           if isinstance(c, PathCollection) and len(c.get_offsets())])
    trained = cmp.rows[cmp.rows["model"] != "untrained"]
    expected = 100 * trained[["test_acc", "retain_test_acc", "forget_test_acc",
                              "class_rest_test_acc", "other_classes_test_acc"]].to_numpy()
    assert len(dots) == expected.size == 5 * (len(MODELS) - 1) * SEEDS
    assert np.sort(dots) == pytest.approx(np.sort(expected.ravel()))
    low, high = ax.get_ylim()
    assert low <= expected.min() and high >= expected.max()
    assert -3 <= low and high <= 103


def test_untrained_accuracy_does_not_flatten_the_boxes():
    """An untrained model at chance and trained models between 95 and 99 %: the axis keeps to
    the trained models' range and the untrained mean is written at its foot."""
    rows = pd.DataFrame([{"model": model, "seed": seed, "test_acc": acc + seed / 1000}
                         for seed in range(3)
                         for model, acc in (("untrained", 0.10), ("original", 0.99),
                                            ("retrained", 0.95))])
    ax = ensemble.plot_subset_boxes(rows, "test").axes[0]
    low, high = ax.get_ylim()
    assert 85 < low < 95 and high < 102
    assert "untrained: 10 % ↓" in [t.get_text() for t in ax.texts]


def test_class_forgetting_rows_draw_only_their_subsets():
    rows = pd.DataFrame([{"model": m, "seed": s, "test_acc": 0.9, "retain_test_acc": 0.95,
                          "forget_test_acc": 0.0, "test_loss": 0.3}
                         for m in ("original", "retrained") for s in range(2)])
    ax = ensemble.plot_subset_boxes(rows, "test").axes[0]
    assert _ticklabels(ax) == ["all", "retain", "forget"]
    assert _ticklabels(ensemble.plot_subset_boxes(rows, "test", "loss").axes[0]) == ["all"]
    with pytest.raises(ValueError, match="no train acc"):
        ensemble.plot_subset_boxes(rows, "train")


def test_loss_boxes_have_no_fixed_unit_range(cmp):
    fig = comparison.ensemble_loss_boxes(cmp, split="both")
    for ax in fig.axes:
        assert "mean cross-entropy" in ax.get_ylabel()
        assert ax.get_yscale() == "linear"
        assert ax.get_ylim()[1] > 2.3  # the untrained losses (about ln 10) are inside
    assert _ticklabels(fig.axes[1]) == ["all", "forget", "rest of class", "other classes"]


def test_loss_boxes_switch_to_log_when_losses_span_decades(cmp):
    rows = cmp.rows.copy()
    rows.loc[rows["model"] == METHOD, "forget_test_loss"] = 500.0
    ax = ensemble.plot_subset_boxes(rows, "test", "loss").axes[0]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    assert ensemble.plot_subset_boxes(rows, "test", "loss", log=False).axes[0].get_yscale() \
        == "linear"


def test_preset_boxes_show_both_variants(cmp):
    other = make_comparison()
    fig = comparison.preset_accuracy_boxes(cmp, other)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [ensemble.UNTRAINED_LABEL, *MODELS[1:], f"{METHOD} (thesis preset)"]
    palette = style.ensemble_palette([*MODELS, f"{METHOD} (thesis preset)"])
    assert palette[f"{METHOD} (thesis preset)"] != palette[METHOD]


# --- training curves --------------------------------------------------------------------------

def test_training_curves_show_mean_and_std_band(cmp):
    fig = comparison.ensemble_training_curves(cmp)
    acc_ax, loss_ax = fig.axes
    assert acc_ax.get_ylabel() == "accuracy (%)" and loss_ax.get_ylabel() == "mean cross-entropy"
    assert acc_ax.get_xlabel() == loss_ax.get_xlabel() == "epoch"
    test_line = next(line for line in acc_ax.lines
                     if line.get_label().startswith("original: test"))
    per_seed = [[100 * h["test_acc"] for h in cmp.histories[s]["original"]] for s in range(SEEDS)]
    assert list(test_line.get_xdata()) == [1, 2, 3]
    assert test_line.get_ydata() == pytest.approx(np.mean(per_seed, axis=0))
    bands = [c for c in acc_ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # trained / retrained x test / train
    assert loss_ax.get_ylim()[1] > 1.0  # losses, not clipped to 0-1
    assert len(fig.legends) == 1


# --- KL ---------------------------------------------------------------------------------------

def test_kl_heatmap_is_labelled_and_annotated_with_the_mean(cmp):
    fig = comparison.kl_heatmap(cmp)
    ax = fig.axes[0]
    names = cmp.kl[0][0]
    assert "KL(P_row ‖ P_col)" in ax.get_title() and "forget training set" in ax.get_title()
    assert _ticklabels(ax, "x") == _ticklabels(ax, "y") == names
    assert "row model" in ax.get_ylabel() and "column model" in ax.get_xlabel()
    mean = np.mean([m for _, m in cmp.kl.values()], axis=0)
    texts = [t.get_text() for t in ax.texts]
    assert texts[1].startswith(f"{mean[0, 1]:.2f}\n± ")  # row 0, column 1
    assert fig.axes[1].get_ylabel() == "mean KL divergence (nats)"  # the colour bar


def test_kl_heatmap_rejects_a_matrix_of_the_wrong_shape():
    with pytest.raises(ValueError, match="3x3"):
        ensemble.plot_kl_heatmap(["a", "b", "c"], np.zeros((2, 2)))


# --- weights and distances --------------------------------------------------------------------

def test_weight_change_heatmap_has_out_rows_and_in_columns(cmp):
    fig = comparison.weight_change_heatmap(cmp, seed=1)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["retrained − original", f"{METHOD} − original"]
    for ax in panels:
        assert ax.images[0].get_array().shape == (8, 16)  # Linear(16 -> 8): [out, in]
        assert ax.get_ylabel() == "output unit (row of 1.weight)"
        assert ax.get_xlabel() == "input feature (column of 1.weight)"
    change = np.abs((cmp.models[1]["retrained"][1].weight
                     - cmp.models[1]["original"][1].weight).detach().numpy())
    np.testing.assert_allclose(np.ma.getdata(panels[0].images[0].get_array()), change,
                               rtol=1e-6)
    assert "seed 1" in fig.get_suptitle()


def test_weight_change_of_a_frozen_layer_says_unchanged(cmp):
    fig = comparison.weight_change_heatmap(cmp, layer="3")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["retrained − original", f"{METHOD} − original (unchanged)"]


def test_weight_change_flattens_a_convolution():
    fig = weights.plot_weight_change({"a": np.ones((4, 2, 3, 3))}, layer="conv1.weight")
    assert fig.axes[0].images[0].get_array().shape == (4, 18)
    assert "kernel position" in fig.axes[0].get_xlabel()


def test_layer_distance_bars_are_on_a_log_axis(cmp):
    fig = comparison.layer_distance_bars(cmp)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert _ticklabels(ax, "y") == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["retrained", METHOD]
    assert "0 (unchanged)" in [t.get_text() for t in ax.texts]  # the method's 3.weight
    assert f"mean over {SEEDS} seeds" in ax.get_title()


# --- confusion matrices -----------------------------------------------------------------------

def test_confusion_vs_retrained_has_three_matrices_and_the_difference(cmp):
    fig = comparison.confusion_vs_retrained(cmp, METHOD)
    titles = [t for t in _titles(fig) if t]
    assert titles == ["original", "retrained", METHOD, f"{METHOD} − retrained"]
    diff_ax = next(ax for ax in fig.axes if ax.get_title() == f"{METHOD} − retrained")
    mesh = diff_ax.collections[0]
    low, high = mesh.get_clim()
    assert low == pytest.approx(-high)  # diverging scale centred at 0
    records = [r for r in cmp.records if r["method"] == METHOD]
    expected = (np.mean([r["models"]["unlearned"]["confusion_test"] for r in records], axis=0)
                - np.mean([r["models"]["retrained"]["confusion_test"] for r in records], axis=0))
    assert np.asarray(mesh.get_array()).reshape(10, 10) == pytest.approx(expected)
    assert _ticklabels(diff_ax) == [str(d) for d in range(10)]
    assert f"over {SEEDS} seeds" in fig.get_suptitle()


def test_confusion_vs_retrained_needs_the_method(cmp):
    with pytest.raises(ValueError, match="no records of method 'gefeu'"):
        comparison.confusion_vs_retrained(cmp, "gefeu")


def test_confusion_matrix_takes_mean_counts():
    ax = run.plot_confusion_matrix(np.full((3, 3), 2.5)).axes[0]
    assert ax.texts[0].get_text() == "2"  # rounded half to even, no format error


# --- files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda c, p: comparison.ensemble_accuracy_boxes(c, save=p),
    lambda c, p: comparison.ensemble_loss_boxes(c, save=p),
    lambda c, p: comparison.ensemble_training_curves(c, save=p),
    lambda c, p: comparison.kl_heatmap(c, save=p),
    lambda c, p: comparison.weight_change_heatmap(c, save=p),
    lambda c, p: comparison.layer_distance_bars(c, save=p),
    lambda c, p: comparison.confusion_vs_retrained(c, METHOD, save=p),
], ids=["accuracy", "loss", "curves", "kl", "weights", "layers", "confusion"])
def test_save_writes_the_file_atomically(cmp, tmp_path, make):
    path = tmp_path / "figs" / "figure.png"
    assert isinstance(make(cmp, path), Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]  # no temporary left


def test_nothing_is_written_without_save(cmp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    comparison.kl_heatmap(cmp)
    assert not list(tmp_path.iterdir())


def test_a_diverged_run_is_left_out_of_every_figure():
    """``compare`` keeps a diverged run as a row without metrics, a record without an
    unlearned evaluation, NaN in its KL row and column, and no model."""
    cmp = make_comparison()
    metrics = [c for c in cmp.rows if c not in ("model", "seed", *FLAGS)]
    row = (cmp.rows["model"] == METHOD) & (cmp.rows["seed"] == 0)
    cmp.rows.loc[row, metrics] = np.nan
    cmp.rows["diverged"] = row
    next(r for r in cmp.records if r["seed"] == 0)["models"]["unlearned"] = None
    names, matrix = cmp.kl[0]
    matrix[names.index(METHOD), :] = matrix[:, names.index(METHOD)] = np.nan
    del cmp.models[0][METHOD]

    boxes = comparison.ensemble_accuracy_boxes(cmp).axes[0]
    assert f"{SEEDS - 1}-{SEEDS} seeds per box" in boxes.get_title()
    kl = comparison.kl_heatmap(cmp).axes[0]
    assert "1 with a diverged run left out" in kl.get_title()
    assert not any("nan" in t.get_text() for t in kl.texts)
    confusion = comparison.confusion_vs_retrained(cmp, METHOD)
    assert f"over {SEEDS - 1} seeds" in confusion.get_suptitle()
    weight_change = comparison.weight_change_heatmap(cmp, seed=0)
    assert [ax.get_title() for ax in weight_change.axes if ax.images] == ["retrained − original"]
    layers = comparison.layer_distance_bars(cmp).axes[0]
    assert [t.get_text() for t in layers.get_legend().get_texts()] == ["retrained", METHOD]

    for record in cmp.records:
        record["models"]["unlearned"] = None
    with pytest.raises(ValueError, match="every run of method 'gemu' diverged"):
        comparison.confusion_vs_retrained(cmp, METHOD)
