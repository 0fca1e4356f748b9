"""``unlearnlab bench --quick`` end to end (integration): every registered method on the
standard scenarios, the leaderboard it writes, and its ranking rules on constructed tables."""

from __future__ import annotations

import pandas as pd
import pytest

from unlearnlab.bench import STANDARD_SCENARIOS, leaderboard, leaderboard_markdown, scenario_name
from unlearnlab.errors import ConfigError
from unlearnlab.forget import parse_forget
from unlearnlab.methods import get_method, list_methods


@pytest.mark.integration
def test_quick_bench_runs_every_method_where_it_applies(quick_bench):
    out, proc = quick_bench["out"], quick_bench["proc"]
    rows = pd.read_csv(out / "leaderboard.csv")
    for dataset, forget, _ in STANDARD_SCENARIOS:
        name = scenario_name(dataset, forget)
        kind = parse_forget(forget).scenario
        expected = {m for m in list_methods() if kind in get_method(m).scenarios}
        assert set(rows.loc[rows["scenario"] == name, "method"]) == expected, name
        assert (out / name / "summary.md").is_file()
    finished = rows[~rows["diverged"]]
    assert finished["avg_gap"].between(0, 1).all()
    assert rows["z_gap"].isna().all()  # one seed: one retrained model, no spread
    assert (finished["speedup"] > 0).all()
    board = (out / "leaderboard.md").read_text()
    assert board == proc.stdout.split("wrote ")[0].rstrip("\n") + "\n"
    assert all(f"| {m} |" in board for m in list_methods())


def test_standard_scenarios_include_random_forgetting_on_the_mlp():
    names = {scenario_name(d, f): (d, f, a) for d, f, a in STANDARD_SCENARIOS}
    assert names["mnist-random-10"] == ("mnist", "random:0.1", "mlp")
    assert names["fashion-random-10"] == ("fashion_mnist", "random:0.1", "mlp")
    assert len(names) == len(STANDARD_SCENARIOS)  # every scenario has a name of its own


FLAG_COLUMNS = dict.fromkeys(("collapse", "retain_damage", "over_forgetting",
                              "under_forgetting"), False)


def test_leaderboard_ranks_by_avg_abs_z_and_puts_diverged_methods_last():
    # "near" lies closer in points but far outside the retrained spread; "inside" the other way.
    rows = pd.DataFrame([
        {"scenario": "a", "method": "near", "seed": 0, "z_gap": 6.0, "avg_gap": 0.002,
         "speedup": 5.0},
        {"scenario": "b", "method": "near", "seed": 0, "z_gap": 8.0, "avg_gap": 0.004,
         "speedup": 7.0},
        {"scenario": "a", "method": "inside", "seed": 0, "z_gap": 0.5, "avg_gap": 0.05,
         "speedup": 50.0},
        {"scenario": "a", "method": "inside", "seed": 1, "z_gap": 1.5, "avg_gap": 0.03,
         "speedup": 50.0},
        {"scenario": "a", "method": "boom", "seed": 0, "z_gap": None, "avg_gap": None,
         "speedup": None},
    ]).assign(**FLAG_COLUMNS, diverged=lambda d: d["method"] == "boom")
    rows.loc[0, "retain_damage"] = True
    table = leaderboard(rows)
    assert list(table.index) == ["inside", "near", "boom"]
    assert table.loc["near", "z_gap"] == pytest.approx(7.0)  # mean over scenarios
    assert table.loc["inside", "z_gap"] == pytest.approx(1.0)  # mean over seeds
    assert table.loc["inside", "a"] == pytest.approx(1.0) and pd.isna(table.loc["inside", "b"])
    assert table.loc["near", "avg_gap"] == pytest.approx(0.003)
    assert table.loc["inside", "speedup"] == 50.0
    assert table.loc["near", "retain_damage"] == 1 and table.loc["boom", "diverged"] == 1
    assert table.loc["boom", "z_gap"] == float("inf")
    board = leaderboard_markdown(rows, 2, False)
    assert board.startswith("Ranked by avg |z|")
    assert "with 2 seeds even a retrained model has no finite expected avg |z|" in board
    assert "| rank | method | avg \\|z\\| (σ) | a | b | avg gap (pts) | speed-up × |" in board
    assert "| 1 | inside | 1.00 | 1.00 | n/a | 4.00 | 50.0 |  |" in board
    assert "| 2 | near | 7.00 | 6.00 | 8.00 | 0.30 | 6.0 | retain-damage ×1 |" in board
    assert "| 3 | boom | diverged | n/a | n/a | diverged | n/a | diverged ×1 |" in board


