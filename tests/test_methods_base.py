"""The method contract and hyperparameters: the registry of built-in methods, what every
``unlearn`` must do (a new model, the input untouched, seeded), and how parameters are resolved
and validated (presets, the lab's refinements, types and ranges). Synthetic data only."""

from __future__ import annotations

import copy

import pytest
import torch
from support import make_task, same_weights, unlearn
from support import weights as state

from unlearnlab.errors import ConfigError
from unlearnlab.methods import UnlearningMethod, create, get_method, list_methods
from unlearnlab.methods.gefeu import GeFeU
from unlearnlab.methods.gemu import GEMU
from unlearnlab.methods.gradient_ascent import GradientAscent
from unlearnlab.methods.relabel import Relabel
from unlearnlab.training import predict

THESIS_METHODS = ("gradient_ascent", "gemu", "gefeu")


def test_registry():
    assert "relabel" in list_methods()
    assert get_method("relabel") is Relabel
    assert issubclass(Relabel, UnlearningMethod)
    with pytest.raises(ConfigError, match="unknown method 'nope'.*relabel"):
        get_method("nope")


@pytest.mark.parametrize("name", list_methods())
def test_returns_a_new_model_and_leaves_the_input_alone(name, cnn, cnn_data):
    before = state(cnn)
    was_training = cnn.training
    _, out = unlearn(name, cnn, make_task(cnn_data))
    assert out is not cnn
    assert isinstance(out, type(cnn))
    assert same_weights(state(cnn), before), "unlearn mutated the input model"
    assert cnn.training == was_training
    # ... and it actually did something: a no-op would pass the checks above
    assert not same_weights(state(out), before)
    # the returned model shares no parameter storage with the input
    in_ptrs = {p.data_ptr() for p in cnn.parameters()}
    assert not in_ptrs & {p.data_ptr() for p in out.parameters()}


@pytest.mark.parametrize("name", list_methods())
def test_same_seed_same_weights(name, cnn, cnn_data):
    _, a = unlearn(name, copy.deepcopy(cnn), make_task(cnn_data, seed=5))
    _, b = unlearn(name, copy.deepcopy(cnn), make_task(cnn_data, seed=5))
    assert same_weights(state(a), state(b))


@pytest.mark.parametrize("name", list_methods())
def test_different_seed_gives_a_valid_model(name, cnn, cnn_data):
    _, a = unlearn(name, copy.deepcopy(cnn), make_task(cnn_data, seed=0))
    _, b = unlearn(name, copy.deepcopy(cnn), make_task(cnn_data, seed=1))
    for model in (a, b):
        assert all(torch.isfinite(p).all() for p in model.parameters())
        logits = predict(model, cnn_data.test.x)
        assert logits.shape == (len(cnn_data.test), 10) and torch.isfinite(logits).all()
    if name == "relabel":  # the seed drives relabel's shuffling
        assert not same_weights(state(a), state(b))


@pytest.mark.parametrize("name", list_methods())
def test_unknown_parameter(name):
    with pytest.raises(ConfigError, match="has no parameter 'nonsense'"):
        create(name, params={"nonsense": 1})


def test_defaults_are_refined_by_scenario_then_dataset(monkeypatch):
    """``refinements``: kind, then dataset, then "<dataset>:<kind>"; named presets ignore
    them; explicit parameters win over everything."""
    monkeypatch.setattr(Relabel, "refinements", {
        "feature": {"epochs": 2, "lr": 0.1}, "mnist": {"lr": 0.2, "batch_size": 7},
        "mnist:feature": {"batch_size": 9}})
    assert create(Relabel, dataset="mnist", scenario="feature").params == {
        **Relabel.defaults, "epochs": 2, "lr": 0.2, "batch_size": 9}
    assert create(Relabel, dataset="mnist", scenario="class").params == {
        **Relabel.defaults, "lr": 0.2, "batch_size": 7}
    assert create(Relabel, dataset="fashion_mnist", scenario="feature",
                  params={"lr": 0.5}).params == {
        **Relabel.defaults, "epochs": 2, "lr": 0.5}


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
        create(name, params={key: value})


