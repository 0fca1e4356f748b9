"""``unlearnlab bench --quick`` end to end (integration): every registered method on the
standard scenarios, the leaderboard it writes, and its ranking rules on a constructed table."""

from __future__ import annotations

import pandas as pd
import pytest

from unlearnlab.bench import STANDARD_SCENARIOS, leaderboard, scenario_name
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
    assert (finished["speedup"] > 0).all()
    board = (out / "leaderboard.md").read_text()
    assert board == proc.stdout.split("wrote ")[0].rstrip("\n") + "\n"
    assert all(f"| {m} |" in board for m in list_methods())


def test_standard_scenarios_include_random_forgetting_on_the_mlp():
    names = {scenario_name(d, f): (d, f, a) for d, f, a in STANDARD_SCENARIOS}
    assert names["mnist-random-10"] == ("mnist", "random:0.1", "mlp")
    assert names["fashion-random-10"] == ("fashion_mnist", "random:0.1", "mlp")
    assert len(names) == len(STANDARD_SCENARIOS)  # every scenario has a name of its own


def test_leaderboard_ranks_by_gap_and_puts_diverged_methods_last():
    rows = pd.DataFrame([
        {"scenario": "a", "method": "good", "seed": 0, "avg_gap": 0.01, "speedup": 5.0},
        {"scenario": "b", "method": "good", "seed": 0, "avg_gap": 0.03, "speedup": 7.0},
        {"scenario": "a", "method": "bad", "seed": 0, "avg_gap": 0.20, "speedup": 50.0},
        {"scenario": "b", "method": "bad", "seed": 0, "avg_gap": 0.10, "speedup": 50.0},
        {"scenario": "a", "method": "boom", "seed": 0, "avg_gap": None, "speedup": None},
    ]).assign(collapse=False, over_forgetting=False, diverged=lambda d: d["method"] == "boom")
    table = leaderboard(rows)
    assert list(table.index) == ["good", "bad", "boom"]
    assert table.loc["good", "avg_gap"] == pytest.approx(0.02)
    assert table.loc["bad", "speedup"] == 50.0
    assert table.loc["boom", "diverged"] == 1