def test_with_one_seed_the_point_gap_ranks_and_diverged_methods_stay_last():
    rows = pd.DataFrame([
        {"scenario": "a", "method": "far", "seed": 0, "z_gap": None, "avg_gap": 0.2,
         "speedup": 5.0},
        {"scenario": "a", "method": "boom", "seed": 0, "z_gap": None, "avg_gap": None,
         "speedup": None},
        {"scenario": "a", "method": "close", "seed": 0, "z_gap": None, "avg_gap": 0.01,
         "speedup": 5.0},
    ]).assign(**FLAG_COLUMNS, diverged=lambda d: d["method"] == "boom")
    assert list(leaderboard(rows).index) == ["close", "far", "boom"]
    board = leaderboard_markdown(rows, 1, True)
    assert "no spread: avg |z| is n/a and the avg gap ranks. Quick mode." in board
    assert "| 1 | close | n/a | n/a | 1.00 | 5.0 |  |" in board


def test_a_leaderboard_without_the_verdict_columns_is_refused():
    rows = pd.DataFrame([{"scenario": "a", "method": "m", "seed": 0, "avg_gap": 0.01,
                          "speedup": 5.0, "collapse": False, "over_forgetting": False,
                          "diverged": False}])
    with pytest.raises(ConfigError, match=r"lack the columns \['z_gap', 'retain_damage', "
                                          r"'under_forgetting'\]: .*run `unlearnlab bench`"):
        leaderboard(rows)


DIGITS_SCENARIOS = (("digits", "random:0.2", "mlp"), ("digits", "class:6", "mlp"))


def test_bench_scores_forget_quality_on_random_forgetting(tmp_path):
    from unlearnlab.bench import bench
    from unlearnlab.config import RunConfig

    cfg = RunConfig(quick=True, data_dir=str(tmp_path / "data"))
    rows = bench(cfg, ["finetune", "relabel"], seeds=2, out=tmp_path / "out",
                 scenarios=DIGITS_SCENARIOS, forget_quality_models=2)
    quality = pd.read_csv(tmp_path / "out" / "forget_quality.csv")
    random_name = scenario_name("digits", "random:0.2")
    assert list(quality["method"]) == ["retrain", "original", "finetune"]
    assert set(quality["scenario"]) == {random_name}
    assert quality["forget_quality"].between(0, 1).all()
    finetune = rows[(rows["method"] == "finetune") & (rows["scenario"] == random_name)]
    assert (finetune["forget_quality"] == quality["forget_quality"].iloc[2]).all()
    assert rows.loc[rows["scenario"] != random_name, "forget_quality"].isna().all()
    bundles = tmp_path / "out" / random_name / "forget_quality"
    for method in ("retrain", "original", "finetune"):
        assert (bundles / method / "record.json").is_file()
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| F |" in board and f"**{random_name}**" in board
    table = leaderboard(rows)
    assert table.loc["finetune", "forget_quality"] == pytest.approx(quality["forget_quality"][2])
    assert pd.isna(table.loc["relabel", "forget_quality"])
    from unlearnlab.cli import main

    assert main(["figures", "bench", str(tmp_path / "out"), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "forget_quality_digits_random-0.2_n2_epsilons.png").is_file()


@pytest.mark.parametrize(("models", "scenarios", "message"), [
    (1, DIGITS_SCENARIOS, "--forget-quality must be an integer from 2"),
    (4, DIGITS_SCENARIOS[1:], "the bench has none"),
])
def test_forget_quality_in_the_bench_is_checked_before_any_work(tmp_path, models, scenarios,
                                                                 message):
    from unlearnlab.bench import bench
    from unlearnlab.config import RunConfig

    cfg = RunConfig(quick=True, data_dir=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match=message):
        bench(cfg, ["finetune"], seeds=2, out=tmp_path / "out", scenarios=scenarios,
              forget_quality_models=models)
    assert not (tmp_path / "out").exists() and not (tmp_path / "data" / "models").exists()
