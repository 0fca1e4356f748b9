"""The ``paper`` preset of every built-in method: it holds the values of the method's reference
code (each case names its source: repository, file and the place in it; for the seeds' methods,
the seed notes), it runs end to end in quick mode, and the parameters it needs (optimiser, weight
decay, SSD's class-ordered importance, SalUn's labels over all classes, SCRUB's schedule, UNSIR's
per-class retain sample, l1-sparse's per-epoch decay) do what their docstrings say."""

from __future__ import annotations

import math

import pytest
import torch
from support import make_task, unlearn

from unlearnlab.config import RunConfig
from unlearnlab.errors import ConfigError
from unlearnlab.experiment import prepare, run_method
from unlearnlab.methods import create, get_method, list_methods
from unlearnlab.methods.random_label import random_labels

FIELD_METHODS = ("finetune", "gradient_ascent", "neggrad_plus", "scrub", "ssd", "salun",
                 "l1_sparse", "random_label", "bad_teacher", "unsir", "boundary_shrink")
# The seeds' methods: their paper is a seed (seed notes, ../shared/reference/seed-systems.md).
SEED_METHODS = ("gemu", "gefeu", "relabel")
# The architecture a method's reference ran on, where the MLP would resolve other values.
REFERENCE_ARCH = {"relabel": "cnn"}

SSD = "if-loops/selective-synaptic-dampening src/forget_full_class_main.py"
SCRUB = "meghdadk/SCRUB small_scale_unlearning.ipynb, SCRUB Forgetting args cell"
SALUN = "OPTML-Group/Unlearn-Saliency Classification/README.md SalUn command"
SALUN_ARGS = "OPTML-Group/Unlearn-Saliency Classification/arg_parser.py"
DEEPUNLEARN = "xcadet/deepunlearn munl/unlearning/neggradplus.py NegGradPlus.ORIGINAL_*"
UNSIR = "vikram2000b/Fast-Machine-Unlearning Machine Unlearning.ipynb"
BAD_TEACHER = "if-loops/selective-synaptic-dampening forget_full_class_strategies.py blindspot"
BOUNDARY = "TY-LEE-KR/Boundary-Unlearning-Code boundary_unlearning.py boundary_shrink"
GEMU = "thesis code gemu._main, its defaults = best Optuna trial (seed notes D3 table)"
GEFEU = "thesis code gefeu._main, its defaults = best trial 99 (seed notes D4 table)"
SEED_A = "seed A project_main.ipynb (seed notes A, pipeline and section D)"

