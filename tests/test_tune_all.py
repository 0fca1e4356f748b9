"""``unlearnlab tune-all``: the same budget of complete trials for every method and scenario, the
z objective, the winners stored per scenario and found by ``--preset tuned`` (then the
dataset-level entry), the summary files and the refusals. The searches run on scikit-learn's
bundled digits in quick mode (no files needed); the refusals name the standard suite."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from unlearnlab import auto_preset
from unlearnlab.cli import main
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.experiment import check_method, create_for
from unlearnlab.methods import create, get_method
from unlearnlab.methods.presets import TUNED_FILE, lookup_tuned, scenario_key
from unlearnlab.methods.registry import tunable_methods
from unlearnlab.scenario import build_scenario
from unlearnlab.studies import check_setup, storage_url
from unlearnlab.tune_all import TuneAllConfig, plan, tune_all
from unlearnlab.tuning import DIVERGED_Z, TuneConfig, ensemble_moments

optuna = pytest.importorskip("optuna")

METHODS = ["gradient_ascent", "finetune"]  # tunable, meant for class forgetting, fast
SCENARIO = ("digits", "class:6", None)
KEY = "digits|class:6|cnn"  # the scenario's key: digits' default architecture for a class


def config(root: Path, **extra) -> TuneAllConfig:
    return TuneAllConfig(**{"methods": METHODS, "budget": 2, "seeds": 2, "quick": True,
                            "data_dir": str(root), **extra})


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict:
    """One tune-all run (2 methods x digits class 6, budget 2, 2 seeds): its root, output
    folder and result, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("tune-all-root")
    out = tmp_path_factory.mktemp("tune-all-out")
    result = tune_all(config(root), out, scenarios=[SCENARIO])
    return {"root": root, "out": out, "result": result}


def complete(study) -> list:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_every_study_holds_exactly_the_budget(tuned):
    root, result = tuned["root"], tuned["result"]
    assert [r["method"] for r in result.rows] == METHODS and not result.interrupted
    storage = storage_url(TuneConfig(data_dir=str(root)))
    for row in result.rows:
        assert row["study"] == f"{row['method']}-digits-class:6-z-quick"
        assert row["trials"] == 2 and row["ran"] == 2 and row["scenario"] == "digits-class-6"
        study = optuna.load_study(study_name=row["study"], storage=storage)
        trials = complete(study)
        assert len(trials) == 2
        assert study.user_attrs["setup"]["objective"] == "z"
        assert study.user_attrs["setup"]["seeds"] == 2
        for trial in trials:  # the value is avg |z|, the mean of the per-seed scores
            assert len(trial.user_attrs["z_gaps"]) == 2
            assert trial.value == pytest.approx(np.mean(trial.user_attrs["z_gaps"]))
            assert trial.user_attrs["z_gaps"] != trial.user_attrs["gaps"]
        assert row["value"] == study.best_value
        assert row["default_value"] == study.trials[0].value  # the default preset runs first


def test_the_summary_files_state_the_protocol(tuned):
    out, result = tuned["out"], tuned["result"]
    record = json.loads((out / "tune_all.json").read_text())
    assert {k: record[k] for k in ("budget", "seeds", "objective", "validation", "quick")} \
        == {"budget": 2, "seeds": 2, "objective": "z", "validation": 0.1, "quick": True}
    assert "avg_abs_z" in record["objective_definition"]
    assert record["planned"] == record["done"] == 2 and record["interrupted"] is False
    assert [s["method"] for s in record["studies"]] == METHODS
    assert record["studies"][0]["params"] == result.rows[0]["params"]
    text = (out / "tune_all.md").read_text()
    assert "every study holds 2 complete trials" in text and "2 seeds" in text
    assert "objective z" in text
    for method in METHODS:
        assert re.search(rf"\| {method} \| digits-class-6 \| 2 \(2\) \| \d", text), text


