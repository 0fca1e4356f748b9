"""The held-out scenario suite (``unlearnlab.heldout``): its scenarios resolve on the real data,
``bench --suite heldout`` selects them, and every search (``tune``, ``--preset auto``) refuses
them."""

from __future__ import annotations

import pytest
import torch

from unlearnlab import auto_preset, heldout
from unlearnlab.bench import STANDARD_SCENARIOS, SUITES, scenario_name, suite_scenarios
from unlearnlab.cli import main
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.forget import parse_forget
from unlearnlab.heldout import HELDOUT_SCENARIOS, check_not_held_out, is_held_out
from unlearnlab.methods import create, get_method, list_methods
from unlearnlab.methods.base import UnlearnTask, share_count
from unlearnlab.methods.presets import SHIPPED_TUNED, read_tuned
from unlearnlab.models import recipe_for
from unlearnlab.scenario import build_scenario
from unlearnlab.tuning import TuneConfig, tune


def test_suite_has_every_kind_and_a_name_per_scenario():
    kinds = {parse_forget(f).scenario for _, f, _ in HELDOUT_SCENARIOS}
    assert kinds == {"class", "feature", "random"}
    assert {parse_forget(f).kind for _, f, _ in HELDOUT_SCENARIOS} >= {"class", "subset", "rest",
                                                                       "color", "random"}
    names = {scenario_name(d, f) for d, f, _ in HELDOUT_SCENARIOS}
    assert names == set(heldout.HELDOUT_NAMES.values())  # a short name of its own each
    assert len(names) == len(HELDOUT_SCENARIOS)


def test_suite_shares_no_forget_set_with_the_standard_suite_or_a_tuned_preset():
    standard = {(d, str(parse_forget(f))) for d, f, _ in STANDARD_SCENARIOS}
    held = {(d, str(parse_forget(f))) for d, f, _ in HELDOUT_SCENARIOS}
    assert not standard & held
    shipped = read_tuned(SHIPPED_TUNED)
    tuned = {(dataset, entry["forget"]) for by_dataset in shipped.values()
             for dataset, entry in by_dataset.items()}
    assert tuned and not tuned & held
    assert not any(is_held_out(d, f) for d, f, _ in STANDARD_SCENARIOS)


@pytest.mark.parametrize(("dataset", "forget", "arch"), HELDOUT_SCENARIOS)
def test_every_scenario_resolves_in_quick_mode(dataset, forget, arch, shared_isolated_root):
    sc = build_scenario(RunConfig(dataset=dataset, forget=forget, arch=arch, quick=True,
                                  data_dir=str(shared_isolated_root)))
    task = sc.task
    assert len(task.forget_y) > 0 and len(task.retain_y) > len(task.forget_y) // 2
    assert sc.arch == (arch or {"cmnist": "convnet"}.get(dataset, "mlp"))
    if sc.kind == "random":
        assert set(task.forget_y.tolist()) == set(range(10))
    else:
        assert len(set(task.forget_y.tolist())) == 1