# (method, parameter, the reference's value, where the value is written)
REFERENCE_VALUES = [
    ("ssd", "selection_weighting", 10.0, f"{SSD}: kwargs selection_weighting 10"),
    ("ssd", "dampening_constant", 1.0, f"{SSD}: kwargs dampening_constant 1"),
    ("ssd", "batch_size", 64, f"{SSD}: parser -b default 64"),
    ("ssd", "max_samples", 0, f"{SSD}: full_train_dl = ConcatDataset(retain, forget)"),
    ("ssd", "importance_order", "class", f"{SSD}: full_train_dl unshuffled, retain_train "
     "built class by class (forget_full_class_strategies.build_retain_forget_sets)"),
    ("neggrad_plus", "alpha", 0.95, f"{DEEPUNLEARN}: ORIGINAL_ALPHA"),
    ("neggrad_plus", "lr", 0.01, f"{DEEPUNLEARN}: ORIGINAL_LR"),
    ("neggrad_plus", "optimizer", "sgd", f"{DEEPUNLEARN}: neggradplus_default_optimizer"),
    ("neggrad_plus", "weight_decay", 0.0, f"{DEEPUNLEARN}: ORIGINAL_WEIGHT_DECAY"),
    ("neggrad_plus", "epochs", 10, f"{DEEPUNLEARN}: ORIGINAL_NUM_EPOCHS"),
    ("neggrad_plus", "batch_size", 256, f"{DEEPUNLEARN}: ORIGINAL_BATCH_SIZE"),
    ("neggrad_plus", "forget_batch", 256, f"{DEEPUNLEARN}: ORIGINAL_BATCH_SIZE, the "
     "loaders' batch"),
    ("neggrad_plus", "retain_per_epoch", 0, f"{DEEPUNLEARN}: run_neggrad_epoch zips all of "
     "retain_loader with cycle(forget_loader)"),
    ("scrub", "optimizer", "adam", f"{SCRUB}: args.optim = 'adam'"),
    ("scrub", "lr", 5e-4, f"{SCRUB}: args.sgda_learning_rate = 0.0005"),
    ("scrub", "weight_decay", 0.1, f"{SCRUB}: args.sgda_weight_decay = 0.1"),
    ("scrub", "epochs", 10, f"{SCRUB}: args.sgda_epochs = 10"),
    ("scrub", "msteps", 3, f"{SCRUB}: args.msteps = 3"),
    ("scrub", "temperature", 2.0, f"{SCRUB}: args.kd_T = 2"),
    ("scrub", "alpha", 0.5, f"{SCRUB}: args.alpha = 0.5"),
    ("scrub", "gamma", 1.0, f"{SCRUB}: args.gamma = 1"),
    ("scrub", "lr_decay_epochs", ["5", "8", "9"], f"{SCRUB}: args.lr_decay_epochs = [5,8,9]"),
    ("scrub", "lr_decay_rate", 0.1, f"{SCRUB}: args.lr_decay_rate = 0.1"),
    ("scrub", "batch_size", 32, "meghdadk/SCRUB small_scale_unlearning.ipynb: args.retain_bs"),
    ("scrub", "forget_batch", 64, "meghdadk/SCRUB small_scale_unlearning.ipynb: args.forget_bs"),
    ("scrub", "retain_per_epoch", 0, "meghdadk/SCRUB small_scale_unlearning.ipynb: "
     "train_distill over all of retain_loader"),
    ("scrub", "forget_per_epoch", 0, "meghdadk/SCRUB small_scale_unlearning.ipynb: "
     "train_distill over all of forget_loader"),
    ("unsir", "noise_steps", 40, f"{UNSIR}: noise cell, num_epochs 5 x num_steps 8"),
    ("unsir", "noise_lr", 0.1, f"{UNSIR}: noise cell, Adam lr = 0.1"),
    ("unsir", "lam", 0.1, f"{UNSIR}: noise cell, 0.1*torch.mean(...)"),
    ("unsir", "noise_batch", 256, f"{UNSIR}: batch_size = 256"),
    ("unsir", "noise_copies", 20, f"{UNSIR}: impair cell, num_batches = 20"),
    ("unsir", "retain_per_class", 1000, f"{UNSIR}: num_samples_per_class = 1000"),
    ("unsir", "impair_lr", 0.02, f"{UNSIR}: impair cell, Adam lr = 0.02"),
    ("unsir", "repair_lr", 0.01, f"{UNSIR}: repair cell, Adam lr = 0.01"),
    ("unsir", "impair_batch", 256, f"{UNSIR}: impair cell, noisy_loader batch_size=256"),
    ("unsir", "repair_batch", 256, f"{UNSIR}: repair cell, heal_loader batch_size=256"),
    ("salun", "mask_fraction", 0.5, f"{SALUN} (a hard mask from threshold_list 0.5, "
     "generate_mask.py)"),
    ("salun", "forget_samples", 0, "Unlearn-Saliency generate_mask.py: the whole forget loader"),
    ("salun", "forget_share", 0.0, "Unlearn-Saliency unlearn/RL.py: every forget sample is "
     "relabelled"),
    ("salun", "label_classes", "all", "Unlearn-Saliency unlearn/RL.py: torch.randint(0, "
     "args.num_classes, ...)"),
    ("salun", "retain_set", "all", "Unlearn-Saliency unlearn/RL.py: all of the retain loader"),
    ("salun", "lr", 0.1, f"{SALUN}: --unlearn_lr 0.1"),
    ("salun", "epochs", 10, f"{SALUN}: --unlearn_epochs 10"),
    ("salun", "optimizer", "sgd", "Unlearn-Saliency unlearn/impl.py: torch.optim.SGD"),
    ("salun", "weight_decay", 5e-4, f"{SALUN_ARGS}: --weight_decay default 5e-4"),
    ("salun", "batch_size", 256, f"{SALUN_ARGS}: --batch_size default 256"),
    ("random_label", "label_classes", "all", "Unlearn-Saliency unlearn/RL.py: torch.randint"),
    ("random_label", "retain_set", "all", "Unlearn-Saliency unlearn/RL.py"),
    ("random_label", "forget_samples", 0, "Unlearn-Saliency unlearn/RL.py: the forget loader"),
    ("random_label", "lr", 0.1, f"{SALUN}: --unlearn_lr 0.1"),
    ("random_label", "epochs", 10, f"{SALUN}: --unlearn_epochs 10"),
    ("random_label", "optimizer", "sgd", "Unlearn-Saliency unlearn/impl.py: torch.optim.SGD"),
    ("random_label", "weight_decay", 5e-4, f"{SALUN_ARGS}: --weight_decay default 5e-4"),
    ("random_label", "batch_size", 256, f"{SALUN_ARGS}: --batch_size default 256"),
    ("l1_sparse", "optimizer", "sgd", "Unlearn-Saliency unlearn/impl.py: torch.optim.SGD"),
    ("l1_sparse", "lr", 0.01, "Unlearn-Saliency Classification/README.md l1-sparse command: "
     "--unlearn_lr 0.01"),
    ("l1_sparse", "epochs", 10, "Unlearn-Saliency Classification/README.md l1-sparse "
     "command: --unlearn_epochs 10"),
    ("l1_sparse", "alpha_schedule", "epoch", "OPTML-Group/Unlearn-Sparse unlearn/FT.py "
     "FT_iter: alpha * (1 - epoch / unlearn_epochs)"),
    ("l1_sparse", "retain_fraction", 1.0, "Unlearn-Sparse unlearn/FT.py: the retain loader"),
    ("l1_sparse", "weight_decay", 5e-4, f"{SALUN_ARGS}: --weight_decay default 5e-4"),
    ("l1_sparse", "batch_size", 256, f"{SALUN_ARGS}: --batch_size default 256"),
    ("l1_sparse", "alpha", 5e-4, "Jia et al. 2023, the paper's gamma for l1-sparse MU (not "
     "in the stored code; see docs/methods.md#l1_sparse)"),
    ("finetune", "optimizer", "sgd", "Unlearn-Saliency unlearn/impl.py: torch.optim.SGD"),
    ("finetune", "lr", 0.01, "Unlearn-Saliency Classification/README.md FT: --unlearn_lr 0.01"),
    ("finetune", "epochs", 10, "Unlearn-Saliency Classification/README.md FT: "
     "--unlearn_epochs 10"),
    ("finetune", "retain_samples", 0, "Unlearn-Saliency unlearn/FT.py: the retain loader"),
    ("finetune", "weight_decay", 5e-4, f"{SALUN_ARGS}: --weight_decay default 5e-4"),
    ("finetune", "batch_size", 256, f"{SALUN_ARGS}: --batch_size default 256"),
    ("gradient_ascent", "optimizer", "sgd", "Unlearn-Saliency unlearn/impl.py: SGD"),
    ("gradient_ascent", "lr", 1e-4, "Unlearn-Saliency Classification/README.md GA: "
     "--unlearn_lr 0.0001"),
    ("gradient_ascent", "epochs", 5, "Unlearn-Saliency Classification/README.md GA: "
     "--unlearn_epochs 5"),
    ("gradient_ascent", "stop_loss", 0.0, "Unlearn-Saliency unlearn/GA.py: no stopping rule"),
    ("gradient_ascent", "weight_decay", 5e-4, f"{SALUN_ARGS}: --weight_decay default 5e-4"),
    ("gradient_ascent", "batch_size", 256, f"{SALUN_ARGS}: --batch_size default 256"),
    ("gradient_ascent", "shuffle", True, "Unlearn-Saliency: forget loaders come from "
     "replace_loader_dataset(shuffle=True), as in generate_mask.py"),
    ("gradient_ascent", "max_steps", 0, "Unlearn-Saliency unlearn/GA.py: every batch of "
     "every epoch"),
    ("bad_teacher", "lr", 1e-4, f"{BAD_TEACHER}: Adam lr=0.0001"),
    ("bad_teacher", "epochs", 1, f"{BAD_TEACHER}: epochs=1"),
    ("bad_teacher", "batch_size", 256, f"{BAD_TEACHER}: b_s = 256"),
    ("bad_teacher", "temperature", 1.0, f"{BAD_TEACHER}: KL_temperature = 1"),
    ("bad_teacher", "retain_fraction", 0.3, f"{BAD_TEACHER}: 0.3 * len(retain)"),
    ("boundary_shrink", "bound", 0.1, f"{BOUNDARY}: bound=0.1"),
    ("boundary_shrink", "optimizer", "sgd", f"{BOUNDARY}: torch.optim.SGD(momentum=0.9)"),
    ("boundary_shrink", "lr", 1e-5, f"{BOUNDARY}: lr=0.00001"),
    ("boundary_shrink", "weight_decay", 0.0, f"{BOUNDARY}: no weight_decay"),
    ("boundary_shrink", "epochs", 10, f"{BOUNDARY}: poison_epoch=10"),
    ("boundary_shrink", "data_share", 0.0, f"{BOUNDARY}: the loop runs over the whole "
     "forget loader"),
    ("random_label", "forget_share", 0.0, "OPTML-Group/Unlearn-Saliency Classification/unlearn/"
     "RL.py: every forget sample is relabelled"),
    ("boundary_shrink", "batch_size", 64, "TY-LEE-KR/Boundary-Unlearning-Code main.py: "
     "--batch_size default 64"),
    ("gemu", "epochs", 6, f"{GEMU}: epochs 6"),
    ("gemu", "noise_lr", 0.03, f"{GEMU}: noise lr 0.03 (thesis Table 4's 0.3 is a typo)"),
    ("gemu", "noise_batch", 32, f"{GEMU}: noise batch 32"),
    ("gemu", "n2r", 11.5, f"{GEMU}: N2R 11.5"),
    ("gemu", "lam", 0.26, f"{GEMU}: lambda 0.26"),
    ("gemu", "n_layers", 1, f"{GEMU}: hidden layers [1024]"),
    ("gemu", "hidden", 1024, f"{GEMU}: hidden layers [1024]"),
    ("gemu", "noise_dim", 35, f"{GEMU}: noise dim 35"),
    ("gemu", "impair_lr", 0.05, f"{GEMU}: impair lr 0.05"),
    ("gemu", "repair_lr", 0.01, f"{GEMU}: repair lr 0.01"),
    ("gemu", "impair_batch", 8, "thesis gemu._main: impair DataLoader batch 8, hard-coded "
     "(seed notes D3 step 2)"),
    ("gemu", "repair_batch", 8, "thesis gemu._main: repair batch 8 (seed notes D3 step 3)"),
    ("gemu", "bounded", False, "thesis gemu._main: L_gen penalises g(z)^2, the generator's "
     "output is not squashed (seed notes D3 step 1)"),
    ("gefeu", "epochs", 7, f"{GEFEU}: epochs 7"),
    ("gefeu", "noise_lr", 0.24, f"{GEFEU}: noise lr 0.24"),
    ("gefeu", "noise_batch", 100, f"{GEFEU}: noise batch 100"),
    ("gefeu", "n2r", 4.75, f"{GEFEU}: N2R 4.75"),
    ("gefeu", "lam", 0.07, f"{GEFEU}: lambda 0.07"),
    ("gefeu", "n_layers", 5, f"{GEFEU}: hidden layers 5 x 1024"),
    ("gefeu", "hidden", 1024, f"{GEFEU}: hidden layers 5 x 1024"),
    ("gefeu", "noise_dim", 128, f"{GEFEU}: noise dim 128"),
    ("gefeu", "impair_lr", 0.04, f"{GEFEU}: impair lr 0.04"),
    ("gefeu", "repair_lr", 0.02, f"{GEFEU}: repair lr 0.02"),
    ("gefeu", "impair_batch", 8, "thesis gefeu._main: GEMU's hard-coded batch 8 (seed notes "
     "D4: identical to GEMU but the labels)"),
    ("gefeu", "repair_batch", 8, "thesis gefeu._main: GEMU's repair batch 8 (seed notes D4)"),
    ("gefeu", "bounded", False, "thesis gefeu._main: GEMU's unbounded generator (seed notes "
     "D4)"),
    ("relabel", "target", 3, f"{SEED_A}: forget samples' loss -output[i][3], 6 relabelled 3"),
    ("relabel", "freeze", ["fc1", "fc2"], f"{SEED_A}: step 6, fc1 and fc2 requires_grad False"),
    ("relabel", "epochs", 3, f"{SEED_A}: step 7, 3 selective unlearning epochs"),
    ("relabel", "lr", 1e-3, f"{SEED_A}: step 3, Adam at its default lr 1e-3, reused in step 7"),
    ("relabel", "batch_size", 64, f"{SEED_A}: step 2, train loader batch 64, reused in step 7"),
]


