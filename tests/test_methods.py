"""Unlearning methods: the contract every method follows, and relabel's specifics."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import make_dataset

from unlearnlab.errors import ConfigError
from unlearnlab.methods import UnlearningMethod, UnlearnTask, get_method, list_methods
from unlearnlab.methods.relabel import Relabel
from unlearnlab.models import create_model
from unlearnlab.training import fit, predict, recipe_for, seed_everything

FORGET = 6


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def make_task(ds, arch: str = "cnn", seed: int = 0, forget: int = FORGET) -> UnlearnTask:
    f = ds.train.y == forget
    return UnlearnTask(ds.train.x[f], ds.train.y[f], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for(arch), torch.device("cpu"), seed)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(n_train=300, n_test=200, seed=3)


@pytest.fixture(scope="module")
def originals(dataset):
    """A briefly trained model per architecture (trained once; tests get deep copies)."""
    out = {}
    for arch in ("cnn", "mlp"):
        seed_everything(0)
        model = create_model(arch)
        fit(model, dataset.train.x, dataset.train.y, epochs=3, batch_size=64, lr=3e-3, seed=0)
        out[arch] = model
    return out


@pytest.fixture
def cnn(originals):
    return copy.deepcopy(originals["cnn"])


def run_method(name, model, task, seed=0, **params):
    seed_everything(seed)
    return get_method(name)(**params).unlearn(model, task)


# --------------------------------------------------------------------- the method contract

def test_registry():
    assert "relabel" in list_methods()
    assert get_method("relabel") is Relabel
    assert issubclass(Relabel, UnlearningMethod)
    with pytest.raises(ConfigError, match="unknown method 'nope'.*relabel"):
        get_method("nope")


@pytest.mark.parametrize("name", list_methods())
def test_returns_a_new_model_and_leaves_the_input_alone(name, cnn, dataset):
    before = state(cnn)
    was_training = cnn.training
    out = run_method(name, cnn, make_task(dataset))
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
def test_same_seed_same_weights(name, cnn, dataset):
    a = run_method(name, copy.deepcopy(cnn), make_task(dataset, seed=5), seed=5)
    b = run_method(name, copy.deepcopy(cnn), make_task(dataset, seed=5), seed=5)
    assert same_weights(state(a), state(b))


@pytest.mark.parametrize("name", list_methods())
def test_different_seed_gives_a_valid_model(name, cnn, dataset):
    a = run_method(name, copy.deepcopy(cnn), make_task(dataset, seed=0), seed=0)
    b = run_method(name, copy.deepcopy(cnn), make_task(dataset, seed=1), seed=1)
    for model in (a, b):
        assert all(torch.isfinite(p).all() for p in model.parameters())
        logits = predict(model, dataset.test.x)
        assert logits.shape == (len(dataset.test), 10) and torch.isfinite(logits).all()
    if name == "relabel":  # the seed drives relabel's shuffling
        assert not same_weights(state(a), state(b))


@pytest.mark.parametrize("name", list_methods())
def test_unknown_parameter(name):
    with pytest.raises(ConfigError, match="has no parameter 'nonsense'"):
        get_method(name)(nonsense=1)


# ------------------------------------------------------------------------ relabel specifics

def test_relabel_forgets_the_class_and_keeps_the_rest(cnn, dataset):
    test = dataset.test
    before = predict(cnn, test.x).argmax(1)
    f = test.y == FORGET
    assert (before[f] == FORGET).float().mean() > 0.8, "the original should know the class"
    out = run_method("relabel", cnn, make_task(dataset), target=3, epochs=3, batch_size=16,
                     lr=5e-3)
    after = predict(out, test.x).argmax(1)
    assert (after[f] == FORGET).float().mean() < 0.2
    assert (after[f] == 3).float().mean() > 0.8  # relabelled as the target
    assert (after[~f] == test.y[~f]).float().mean() > 0.8


def test_relabel_freezes_the_named_layers(cnn, dataset):
    before = state(cnn)
    out = run_method("relabel", cnn, make_task(dataset), freeze=["fc1", "conv2"])
    after = state(out)
    for key in before:
        frozen = key.startswith(("fc1.", "conv2.", "norm."))
        assert torch.equal(after[key], before[key]) == frozen, key


def test_relabel_default_freezes_fc1_and_fc2(cnn, dataset):
    before = state(cnn)
    method = Relabel()
    seed_everything(0)
    out = method.unlearn(cnn, make_task(dataset))
    after = state(out)
    for key in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(after[key], before[key]), key
    for key in ("conv1.weight", "conv2.weight", "fc3.weight"):
        assert not torch.equal(after[key], before[key]), key
    assert len(method.history) == method.params["epochs"] == 1
    assert math.isfinite(method.history[0]["loss"])


def test_relabel_params_merge_defaults():
    m = Relabel(target=5)
    assert m.params == {**Relabel.defaults, "target": 5}


@pytest.mark.parametrize("target", [-1, 10, 12])
def test_relabel_target_not_a_class(cnn, dataset, target):
    with pytest.raises(ConfigError, match=f"target {target} is not a class 0-9"):
        run_method("relabel", cnn, make_task(dataset), target=target)


def test_relabel_target_is_the_forgotten_class(cnn, dataset):
    with pytest.raises(ConfigError, match=f"target {FORGET} is the forgotten class"):
        run_method("relabel", cnn, make_task(dataset), target=FORGET)


def test_relabel_unknown_layer(cnn, dataset):
    with pytest.raises(ConfigError, match="no layer 'fc9'.*conv1, conv2, fc1, fc2, fc3"):
        run_method("relabel", cnn, make_task(dataset), freeze=["fc1", "fc9"])


def test_relabel_freezing_everything_is_a_config_error(originals, dataset):
    """The MLP has only fc1 and fc2, so relabel's default freeze leaves nothing to train
    (the default configuration of feature forgetting on MNIST / Fashion-MNIST)."""
    mlp = copy.deepcopy(originals["mlp"])
    with pytest.raises(ConfigError, match="leaves no trainable parameter"):
        run_method("relabel", mlp, make_task(dataset, arch="mlp"))
    out = run_method("relabel", mlp, make_task(dataset, arch="mlp"), freeze=["fc1"])
    assert torch.equal(out.fc1.weight, mlp.fc1.weight)
    assert not torch.equal(out.fc2.weight, mlp.fc2.weight)


@pytest.mark.parametrize(("key", "value"), [
    ("epochs", 0), ("epochs", -1), ("batch_size", 0), ("lr", 0.0), ("lr", -1e-3),
    ("lr", float("nan")), ("lr", float("inf")),
])
def test_relabel_rejects_invalid_hyperparameters(key, value):
    """Zero epochs would silently return the original; the others crashed inside torch."""
    with pytest.raises(ConfigError, match=rf"relabel.*\b{key}\b"):
        Relabel(**{key: value})


def test_defaults_are_refined_by_scenario_then_dataset(monkeypatch):
    """``dataset_defaults``: kind, then dataset, then "<dataset>:<kind>"; named presets ignore
    them; explicit parameters win over everything."""
    monkeypatch.setattr(Relabel, "dataset_defaults", {
        "feature": {"epochs": 2, "lr": 0.1}, "mnist": {"lr": 0.2, "batch_size": 7},
        "mnist:feature": {"batch_size": 9}})
    assert Relabel(dataset="mnist", scenario="feature").params == {
        **Relabel.defaults, "epochs": 2, "lr": 0.2, "batch_size": 9}
    assert Relabel(dataset="mnist", scenario="class").params == {
        **Relabel.defaults, "lr": 0.2, "batch_size": 7}
    assert Relabel(dataset="fashion_mnist", scenario="feature", lr=0.5).params == {
        **Relabel.defaults, "epochs": 2, "lr": 0.5}