def test_winners_are_stored_per_scenario_and_found_by_preset_tuned(tuned, tmp_path):
    root = tuned["root"]
    content = json.loads((root / TUNED_FILE).read_text())
    for method in METHODS:
        assert set(content[method]) == {KEY}, "tune-all must write no dataset-level entry"
        entry = content[method][KEY]
        assert entry["objective"] == "z" and entry["forget"] == "class:6"
        assert entry["arch"] == "cnn" and entry["trials"] == 2
        run_cfg = RunConfig(dataset="digits", forget="class:6", method=method, preset="tuned",
                            quick=True, data_dir=str(root))
        assert check_method(run_cfg).params == entry["params"]  # run's --preset tuned
        assert create_for(build_scenario(run_cfg), method, "tuned").params == entry["params"]
        # auto takes the scenario's tuned entry without a search
        found = auto_preset.tuned_for_scenario(get_method(method),
                                               replace(run_cfg, preset="auto"))
        assert found is not None and found.record["source"] == "tuned"
        # Another scenario of the dataset has no entry ...
        with pytest.raises(ConfigError, match=f"no tuned preset for method '{method}' on "
                                              "digits"):
            check_method(replace(run_cfg, forget="class:3"))
    # ... until a dataset-level entry exists: it serves the other scenarios, not this one.
    method = METHODS[0]
    content[method]["digits"] = {"params": {**content[method][KEY]["params"], "lr": 1.5e-4}}
    (root / TUNED_FILE).write_text(json.dumps(content))
    other = RunConfig(dataset="digits", forget="class:3", method=method, preset="tuned",
                      quick=True, data_dir=str(root))
    assert check_method(other).params["lr"] == 1.5e-4
    assert check_method(replace(other, forget="class:6")).params \
        == content[method][KEY]["params"]
    # The CLI: a run with --preset tuned on the scenario records the scenario's entry.
    record_path = tmp_path / "record.json"
    assert main(["run", "--dataset", "digits", "--quick", "--method", method, "--preset",
                 "tuned", "--metrics", "mia_efficacy", "--data-dir", str(root), "--json",
                 str(record_path)]) == 0
    assert json.loads(record_path.read_text())["params"] == content[method][KEY]["params"]


def test_a_resumed_run_counts_the_trials_it_holds(tuned):
    root, out = tuned["root"], tuned["out"]
    again = tune_all(config(root), out, scenarios=[SCENARIO])
    assert [r["ran"] for r in again.rows] == [0, 0] and [r["trials"] for r in again.rows] \
        == [2, 2]
    with pytest.raises(ConfigError, match="already holds 2 complete trials, more than "
                                          "--budget 1"):
        tune_all(config(root, budget=1), out, scenarios=[SCENARIO])
    with pytest.raises(ConfigError, match=r"was made with another setup \(seeds=2\)"):
        tune_all(config(root, seeds=3), out, scenarios=[SCENARIO])


# ------------------------------------------------------------------------- objective, keys

def test_a_study_name_and_setup_carry_the_objective():
    gap = TuneConfig(dataset="digits", method="finetune", quick=True)
    z = TuneConfig(dataset="digits", method="finetune", quick=True, objective="z")
    assert gap.study_name == "finetune-digits-class:6-quick"  # the name of earlier studies
    assert z.study_name == "finetune-digits-class:6-z-quick"
    assert TuneConfig(dataset="mnist", arch="mlp", objective="z").study_name \
        == "gradient_ascent-mnist-class:6-mlp-z"
    old = {k: v for k, v in gap.setup.items() if k != "objective"}  # a study made before
    check_setup("old", old, gap)  # resumes as a gap study
    with pytest.raises(ConfigError, match=r"another setup \(objective=gap\)"):
        check_setup("old", old, z)


def test_ensemble_moments_are_the_retrained_mean_and_spread():
    def base(value):
        return SimpleNamespace(evaluations={"retrained": {"forget_train_acc": value,
                                                          "mia_efficacy": None}})

    means, stds = ensemble_moments([base(0.1), base(0.3), base(0.2)])
    assert stds == {"forget_train_acc": pytest.approx(0.1)}
    assert means == {"forget_train_acc": pytest.approx(0.2)}
    assert ensemble_moments([base(0.1)])[1] == {}
    assert DIVERGED_Z == float("inf")