@pytest.mark.parametrize(("method", "key", "value"),
                         [pytest.param(m, k, v, id=f"{m}.{k}={v} [{source}]")
                          for m, k, v, source in REFERENCE_VALUES])
def test_paper_preset_holds_the_reference_value(method, key, value):
    params = get_method(method).resolve_params("paper", dataset="mnist", scenario="class",
                                               arch=REFERENCE_ARCH.get(method, "mlp"))
    assert params[key] == value


def test_every_built_in_method_has_a_paper_preset():
    built_in = {name for name in list_methods()
                if get_method(name).__module__.startswith("unlearnlab.methods.")}
    assert built_in == {*FIELD_METHODS, *SEED_METHODS}


@pytest.mark.parametrize("method", FIELD_METHODS + SEED_METHODS)
def test_every_method_has_a_valid_paper_preset_with_cited_values(method):
    cls = get_method(method)
    assert "paper" in cls.presets
    create(method, preset="paper", dataset="mnist", scenario="class", arch="mlp")
    cited = {k for m, k, _, _ in REFERENCE_VALUES if m == method}
    named = {k for k in cls.presets["paper"] if not k.startswith("by_")}
    assert named == cited  # every value of the preset has its source


def test_relabel_paper_freezes_all_but_the_output_layer_of_the_mlp():
    """Seed A's first, MLP version froze every layer but the output (seed notes D); the lab's
    MLP has one hidden layer, fc1. Its output layer fc2 stays trainable."""
    params = get_method("relabel").resolve_params("paper", dataset="mnist", scenario="class",
                                                  arch="mlp")
    assert params["freeze"] == ["fc1"]
    assert get_method("relabel").resolve_params("paper", arch="cnn")["freeze"] == ["fc1", "fc2"]


