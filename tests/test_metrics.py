"""The field's forget-set metrics: invariants of the distances to the retrained model,
the membership-inference attacks on constructed score distributions, relearn time, the
average gap, and the reproducibility bundle with ``rescore``."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from conftest import make_dataset

from unlearnlab import bundle, mia
from unlearnlab.errors import ConfigError
from unlearnlab.metrics import (
    METRICS,
    PROBE_SETS,
    Outputs,
    forget_metrics,
    js_divergence,
    relearn_steps,
    select_metrics,
)
from unlearnlab.models import create_model
from unlearnlab.training import fit, seed_everything
from unlearnlab.verdict import GAP_KEYS, avg_gap, z_score


def random_outputs(seed: int = 0, n: int = 200, models=("original", "retrained", "unlearned",
                                                         "untrained")) -> Outputs:
    gen = torch.Generator().manual_seed(seed)
    labels = {s: torch.randint(0, 10, (n,), generator=gen) for s in PROBE_SETS}
    logits = {m: {s: 3 * torch.randn(n, 10, generator=gen) for s in PROBE_SETS} for m in models}
    return Outputs(labels, logits, seed)


# ------------------------------------------------------------------------------ invariants

def test_identical_models_have_zero_distance_and_full_agreement():
    out = random_outputs()
    out.logits["unlearned"] = copy.deepcopy(out.logits["retrained"])
    values = forget_metrics(out, ["js_to_retrained", "activation_distance",
                                  "agreement_with_retrained"])["unlearned"]
    assert values["js_to_retrained"] == pytest.approx(0, abs=1e-12)
    assert values["activation_distance"] == pytest.approx(0, abs=1e-12)
    assert values["agreement_with_retrained"] == 1.0


def test_different_models_are_apart():
    values = forget_metrics(random_outputs(), ["js_to_retrained", "activation_distance",
                                               "agreement_with_retrained"])["unlearned"]
    assert 0 < values["js_to_retrained"] <= math.log(2)
    assert 0 < values["activation_distance"] <= math.sqrt(2)
    assert values["agreement_with_retrained"] < 0.5


def test_js_is_symmetric_bounded_and_handles_certainty():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 10, generator=gen), torch.randn(50, 10, generator=gen)
    assert torch.allclose(js_divergence(a, b), js_divergence(b, a))
    certain = torch.full((1, 10), -1e4)
    certain[0, 0] = 1e4
    other = torch.full((1, 10), -1e4)
    other[0, 1] = 1e4
    assert js_divergence(certain, other).item() == pytest.approx(math.log(2))
    assert js_divergence(certain, certain).item() == pytest.approx(0)


def test_zrf_is_one_for_the_random_model_itself():
    out = random_outputs()
    out.logits["unlearned"] = copy.deepcopy(out.logits["untrained"])
    scores = forget_metrics(out, ["zrf"])
    assert scores["unlearned"]["zrf"] == pytest.approx(1.0)
    assert scores["original"]["zrf"] < 1.0


def test_a_model_compared_with_itself_has_zero_gap():
    m = {k: v for k, v in zip(GAP_KEYS, (0.1, 0.2, 0.9, 0.95, 0.5), strict=True)}
    assert avg_gap(m, m) == 0.0
    worse = {**m, "retain_test_acc": 0.85, "forget_test_acc": 0.4}
    assert avg_gap(worse, m) == pytest.approx((0.1 + 0.2) / len(GAP_KEYS))
    assert avg_gap({}, m) is None


def test_z_score():
    assert z_score(0.9, 0.8, 0.05) == pytest.approx(2.0)
    assert z_score(0.8, 0.8, 0.0) == 0.0  # the floor avoids 0/0
    assert z_score(None, 0.8, 0.1) is None


def test_metric_selection():
    assert select_metrics(None)[-1] == "relearn_steps"
    assert set(select_metrics(None)) == {*METRICS, "relearn_steps"}
    with pytest.raises(ConfigError, match="unknown metric 'accuracy'"):
        select_metrics(["accuracy"])
    with pytest.raises(ConfigError, match="empty"):
        select_metrics([])


# ---------------------------------------------------------------------- membership inference

def test_mia_loss_is_chance_on_identical_distributions_and_high_when_separable():
    rng = np.random.default_rng(0)
    same = mia.mia_loss(rng.exponential(1, 800), rng.exponential(1, 800), seed=0)
    assert same[0] == pytest.approx(0.5, abs=0.05) and same[1] == pytest.approx(0.5, abs=0.06)
    memorised = mia.mia_loss(rng.exponential(0.01, 800), 1 + rng.exponential(1, 800), seed=0)
    assert memorised[0] > 0.95 and memorised[1] > 0.95
    assert mia.mia_loss(np.ones(3), np.ones(3), seed=0) == (None, None)


def test_mia_efficacy_and_entropy_follow_their_definitions():
    rng = np.random.default_rng(1)
    member = rng.uniform(0.95, 1.0, 500)       # confident on training samples
    nonmember = rng.uniform(0.0, 0.6, 500)     # unsure on unseen ones
    seen, unseen = rng.uniform(0.95, 1.0, 300), rng.uniform(0.0, 0.6, 300)
    # efficacy = fraction called non-member: 0 for a memorised forget set, 1 for a forgotten one
    assert mia.mia_efficacy(member, nonmember, seen, unseen) == pytest.approx((0.0, 1.0),
                                                                              abs=0.02)
    # entropy: low entropy = member; the score is the member rate
    ent_member, ent_non = rng.uniform(0, 0.1, 500), rng.uniform(1, 2, 500)
    score, chance = mia.mia_entropy(ent_member, ent_non, rng.uniform(0, 0.1, 300),
                                    rng.uniform(1, 2, 300))
    assert score == pytest.approx(1.0, abs=0.02) and chance == pytest.approx(0.0, abs=0.02)


def test_attackers_are_deterministic_and_scores_are_fractions():
    out = random_outputs(seed=3)
    a, b = forget_metrics(out), forget_metrics(copy.deepcopy(out))
    assert a == b
    for role, values in a.items():
        for key in ("mia_efficacy", "mia_entropy", "mia_loss", "mia_loss_auc"):
            assert 0.0 <= values[key] <= 1.0, (role, key)


def test_shadow_rows_are_balanced_capped_and_seeded():
    m, n = mia.shadow_rows(50_000, 9_000, seed=0)
    assert len(m) == len(n) == mia.SHADOW_CAP and len(set(m)) == len(m)
    assert m.max() < 50_000 and n.max() < 9_000
    assert np.array_equal(m, mia.shadow_rows(50_000, 9_000, seed=0)[0])
    assert not np.array_equal(m, mia.shadow_rows(50_000, 9_000, seed=1)[0])
    small = mia.shadow_rows(30, 100, seed=0)
    assert len(small[0]) == len(small[1]) == 30


# ----------------------------------------------------------------------------- relearn time

@pytest.fixture(scope="module")
def trained_mlp():
    ds = make_dataset(n_train=400, n_test=100, seed=4)
    seed_everything(0)
    model = create_model("mlp")
    fit(model, ds.train.x, ds.train.y, epochs=5, batch_size=32, lr=3e-3, seed=0)
    return model, ds


def test_relearn_steps(trained_mlp):
    model, ds = trained_mlp
    f = ds.train.y == 6
    args = (ds.train.x[f], ds.train.y[f], ds.train.x[~f], ds.train.y[~f])
    assert relearn_steps(model, *args, reference=model, seed=0) == (0, True)
    seed_everything(1)
    fresh = create_model("mlp")
    steps, reached = relearn_steps(fresh, *args, reference=model, seed=0)
    assert reached and 0 < steps < 200
    assert relearn_steps(fresh, *args, reference=model, seed=0) == (steps, reached)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    relearn_steps(fresh, *args, reference=model, seed=0, max_steps=1)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


# ------------------------------------------------------------------------ bundle and rescore

def probe_of(out: Outputs) -> dict:
    return {s: ("train" if s in ("forget_train", "member") else "test",
                torch.arange(len(out.labels[s]))) for s in PROBE_SETS}


def test_bundle_round_trip_and_rescore(tmp_path):
    out = random_outputs(seed=5)
    scores = forget_metrics(out)
    models = {role: {**values, **{k: 0.5 for k in GAP_KEYS if k != "mia_efficacy"}}
              for role, values in scores.items()}
    record = {"models": models, "avg_gap": avg_gap(models["unlearned"], models["retrained"])}
    bundle.write(tmp_path / "b", record, out, probe_of(out))
    loaded_record, loaded = bundle.load(tmp_path / "b")
    assert loaded_record == json.loads(json.dumps(record))
    assert loaded.seed == 5
    for model in out.logits:
        for s in PROBE_SETS:
            assert torch.equal(loaded.logits[model][s], out.logits[model][s])
    result = bundle.rescore(tmp_path / "b")
    assert result["differences"] == {}
    assert (tmp_path / "b" / "rescored.json").is_file()

    # a record that does not match its outputs is caught
    tampered = json.loads((tmp_path / "b" / "record.json").read_text())
    tampered["models"]["unlearned"]["mia_loss"] += 0.1
    (tmp_path / "b" / "record.json").write_text(json.dumps(tampered))
    diff = bundle.rescore(tmp_path / "b")["differences"]
    assert set(diff) == {"unlearned.mia_loss"}


def test_bundle_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        bundle.find(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no run bundle under"):
        bundle.find(tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "outputs.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a complete run bundle"):
        bundle.load(tmp_path / "half")
    with pytest.raises(ConfigError, match="no run bundle under"):
        bundle.find(tmp_path)  # an incomplete bundle is never listed
