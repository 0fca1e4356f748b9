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
    assert board.startswith("Preset `default`, ranked by avg |z|")
    assert "with 2 seeds even a retrained model has no finite expected avg |z|" in board
    assert ("| rank | group | method | avg \\|z\\| (σ) [95 % interval] | a | b | avg gap (pts) "
            "| speed-up × |") in board
    assert "| 1 | 1 | inside | 1.00 [0.50, 1.50] | 1.00 | n/a | 4.00 | 50.0 |  |" in board
    # one run per scenario: nothing to resample, a point interval
    assert ("| 2 | 2 | near | 7.00 [7.00, 7.00] | 6.00 | 8.00 | 0.30 | 6.0 "
            "| retain-damage (1 of 2 runs) |") in board
    assert ("| 3 | n/a | boom | diverged | n/a | n/a | diverged | n/a "
            "| diverged (1 of 1 runs) |") in board


def test_with_one_seed_the_point_gap_ranks_and_diverged_methods_stay_last():
    rows = pd.DataFrame([
        {"scenario": "a", "method": "far", "seed": 0, "z_gap": None, "avg_gap": 0.2,
         "speedup": 5.0},
        {"scenario": "a", "method": "boom", "seed": 0, "z_gap": None, "avg_gap": None,
         "speedup": None},
        {"scenario": "a", "method": "close", "seed": 0, "z_gap": None, "avg_gap": 0.01,
         "speedup": 5.0},
    ]).assign(**FLAG_COLUMNS, diverged=lambda d: d["method"] == "boom")
    table = leaderboard(rows)
    assert list(table.index) == ["close", "far", "boom"]
    assert table["group"].isna().all()  # no spread over seeds: no interval, no groups
    assert table[["z_gap_low", "z_gap_high"]].isna().all().all()
    board = leaderboard_markdown(rows, 1, True)
    assert ("no spread: avg |z| is n/a and the avg gap ranks, with no interval and no groups. "
            "Quick mode.") in board
    assert "[low, high]" not in board
    assert "| 1 | n/a | close | n/a | n/a | 1.00 | 5.0 |  |" in board