# ----------------------------------------------------------------------- quick end-to-end

@pytest.fixture(scope="module")
def digits_baselines(tmp_path_factory):
    """The original and retrained MLPs of digits class 6 in quick mode, trained once."""
    cfg = RunConfig(dataset="digits", forget="class:6", quick=True, arch="mlp",
                    data_dir=str(tmp_path_factory.mktemp("paper")), metrics=["mia_efficacy"])
    return prepare(cfg)


@pytest.mark.parametrize("method", FIELD_METHODS + SEED_METHODS)
def test_paper_preset_runs_in_quick_mode(digits_baselines, method):
    result = run_method(digits_baselines, method, preset="paper")
    record = result.record
    assert "error" not in record, record.get("error")  # the record names an error only
    assert record["preset"] == "paper"
    assert record["params"] == get_method(method).resolve_params(
        "paper", dataset="digits", scenario="class", arch="mlp")
    assert math.isfinite(record["avg_gap"])


# ------------------------------------------------------------------- the new parameters

def test_ssd_class_order_puts_retain_classes_in_order_then_the_forget_set():
    method = create("ssd", params={"importance_order": "class", "max_samples": 0})
    forget_y = torch.tensor([6, 6, 6])
    retain_y = torch.tensor([3, 1, 0, 3, 1, 9])
    y = torch.cat([forget_y, retain_y])
    x = torch.arange(len(y)).float().view(-1, 1)  # each row's position in cat(D_f, D_r)
    ordered_x, ordered_y = method._sample(x, y, torch.Generator().manual_seed(0), n_forget=3)
    assert ordered_y.tolist() == [0, 1, 1, 3, 3, 9, 6, 6, 6]
    assert ordered_x.flatten().tolist() == [5, 4, 7, 3, 6, 8, 0, 1, 2]


