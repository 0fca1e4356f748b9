"""Field methods, part A: finetune, random_label, neggrad_plus, scrub and salun specifics
(the generic contract runs on them in ``test_methods.py``). Synthetic data only."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import make_dataset

from unlearnlab.errors import ConfigError
from unlearnlab.methods import UnlearnTask, get_method
from unlearnlab.methods import random_label as random_label_module
from unlearnlab.methods.finetune import sample_rows
from unlearnlab.methods.random_label import random_other_labels
from unlearnlab.methods.salun import saliency_mask
from unlearnlab.methods.scrub import distill_kl
from unlearnlab.models import create_model
from unlearnlab.training import fit, predict, recipe_for, seed_everything

FORGET = 6


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def make_task(ds, seed: int = 0, forget_x: torch.Tensor | None = None) -> UnlearnTask:
    f = ds.train.y == FORGET
    fx = ds.train.x[f] if forget_x is None else forget_x
    return UnlearnTask(fx, ds.train.y[f][:len(fx)], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for("cnn"), torch.device("cpu"), seed)


def noise_task(ds, seed: int = 0) -> UnlearnTask:
    """The same task with the forget images replaced by noise (same count, same labels)."""
    f = ds.train.y == FORGET
    gen = torch.Generator().manual_seed(99)
    return make_task(ds, seed, torch.rand(ds.train.x[f].shape, generator=gen))


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(n_train=300, n_test=200, seed=3)


@pytest.fixture(scope="module")
def original(dataset):
    seed_everything(0)
    model = create_model("cnn")
    fit(model, dataset.train.x, dataset.train.y, epochs=3, batch_size=64, lr=3e-3, seed=0)
    return model


@pytest.fixture
def cnn(original):
    return copy.deepcopy(original)


def run(name, model, task, **params):
    seed_everything(task.seed)
    method = get_method(name)(**params)
    return method.unlearn(model, task), method


# ---------------------------------------------------------------------------- shared helpers

def test_sample_rows_without_repeats():
    gen = torch.Generator().manual_seed(0)
    rows = sample_rows(50, 20, gen)
    assert len(rows) == 20 and len(set(rows.tolist())) == 20 and rows.max() < 50
    assert sorted(sample_rows(50, 0, gen).tolist()) == list(range(50))  # 0 = all
    assert sorted(sample_rows(50, 80, gen).tolist()) == list(range(50))  # capped


@pytest.mark.parametrize(("name", "key", "value"), [
    ("finetune", "retain_samples", -1), ("random_label", "forget_samples", -5),
    ("random_label", "retain_ratio", -1.0), ("random_label", "retain_ratio", float("nan")),
    ("neggrad_plus", "alpha", 1.5), ("neggrad_plus", "alpha", -0.1),
    ("neggrad_plus", "retain_per_epoch", -1), ("scrub", "msteps", 5), ("scrub", "msteps", -1),
    ("scrub", "temperature", 0.0), ("scrub", "gamma", -1.0), ("scrub", "forget_per_epoch", -2),
    ("salun", "mask_fraction", 0.0), ("salun", "mask_fraction", 1.5),
    ("salun", "mask_fraction", float("nan")), ("salun", "retain_ratio", float("inf")),
])
def test_invalid_parameters_name_the_key(name, key, value):
    with pytest.raises(ConfigError, match=rf"{name}: {key} must be"):
        get_method(name)(**{key: value})


@pytest.mark.parametrize("name", ["random_label", "neggrad_plus", "scrub", "salun"])
def test_empty_forget_set_is_a_config_error(name, cnn, dataset):
    task = make_task(dataset, forget_x=dataset.train.x[:0])
    with pytest.raises(ConfigError, match="forget set is empty"):
        run(name, cnn, task)


# ---------------------------------------------------------------------------------- finetune

def test_finetune_never_reads_the_forget_set(cnn, dataset):
    a, _ = run("finetune", copy.deepcopy(cnn), make_task(dataset))
    b, _ = run("finetune", copy.deepcopy(cnn), noise_task(dataset))
    c, _ = run("finetune", copy.deepcopy(cnn), make_task(dataset, forget_x=dataset.train.x[:3]))
    assert same_weights(state(a), state(b)) and same_weights(state(a), state(c))


def test_finetune_retain_samples_caps_the_training_set(cnn, dataset):
    _, method = run("finetune", cnn, make_task(dataset), retain_samples=40, batch_size=16,
                    epochs=2)
    assert len(method.history) == 2
    # accuracy over 40 samples is a multiple of 1/40
    assert all(abs(h["acc"] * 40 - round(h["acc"] * 40)) < 1e-9 for h in method.history)


# ------------------------------------------------------------------------------ random_label

def test_random_other_labels_are_never_the_true_label_and_cover_the_others():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(500)
    t = random_other_labels(y, 10, gen)
    assert (t != y).all() and t.min() >= 0 and t.max() <= 9
    for c in range(10):  # every other class is drawn for each true class
        assert set(t[y == c].tolist()) == set(range(10)) - {c}
    with pytest.raises(ConfigError, match="at least 2 classes"):
        random_other_labels(y[:3] * 0, 1, gen)


def test_random_label_trains_on_wrong_forget_labels_mixed_with_retain(cnn, dataset,
                                                                      monkeypatch):
    seen = {}
    real_fit = random_label_module.fit

    def spy(model, x, y, **kw):
        seen["x"], seen["y"] = x.clone(), y.clone()
        return real_fit(model, x, y, **kw)

    monkeypatch.setattr(random_label_module, "fit", spy)
    task = make_task(dataset)
    _, method = run("random_label", cnn, task, forget_samples=10, retain_ratio=2.5)
    assert method.mix == {"forget": 10, "retain": 25}
    x, y = seen["x"], seen["y"]
    assert len(y) == 35
    assert (y[:10] != FORGET).all(), "a forget sample kept its true label"
    assert (y[10:] != FORGET).all() and len(y[10:]) == 25
    # the retain part keeps its true labels: match each image back to the retain set
    for xi, yi in zip(x[10:], y[10:], strict=True):
        hit = (task.retain_x == xi).flatten(1).all(1)
        assert task.retain_y[hit].unique().tolist() == [yi.item()]
    for xi in x[:10]:  # and the first part really is forget data
        assert (task.forget_x == xi).flatten(1).all(1).any()


def test_random_label_forgets_the_class(cnn, dataset):
    test = dataset.test
    f = test.y == FORGET
    assert (predict(cnn, test.x).argmax(1)[f] == FORGET).float().mean() > 0.8
    out, _ = run("random_label", cnn, make_task(dataset), epochs=3, batch_size=16, lr=3e-3,
                 retain_ratio=3.0)
    after = predict(out, test.x).argmax(1)
    assert (after[f] == FORGET).float().mean() < 0.3
    assert (after[~f] == test.y[~f]).float().mean() > 0.8


# ------------------------------------------------------------------------------ neggrad_plus

def test_neggrad_plus_alpha_one_is_retain_only_fine_tuning(cnn, dataset):
    """With alpha = 1 the forget term has weight 0: the forget images cannot matter."""
    a, _ = run("neggrad_plus", copy.deepcopy(cnn), make_task(dataset), alpha=1.0)
    b, _ = run("neggrad_plus", copy.deepcopy(cnn), noise_task(dataset), alpha=1.0)
    assert same_weights(state(a), state(b))
    c, _ = run("neggrad_plus", copy.deepcopy(cnn), make_task(dataset), alpha=0.9)
    d, _ = run("neggrad_plus", copy.deepcopy(cnn), noise_task(dataset), alpha=0.9)
    assert not same_weights(state(c), state(d))


def test_neggrad_plus_raises_the_forget_loss(cnn, dataset):
    task = make_task(dataset)
    ce = torch.nn.functional.cross_entropy
    before = ce(predict(cnn, task.forget_x), task.forget_y).item()
    params = {"epochs": 3, "batch_size": 32, "forget_batch": 16, "lr": 1e-3}
    keep, _ = run("neggrad_plus", copy.deepcopy(cnn), task, alpha=1.0, **params)
    push, method = run("neggrad_plus", copy.deepcopy(cnn), task, alpha=0.5, **params)
    after_keep = ce(predict(keep, task.forget_x), task.forget_y).item()
    after_push = ce(predict(push, task.forget_x), task.forget_y).item()
    assert after_push > before and after_push > after_keep + 1.0
    assert [h["epoch"] for h in method.history] == [1, 2, 3]
    assert all(math.isfinite(h["forget_ce"]) for h in method.history)


# ------------------------------------------------------------------------------------- scrub

def test_distill_kl_is_zero_for_equal_logits_and_matches_the_formula():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=gen), torch.randn(8, 10, generator=gen)
    assert distill_kl(t, t, 4.0).abs().item() < 1e-6
    p_t, p_s = torch.softmax(t / 2, 1), torch.softmax(s / 2, 1)
    manual = (p_t * (p_t.log() - p_s.log())).sum(1).mean() * 4
    assert torch.allclose(distill_kl(s, t, 2.0), manual, atol=1e-6)


def test_scrub_teacher_is_the_frozen_original(cnn, dataset):
    before = state(cnn)
    out, method = run("scrub", cnn, make_task(dataset), epochs=2, msteps=2)
    assert same_weights(state(method.teacher), before)
    assert not method.teacher.training
    assert not any(q.requires_grad for q in method.teacher.parameters())
    assert all(q.requires_grad for q in cnn.parameters()), "the input lost requires_grad"
    assert not same_weights(state(out), before)
    assert [h["phase"] for h in method.history] == ["max", "min", "max", "min"]


def test_scrub_without_max_steps_ignores_the_forget_set(cnn, dataset):
    a, _ = run("scrub", copy.deepcopy(cnn), make_task(dataset), msteps=0)
    b, _ = run("scrub", copy.deepcopy(cnn), noise_task(dataset), msteps=0)
    assert same_weights(state(a), state(b))
    c, _ = run("scrub", copy.deepcopy(cnn), make_task(dataset), msteps=1)
    d, _ = run("scrub", copy.deepcopy(cnn), noise_task(dataset), msteps=1)
    assert not same_weights(state(c), state(d))


def test_scrub_max_step_moves_the_student_away_on_the_forget_set(cnn, dataset):
    task = make_task(dataset)
    out, method = run("scrub", cnn, task, epochs=1, msteps=1, alpha=0.0, gamma=0.0,
                      forget_batch=8, lr=1e-3, temperature=1.0)
    assert method.history[0]["phase"] == "max"
    with torch.no_grad():
        kl = distill_kl(predict(out, task.forget_x), predict(cnn, task.forget_x), 1.0)
    assert kl.item() > 0.1


# ------------------------------------------------------------------------------------- salun

def test_saliency_mask_keeps_the_top_fraction(cnn, dataset):
    task = make_task(dataset)
    masks = saliency_mask(cnn, task.forget_x, task.forget_y, 0.1, batch_size=7)
    total = sum(q.numel() for q in cnn.parameters())
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round(0.1 * total)
    assert all(q.grad is None for q in cnn.parameters()), "gradients left behind"
    # the kept weights have the largest |grad| (one global threshold)
    cnn.zero_grad()
    torch.nn.functional.cross_entropy(cnn(task.forget_x), task.forget_y).backward()
    grads = {n: q.grad.abs() for n, q in cnn.named_parameters()}
    lowest_kept = min(grads[n][m.bool()].min() for n, m in masks.items() if m.any())
    highest_dropped = max(grads[n][~m.bool()].max() for n, m in masks.items() if (m == 0).any())
    assert lowest_kept >= highest_dropped * (1 - 1e-4)


def test_salun_updates_only_the_masked_weights(cnn, dataset):
    before = state(cnn)
    out, method = run("salun", cnn, make_task(dataset), mask_fraction=0.2, epochs=2,
                      batch_size=16)
    after = dict(out.named_parameters())
    changed = 0
    for name, mask in method.mask.items():
        old, new = before[name], after[name].detach()
        assert torch.equal(new[mask == 0], old[mask == 0]), f"{name}: an unmasked weight moved"
        changed += int((new[mask == 1] != old[mask == 1]).sum())
    assert changed > 0.5 * sum(int(m.sum()) for m in method.mask.values())
    assert not any(q._backward_hooks for q in out.parameters()), "gradient hooks left behind"


def test_salun_full_mask_changes_more_weights(cnn, dataset):
    before = state(cnn)
    out, _ = run("salun", cnn, make_task(dataset), mask_fraction=1.0)
    moved = sum(int((q.detach() != before[n]).sum()) for n, q in out.named_parameters())
    total = sum(q.numel() for q in out.parameters())
    assert moved > 0.6 * total


@pytest.mark.parametrize("name", ["random_label", "salun"])
def test_feature_scenarios_get_a_milder_relabelling(name):
    cls = get_method(name)
    mild = cls(dataset="fashion_mnist", scenario="feature")
    default = cls(dataset="fashion_mnist", scenario="class")
    assert mild.params["forget_samples"] < default.params["forget_samples"]
    assert mild.params["retain_ratio"] > default.params["retain_ratio"]
    assert mild.params["lr"] < default.params["lr"]