def seeded_rows(spec: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """Leaderboard rows from {method: {scenario: [z_gap per seed]}}, never flagged."""
    rows = pd.DataFrame([{"scenario": scenario, "method": method, "seed": seed, "z_gap": z,
                          "avg_gap": 0.01 * z, "speedup": 10.0}
                         for method, per_scenario in spec.items()
                         for scenario, zs in per_scenario.items()
                         for seed, z in enumerate(zs)])
    return rows.assign(**FLAG_COLUMNS, diverged=False)


def test_the_interval_resamples_seeds_within_each_scenario_and_not_the_scenarios():
    # Two seeds {0, 1}: the resampled means are 0, 0.5 and 1, so the 95 % interval is [0, 1].
    # Beside a scenario whose two seeds agree at 5, the overall score is (mean + 5) / 2:
    # [2.5, 3.0]. Resampling the scenarios too would stretch it towards 0.5 and 5.
    table = leaderboard(seeded_rows({"m": {"x": [0.0, 1.0], "y": [5.0, 5.0]},
                                     "n": {"x": [1.0, 0.0]}}))
    assert tuple(table.loc["m", ["z_gap_low", "z_gap", "z_gap_high"]]) == (2.5, 2.75, 3.0)
    assert tuple(table.loc["n", ["z_gap_low", "z_gap", "z_gap_high"]]) == (0.0, 0.5, 1.0)


def test_methods_whose_intervals_overlap_share_a_group_and_separated_ones_do_not():
    rows = seeded_rows({
        "far": {"x": [3.0, 3.2, 2.9, 3.1, 3.0], "y": [2.8, 3.3, 3.0, 3.1, 2.9]},
        "best": {"x": [1.0, 1.2, 0.9, 1.1, 1.0], "y": [0.8, 1.3, 1.0, 1.1, 0.9]},
        "close": {"x": [1.1, 1.3, 1.0, 1.2, 1.1], "y": [0.9, 1.4, 1.1, 1.2, 1.0]},
    })
    table = leaderboard(rows)
    assert list(table.index) == ["best", "close", "far"]
    assert list(table["group"]) == [1, 1, 2]
    assert (table["z_gap_low"] < table["z_gap"]).all()
    assert (table["z_gap"] < table["z_gap_high"]).all()
    assert table.loc["close", "z_gap_low"] <= table.loc["best", "z_gap_high"]
    assert table.loc["far", "z_gap_low"] > table.loc["close", "z_gap_high"]
    board = leaderboard_markdown(rows, 5, False)
    assert "| 3 | 2 | far | 3.03 [" in board and "group: from the best method down" in board


def test_the_interval_is_the_same_for_the_same_runs():
    spec = {"m": {"x": [0.3, 1.9, 0.8, 1.4, 2.2], "y": [4.0, 3.1, 5.6]},
            "n": {"x": [2.0, 2.5, 1.0, 3.5, 0.5]}}
    first = leaderboard(seeded_rows(spec))
    again = leaderboard(seeded_rows(spec))
    pd.testing.assert_frame_equal(first, again)
    # Row order and the other methods on the board do not move a method's interval.
    bounds = ["z_gap_low", "z_gap_high"]
    shuffled = leaderboard(seeded_rows(spec).sample(frac=1, random_state=3))
    assert shuffled.loc[first.index, bounds].equals(first[bounds])
    alone = leaderboard(seeded_rows({"n": spec["n"]}))
    assert tuple(alone.loc["n", bounds]) == tuple(first.loc["n", bounds])
    assert first.loc["m", "z_gap_low"] < first.loc["m", "z_gap_high"]


def test_a_method_that_diverged_once_ranks_last_without_an_interval():
    rows = seeded_rows({"boom": {"x": [0.1, 0.2]}, "ok": {"x": [5.0, 6.0]}})
    rows.loc[1, ["z_gap", "avg_gap"]] = None
    rows.loc[1, "diverged"] = True
    table = leaderboard(rows)
    assert list(table.index) == ["ok", "boom"]
    assert table.loc["ok", "group"] == 1 and pd.isna(table.loc["boom", "group"])
    assert table.loc[["boom"], ["z_gap_low", "z_gap_high"]].isna().all().all()
    assert "| 2 | n/a | boom | diverged |" in leaderboard_markdown(rows, 2, False)


def test_a_group_is_led_by_its_best_method():
    from unlearnlab.ranking import overlap_groups

    # c overlaps b but not a, b's group leader, so c opens group 2; d reaches no interval above.
    low, high = [0.0, 0.9, 1.5, 3.5, float("nan")], [1.0, 2.0, 3.0, 4.0, float("nan")]
    assert overlap_groups(low, high) == [1, 1, 2, 3, None]
    assert overlap_groups([1.0, 1.0], [1.0, 1.0]) == [1, 1]  # equal points tie
    with pytest.raises(ConfigError, match="one bound per method"):
        overlap_groups([0.0], [])


@pytest.mark.parametrize(("options", "message"), [
    ({"resamples": 0}, "resamples must be a positive integer"),
    ({"level": 95}, "level must lie between 0 and 1"),
])
def test_bootstrap_options_are_checked(options, message):
    from unlearnlab.ranking import bootstrap_interval

    with pytest.raises(ConfigError, match=message):
        bootstrap_interval(seeded_rows({"m": {"x": [1.0, 2.0]}}), **options)


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


def test_bench_runs_other_presets_beside_the_ranked_one(tmp_path, untunable):
    from unlearnlab.bench import bench
    from unlearnlab.config import RunConfig

    cfg = RunConfig(quick=True, data_dir=str(tmp_path / "data"))
    out = tmp_path / "out"
    rows = bench(cfg, ["finetune", untunable], seeds=2, out=out,
                 scenarios=DIGITS_SCENARIOS[1:], presets=("default", "paper"))
    name = scenario_name("digits", "class:6")
    assert set(rows["preset"]) == {"default"} and set(rows["method"]) == {"finetune", untunable}
    beside = pd.read_csv(out / "presets.csv")
    # the test's method has no paper preset: it runs only in the ranked column
    assert set(beside["preset"]) == {"paper"} and set(beside["method"]) == {"finetune"}
    assert len(beside) == 2 and (out / "presets" / "paper" / name / "results.csv").is_file()
    paper = leaderboard(beside)
    board = (out / "leaderboard.md").read_text()
    assert board.startswith("Preset `default`, ranked by avg |z|")
    assert "Preset columns (paper)" in board and "| paper: avg \\|z\\| (σ) (rank) |" in board
    line = next(r for r in board.splitlines() if r.startswith("| ") and "| finetune |" in r)
    assert line.endswith(f"| {paper.loc['finetune', 'z_gap']:.2f} (#1) |")
    assert next(r for r in board.splitlines() if f"| {untunable} |" in r).endswith("| n/a |")
    # the paper preset changes the runs: not a copy of the default column
    default = leaderboard(rows)
    assert paper.loc["finetune", "z_gap"] != default.loc["finetune", "z_gap"]


@pytest.mark.parametrize(("presets", "message"), [
    (("default", "default"), "--presets names a preset twice"),
    (("default", "nope"), "no method has the preset 'nope'"),
    ((), "--presets must name presets"),
    (("tuned",), "no tuned preset for method 'finetune'"),
])
def test_bench_presets_are_checked_before_any_work(tmp_path, presets, message):
    from unlearnlab.bench import bench
    from unlearnlab.config import RunConfig

    cfg = RunConfig(quick=True, data_dir=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match=message):
        bench(cfg, ["finetune", "relabel"], seeds=2, out=tmp_path / "out",
              scenarios=DIGITS_SCENARIOS[1:], presets=presets)
    assert not (tmp_path / "out").exists() and not (tmp_path / "data" / "models").exists()


def test_a_ranked_preset_that_a_method_lacks_is_refused_before_any_work(tmp_path, untunable):
    from unlearnlab.bench import bench
    from unlearnlab.config import RunConfig

    cfg = RunConfig(quick=True, data_dir=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match=f"method '{untunable}' has no preset 'paper', which "
                       "the leaderboard ranks"):
        bench(cfg, ["finetune", untunable], seeds=2, out=tmp_path / "out",
              scenarios=DIGITS_SCENARIOS[1:], presets=("paper",))
    assert not (tmp_path / "out").exists() and not (tmp_path / "data" / "models").exists()


def test_forget_quality_with_another_ranked_preset_is_refused(tmp_path):
    from unlearnlab.bench import bench
    from unlearnlab.config import RunConfig

    cfg = RunConfig(quick=True, data_dir=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match="--forget-quality scores the default presets"):
        bench(cfg, ["finetune"], seeds=2, out=tmp_path / "out", scenarios=DIGITS_SCENARIOS,
              forget_quality_models=2, presets=("paper", "default"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "data" / "models").exists()
