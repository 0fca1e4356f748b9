"""The thesis's methods (gradient ascent, GEMU, GeFeU) and their noise generator, on tiny
synthetic tensors (seconds, CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_dataset

from unlearnlab.errors import ConfigError, DivergenceError
from unlearnlab.methods import UnlearnTask, get_method
from unlearnlab.methods.gefeu import GeFeU
from unlearnlab.methods.gemu import GEMU, MASK_BATCH, specific_weights
from unlearnlab.methods.gradient_ascent import GradientAscent
from unlearnlab.methods.noise_generator import NoiseGenerator
from unlearnlab.methods.ssd import importances
from unlearnlab.models import create_model
from unlearnlab.training import fit, predict, recipe_for, seed_everything

FORGET = 6
METHODS = ("gradient_ascent", "gemu", "gefeu")
# Small settings so that every unlearning run takes well under a second.
TINY = {"gradient_ascent": {"batch_size": 8},
        "gemu": {"hidden": 32, "noise_batch": 16, "impair_batch": 16, "repair_batch": 16,
                 "epochs": 2, "n2r": 2.0},
        "gefeu": {"hidden": 32, "n_layers": 3, "noise_batch": 16, "impair_batch": 16,
                  "repair_batch": 16, "epochs": 2, "n2r": 2.0}}


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(n_train=300, n_test=100, seed=4)


def make_task(ds, seed: int = 0, arch: str = "mlp", name: str = "mnist") -> UnlearnTask:
    f = ds.train.y == FORGET
    return UnlearnTask(ds.train.x[f], ds.train.y[f], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for(arch), torch.device("cpu"), seed, name)


@pytest.fixture(scope="module")
def trained(dataset):
    seed_everything(0)
    model = create_model("mlp")
    fit(model, dataset.train.x, dataset.train.y, epochs=2, batch_size=32, lr=2e-3, seed=0)
    return model


@pytest.fixture
def mlp(trained):
    return copy.deepcopy(trained)


def run(name, model, task, **params):
    method = get_method(name)(**{**TINY[name], **params})
    return method, method.unlearn(model, task)


# ------------------------------------------------------------------------- noise generator

def test_generator_registers_its_hidden_layers():
    g = NoiseGenerator((3, 28, 28), noise_dim=8, hidden=16, n_layers=4)
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5  # 4 hidden + output, all visible to parameters()/state_dict()
    assert sum(p.numel() for p in g.parameters()) == (8 * 16 + 16 + 3 * (16 * 16 + 16)
                                                       + 16 * 3 * 28 * 28 + 3 * 28 * 28)
    out = g.sample(5, torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 28, 28)  # a batch per call


@pytest.mark.parametrize("bounded", [True, False])
def test_generator_bounded_flag(bounded):
    g = NoiseGenerator((1, 28, 28), noise_dim=4, hidden=8, n_layers=1, bounded=bounded)
    with torch.no_grad():
        g.out.bias.fill_(5.0)  # push the output far outside [0, 1]
        x = g.sample(16, torch.Generator().manual_seed(0))
    assert ((x >= 0) & (x <= 1)).all() == bounded


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
def test_noise_training_changes_every_hidden_layer(name, mlp, dataset):
    task = make_task(dataset)
    method = get_method(name)(**TINY[name])
    initial = state(method._make_generator(task))  # seeded from task.seed: the same init
    method.unlearn(mlp, task)
    trained = state(method.generator)
    hidden = [k for k in initial if k.startswith("hidden.") and k.endswith(".weight")]
    assert len(hidden) == method.params["n_layers"] >= 1
    for key in initial:
        assert not torch.equal(initial[key], trained[key]), f"{key} did not train"


# ------------------------------------------------------------------------ method contract

@pytest.mark.parametrize("name", METHODS)
def test_input_model_untouched(name, mlp, dataset):
    mlp.train()
    before = state(mlp)
    flags = [p.requires_grad for p in mlp.parameters()]
    _, out = run(name, mlp, make_task(dataset))
    assert out is not mlp
    assert same_weights(state(mlp), before)
    assert mlp.training and [p.requires_grad for p in mlp.parameters()] == flags
    assert not same_weights(state(out), before)
    assert all(p.requires_grad for p in out.parameters())
    assert not {p.data_ptr() for p in mlp.parameters()} & {p.data_ptr() for p in out.parameters()}


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_weights(name, trained, dataset):
    # a different global RNG state must not matter: everything comes from task.seed
    torch.manual_seed(123)
    _, a = run(name, copy.deepcopy(trained), make_task(dataset, seed=7))
    torch.manual_seed(456)
    _, b = run(name, copy.deepcopy(trained), make_task(dataset, seed=7))
    assert same_weights(state(a), state(b))
    _, c = run(name, copy.deepcopy(trained), make_task(dataset, seed=8))
    if name != "gradient_ascent":  # the thesis preset of ascent is unshuffled; default shuffles
        assert not same_weights(state(a), state(c))
    for model in (a, c):
        assert torch.isfinite(predict(model, dataset.test.x)).all()


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
def test_history_and_timings(name, mlp, dataset):
    method, _ = run(name, mlp, make_task(dataset))
    phases = [h["phase"] for h in method.history]
    assert phases == [f"{name} noise"] * 2 + [f"{name} impair", f"{name} repair"]
    assert {"noise", "mask", "impair", "repair"} <= set(method.timings)
    assert method.mask == {}  # mask_fraction 0: the impair may change every weight
    assert all(t >= 0 for t in method.timings.values())
    n_forget = int((dataset.train.y == FORGET).sum())
    assert method.history[-2]["samples"] == n_forget + int(n_forget * 2.0)  # noise + retain
    assert method.history[-1]["samples"] == int(n_forget * 2.0)


def test_gemu_works_on_the_convnet():
    ds = make_dataset("cmnist", n_train=100, n_test=20, seed=1)
    seed_everything(0)
    model = create_model("convnet", in_channels=3)
    _, out = run("gemu", model, make_task(ds, arch="convnet", name="cmnist"))
    assert out(ds.test.x[:2]).shape == (2, 10)


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
@pytest.mark.parametrize(("impair", "repair", "convs_fixed"), [
    (True, True, True), (True, False, False), (False, True, False)])
def test_freeze_conv_keeps_the_convolutions_in_that_phase(name, impair, repair, convs_fixed):
    ds = make_dataset("cmnist", n_train=100, n_test=20, seed=1)
    seed_everything(0)
    model = create_model("convnet", in_channels=3)
    before = state(model)
    _, out = run(name, model, make_task(ds, arch="convnet", name="cmnist"),
                 impair_freeze_conv=impair, repair_freeze_conv=repair)
    after = state(out)
    convs = [k for k in before if k.startswith("conv")]
    assert len(convs) == 6
    assert all(torch.equal(before[k], after[k]) for k in convs) == convs_fixed
    assert all(not torch.equal(before[k], after[k]) for k in before if k not in convs)
    assert all(q.requires_grad for q in out.parameters())  # frozen only while unlearning


def test_repair_n2r_draws_its_own_retain_sample(mlp, dataset):
    method = get_method("gemu")(**TINY["gemu"], repair_n2r=5.0)
    method.unlearn(mlp, make_task(dataset))
    n_forget = int((dataset.train.y == FORGET).sum())
    assert method.history[-2]["samples"] == n_forget + int(n_forget * 2.0)  # noise + n2r 2
    assert method.history[-1]["samples"] == min(int(n_forget * 5.0),
                                                int((dataset.train.y != FORGET).sum()))


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
def test_impair_mask_changes_only_the_most_forget_specific_weights(name, mlp, dataset):
    task = make_task(dataset)
    before = state(mlp)
    # n2r 0 and no repair sample: the impair epoch is the only phase that trains the model
    method, out = run(name, mlp, task, n2r=0.0, mask_fraction=0.1, mask_samples=50)
    after, mask = state(out), method.mask
    assert mask.keys() == {n for n, _ in mlp.named_parameters()}
    total = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(0.1 * total)
    for name_, m in mask.items():
        assert torch.equal(after[name_][m == 0], before[name_][m == 0]), name_
    assert any(not torch.equal(after[k], before[k]) for k in before)
    assert method.timings["mask"] > 0


def test_specific_weights_ranks_by_the_forget_to_retain_importance_ratio(mlp, dataset):
    task = make_task(dataset)
    mlp.eval()
    mask = specific_weights(mlp, task, 0.05, 100, torch.Generator().manual_seed(3))
    rows = torch.randperm(len(task.retain_y), generator=torch.Generator().manual_seed(3))[:100]
    forget = importances(mlp, task.forget_x, task.forget_y, MASK_BATCH, task.device)
    retain = importances(mlp, task.retain_x[rows], task.retain_y[rows], MASK_BATCH, task.device)
    ratio = {n: torch.where(forget[n] > 0, forget[n] / retain[n], 0.0) for n in forget}
    chosen = torch.cat([ratio[n][mask[n] == 1] for n in ratio])
    rest = torch.cat([ratio[n][mask[n] == 0] for n in ratio])
    assert chosen.min() >= rest.max()
    # pixels that are 0 in every image give 0/0 and are never chosen over a real score
    assert (chosen > 0).all()


# ------------------------------------------------------------------------------- presets

def test_thesis_presets_resolve_to_the_published_values():
    gemu = GEMU(preset="thesis", dataset="mnist").params
    assert gemu == {"epochs": 6, "noise_lr": 0.03, "noise_batch": 32, "n2r": 11.5, "lam": 0.26,
                    "n_layers": 1, "hidden": 1024, "noise_dim": 35, "impair_lr": 0.05,
                    "repair_lr": 0.01, "impair_batch": 8, "repair_batch": 8, "bounded": False,
                    "impair_freeze_conv": False,
                    "repair_freeze_conv": False, "repair_n2r": 0.0, "mask_fraction": 0.0,
                    "mask_samples": 8192}
    gefeu = GeFeU(preset="thesis", dataset="fashion_mnist").params
    assert gefeu == {"epochs": 7, "noise_lr": 0.24, "noise_batch": 100, "n2r": 4.75,
                     "lam": 0.07, "n_layers": 5, "hidden": 1024, "noise_dim": 128,
                     "impair_lr": 0.04, "repair_lr": 0.02, "impair_batch": 8,
                     "repair_batch": 8, "bounded": False, "impair_freeze_conv": False,
                     "repair_freeze_conv": False, "repair_n2r": 0.0, "mask_fraction": 0.0,
                     "mask_samples": 8192}
    for ds, lr in (("mnist", 1e-5), ("cmnist", 1e-4), ("fashion_mnist", 2e-5)):
        ga = GradientAscent(preset="thesis", dataset=ds).params
        assert ga["lr"] == lr and ga["epochs"] == 1 and ga["batch_size"] == 8
        assert ga["shuffle"] is False and ga["max_steps"] == 0 and ga["stop_loss"] == 0


@pytest.mark.parametrize("cls", [GradientAscent, GEMU, GeFeU])
def test_presets_and_dataset_defaults(cls):
    for ds in ("mnist", "cmnist", "fashion_mnist"):
        tuned = cls(dataset=ds).params
        assert tuned == {**cls.defaults, **cls.dataset_defaults.get(ds, {})}
        # a named preset ignores the lab's tuned values; explicit params win over both
        thesis = cls(preset="thesis", dataset=ds, epochs=2).params
        assert thesis["epochs"] == 2
    assert cls(dataset="unknown").params == cls.defaults
    with pytest.raises(ConfigError, match="no preset 'nope'"):
        cls(preset="nope")


# -------------------------------------------------------------------------- GeFeU labels

def test_gefeu_labels_are_soft_and_per_sample(mlp, dataset):
    task = make_task(dataset)
    labels = GeFeU().targets(mlp, task)
    expected = torch.softmax(predict(mlp, task.forget_x), 1)
    assert labels.shape == (len(task.forget_y), 10)
    torch.testing.assert_close(labels, expected)
    torch.testing.assert_close(labels.sum(1), torch.ones(len(labels)))
    assert ((labels > 0) & (labels < 1)).all()  # soft, not one-hot
    assert len({tuple(row.tolist()) for row in labels}) == len(labels)  # one per sample
    # paired per sample: permuting the forget set permutes the labels
    perm = torch.randperm(len(task.forget_y), generator=torch.Generator().manual_seed(0))
    task.forget_x, task.forget_y = task.forget_x[perm], task.forget_y[perm]
    torch.testing.assert_close(GeFeU().targets(mlp, task), expected[perm])
    # GEMU uses the hard forget labels
    assert torch.equal(GEMU().targets(mlp, task), task.forget_y)


def test_gefeu_uses_the_original_models_labels(mlp, dataset):
    """The soft labels come from the model before unlearning and reach both noise phases."""
    seen = []

    class Spy(GeFeU):
        def targets(self, model, task):
            out = super().targets(model, task)
            seen.append(out)
            return out

    task = make_task(dataset)
    Spy(**TINY["gefeu"]).unlearn(mlp, task)
    torch.testing.assert_close(seen[0], torch.softmax(predict(mlp, task.forget_x), 1))


# ------------------------------------------------------------------------ gradient ascent

def test_gradient_ascent_raises_the_forget_loss(mlp, dataset):
    task = make_task(dataset)
    loss = torch.nn.functional.cross_entropy
    before = loss(predict(mlp, task.forget_x), task.forget_y)
    method, out = run("gradient_ascent", mlp, task, lr=1e-3, epochs=2, stop_loss=0.0)
    assert loss(predict(out, task.forget_x), task.forget_y) > before
    assert [h["epoch"] for h in method.history] == [1, 2] and "ascent" in method.timings


def test_gradient_ascent_huge_lr_diverges(mlp, dataset):
    with pytest.raises(DivergenceError, match="gradient_ascent: .*lower lr"):
        run("gradient_ascent", mlp, make_task(dataset), lr=1e30)


def test_gradient_ascent_stops_early(mlp, dataset):
    method, _ = run("gradient_ascent", mlp, make_task(dataset), max_steps=2, epochs=5)
    assert method.history[-1]["steps"] == 2 and len(method.history) == 1
    method, _ = run("gradient_ascent", mlp, make_task(dataset), lr=1e-2, epochs=50,
                    stop_loss=5.0)
    assert len(method.history) < 50


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("name,params", [
    ("gradient_ascent", {"lr": 0.0}), ("gradient_ascent", {"lr": float("nan")}),
    ("gradient_ascent", {"batch_size": 0}), ("gradient_ascent", {"max_steps": -1}),
    ("gemu", {"noise_lr": -1.0}), ("gemu", {"n2r": -0.5}), ("gemu", {"hidden": 0}),
    ("gefeu", {"impair_lr": float("inf")}), ("gefeu", {"lam": float("nan")}),
    ("gemu", {"mask_fraction": 1.5}), ("gemu", {"mask_fraction": float("nan")}),
    ("gefeu", {"mask_fraction": -0.1}), ("gefeu", {"mask_samples": 0}),
])
def test_invalid_hyperparameters(name, params):
    with pytest.raises(ConfigError, match=name):
        get_method(name)(**params)


@pytest.mark.parametrize("name", METHODS)
def test_empty_forget_set(name, mlp, dataset):
    task = make_task(dataset)
    task.forget_x, task.forget_y = task.forget_x[:0], task.forget_y[:0]
    with pytest.raises(ConfigError, match="forget set is empty"):
        run(name, mlp, task)
