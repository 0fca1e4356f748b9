"""Field methods, part B: bad_teacher, l1_sparse, unsir, boundary_shrink and ssd (the generic
contract is in test_methods.py; these are each method's own behaviour)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_dataset

from unlearnlab.errors import ConfigError
from unlearnlab.methods import UnlearnTask, get_method
from unlearnlab.methods.bad_teacher import incompetent_teacher
from unlearnlab.methods.boundary_shrink import neighbour_labels
from unlearnlab.models import create_model
from unlearnlab.training import fit, predict, recipe_for, seed_everything

FORGET = 6


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_task(ds, forget=(FORGET,), seed: int = 0, arch: str = "mlp") -> UnlearnTask:
    f = torch.isin(ds.train.y, torch.tensor(forget))
    return UnlearnTask(ds.train.x[f], ds.train.y[f], ds.train.x[~f], ds.train.y[~f],
                       ds.num_classes, recipe_for(arch), torch.device("cpu"), seed)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(n_train=300, n_test=200, seed=4)


@pytest.fixture(scope="module")
def trained(dataset):
    """A small MLP that knows every class (trained once; tests get deep copies)."""
    seed_everything(0)
    model = create_model("mlp")
    fit(model, dataset.train.x, dataset.train.y, epochs=4, batch_size=32, lr=2e-3, seed=0)
    return model


@pytest.fixture
def mlp(trained):
    return copy.deepcopy(trained)


def unlearn(name, model, task, **params):
    seed_everything(task.seed)
    method = get_method(name)(**params)
    return method, method.unlearn(model, task)


# ------------------------------------------------------------------------------- bad_teacher

def test_bad_teacher_leaves_the_teacher_alone_and_is_seeded(mlp, dataset):
    before = state(mlp)
    _, out = unlearn("bad_teacher", mlp, make_task(dataset), lr=1e-3, epochs=2)
    assert all(torch.equal(v, before[k]) for k, v in state(mlp).items())
    assert not torch.equal(out.fc1.weight, mlp.fc1.weight)
    # the incompetent teacher: re-initialised (not the original), reproducible from the seed
    bad = incompetent_teacher(mlp, 3)
    assert not torch.equal(bad.fc1.weight, mlp.fc1.weight)
    assert torch.equal(bad.fc1.weight, incompetent_teacher(mlp, 3).fc1.weight)
    assert not torch.equal(bad.fc1.weight, incompetent_teacher(mlp, 4).fc1.weight)


def test_bad_teacher_forgets_towards_the_incompetent_teacher(mlp, dataset):
    test, f = dataset.test, dataset.test.y == FORGET
    assert (predict(mlp, test.x[f]).argmax(1) == FORGET).float().mean() > 0.8
    _, out = unlearn("bad_teacher", mlp, make_task(dataset), lr=3e-3, epochs=20,
                     batch_size=32, retain_fraction=0.5)
    after = predict(out, test.x).argmax(1)
    assert (after[f] == FORGET).float().mean() < 0.5
    assert (after[~f] == test.y[~f]).float().mean() > 0.8


@pytest.mark.parametrize(("key", "value"), [("temperature", 0.0), ("temperature", -1.0),
                                            ("temperature", float("nan")),
                                            ("retain_fraction", 1.5),
                                            ("retain_fraction", -0.1), ("lr", 0.0),
                                            ("epochs", 0)])
def test_bad_teacher_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"bad_teacher.*\b{key}\b"):
        get_method("bad_teacher")(**{key: value})


# -------------------------------------------------------------------------------- l1_sparse

def test_l1_sparse_without_penalty_is_plain_finetuning(mlp, dataset):
    task = make_task(dataset, seed=2)
    _, out = unlearn("l1_sparse", mlp, task, alpha=0.0, epochs=2, batch_size=32, lr=1e-3,
                     retain_fraction=1.0)
    plain = copy.deepcopy(mlp)
    fit(plain, task.retain_x, task.retain_y, epochs=2, batch_size=32, lr=1e-3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), plain.parameters(),
                                                  strict=True))


def test_l1_sparse_penalty_shrinks_the_weights_and_decays(mlp, dataset):
    task = make_task(dataset)
    _, plain = unlearn("l1_sparse", mlp, task, alpha=0.0, epochs=2, batch_size=32)
    method, sparse = unlearn("l1_sparse", mlp, task, alpha=1e-3, epochs=2, batch_size=32)

    def l1(m):
        return sum(q.abs().sum().item() for q in m.parameters())

    assert l1(sparse) < l1(plain)
    alphas = [entry["alpha_end"] for entry in method.history]
    assert alphas[0] > 0 and alphas[-1] == 0.0  # linear decay reaches 0 at the last step
    assert method.history[0]["l1_penalty"] > method.history[1]["l1_penalty"] > 0


@pytest.mark.parametrize(("key", "value"), [("alpha", -1e-4), ("alpha", float("inf")),
                                            ("retain_fraction", 0.0)])
def test_l1_sparse_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"l1_sparse.*\b{key}\b"):
        get_method("l1_sparse")(**{key: value})


# ------------------------------------------------------------------------------------ unsir

def test_unsir_learns_one_noise_tensor_per_forgotten_class(mlp, dataset):
    task = make_task(dataset, forget=(2, 6))
    method, out = unlearn("unsir", mlp, task, noise_batch=8, noise_copies=3, noise_steps=3)
    assert sorted(method.noise) == [2, 6]
    for noise in method.noise.values():
        assert noise.shape == (8, 1, 28, 28)
    assert not torch.equal(method.noise[2], method.noise[6])
    assert set(method.timings) == {"noise", "impair", "repair"}
    # the impair phase saw 2 classes x 8 images x 3 copies of noise
    impair = next(h for h in method.history if h.get("phase") == "unsir impair")
    retain = round(method.params["retain_fraction"] * len(task.retain_y))
    assert impair["samples"] == 2 * 8 * 3 + retain
    # the noise maximises the frozen original's error on its own class
    for k, noise in method.noise.items():
        with torch.no_grad():
            ce = torch.nn.functional.cross_entropy(mlp(noise), torch.full((8,), k))
        assert ce > 1.0


def test_unsir_labels_each_noise_with_its_own_class(mlp, dataset, monkeypatch):
    """The reference notebook labelled all noise 0; every copy of N_k must carry label k."""
    import unlearnlab.methods.unsir as unsir

    seen = []

    def spy(net, x, y, **kw):
        seen.append((x.clone(), y.clone(), kw["desc"]))
        return {"phase": kw["desc"], "loss": 0.0, "acc": 0.0, "samples": len(x)}

    monkeypatch.setattr(unsir, "train_epoch", spy)
    task = make_task(dataset, forget=(2, 6))
    method, _ = unlearn("unsir", mlp, task, noise_batch=4, noise_copies=2, noise_steps=1)
    x, y, desc = seen[0]
    assert desc == "unsir impair"
    for k, noise in method.noise.items():
        rows = (x[:, None] == noise[None]).flatten(2).all(2).any(1)  # copies of N_k
        assert rows.sum() == 4 * 2
        assert (y[rows] == k).all()
    assert set(y[:16].tolist()) == {2, 6}


@pytest.mark.parametrize(("key", "value"), [("noise_steps", 0), ("noise_copies", 0),
                                            ("lam", -1.0), ("retain_fraction", 2.0),
                                            ("noise_batch", 0)])
def test_unsir_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"unsir.*\b{key}\b"):
        get_method("unsir")(**{key: value})


# --------------------------------------------------------------------------- boundary_shrink

def test_boundary_shrink_never_keeps_the_true_label(mlp, dataset):
    task = make_task(dataset, forget=(1, FORGET))
    method, out = unlearn("boundary_shrink", mlp, task, bound=1e-4)  # attack barely moves
    assert len(method.labels) == len(task.forget_y)
    assert (method.labels != task.forget_y).all()
    assert ((method.labels >= 0) & (method.labels < 10)).all()
    # with a tiny bound the attacked prediction is the true class, so the runner-up is used
    logits = predict(mlp, task.forget_x)
    logits[torch.arange(len(logits)), task.forget_y] = -torch.inf
    assert torch.equal(method.labels, logits.argmax(1))


def test_boundary_shrink_uses_the_attacked_class(mlp, dataset):
    task = make_task(dataset)
    labels = neighbour_labels(mlp, task.forget_x, task.forget_y, 0.3, torch.device("cpu"))
    x = task.forget_x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(mlp(x), task.forget_y)
    (grad,) = torch.autograd.grad(loss, x)
    adv = predict(mlp, (task.forget_x + 0.3 * grad.sign()).clamp(0, 1)).argmax(1)
    moved = adv != task.forget_y
    assert moved.any()
    assert torch.equal(labels[moved], adv[moved])
    assert all(q.requires_grad for q in mlp.parameters())  # the attack froze only temporarily


def test_boundary_shrink_rejects_a_bad_bound():
    for bound in (0.0, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="boundary_shrink: bound"):
            get_method("boundary_shrink")(bound=bound)


# -------------------------------------------------------------------------------------- ssd

def test_ssd_only_shrinks_selected_weights(mlp, dataset):
    before = dict(mlp.named_parameters())
    method, out = unlearn("ssd", mlp, make_task(dataset), selection_weighting=2.0,
                          dampening_constant=1.0)
    assert set(method.selected) == set(before)
    for name, new in out.named_parameters():
        old, mask = before[name].detach(), method.selected[name]
        new = new.detach()
        assert torch.equal(new[~mask], old[~mask]), name  # unselected: untouched
        # selected: lambda = 1 < I_f / I_D, so beta < 1 shrinks every non-zero element
        assert (new[mask].abs() < old[mask].abs()).all() or not old[mask].any(), name
        assert (new * old >= 0).all(), name  # never flips sign
    total = sum(int(mask.sum()) for mask in method.selected.values())
    assert total == method.history[0]["selected"]
    assert 0 < total < sum(q.numel() for q in before.values())


def test_ssd_is_a_no_op_when_nothing_is_selected(mlp, dataset):
    method, out = unlearn("ssd", mlp, make_task(dataset), selection_weighting=1e30)
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), mlp.parameters(),
                                                  strict=True))
    assert method.history[0]["selected"] == 0


def test_ssd_dampening_lowers_the_forget_class_confidence(mlp, dataset):
    test, f = dataset.test, dataset.test.y == FORGET

    def confidence(**params):  # mean probability of the forgotten class on its test images
        _, out = unlearn("ssd", mlp, make_task(dataset), **params)
        return predict(out, test.x[f]).softmax(1)[:, FORGET].mean().item()

    untouched = confidence(selection_weighting=1e30)
    assert confidence(selection_weighting=1.5, dampening_constant=0.1) < untouched - 0.05


@pytest.mark.parametrize(("key", "value"), [("selection_weighting", 0.0),
                                            ("dampening_constant", -1.0),
                                            ("max_samples", -1), ("batch_size", 0)])
def test_ssd_rejects_bad_params(key, value):
    with pytest.raises(ConfigError, match=rf"ssd.*\b{key}\b"):
        get_method("ssd")(**{key: value})