def test_lookup_prefers_the_scenario_in_every_file(tmp_path, monkeypatch):
    from unlearnlab.methods import presets

    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({"gemu": {"mnist|class:6|mlp": {"params": {"n2r": 9.0}}}}))
    monkeypatch.setattr(presets, "SHIPPED_TUNED", shipped)
    root = tmp_path / "data"
    (root / TUNED_FILE).parent.mkdir(parents=True)
    (root / TUNED_FILE).write_text(json.dumps({"gemu": {"mnist": {"params": {"n2r": 5.0}}}}))
    assert scenario_key("mnist", "random:0.10", "mlp") == "mnist|random:0.1|mlp"
    assert lookup_tuned("gemu", "mnist", root, "class:6", "mlp")[1]["params"]["n2r"] == 9.0
    assert lookup_tuned("gemu", "mnist", root, "class:6", "cnn")[1]["params"]["n2r"] == 5.0
    assert lookup_tuned("gemu", "mnist", root)[1]["params"]["n2r"] == 5.0  # no scenario given
    assert create("gemu", preset="tuned", dataset="mnist", arch="mlp", forget="class:6",
                  data_dir=str(root)).params["n2r"] == 9.0


# ------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize(("argv", "message"), [
    (["--suite", "nope"], "--suite 'nope' is not a scenario suite"),
    (["--suite", "heldout"], "tune-all refuses --suite heldout"),
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--methods", ","], "--methods is empty"),
    (["--budget", "0"], "--budget must be a positive integer"),
    (["--seeds", "0"], "--seeds must be a positive integer"),
    (["--scenarios", "mnist-two"], "'mnist-two' is not a scenario of the suite"),
    (["--objective", "kl"], "--objective 'kl' is not an objective"),
    (["--seeds", "1"], "--objective z needs --seeds 2 or more"),
])
def test_tune_all_bad_input_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    root = tmp_path / "data"
    assert main(["tune-all", "--quick", "--data-dir", str(root), "--out",
                 str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (root / "models").exists() and not (root / "studies").exists()
    assert not (tmp_path / "out").exists()


def test_a_method_without_a_search_space_is_refused(untunable, capsys, tmp_path):
    assert main(["tune-all", "--quick", "--data-dir", str(tmp_path / "data"), "--out",
                 str(tmp_path / "out"), "--methods", f"finetune,{untunable}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'keep' declares no search space, so tune-all" in err
    assert not (tmp_path / "out").exists()


def test_plan_gives_each_method_the_scenarios_it_is_meant_for():
    cells = plan(TuneAllConfig(methods=["finetune"], scenario_names=["mnist-six",
                                                                     "mnist-random-10"]))
    assert [(c.name, c.config.arch, c.config.trials, c.config.dataset_entry) for c in cells] \
        == [("mnist-six", "mlp", 30, False), ("mnist-random-10", "mlp", 30, False)]
    every = plan(TuneAllConfig())
    assert {c.config.method for c in every} == set(tunable_methods())
    assert "relabel" in {c.config.method for c in every if c.name == "mnist-six"}
    assert all(c.config.trials == 30 and c.config.seeds == 3 and c.config.objective == "z"
               for c in every)


def test_tune_objective_z_needs_two_seeds(capsys, tmp_path):
    assert main(["tune", "--dataset", "digits", "--quick", "--method", "finetune",
                 "--objective", "z", "--seeds", "1", "--data-dir", str(tmp_path)]) == 2
    assert "--objective z needs --seeds 2 or more" in capsys.readouterr().err


def test_tune_all_on_workers_scores_z_like_in_process(tuned, tmp_path):
    """Through an executor of two workers (the trials in rounds, ``tuning.trial_job``), a
    study holds the budget and every trial its per-seed avg |z|, as in this process."""
    result = tune_all(config(tmp_path / "data", methods=["gradient_ascent"]), None,
                      executor="process:2", scenarios=[SCENARIO])
    (row,) = result.rows
    assert row["trials"] == 2 and row["ran"] == 2
    study = optuna.load_study(study_name=row["study"],
                              storage=storage_url(TuneConfig(data_dir=str(tmp_path / "data"))))
    local = optuna.load_study(study_name=row["study"],
                              storage=storage_url(TuneConfig(data_dir=str(tuned["root"]))))
    for trial in complete(study):
        assert trial.value == pytest.approx(np.mean(trial.user_attrs["z_gaps"]))
    # The first trial is the default preset in both: the same value on the same models.
    assert complete(study)[0].value == pytest.approx(complete(local)[0].value)
