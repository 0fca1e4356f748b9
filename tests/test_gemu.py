"""GEMU and GeFeU (the thesis's generator-based methods) and their noise generator, on tiny
synthetic tensors (seconds, CPU)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_dataset
from support import FORGET, TINY, make_task, unlearn
from support import weights as state

from unlearnlab.methods import create
from unlearnlab.methods._common import importances
from unlearnlab.methods.gefeu import GeFeU
from unlearnlab.methods.gemu import GEMU, MASK_BATCH, specific_weights
from unlearnlab.methods.gradient_ascent import GradientAscent
from unlearnlab.methods.noise_generator import NoiseGenerator
from unlearnlab.models import create_model
from unlearnlab.training import predict, seed_everything


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
def test_noise_training_changes_every_hidden_layer(name, thesis_mlp, thesis_data):
    task = make_task(thesis_data, arch="mlp")
    method = create(name, params=TINY[name])
    initial = state(method._make_generator(task))  # seeded from task.seed: the same init
    method.unlearn(thesis_mlp, task)
    trained = state(method.generator)
    hidden = [k for k in initial if k.startswith("hidden.") and k.endswith(".weight")]
    assert len(hidden) == method.params["n_layers"] >= 1
    for key in initial:
        assert not torch.equal(initial[key], trained[key]), f"{key} did not train"


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
def test_history_and_timings(name, thesis_mlp, thesis_data):
    method, _ = unlearn(name, thesis_mlp, make_task(thesis_data, arch="mlp"), tiny=True)
    phases = [h["phase"] for h in method.history]
    assert phases == [f"{name} noise"] * 2 + [f"{name} impair", f"{name} repair"]
    assert {"noise", "mask", "impair", "repair"} <= set(method.timings)
    assert method.mask == {}  # mask_fraction 0: the impair may change every weight
    assert all(t >= 0 for t in method.timings.values())
    n_forget = int((thesis_data.train.y == FORGET).sum())
    assert method.history[-2]["samples"] == n_forget + int(n_forget * 2.0)  # noise + retain
    assert method.history[-1]["samples"] == int(n_forget * 2.0)


def test_gemu_works_on_the_convnet():
    ds = make_dataset("cmnist", n_train=100, n_test=20, seed=1)
    seed_everything(0)
    model = create_model("convnet", in_channels=3)
    _, out = unlearn("gemu", model, make_task(ds, arch="convnet"), tiny=True)
    assert out(ds.test.x[:2]).shape == (2, 10)


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
@pytest.mark.parametrize(("impair", "repair", "convs_fixed"), [
    (True, True, True), (True, False, False), (False, True, False)])
def test_freeze_conv_keeps_the_convolutions_in_that_phase(name, impair, repair, convs_fixed):
    ds = make_dataset("cmnist", n_train=100, n_test=20, seed=1)
    seed_everything(0)
    model = create_model("convnet", in_channels=3)
    before = state(model)
    _, out = unlearn(name, model, make_task(ds, arch="convnet"), tiny=True,
                     impair_freeze_conv=impair, repair_freeze_conv=repair)
    after = state(out)
    convs = [k for k in before if k.startswith("conv")]
    assert len(convs) == 6
    assert all(torch.equal(before[k], after[k]) for k in convs) == convs_fixed
    assert all(not torch.equal(before[k], after[k]) for k in before if k not in convs)
    assert all(q.requires_grad for q in out.parameters())  # frozen only while unlearning


def test_repair_n2r_draws_its_own_retain_sample(thesis_mlp, thesis_data):
    method = create("gemu", params={**TINY["gemu"], "repair_n2r": 5.0})
    method.unlearn(thesis_mlp, make_task(thesis_data, arch="mlp"))
    n_forget = int((thesis_data.train.y == FORGET).sum())
    assert method.history[-2]["samples"] == n_forget + int(n_forget * 2.0)  # noise + n2r 2
    assert method.history[-1]["samples"] == min(int(n_forget * 5.0),
                                                int((thesis_data.train.y != FORGET).sum()))


@pytest.mark.parametrize("name", ["gemu", "gefeu"])
def test_impair_mask_changes_only_the_most_forget_specific_weights(name, thesis_mlp, thesis_data):
    task = make_task(thesis_data, arch="mlp")
    before = state(thesis_mlp)
    # n2r 0 and no repair sample: the impair epoch is the only phase that trains the model
    method, out = unlearn(name, thesis_mlp, task, tiny=True, n2r=0.0, mask_fraction=0.1,
                          mask_samples=50)
    after, mask = state(out), method.mask
    assert mask.keys() == {n for n, _ in thesis_mlp.named_parameters()}
    total = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(0.1 * total)
    for name_, m in mask.items():
        assert torch.equal(after[name_][m == 0], before[name_][m == 0]), name_
    assert any(not torch.equal(after[k], before[k]) for k in before)
    assert method.timings["mask"] > 0


def test_specific_weights_ranks_by_the_forget_to_retain_importance_ratio(thesis_mlp, thesis_data):
    task = make_task(thesis_data, arch="mlp")
    thesis_mlp.eval()
    mask = specific_weights(thesis_mlp, task, 0.05, 100, torch.Generator().manual_seed(3))
    rows = torch.randperm(len(task.retain_y), generator=torch.Generator().manual_seed(3))[:100]
    forget = importances(thesis_mlp, task.forget_x, task.forget_y, MASK_BATCH, task.device)
    retain = importances(thesis_mlp, task.retain_x[rows], task.retain_y[rows], MASK_BATCH,
                         task.device)
    ratio = {n: torch.where(forget[n] > 0, forget[n] / retain[n], 0.0) for n in forget}
    chosen = torch.cat([ratio[n][mask[n] == 1] for n in ratio])
    rest = torch.cat([ratio[n][mask[n] == 0] for n in ratio])
    assert chosen.min() >= rest.max()
    # pixels that are 0 in every image give 0/0 and are never chosen over a real score
    assert (chosen > 0).all()


def test_thesis_presets_resolve_to_the_published_values():
    gemu = create(GEMU, preset="thesis", dataset="mnist").params
    assert gemu == {"epochs": 6, "noise_lr": 0.03, "noise_batch": 32, "n2r": 11.5, "lam": 0.26,
                    "n_layers": 1, "hidden": 1024, "noise_dim": 35, "impair_lr": 0.05,
                    "repair_lr": 0.01, "impair_batch": 8, "repair_batch": 8, "bounded": False,
                    "impair_freeze_conv": False,
                    "repair_freeze_conv": False, "repair_n2r": 0.0, "mask_fraction": 0.0,
                    "mask_samples": 8192}
    gefeu = create(GeFeU, preset="thesis", dataset="fashion_mnist").params
    assert gefeu == {"epochs": 7, "noise_lr": 0.24, "noise_batch": 100, "n2r": 4.75,
                     "lam": 0.07, "n_layers": 5, "hidden": 1024, "noise_dim": 128,
                     "impair_lr": 0.04, "repair_lr": 0.02, "impair_batch": 8,
                     "repair_batch": 8, "bounded": False, "impair_freeze_conv": False,
                     "repair_freeze_conv": False, "repair_n2r": 0.0, "mask_fraction": 0.0,
                     "mask_samples": 8192}
    for ds, lr in (("mnist", 1e-5), ("cmnist", 1e-4), ("fashion_mnist", 2e-5)):
        ga = create(GradientAscent, preset="thesis", dataset=ds).params
        assert ga["lr"] == lr and ga["epochs"] == 1 and ga["batch_size"] == 8
        assert ga["shuffle"] is False and ga["max_steps"] == 0 and ga["stop_loss"] == 0


def test_gefeu_labels_are_soft_and_per_sample(thesis_mlp, thesis_data):
    task = make_task(thesis_data, arch="mlp")
    labels = GeFeU().targets(thesis_mlp, task)
    expected = torch.softmax(predict(thesis_mlp, task.forget_x), 1)
    assert labels.shape == (len(task.forget_y), 10)
    torch.testing.assert_close(labels, expected)
    torch.testing.assert_close(labels.sum(1), torch.ones(len(labels)))
    assert ((labels > 0) & (labels < 1)).all()  # soft, not one-hot
    assert len({tuple(row.tolist()) for row in labels}) == len(labels)  # one per sample
    # paired per sample: permuting the forget set permutes the labels
    perm = torch.randperm(len(task.forget_y), generator=torch.Generator().manual_seed(0))
    task.forget_x, task.forget_y = task.forget_x[perm], task.forget_y[perm]
    torch.testing.assert_close(GeFeU().targets(thesis_mlp, task), expected[perm])
    # GEMU uses the hard forget labels
    assert torch.equal(GEMU().targets(thesis_mlp, task), task.forget_y)


def test_gefeu_uses_the_original_models_labels(thesis_mlp, thesis_data):
    """The soft labels come from the model before unlearning and reach both noise phases."""
    seen = []

    class Spy(GeFeU):
        def targets(self, model, task):
            out = super().targets(model, task)
            seen.append(out)
            return out

    task = make_task(thesis_data, arch="mlp")
    Spy(TINY["gefeu"]).unlearn(thesis_mlp, task)
    torch.testing.assert_close(seen[0], torch.softmax(predict(thesis_mlp, task.forget_x), 1))
