"""The forget-quality figures (``unlearnlab.figures.forget_quality``) and ``unlearnlab figures
forget-quality`` on small synthetic bundles written by ``ensemble.write_bundle``: no training,
seconds on CPU."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle, StepPatch  # noqa: E402

from unlearnlab import cli, ensemble, forget_quality  # noqa: E402
from unlearnlab.errors import BundleError, ConfigError  # noqa: E402
from unlearnlab.figures.forget_quality import (  # noqa: E402
    bucket_counts,
    load_studies,
    plot_epsilon_histograms,
    plot_forget_quality_bars,
)

N = 8          # models per side: buckets [0, 0.5) ... [1.5, 2), eps >= 2 scores 0
SAMPLES = 300
# eps on the bucket edges, where a histogram that closes its last bin would miscount
EDGES = np.array([0.0, 0.4999, 0.5, 1.0, 1.4999, 1.5, 1.9999, 2.0, 2.5, 50.0])
# the spread of each study's eps: references near 1, methods higher
LEVELS = {"retrain": 0.9, "original": 1.2, "finetune": 1.6, "ssd": 2.4, "scrub": 1.4}


def epsilons(method: str, samples: int = SAMPLES) -> np.ndarray:
    rng = np.random.default_rng(sorted(LEVELS).index(method) if method in LEVELS else 99)
    eps = np.abs(rng.normal(LEVELS.get(method, 1.0), 0.6, samples))
    eps[:EDGES.size] = EDGES
    eps[-5:] = forget_quality.EPSILON_CAP  # perfect splits
    return eps


def retrained_confidence(samples: int = SAMPLES, seed: int = 0, n: int = N) -> np.ndarray:
    return np.random.default_rng(1000 + seed).normal(5.0, 1.0, (n, samples))


def make_bundle(folder, method: str, *, n: int = N, samples: int = SAMPLES, eps=None,
                retrained=None, **record) -> object:
    """A forget-quality bundle as ``unlearnlab forget-quality`` writes it, from synthetic
    arrays; ``record`` overrides record keys."""
    eps = epsilons(method, samples) if eps is None else eps
    quality = record.pop("forget_quality", None)
    quality = forget_quality.forget_quality(eps, n) if quality is None else quality
    side = {"retain_acc_mean": 0.99, "test_acc_mean": 0.98, "forget_acc_mean": 0.98,
            "retain_acc_std": 0.001, "test_acc_std": 0.001, "forget_acc_std": 0.001,
            "seconds": 1.0}
    full = {"dataset": "mnist", "arch": "mlp", "forget": "random:0.1", "method": method,
            "params": None, "preset": None if method in ensemble.REFERENCES else "default",
            "seed": 0, "quick": False, "models": n, "forget_quality": quality,
            "final_score": 0.99 * quality, "forget_samples": samples,
            "sides": {"unlearned": side, "retrained": side},
            "epsilon_median": float(np.median(eps)), "seconds_total": 2.0,
            "arrays": {"epsilons": eps,
                       "unlearned_confidence": np.zeros((n, samples)),
                       "retrained_confidence": retrained_confidence(samples, n=n)
                       if retrained is None else retrained}}
    full.update(record)
    ensemble.write_bundle(folder, full)
    return folder


@pytest.fixture
def study_dirs(tmp_path):
    return [make_bundle(tmp_path / name, name)
            for name in ("retrain", "finetune", "original", "ssd", "scrub")]


def _bars(ax) -> np.ndarray:
    return np.array([p.get_height() for p in ax.patches
                     if isinstance(p, Rectangle) and not isinstance(p, StepPatch)])


# --- the buckets ------------------------------------------------------------------------------

def test_bucket_counts_are_the_buckets_of_f():
    eps = epsilons("finetune")
    counts = bucket_counts(eps, N)
    # independent of the module: bucket k holds 0.5 k <= eps < 0.5 (k + 1), k < 4; the rest 0
    expected = [int(((eps >= 0.5 * k) & (eps < 0.5 * (k + 1))).sum()) for k in range(4)]
    assert counts.tolist() == [*expected, int((eps >= 2.0).sum())]
    assert counts.sum() == SAMPLES
    points = forget_quality.bucket_points(N)
    assert counts[:-1] @ points / SAMPLES == forget_quality.forget_quality(eps, N)


def test_bucket_counts_of_two_models_have_no_bucket():
    assert bucket_counts(np.array([0.0, 0.7, 50.0]), 2).tolist() == [3]


# --- the histograms ---------------------------------------------------------------------------

def test_histogram_bars_are_the_bucket_shares_and_f_in_the_titles(study_dirs, tmp_path):
    studies = load_studies(study_dirs)
    path = tmp_path / "eps.png"
    fig = plot_epsilon_histograms(studies["epsilons"], N, path=path)
    assert path.is_file() and path.stat().st_size > 0
    scores = {name: forget_quality.forget_quality(eps, N)
              for name, eps in studies["epsilons"].items()}
    # the references first, then the methods by F, highest first
    titles = [ax.get_title() for ax in fig.axes]
    order = ["retrain", "original", *sorted(["finetune", "ssd", "scrub"],
                                            key=lambda m: -scores[m])]
    assert titles == [f"{name}: F {scores[name]:.3f}" for name in order]
    points = forget_quality.bucket_points(N)
    for ax, name in zip(fig.axes, order, strict=True):
        eps = studies["epsilons"][name]
        counts = np.round(_bars(ax) * SAMPLES / 100).astype(int)
        assert counts.tolist() == [*np.histogram(eps[eps < 2.0], bins=4, range=(0, 2))[0],
                                   int((eps >= 2.0).sum())]
        # F is read back from the bars: each bucket's share times its points
        assert _bars(ax)[:-1] @ points / 100 == pytest.approx(scores[name], abs=1e-12)


def test_method_panels_outline_both_references(study_dirs):
    studies = load_studies(study_dirs)
    fig = plot_epsilon_histograms(studies["epsilons"], N)
    shares = {r: 100 * bucket_counts(studies["epsilons"][r], N) / SAMPLES
              for r in ("retrain", "original")}
    method_panel = fig.axes[2]
    outlines = [p for p in method_panel.patches if isinstance(p, StepPatch)]
    drawn = [np.concatenate([a.get_data().values, b.get_data().values])
             for a, b in zip(outlines[::2], outlines[1::2], strict=True)]
    assert len(drawn) == 2
    for values, reference in zip(drawn, ("retrain", "original"), strict=True):
        np.testing.assert_allclose(values, shares[reference])
    # a reference's own panel outlines only the other reference
    assert len([p for p in fig.axes[0].patches if isinstance(p, StepPatch)]) == 2
    assert len({ax.get_ylim() for ax in fig.axes}) == 1  # shared axes


def test_histograms_need_both_references(study_dirs):
    eps = load_studies(study_dirs)["epsilons"]
    del eps["original"]
    with pytest.raises(ValueError, match="reference 'original'"):
        plot_epsilon_histograms(eps, N)


def test_score_bars_and_reference_lines(study_dirs):
    eps = load_studies(study_dirs)["epsilons"]
    fig = plot_forget_quality_bars(eps, N)
    (ax,) = fig.axes
    scores = {name: forget_quality.forget_quality(e, N) for name, e in eps.items()}
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted((scores[m] for m in ("finetune", "ssd", "scrub")), reverse=True)
    assert sorted(line.get_xdata()[0] for line in ax.lines) == sorted(
        [scores["retrain"], scores["original"]])
    with pytest.raises(ValueError, match="no method"):
        plot_forget_quality_bars({r: eps[r] for r in ("retrain", "original")}, N)


# --- the command ------------------------------------------------------------------------------

def test_command_writes_both_figures(study_dirs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli.main(["figures", "forget-quality", *map(str, study_dirs), "--out", str(out)]) == 0
    stem = "forget_quality_mnist_random-0.1_n8"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}_epsilons.png",
                                                     f"{stem}_scores.png"]
    printed = capsys.readouterr().out
    assert re.search(r"^finetune +F 0\.\d{4} +final score", printed, re.M)


def test_command_with_references_only_writes_the_histograms(study_dirs, tmp_path):
    out = tmp_path / "figs"
    refs = [str(d) for d in study_dirs if d.name in ensemble.REFERENCES]
    assert cli.main(["figures", "forget-quality", *refs, "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["forget_quality_mnist_random-0.1_n8_epsilons.png"]


def _one_line_error(argv, capsys, match: str) -> None:
    code = cli.main(["figures", "forget-quality", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("unlearnlab: error: "), err
    assert re.search(match, err), err


def test_folder_that_is_not_a_bundle(study_dirs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _one_line_error([*study_dirs, tmp_path / "empty"], capsys, "holds no record.json")
    _one_line_error([*study_dirs, tmp_path / "missing"], capsys, "'.*missing' is not a folder")
    run_bundle = tmp_path / "run"
    run_bundle.mkdir()
    (run_bundle / "record.json").write_text('{"models": {}}')
    _one_line_error([*study_dirs, run_bundle], capsys,
                    "is not a forget-quality bundle .*kind None")


def test_mixed_scenarios_and_n(study_dirs, tmp_path, capsys):
    other = make_bundle(tmp_path / "gemu-classes", "gemu", forget="class:6")
    _one_line_error([*study_dirs, other], capsys, r"different scenarios \(forget 'random:0.1' "
                    r"and 'class:6'\)")
    fewer = make_bundle(tmp_path / "gemu-fewer", "gemu", samples=200,
                        retrained=retrained_confidence(200))
    _one_line_error([*study_dirs, fewer], capsys, "different scenarios .forget_samples 300")
    n16 = make_bundle(tmp_path / "gemu-n16", "gemu", n=16,
                      retrained=retrained_confidence(n=16))
    _one_line_error([*study_dirs, n16], capsys, r"different N \(8 and 16 models per side\)")
    # same record keys, other retrained models: another training of the scenario
    retrained = make_bundle(tmp_path / "gemu-epochs", "gemu",
                            retrained=retrained_confidence(seed=1))
    _one_line_error([*study_dirs, retrained], capsys, "different retrained models")


def test_method_twice_and_reference_missing(study_dirs, tmp_path, capsys):
    again = make_bundle(tmp_path / "finetune-again", "finetune")
    _one_line_error([*study_dirs, again], capsys, "both of 'finetune'")
    tuned = make_bundle(tmp_path / "finetune-tuned", "finetune", preset="tuned")
    assert "finetune (tuned)" in load_studies([*study_dirs, tuned])["epsilons"]
    methods = [d for d in study_dirs if d.name != "retrain"]
    _one_line_error(methods, capsys, "no 'retrain' bundle among the 4 given")


def test_damaged_bundles(study_dirs, tmp_path, capsys):
    wrong_f = make_bundle(tmp_path / "gemu-f", "gemu", forget_quality=0.5)
    _one_line_error([*study_dirs, wrong_f], capsys, "says F 0.5 but its eps give")
    truncated = make_bundle(tmp_path / "gemu-npz", "gemu")
    (truncated / ensemble.ARRAYS).write_bytes(b"not a zip")
    _one_line_error([*study_dirs, truncated], capsys, "forget_quality.npz cannot be read")
    negative = epsilons("ssd")
    negative[0] = -1.0
    bad_eps = make_bundle(tmp_path / "gemu-eps", "gemu", eps=negative,
                          forget_quality=0.0)
    with pytest.raises(BundleError, match="gemu-eps'.*finite and >= 0"):
        load_studies([*study_dirs, bad_eps])
    no_count = make_bundle(tmp_path / "gemu-count", "gemu", models="8")
    with pytest.raises(ConfigError, match="'models' is not a count"):
        load_studies([*study_dirs, no_count])
