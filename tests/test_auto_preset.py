"""``--preset auto``: a search before the run when no tuned preset fits the scenario, cached for
that scenario and reused; through ``run`` and ``compare``, the Python API and the CLI. Runs on
scikit-learn's bundled digits in quick mode with the real budget (8 trials x 2 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnlab import auto_preset
from unlearnlab.cli import main
from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.experiment import run
from unlearnlab.methods import create
from unlearnlab.methods.presets import TUNED_FILE

pytest.importorskip("optuna")

METHOD = "gradient_ascent"  # tunable and among the fastest methods


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One data root for the module: the baselines and searches of one test serve the next."""
    return tmp_path_factory.mktemp("auto-root")


@pytest.fixture
def trials(monkeypatch) -> list:
    """The parameters of every trial the auto search evaluates (one entry per trial)."""
    seen = []
    evaluate = auto_preset.evaluate

    def counting(bases, method, params):
        seen.append(dict(params))
        return evaluate(bases, method, params)

    monkeypatch.setattr(auto_preset, "evaluate", counting)
    return seen


def config(root: Path, **extra) -> RunConfig:
    return RunConfig(**{"dataset": "digits", "forget": "class:6", "method": METHOD,
                        "preset": "auto", "quick": True, "data_dir": str(root),
                        "metrics": ["mia_efficacy"], **extra})


def test_run_searches_once_and_an_identical_run_reuses_the_search(root, trials):
    first = run(config(root)).record
    assert len(trials) == auto_preset.AUTO_TRIALS
    source = first["auto_preset"]
    assert first["preset"] == "auto" and first["run_config"]["preset"] == "auto"
    assert source["source"] == "search" and source["reused"] is False
    assert source["budget"]["trials"] == 8 and source["budget"]["seeds"] == 2
    cached = json.loads(Path(source["path"]).read_text())
    assert Path(source["path"]).parent == root / "presets" / "auto" / "digits"
    assert not (root / TUNED_FILE).exists(), "auto must never write the tuned-preset file"
    # The run used the best trial: its searched values, the rest the scenario's defaults.
    assert first["params"] == cached["params"]
    assert first["params"].items() >= cached["searched"].items()
    best = min(cached["trials"], key=lambda t: t["value"])
    assert cached["searched"] == best["params"] and cached["value"] == best["value"]
    # The default preset is the first trial, so the result is never worse than it.
    default = create(METHOD, dataset="digits", scenario="class", arch="cnn").params
    assert trials[0] == {k: default[k] for k in trials[0]}
    assert cached["value"] <= cached["default_value"] == cached["trials"][0]["value"]

    again = run(config(root)).record
    assert len(trials) == auto_preset.AUTO_TRIALS, "an identical run searched again"
    assert again["auto_preset"]["reused"] is True
    assert again["auto_preset"]["path"] == source["path"]
    assert again["params"] == first["params"]
    assert again["models"]["unlearned"] == first["models"]["unlearned"]


def test_another_forget_set_searches_again(root, trials):
    record = run(config(root, forget="class:3")).record
    assert len(trials) == auto_preset.AUTO_TRIALS
    assert record["auto_preset"]["reused"] is False
    other = run(config(root)).record  # class:6, searched by the test above (or searches now)
    assert other["auto_preset"]["path"] != record["auto_preset"]["path"]


def test_the_cache_follows_the_method_code(root, trials, monkeypatch):
    run(config(root))  # cached (or searched) with the real code hash
    before = len(trials)
    monkeypatch.setattr(auto_preset, "method_code_hash", lambda cls: "edited code")
    record = run(config(root)).record
    assert len(trials) == before + auto_preset.AUTO_TRIALS
    assert record["auto_preset"]["reused"] is False


