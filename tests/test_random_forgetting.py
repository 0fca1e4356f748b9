"""Random forgetting (``random:<fraction>[:<split seed>]``) through the lab: the scenario (no
forget-test part, the test split as the MIA reference, the forget set fixed by the split seed
whatever the run seed), the evaluation and the metrics without forget-test samples, which
methods take it and with which defaults, and ``unlearnlab run`` end to end on MNIST."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, make_split
from support import same_weights
from support import weights as state

from unlearnlab import mia
from unlearnlab.bench import scenario_name
from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.evaluation import evaluate_logits
from unlearnlab.experiment import check_method, run
from unlearnlab.forget import forget_masks, random_rows
from unlearnlab.methods import UnlearnTask, create, get_method, list_methods
from unlearnlab.methods.random_label import RandomLabel
from unlearnlab.models import recipe_for
from unlearnlab.scenario import build_scenario, probe_rows
from unlearnlab.training import predict, seed_everything

FOR_RANDOM = [m for m in list_methods() if "random" in get_method(m).scenarios]


@pytest.fixture(scope="module")
def toy():
    """A registered 400 / 200 sample dataset (40 / 20 per class), trained on the MLP."""
    from unlearnlab.data import register_tensors

    gen = torch.Generator().manual_seed(5)
    train, test = make_split(400, gen), make_split(200, gen)
    return register_tensors("random_toy", (train.x, train.y), (test.x, test.y), replace=True)


def toy_config(tmp_path, **changes) -> RunConfig:
    return RunConfig(**{"dataset": "random_toy", "forget": "random:0.25", "method": "finetune",
                        "arch": "mlp", "epochs": 2, "data_dir": str(tmp_path),
                        "metrics": ["mia_efficacy", "mia_loss"], **changes})


# ----------------------------------------------------------------------------- the scenario

def test_scenario_has_no_forget_class_and_no_forget_test_part(toy, tmp_path):
    sc = build_scenario(toy_config(tmp_path))
    assert sc.kind == "random" and sc.forget_class is None
    assert sc.arch == "mlp"
    assert int(sc.masks["train"].sum()) == 100  # 10 of each class's 40
    assert not sc.masks["test"].any()


def test_forget_set_is_independent_of_the_run_seed(toy, tmp_path):
    a, b = (build_scenario(toy_config(tmp_path, seed=s)) for s in (0, 1))
    assert torch.equal(a.masks["train"], b.masks["train"])
    assert a.forget_digest == b.forget_digest
    other = build_scenario(toy_config(tmp_path, forget="random:0.25:1"))
    assert other.forget_digest != a.forget_digest


def test_subsets_keep_the_split_seeds_forget_set(toy, tmp_path):
    """A per-class training subset (quick mode's) and the validation split differ per run seed,
    but every forget sample they keep comes from the one forget set of the split seed."""
    whole = forget_masks("random:0.25", toy)["train"]
    forget_set = set(toy.train.index[whole].tolist())
    for seed in (0, 1):
        for changes in ({"train_per_class": 20}, {"validation": 0.2}):
            sc = build_scenario(toy_config(tmp_path, seed=seed, **changes))
            kept = set(sc.train.index[sc.masks["train"]].tolist())
            assert kept and kept <= forget_set
            assert set(sc.train.index[~sc.masks["train"]].tolist()).isdisjoint(forget_set)
            assert not sc.masks["test"].any()  # the validation split plays test: none either


def test_the_test_split_is_the_mia_reference():
    """Random forgetting: ``forget_test`` is a seeded half of the (retain) test split and the
    shadow non-members come from the other half; other specs keep their forget-test rows."""
    masks = {"train": torch.arange(100) % 4 == 0, "test": torch.zeros(60, dtype=torch.bool)}
    probe = probe_rows(masks, seed=3, test_reference=True)
    reference, nonmember = probe["forget_test"][1], probe["nonmember"][1]
    assert probe["forget_test"][0] == "test" and len(reference) == 30
    assert set(reference.tolist()).isdisjoint(nonmember.tolist())
    assert len(nonmember) == len(probe["member"][1]) == 30
    assert torch.equal(probe["forget_train"][1], masks["train"].nonzero().squeeze(1))
    assert torch.equal(reference, probe_rows(masks, 3, test_reference=True)["forget_test"][1])
    plain = probe_rows(masks, seed=3)
    assert len(plain["forget_test"][1]) == 0 and len(plain["nonmember"][1]) == 60


# ------------------------------------------------------------- evaluation and metrics

def test_evaluation_without_forget_test_samples():
    gen = torch.Generator().manual_seed(0)
    train, test = make_split(50, gen), make_split(20, gen)
    masks = {"train": torch.arange(50) % 5 == 0, "test": torch.zeros(20, dtype=torch.bool)}
    logits = {"train": torch.randn(50, 10, generator=gen),
              "test": torch.randn(20, 10, generator=gen)}
    out = evaluate_logits(logits, train, test, masks)
    assert out["forget_test_acc"] is None
    assert out["retain_test_acc"] == out["test_acc"]
    assert out["forget_train_acc"] is not None
    assert out["forget_test_predictions"] == [0] * 10
    assert not any(k.startswith(("class_rest", "other_classes")) for k in out)


def test_mia_chance_levels_are_none_without_forget_test_samples():
    rng = np.random.default_rng(0)
    member, nonmember, forget = rng.random(40), rng.random(40), rng.random(10)
    empty = np.array([])
    score, chance = mia.mia_efficacy(member, nonmember, forget, empty)
    assert 0 <= score <= 1 and chance is None
    score, chance = mia.mia_entropy(member, nonmember, forget, empty)
    assert 0 <= score <= 1 and chance is None
    assert mia.mia_loss(forget, empty, 0) == (None, None)


# ------------------------------------------------------------------------------- methods

def test_relabel_is_refused_in_one_line_every_other_built_in_takes_random():
    assert set(list_methods()) - set(FOR_RANDOM) == {"relabel"}
    with pytest.raises(ConfigError, match="'relabel' is not meant for random forgetting") as exc:
        create("relabel", scenario="random")
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="not meant for random"):
        check_method(RunConfig(forget="random:0.1", method="relabel"))


def random_entries(cls, dataset: str) -> dict:
    """What a method's "random" and "<dataset>:random" refinements set, the latter winning."""
    return {**cls.refinements.get("random", {}), **cls.refinements.get(f"{dataset}:random", {})}


def test_every_method_meant_for_random_forgetting_declares_random_defaults():
    """Measured on MNIST and Fashion-MNIST random 10 % (docs/tuning-notes.md, "Random
    forgetting"): every method but GEMU and GeFeU on MNIST, where the defaults were kept."""
    for name in FOR_RANDOM:
        cls = get_method(name)
        assert any(random_entries(cls, d) for d in ("mnist", "fashion_mnist")), name
        assert cls.defaults_kind("random") == "random", name
    assert not random_entries(get_method("gemu"), "mnist")


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("name", FOR_RANDOM)
def test_random_defaults_hold_after_every_other_refinement(name, dataset):
    """A "random" entry is applied before the architecture's and the dataset's keys: none of
    them may undo it on the bench's scenarios (MLP)."""
    cls = get_method(name)
    params = cls.resolve_params(dataset=dataset, scenario="random", arch="mlp")
    entries = random_entries(cls, dataset)
    assert {k: params[k] for k in entries} == entries
    if entries:  # they change what random forgetting would otherwise read
        feature = cls.resolve_params(dataset=dataset, scenario="feature", arch="mlp")
        plain = cls.resolve_params(dataset=dataset, arch="mlp")
        assert params not in (feature, plain)


def test_random_reads_the_feature_refinements_without_a_random_key():
    class FeatureOnly(RandomLabel):
        name = "random_label_feature_only"
        refinements = {"feature": {"lr": 1e-4}, "mnist:feature": {"forget_samples": 7}}

    assert FeatureOnly.defaults_kind("random") == "feature"
    for dataset in ("mnist", "fashion_mnist"):
        assert (FeatureOnly.resolve_params(dataset=dataset, scenario="random")
                == FeatureOnly.resolve_params(dataset=dataset, scenario="feature"))


def test_a_random_key_takes_over_from_the_feature_ones():
    class Tuned(RandomLabel):
        name = "random_label_tuned_for_random"
        refinements = {"feature": {"forget_samples": 100, "lr": 3e-4},
                       "mnist:random": {"lr": 1e-5}}

    params = Tuned.resolve_params(dataset="mnist", scenario="random")
    assert params["lr"] == 1e-5
    assert params["forget_samples"] == RandomLabel.defaults["forget_samples"]  # not "feature"'s
    assert Tuned.resolve_params(dataset="fashion_mnist", scenario="random") == RandomLabel.defaults


@pytest.mark.parametrize("name", FOR_RANDOM)
def test_methods_unlearn_a_forget_set_of_every_class(name, mlp, mlp_data):
    """The forget set spans all ten classes (no method may assume one forgotten class)."""
    train = mlp_data.train
    forget = torch.zeros(len(train.y), dtype=torch.bool)
    forget[random_rows(train.y, 0.1, 0)] = True
    assert len(torch.unique(train.y[forget])) == 10
    task = UnlearnTask(train.x[forget], train.y[forget], train.x[~forget], train.y[~forget],
                       10, recipe_for("mlp"), torch.device("cpu"), 0, "mnist")
    before = state(mlp)
    seed_everything(0)
    out = create(name, dataset="mnist", scenario="random", arch="mlp").unlearn(mlp, task)
    assert same_weights(state(mlp), before)
    assert all(torch.isfinite(q).all() for q in out.parameters())
    assert not same_weights(state(out), before)
    assert predict(out, train.x[forget]).shape == (int(forget.sum()), 10)


# ------------------------------------------------------------------------ run and bench

def test_run_records_forget_retain_and_test_accuracies(toy, tmp_path):
    record = run(toy_config(tmp_path)).record
    assert record["forget"] == "random:0.25"
    assert record["sizes"]["forget_train"] == 100 and record["sizes"]["forget_test"] == 0
    for role in ("original", "retrained", "unlearned"):
        model = record["models"][role]
        assert model["forget_test_acc"] is None
        assert 0 <= model["forget_train_acc"] <= 1 and 0 <= model["retain_train_acc"] <= 1
        assert model["retain_test_acc"] == model["test_acc"]
        assert model["mia_efficacy_chance"] is not None and model["mia_loss"] is not None
    assert record["avg_gap"] is not None


@pytest.mark.parametrize(("forget", "name"), [("random:0.1", "mnist-random-10"),
                                              ("random:0.10:0", "mnist-random-10"),
                                              ("random:0.2", "mnist-random-0.2"),
                                              ("random:0.20:0", "mnist-random-0.2"),
                                              ("random:0.1:3", "mnist-random-0.1-3")])
def test_scenario_name(forget, name):
    """A standard scenario has its short name however its spec is spelled; any other spec is
    written canonically."""
    assert scenario_name("mnist", forget) == name


# --------------------------------------------------------------- the command line (MNIST)

def cli_run(root, seed: int, out) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-m", "unlearnlab", "run", "--quick", "--dataset",
                           "mnist", "--forget", "random:0.1", "--arch", "mlp", "--method",
                           "finetune", "--seed", str(seed), "--data-dir", str(root), "--json",
                           str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.integration
def test_cli_run_in_quick_mode(isolated_root, tmp_path):
    records = [cli_run(isolated_root, seed, tmp_path / f"seed{seed}.json") for seed in (0, 1)]
    for record in records:
        assert record["forget"] == "random:0.1" and record["arch"] == "mlp"
        assert record["sizes"]["forget_test"] == 0 and record["sizes"]["forget_train"] > 0
        for model in record["models"].values():
            assert model["forget_test_acc"] is None
            for key in ("forget_train_acc", "retain_train_acc", "retain_test_acc", "test_acc"):
                assert 0 <= model[key] <= 1
    # Both seeds forget the same rows of the whole training split (quick mode then trains
    # each seed on its own subset of it); the retrained ensemble forgets one set.
    configs = [RunConfig(dataset="mnist", forget="random:0.1", method="finetune", arch="mlp",
                         seed=seed, data_dir=str(isolated_root)) for seed in (0, 1)]
    full = [build_scenario(cfg) for cfg in configs]
    assert torch.equal(full[0].masks["train"], full[1].masks["train"])
    assert int(full[0].masks["train"].sum()) == 5999  # round(0.1 x n_c) over MNIST's classes
    quick = [build_scenario(RunConfig(**{**cfg.__dict__, "quick": True})) for cfg in configs]
    forget_set = set(full[0].train.index[full[0].masks["train"]].tolist())
    for sc, record in zip(quick, records, strict=True):
        kept = set(sc.train.index[sc.masks["train"]].tolist())
        assert kept <= forget_set and len(kept) == record["sizes"]["forget_train"]
        assert sc.forget_digest == full[0].forget_digest