def test_suite_option_selects_the_scenarios(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_bench(cfg, methods, seeds, out, scenarios, **kwargs):
        seen["scenarios"] = scenarios
        raise ConfigError("stop here")

    monkeypatch.setattr("unlearnlab.cli.bench", fake_bench)
    base = ["bench", "--methods", "gemu", "--seeds", "3", "--out", str(tmp_path / "out")]
    assert main([*base, "--suite", "heldout"]) == 2
    assert seen["scenarios"] == HELDOUT_SCENARIOS
    assert main(base) == 2
    assert seen["scenarios"] == STANDARD_SCENARIOS
    capsys.readouterr()
    assert main([*base, "--suite", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "choose one of standard, heldout" in err
    assert set(SUITES) == {"standard", "heldout"}
    with pytest.raises(ConfigError, match="not a scenario suite"):
        suite_scenarios("Heldout")


@pytest.mark.parametrize("forget", ["class:2", "class:02", "random:0.010", "random:0.01:0"])
def test_canonical_specs_count_as_held_out(forget):
    assert is_held_out("mnist", forget)
    assert not is_held_out("fashion_mnist", "class:2")  # another dataset's class 2
    assert not is_held_out("mnist", "random:0.01:1")  # another split seed: another forget set


def test_tune_refuses_a_held_out_scenario_before_any_work(tmp_path, capsys):
    cfg = TuneConfig(dataset="fashion_mnist", forget="class:8", method="gemu",
                     data_dir=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="tune refuses fashion_mnist forget class:8: it is a "
                                          "held-out scenario"):
        tune(cfg)
    assert main(["tune", "--method", "gemu", "--dataset", "mnist", "--forget", "class:2",
                 "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "held-out scenario" in err
    assert not any(tmp_path.iterdir())  # no study, preset or model written


def test_auto_preset_refuses_a_held_out_scenario_before_any_work(tmp_path, monkeypatch):
    def no_search(*args, **kwargs):
        raise AssertionError("searched a held-out scenario")

    monkeypatch.setattr(auto_preset, "search", no_search)
    monkeypatch.setattr(auto_preset, "build_scenario", no_search)
    cfg = RunConfig(dataset="cmnist", forget="color:green:4", method="gemu", preset="auto",
                    data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"--preset auto refuses cmnist forget "
                                          r"color:green:4: it is a held-out scenario"):
        auto_preset.resolve(cfg)


def test_every_method_of_the_check_is_registered():
    # the methods docs/heldout.md reports: GEMU, GeFeU and the leaderboard's top five
    assert {"gemu", "gefeu", "relabel", "random_label", "salun", "scrub",
            "boundary_shrink"} <= set(list_methods())
    check_not_held_out("mnist", "class:6", "tune")  # a standard scenario may be searched
    assert heldout.HELDOUT_NAMES.keys() == {(d, str(parse_forget(f)))
                                             for d, f, _ in HELDOUT_SCENARIOS}


# ------------------------------------------------------------------ defaults relative to |D_f|

@pytest.mark.parametrize(("share", "n", "expected"), [
    (1 / 12, 5999, 500), (1 / 12, 6000, 500),  # the standard random 10 % of MNIST, Fashion
    (1 / 12, 599, 50), (1 / 12, 18000, 1500),  # the held-out 1 % of MNIST, 30 % of Fashion
    (1 / 12, 5, 1), (1.0, 7, 7), (0.5, 0, 0)])
def test_share_count_scales_with_the_forget_set(share, n, expected):
    assert share_count(share, n) == expected


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_share_count_refuses_a_share_outside_0_1(share):
    with pytest.raises(ConfigError, match=r"share of the forget set must lie in \(0, 1\]"):
        share_count(share, 100)


@pytest.mark.parametrize("name", ["random_label", "salun"])
@pytest.mark.parametrize(("n_forget", "expected"), [(5999, 500), (599, 50), (18000, 1500)])
def test_random_forgetting_relabels_a_share_of_the_forget_set(name, n_forget, expected):
    method = create(get_method(name), dataset="mnist", scenario="random", arch="mlp")
    assert method.forget_count(n_forget) == expected
    # class and feature forgetting keep their absolute counts
    for kind in ("class", "feature"):
        fixed = create(get_method(name), dataset="mnist", scenario=kind, arch="mlp")
        assert fixed.forget_count(n_forget) == fixed.params["forget_samples"]


def _task(n_forget: int, n_retain: int, seed: int = 0) -> UnlearnTask:
    x = torch.arange(n_forget + n_retain, dtype=torch.float32).view(-1, 1, 1, 1)
    y = torch.arange(n_forget + n_retain) % 10
    return UnlearnTask(x[:n_forget], y[:n_forget], x[n_forget:], y[n_forget:], 10,
                       recipe_for("mlp"), torch.device("cpu"), seed)


@pytest.mark.parametrize(("n_forget", "n_retain", "expected"), [
    (6000, 54000, 6000),   # a tenth of |D|: the whole forget set, in order (no draw)
    (136, 8699, 136),      # a small forget set: all of it
    (18000, 42000, 6000),  # a 30 % sample: a tenth of |D|
    (599, 59401, 599)])
def test_boundary_shrink_runs_on_at_most_a_share_of_the_data(n_forget, n_retain, expected):
    method = create(get_method("boundary_shrink"), dataset="fashion_mnist", scenario="random",
                    arch="mlp")
    task = _task(n_forget, n_retain)
    x, y = method.shrink_set(task)
    assert len(y) == expected
    if expected == n_forget:
        assert x is task.forget_x  # unchanged, so every run within the cap is as before
    else:
        rows = x.flatten().long()
        assert len(set(rows.tolist())) == expected and rows.max() < n_forget
        assert torch.equal(y, task.forget_y[rows])
        again, _ = method.shrink_set(_task(n_forget, n_retain))
        assert torch.equal(again, x)  # seeded by the task's seed
        other, _ = method.shrink_set(_task(n_forget, n_retain, seed=1))
        assert not torch.equal(other, x)
    everything = create(get_method("boundary_shrink"), dataset="fashion_mnist",
                        scenario="random", arch="mlp", params={"data_share": 0.0})
    assert len(everything.shrink_set(task)[1]) == n_forget