def test_set_overrides_apply_on_top_of_the_searched_values(root, tmp_path):
    out = tmp_path / "record.json"
    assert main(["run", "--dataset", "digits", "--quick", "--method", METHOD, "--preset",
                 "auto", "--set", "lr=0.0001", "--metrics", "mia_efficacy", "--data-dir",
                 str(root), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    source = record["auto_preset"]
    assert record["params"]["lr"] == 0.0001 and source["overrides"] == {"lr": 0.0001}
    assert source["searched"]["lr"] != 0.0001
    for key, value in source["searched"].items():
        if key != "lr":
            assert record["params"][key] == value


def test_compare_searches_once_per_method_for_every_seed(root, trials, tmp_path):
    out = tmp_path / "cmp"
    cfg = RunConfig(dataset="digits", forget="class:2", quick=True, data_dir=str(root),
                    metrics=["mia_efficacy"])
    comparison = compare(cfg, [METHOD], 2, out, preset="auto")
    assert len(trials) == auto_preset.AUTO_TRIALS, "one search serves both seeds"
    records = comparison.records
    assert [r["seed"] for r in records] == [0, 1]
    assert all(r["preset"] == "auto" for r in records)
    assert records[0]["auto_preset"] == records[1]["auto_preset"]
    assert records[0]["params"] == records[1]["params"]
    assert json.loads((out / f"{METHOD}_seed1.json").read_text())["auto_preset"]["path"] \
        == records[0]["auto_preset"]["path"]
    # The CLI: the same comparison reuses the search.
    assert main(["compare", "--dataset", "digits", "--forget", "class:2", "--quick",
                 "--methods", METHOD, "--seeds", "2", "--preset", "auto", "--metrics",
                 "mia_efficacy", "--data-dir", str(root), "--out", str(tmp_path / "cli")]) == 0
    assert len(trials) == auto_preset.AUTO_TRIALS
    saved = json.loads((tmp_path / "cli" / f"{METHOD}_seed0.json").read_text())
    assert saved["auto_preset"]["reused"] is True


def test_a_tuned_preset_of_the_scenario_is_used_without_a_search(tmp_path, trials):
    path = tmp_path / TUNED_FILE
    path.parent.mkdir(parents=True)
    entry = {"params": {"lr": 0.00042}, "forget": "class:6", "arch": "cnn", "quick": True,
             "study": "mine", "value": 0.1, "trials": 20, "seeds": 3}
    path.write_text(json.dumps({METHOD: {"digits": entry}}))
    record = run(config(tmp_path)).record
    assert trials == []
    assert record["auto_preset"]["source"] == "tuned"
    assert record["auto_preset"]["path"] == str(path)
    assert record["params"]["lr"] == 0.00042
    # Tuned on another scenario: not this one's, so auto searches.
    entry["forget"] = "class:3"
    path.write_text(json.dumps({METHOD: {"digits": entry}}))
    record = run(config(tmp_path)).record
    assert len(trials) == auto_preset.AUTO_TRIALS
    assert record["auto_preset"]["source"] == "search"
    assert json.loads(path.read_text())[METHOD]["digits"] == entry, "tuned file was rewritten"


def one_line_error(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_a_method_without_a_search_space_is_refused_before_any_work(untunable, tmp_path,
                                                                    capsys):
    root = tmp_path / "root"
    one_line_error(capsys, ["run", "--dataset", "digits", "--quick", "--method", untunable,
                            "--preset", "auto", "--data-dir", str(root)],
                   "keep declares no search space")
    one_line_error(capsys, ["compare", "--dataset", "digits", "--quick", "--methods",
                            f"{METHOD},{untunable}", "--seeds", "2", "--preset", "auto",
                            "--data-dir", str(root), "--out", str(tmp_path / "out")],
                   "use --preset default")
    with pytest.raises(ConfigError, match="keep declares no search space"):
        run(config(root, method=untunable))
    assert not (root / "models").exists() and not (root / "presets").exists()


def test_forget_quality_refuses_auto_in_one_line(tmp_path, capsys):
    one_line_error(capsys, ["forget-quality", "--dataset", "digits", "--quick", "--forget",
                            "random:0.1", "--arch", "mlp", "--method", "finetune", "--models",
                            "2", "--preset", "auto", "--data-dir", str(tmp_path)],
                   "use it with `unlearnlab run` or `unlearnlab compare`")
    assert not (tmp_path / "models").exists()


def test_create_takes_the_auto_values_only_with_the_auto_preset(untunable):
    with pytest.raises(ConfigError, match="searches before the run"):
        create(METHOD, preset="auto", dataset="digits", scenario="class")
    with pytest.raises(ConfigError, match="not of preset 'default'"):
        create(METHOD, dataset="digits", scenario="class", auto={"lr": 0.001})
    with pytest.raises(ConfigError, match="no 'auto' preset"):
        create(untunable, preset="auto", dataset="digits", scenario="class", auto={})
    method = create(METHOD, preset="auto", dataset="digits", scenario="class",
                    auto={"lr": 0.002}, params={"stop_loss": 1.0})
    assert method.preset == "auto"
    assert method.params["lr"] == 0.002 and method.params["stop_loss"] == 1.0