def test_ssd_paper_importance_differs_from_the_shuffled_one(mlp, mlp_data):
    task = make_task(mlp_data, arch="mlp")
    shuffled, _ = unlearn("ssd", mlp, task, max_samples=0, selection_weighting=2.0)
    ordered, _ = unlearn("ssd", mlp, task, max_samples=0, selection_weighting=2.0,
                         importance_order="class")
    assert shuffled.history[0]["selected"] != ordered.history[0]["selected"]


def test_random_labels_over_all_classes_include_the_true_label():
    y = torch.full((2000,), 3)
    labels = random_labels(y, 10, torch.Generator().manual_seed(0))
    assert set(labels.tolist()) == set(range(10))  # 3 included, unlike random_other_labels


def test_salun_under_sgd_with_weight_decay_leaves_masked_weights_unchanged(mlp, mlp_data):
    before = {n: q.detach().clone() for n, q in mlp.named_parameters()}
    method, out = unlearn("salun", mlp, make_task(mlp_data, arch="mlp"), optimizer="sgd",
                          weight_decay=0.5, lr=0.05, mask_fraction=0.3, epochs=2)
    changed = 0
    for name, q in out.named_parameters():
        keep = method.mask[name] == 0
        assert torch.equal(q.detach()[keep], before[name][keep]), name
        changed += int((q.detach() != before[name])[~keep].sum())
    assert changed > 0


