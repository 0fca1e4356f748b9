"""The benchmark figures and their loader on small synthetic tables, records and outputs: no
training, a few seconds on CPU."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from unlearnlab import bundle, cli  # noqa: E402
from unlearnlab.errors import ConfigError  # noqa: E402
from unlearnlab.figures.bench import (  # noqa: E402
    plot_confusion_delta,
    plot_gap_bars,
    plot_mia_distributions,
)
from unlearnlab.figures.bench_records import (  # noqa: E402
    feature_scenarios,
    load_bench,
    load_outputs,
    loss_mia_scores,
    pick_run,
    ranked_methods,
)
from unlearnlab.metrics import Outputs  # noqa: E402

SCENARIOS = ("mnist-six", "mnist-plain-sevens", "fashion-heeled-sandals")
METHODS = [f"method_{i:02d}" for i in range(14)]
SETS = ("forget_train", "forget_test", "member", "nonmember")


def leaderboard_rows(methods=METHODS, scenarios=SCENARIOS, seeds=2) -> pd.DataFrame:
    """Method i has avg |z| i + 1 + seed (and gap (i + 1 + seed) %) everywhere; method_03
    collapses and method_04 under-forgets once on every scenario,
    method_05 diverges on seed 1 of the first scenario, method_07 skips the first scenario."""
    rows = []
    for scenario in scenarios:
        for i, method in enumerate(methods):
            if method == "method_07" and scenario == scenarios[0]:
                continue
            for seed in range(seeds):
                diverged = method == "method_05" and scenario == scenarios[0] and seed == 1
                rows.append({"scenario": scenario, "method": method, "seed": seed,
                             "z_gap": np.nan if diverged else float(i + 1 + seed),
                             "avg_gap": np.nan if diverged else (i + 1 + seed) / 100,
                             "collapse": method == "method_03" and seed == 0,
                             "retain_damage": False, "over_forgetting": False,
                             "under_forgetting": method == "method_04" and seed == 1,
                             "diverged": diverged,
                             "speedup": 2.0})
    return pd.DataFrame(rows)


def record(method: str, seed: int, unlearned_shift: int = 0, diverged: bool = False,
           bundle_path: str | None = None) -> dict:
    """A record whose retrained confusion matrix is 10 * identity and whose unlearned one
    moves ``unlearned_shift`` samples of class 0 to class 1."""
    retrained = 10 * np.eye(10, dtype=int)
    unlearned = retrained.copy()
    unlearned[0, 0] -= unlearned_shift
    unlearned[0, 1] += unlearned_shift
    models = {"original": {"confusion_test": retrained.tolist(), "mia_loss": 0.6},
              "retrained": {"confusion_test": retrained.tolist(), "mia_loss": 0.5},
              "unlearned": None if diverged else {"confusion_test": unlearned.tolist(),
                                                  "mia_loss": 0.55}}
    return {"dataset": "mnist", "forget": "rest:mnist_sevens_with_crossbar", "method": method,
            "seed": seed, "models": models, "bundle": bundle_path}


def outputs(models=("original", "retrained", "unlearned", "untrained"), n: int = 40) -> Outputs:
    gen = torch.Generator().manual_seed(0)
    labels = {s: torch.randint(0, 10, (n,), generator=gen) for s in SETS}
    logits = {m: {s: 3 * torch.randn(n, 10, generator=gen) for s in SETS} for m in models}
    return Outputs(labels, logits, seed=0)


def _bars(ax) -> list:
    return [p for p in ax.patches if p.get_height() > 0 and p.get_width() > 0]


# --- plot_gap_bars ----------------------------------------------------------------------------

def test_gap_bars_one_panel_per_scenario_one_bar_per_method():
    rows = leaderboard_rows()
    fig = plot_gap_bars(rows)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(SCENARIOS)
    first, *others = fig.axes
    assert len(_bars(first)) == len(METHODS) - 1  # method_07 did not run there: "n/a"
    assert all(len(_bars(ax)) == len(METHODS) for ax in others)
    assert "n/a" in [t.get_text() for t in first.texts]
    # best method on top, and the diverged method ranked last, as in the leaderboard
    labels = [t.get_text() for t in first.get_yticklabels()]
    assert labels[0] == "method_00" and labels[-1] == "method_05"
    assert ranked_methods({"rows": rows}) == labels


def test_gap_bars_marks_flagged_methods_and_draws_the_mean_avg_abs_z_on_a_log_axis():
    fig = plot_gap_bars(leaderboard_rows(), scenarios=[SCENARIOS[1]])
    (ax,) = fig.axes
    hatched = [p for p in _bars(ax) if p.get_hatch()]
    assert len(hatched) == 2  # method_03's collapse, method_04's under-forgetting
    assert {"C×1", "U×1"} <= {t.get_text() for t in ax.texts}
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left == pytest.approx(0.1) and right > 15  # below 0.8 and past the largest, 15
    ends = sorted(p.get_x() + p.get_width() for p in _bars(ax))
    assert ends[0] == pytest.approx(1.5)  # method_00: avg |z| 1 and 2
    assert ends[-1] == pytest.approx(14.5)  # method_13: 14 and 15
    assert not [line for line in ax.lines if line.get_linestyle() == ":"]  # 2 seeds: none


def test_gap_bars_mark_a_retrained_models_avg_abs_z_from_three_seeds():
    (ax,) = plot_gap_bars(leaderboard_rows(seeds=3), scenarios=[SCENARIOS[1]]).axes
    (line,) = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert line.get_xdata()[0] == pytest.approx(np.sqrt(8 / 3))  # sqrt(4/3) E|t(2)|


def test_gap_bars_subset_of_methods():
    fig = plot_gap_bars(leaderboard_rows(), methods=["method_02", "method_01"])
    assert all(len(_bars(ax)) == 2 for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["method_01", "method_02"]


def test_gap_bars_empty_input_is_a_value_error():
    with pytest.raises(ValueError, match="no leaderboard rows"):
        plot_gap_bars(pd.DataFrame(columns=["scenario", "method", "seed", "z_gap", "avg_gap"]))
    with pytest.raises(ValueError, match=r"lack the columns \['z_gap'\]"):
        plot_gap_bars(leaderboard_rows().drop(columns="z_gap"))
    with pytest.raises(ValueError, match="none of the chosen methods"):
        plot_gap_bars(leaderboard_rows(), methods=["nope"])


def test_gap_bars_of_one_seed_show_the_point_gap_and_say_so():
    """One seed has no spread (z_gap NaN): the bars show the gap in points, which ranks."""
    fig = plot_gap_bars(leaderboard_rows(seeds=1).assign(z_gap=np.nan), scenarios=[SCENARIOS[1]])
    (ax,) = fig.axes
    ends = sorted(p.get_x() + p.get_width() for p in _bars(ax))
    assert ends[0] == pytest.approx(1.0) and ends[-1] == pytest.approx(14.0)  # points
    assert ax.get_xlabel() == "avg gap to retrain (pts, log scale)"
    assert "one seed: no spread" in fig._suptitle.get_text()
    assert not [line for line in ax.lines if line.get_linestyle() == ":"]


# --- plot_confusion_delta ---------------------------------------------------------------------

def test_confusion_delta_one_panel_per_method_with_the_mean_difference():
    records = {"a": [record("a", 0, 2), record("a", 1, 4)],
               "b": [record("b", 0, 6), record("b", 1, 0, diverged=True)]}
    fig = plot_confusion_delta(records)
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["a (2 seeds)", "b (1 seed)"]
    assert len(fig.axes) == 3  # two panels and the shared colour bar
    diff_a = np.asarray(panels[0].collections[0].get_array()).reshape(10, 10)
    assert diff_a[0, 0] == -3 and diff_a[0, 1] == 3 and np.count_nonzero(diff_a) == 2
    diff_b = np.asarray(panels[1].collections[0].get_array()).reshape(10, 10)
    assert diff_b[0, 1] == 6  # the diverged seed is left out
    norm = panels[0].collections[0].norm
    assert norm.vmin == -norm.vmax == -6  # one scale, centred at 0


def test_confusion_delta_chosen_methods_and_grid():
    records = {m: [record(m, 0, 1)] for m in "abcde"}
    fig = plot_confusion_delta(records, methods=["e", "a", "c"], ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["e (1 seed)", "a (1 seed)", "c (1 seed)"]
    with pytest.raises(ValueError, match="no records of"):
        plot_confusion_delta(records, methods=["z"])


def test_confusion_delta_empty_input_is_a_value_error():
    with pytest.raises(ValueError, match="no records"):
        plot_confusion_delta({})
    with pytest.raises(ValueError, match="no runs"):
        plot_confusion_delta({"a": []})


# --- plot_mia_distributions -------------------------------------------------------------------

def test_mia_distributions_one_panel_per_model():
    fig = plot_mia_distributions(outputs(), scores={"original": 0.61, "unlearned": None})
    assert isinstance(fig, Figure)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["original", "retrained",
                                                                  "unlearned"]
    assert "0.61" in fig.axes[0].get_title()
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert all(len(ax.patches) == 4 for ax in fig.axes)  # two sets, filled and outlined


def test_mia_distributions_leaves_out_models_without_logits():
    fig = plot_mia_distributions(outputs(models=("original", "retrained")))
    assert len(fig.axes) == 2


def test_mia_distributions_empty_input_is_a_value_error():
    with pytest.raises(ValueError, match="none of the models"):
        plot_mia_distributions(Outputs({s: torch.zeros(0, dtype=torch.long) for s in SETS},
                                       {}, seed=0))
    with pytest.raises(ValueError, match="probe sets"):
        plot_mia_distributions(Outputs({}, {}, seed=0))


# --- files are written only when asked, atomically ------------------------------------------

@pytest.mark.parametrize("draw", [
    lambda path: plot_gap_bars(leaderboard_rows(seeds=1), path=path),
    lambda path: plot_confusion_delta({"a": [record("a", 0, 3)]}, path=path),
    lambda path: plot_mia_distributions(outputs(n=10), path=path),
], ids=["gap", "confusion", "mia"])
def test_writes_only_when_given_a_path(draw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    draw(None)
    assert list(tmp_path.iterdir()) == []
    target = tmp_path / "figs" / "figure.png"
    draw(target)
    assert [p.name for p in target.parent.iterdir()] == ["figure.png"]  # no temporary left
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- load_bench and the command ----------------------------------------------------------------

@pytest.fixture
def bench_dir(tmp_path):
    """A bench folder as ``unlearnlab bench`` writes it: two methods on one feature
    scenario, two seeds, one bundle per finished run."""
    out = tmp_path / "bench"
    scenario = out / "mnist-plain-sevens"
    scenario.mkdir(parents=True)
    rows = leaderboard_rows(methods=["gemu", "gradient_ascent"], scenarios=[scenario.name])
    rows.to_csv(out / "leaderboard.csv", index=False)
    (out / "leaderboard.md").write_text("| rank | method |\n")
    data = outputs(n=12)
    probe = {s: ("train" if s in ("forget_train", "member") else "test", torch.arange(12))
             for s in SETS}
    for method in ("gemu", "gradient_ascent"):
        for seed in range(2):
            folder = tmp_path / "runs" / f"{method}-seed{seed}"
            rec = record(method, seed, seed + 1, bundle_path=str(folder))
            bundle.write(folder, rec, data, probe)
            (scenario / f"{method}_seed{seed}.json").write_text(json.dumps(rec))
    return out


def test_load_bench_reads_tables_records_and_bundles(bench_dir):
    bench = load_bench(bench_dir)
    assert len(bench["rows"]) == 4 and bench["markdown"].startswith("| rank")
    assert list(bench["scenarios"]) == ["mnist-plain-sevens"]
    scenario = bench["scenarios"]["mnist-plain-sevens"]
    assert scenario["feature"] and scenario["classes"][0] == "0"
    assert [r["seed"] for r in scenario["records"]["gemu"]] == [0, 1]
    assert scenario["rows"] is None and scenario["kl"] is None
    assert feature_scenarios(bench) == ["mnist-plain-sevens"]
    run = pick_run(bench, "mnist-plain-sevens")
    assert (run["method"], run["seed"]) == ("gemu", 0)
    assert loss_mia_scores(run) == {"original": 0.6, "retrained": 0.5, "unlearned": 0.55}
    loaded = load_outputs(run)
    assert torch.equal(loaded.labels["forget_test"], outputs(n=12).labels["forget_test"])
    full = load_bench(bench_dir, outputs=True)
    assert set(full["scenarios"]["mnist-plain-sevens"]["outputs"]["gradient_ascent"]) == {0, 1}


def test_load_bench_errors_name_the_problem(tmp_path, bench_dir):
    with pytest.raises(ConfigError, match="leaderboard.csv"):
        load_bench(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no scenario 'x'"):
        pick_run(load_bench(bench_dir), "x")
    with pytest.raises(ConfigError, match="names no bundle"):
        load_outputs(record("a", 0))
    csv = bench_dir / "leaderboard.csv"
    pd.read_csv(csv).drop(columns="z_gap").to_csv(csv, index=False)
    with pytest.raises(ConfigError, match="no z_gap column: .* run `unlearnlab bench` again"):
        load_bench(bench_dir)


def test_command_writes_the_figures_and_prints_the_leaderboard(bench_dir, tmp_path, capsys):
    out = tmp_path / "assets"
    assert cli.main(["figures", "bench", str(bench_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "bench_confusion_delta_mnist-plain-sevens.png", "bench_gap.png",
        "bench_mia_mnist-plain-sevens.png"]
    assert "| rank | method |" in capsys.readouterr().out
    assert cli.main(["figures", "bench", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_draws_on_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert plot_gap_bars(leaderboard_rows(), scenarios=SCENARIOS[:2], axes=axes) is fig
    assert [t.get_text() for t in axes[1].get_yticklabels()][0] == "method_00"
    with pytest.raises(ValueError, match="expected 3 axes"):
        plot_gap_bars(leaderboard_rows(), axes=axes)
    fig, axes = plt.subplots(1, 3)
    assert plot_mia_distributions(outputs(), axes=axes) is fig