@pytest.mark.parametrize("name", ["random_label", "neggrad_plus", "scrub", "salun"])
def test_empty_forget_set_is_a_config_error(name, cnn, cnn_data):
    task = make_task(cnn_data)
    task.forget_x, task.forget_y = task.forget_x[:0], task.forget_y[:0]
    with pytest.raises(ConfigError, match="forget set is empty"):
        unlearn(name, cnn, task)


@pytest.mark.parametrize("name", THESIS_METHODS)
def test_thesis_methods_leave_the_input_alone(name, thesis_mlp, thesis_data):
    thesis_mlp.train()
    before = state(thesis_mlp)
    flags = [p.requires_grad for p in thesis_mlp.parameters()]
    _, out = unlearn(name, thesis_mlp, make_task(thesis_data, arch="mlp"), tiny=True)
    assert out is not thesis_mlp
    assert same_weights(state(thesis_mlp), before)
    assert thesis_mlp.training and [p.requires_grad for p in thesis_mlp.parameters()] == flags
    assert not same_weights(state(out), before)
    assert all(p.requires_grad for p in out.parameters())
    inputs = {p.data_ptr() for p in thesis_mlp.parameters()}
    assert not inputs & {p.data_ptr() for p in out.parameters()}


@pytest.mark.parametrize("name", THESIS_METHODS)
def test_thesis_methods_ignore_the_global_random_state(name, thesis_trained_mlp, thesis_data):
    # a different global RNG state must not matter: everything comes from task.seed
    torch.manual_seed(123)
    _, a = unlearn(name, copy.deepcopy(thesis_trained_mlp),
                   make_task(thesis_data, seed=7, arch="mlp"), tiny=True)
    torch.manual_seed(456)
    _, b = unlearn(name, copy.deepcopy(thesis_trained_mlp),
                   make_task(thesis_data, seed=7, arch="mlp"), tiny=True)
    assert same_weights(state(a), state(b))
    _, c = unlearn(name, copy.deepcopy(thesis_trained_mlp),
                   make_task(thesis_data, seed=8, arch="mlp"), tiny=True)
    if name != "gradient_ascent":  # the thesis preset of ascent is unshuffled; default shuffles
        assert not same_weights(state(a), state(c))
    for model in (a, c):
        assert torch.isfinite(predict(model, thesis_data.test.x)).all()


@pytest.mark.parametrize("cls", [GradientAscent, GEMU, GeFeU])
def test_presets_and_refinements(cls):
    for ds in ("mnist", "cmnist", "fashion_mnist"):
        tuned = create(cls, dataset=ds).params
        assert tuned == {**cls.defaults, **cls.refinements.get(ds, {})}
        # a named preset ignores the lab's tuned values; explicit params win over both
        thesis = create(cls, preset="thesis", dataset=ds, params={"epochs": 2}).params
        assert thesis["epochs"] == 2
    assert create(cls, dataset="unknown").params == cls.defaults
    with pytest.raises(ConfigError, match="no preset 'nope'"):
        create(cls, preset="nope")


@pytest.mark.parametrize("name,params", [
    ("gradient_ascent", {"lr": 0.0}), ("gradient_ascent", {"lr": float("nan")}),
    ("gradient_ascent", {"batch_size": 0}), ("gradient_ascent", {"max_steps": -1}),
    ("gemu", {"noise_lr": -1.0}), ("gemu", {"n2r": -0.5}), ("gemu", {"hidden": 0}),
    ("gefeu", {"impair_lr": float("inf")}), ("gefeu", {"lam": float("nan")}),
    ("gemu", {"mask_fraction": 1.5}), ("gemu", {"mask_fraction": float("nan")}),
    ("gefeu", {"mask_fraction": -0.1}), ("gefeu", {"mask_samples": 0}),
])
def test_thesis_methods_reject_invalid_hyperparameters(name, params):
    with pytest.raises(ConfigError, match=name):
        create(name, params=params)


@pytest.mark.parametrize("name", THESIS_METHODS)
def test_thesis_methods_reject_an_empty_forget_set(name, thesis_mlp, thesis_data):
    task = make_task(thesis_data, arch="mlp")
    task.forget_x, task.forget_y = task.forget_x[:0], task.forget_y[:0]
    with pytest.raises(ConfigError, match="forget set is empty"):
        unlearn(name, thesis_mlp, task, tiny=True)