def test_scrub_schedule_decays_after_the_listed_epochs():
    method = create("scrub", preset="paper")
    lrs = [method.epoch_lr(e) for e in range(1, 11)]
    assert lrs[:5] == [5e-4] * 5
    assert lrs[5:8] == pytest.approx([5e-5] * 3)
    assert lrs[8] == pytest.approx(5e-6) and lrs[9] == pytest.approx(5e-7)


def test_unsir_retain_per_class_takes_the_first_samples_of_each_class():
    method = create("unsir", params={"retain_per_class": 2})
    retain_y = torch.tensor([4, 1, 4, 1, 4, 1, 0])
    rows = method._retain_rows(retain_y, torch.Generator().manual_seed(0))
    assert rows.tolist() == [6, 1, 3, 0, 2]


def test_l1_sparse_epoch_schedule_keeps_alpha_within_an_epoch(mlp, mlp_data):
    method, _ = unlearn("l1_sparse", mlp, make_task(mlp_data, arch="mlp"), epochs=2,
                        alpha=1e-3, alpha_schedule="epoch", optimizer="sgd", lr=0.01)
    assert [h["alpha_end"] for h in method.history] == pytest.approx([5e-4, 0.0])


@pytest.mark.parametrize(("method", "key", "value"), [
    ("finetune", "optimizer", "rmsprop"), ("scrub", "optimizer", "SGD"),
    ("ssd", "importance_order", "random"), ("salun", "label_classes", "wrong"),
    ("random_label", "retain_set", "most"), ("l1_sparse", "alpha_schedule", "batch"),
    ("scrub", "lr_decay_epochs", ["5", "x"]), ("scrub", "lr_decay_epochs", ["0"]),
    ("neggrad_plus", "weight_decay", -1.0), ("unsir", "retain_per_class", -1)])
def test_new_parameters_reject_bad_values(method, key, value):
    with pytest.raises(ConfigError, match=rf"{method}.*\b{key}\b"):
        create(method, params={key: value})
