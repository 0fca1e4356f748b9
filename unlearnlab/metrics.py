"""Model-comparison metrics.

The thesis's (Kastler 2025, src/metrics.py), with its bugs fixed: global parameter distance
instead of a sum of per-tensor norms, and per-sample instead of per-batch averaging for the KL
divergence. The field's forget-set metrics (field notes, sections 2.3-2.6), registered in
``METRICS`` so that the record, ``rescore`` and the reports pick them up: each is computed from
per-sample logits (``Outputs``), so a saved bundle can be rescored without the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from . import mia
from .errors import ConfigError
from .training import adam, predict

if TYPE_CHECKING:
    from .methods import UnlearnTask


def parameter_distance(a: nn.Module, b: nn.Module) -> float:
    """Global L2 norm of the parameter difference, ||theta_a - theta_b||_2 over all parameters.
    (The thesis summed per-tensor L2 norms.)"""
    total = sum(((pa.detach().cpu() - pb.detach().cpu()) ** 2).sum()
                for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    return float(torch.sqrt(total))


def layer_distances(a: nn.Module, b: nn.Module, p: int = 2) -> dict[str, float]:
    """Per-tensor Lp norm of the parameter difference, keyed by parameter name."""
    pairs = zip(a.named_parameters(), b.named_parameters(), strict=True)
    return {name: float(torch.linalg.vector_norm((pa.detach() - pb.detach()).cpu().flatten(), p))
            for (name, pa), (_, pb) in pairs}


def kl_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> float:
    """Mean over samples of KL(P || Q) = sum_c p_c (log p_c - log q_c), from logits (natural
    log). Computed in log space without clamping. (The thesis averaged per batch and clamped.)"""
    log_p = torch.log_softmax(logits_p.double(), 1)
    log_q = torch.log_softmax(logits_q.double(), 1)
    return float((log_p.exp() * (log_p - log_q)).sum(1).mean())


def kl_matrix(logits: dict[str, torch.Tensor]) -> tuple[list[str], np.ndarray]:
    """Entry [i, j] = mean KL(P_i || P_j) over the samples, for every pair of named models,
    from each model's logits on the same samples.
    Note the thesis's heatmaps put KL(P_col || P_row) at (row, col); this is the transpose."""
    names = list(logits)
    matrix = np.array([[kl_divergence(logits[i], logits[j]) for j in names] for i in names])
    return names, matrix


# ------------------------------------------------------------------ forget-set metrics

# The sets every forget-set metric reads: the forget samples of train and test (random
# forgetting has no forget-test samples; held-out retain-test samples stand in, see
# ``scenario.probe_rows``), and the MIA shadow sets (a balanced sample of retain-train members
# and retain-test non-members).
PROBE_SETS = ("forget_train", "forget_test", "member", "nonmember")


@dataclass
class Outputs:
    """Per-sample logits of several models on the probe sets: ``logits[model][set]`` with
    models among ``original``, ``retrained``, ``unlearned`` and ``untrained`` (the freshly
    initialised model, the "incompetent teacher" of ZRF); ``labels[set]``; ``seed`` seeds the
    attackers' sampling."""

    labels: dict[str, torch.Tensor]
    logits: dict[str, dict[str, torch.Tensor]]
    seed: int


@dataclass(frozen=True)
class Metric:
    """A forget-set metric, declared with what it needs and what it adds to a record.

    ``needs="outputs"``: ``compute(outputs, role) -> {column: value}`` reads only the probe
    logits (``Outputs``), so a saved bundle can be rescored; ``needs="model"``:
    ``compute(model, original, task) -> {column: value}`` needs the model itself (relearn
    time). ``columns`` are the keys it adds to a model's evaluation; ``roles`` the models that
    get it; ``chance`` the chance level shown beside the score (a column or a constant);
    ``zscored``: its first column is placed in the retrained ensemble's spread (``z_<col>``);
    ``label``: the heading of its first column in the ensemble summary (None: not shown)."""

    name: str
    compute: Callable
    columns: tuple[str, ...]
    roles: tuple[str, ...] = ("original", "retrained", "unlearned")
    needs: str = "outputs"
    chance: str | float | None = None
    zscored: bool = False
    label: str | None = None


METRICS: dict[str, Metric] = {}
ALL_ROLES = ("original", "retrained", "unlearned")


def register_metric(name: str, *, columns: tuple[str, ...], roles: tuple[str, ...] = ALL_ROLES,
                    needs: str = "outputs", chance: str | float | None = None,
                    zscored: bool = False, label: str | None = None):
    """Decorator: register ``compute`` under ``name`` (see ``Metric``)."""
    if needs not in ("outputs", "model"):
        raise ConfigError(f"metric '{name}': needs must be 'outputs' or 'model', got {needs!r}")

    def wrap(fn):
        if name in METRICS and METRICS[name].compute is not fn:
            raise ConfigError(f"metric '{name}' is already registered by "
                              f"{METRICS[name].compute.__module__}")
        METRICS[name] = Metric(name, fn, tuple(columns), tuple(roles), needs, chance, zscored,
                               label)
        return fn
    return wrap


def select_metrics(names: list[str] | None) -> list[str]:
    """Validate a ``--metrics`` selection (None: every registered metric)."""
    known = list(METRICS)
    if names is None:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown metric '{unknown[0]}': choose from {', '.join(known)}")
    if not names:
        raise ConfigError("--metrics is empty: name at least one metric or leave it out")
    return list(dict.fromkeys(names))


def forget_metrics(out: Outputs, names: list[str] | None = None,
                   roles: tuple[str, ...] = ALL_ROLES) -> dict[str, dict]:
    """Every selected metric that needs only outputs, for each of ``roles`` it applies to
    (and whose logits ``out`` holds): {model: {key: value}}."""
    result: dict[str, dict] = {role: {} for role in roles if role in out.logits}
    for name in select_metrics(names):
        metric = METRICS[name]
        if metric.needs != "outputs":
            continue
        for role in metric.roles:
            if role in result:
                result[role].update(metric.compute(out, role))
    return result


def model_metrics(names: list[str] | None, model: nn.Module, original: nn.Module,
                  task: UnlearnTask) -> dict:
    """Every selected metric that needs the model itself: {key: value}."""
    values: dict = {}
    for name in select_metrics(names):
        metric = METRICS[name]
        if metric.needs == "model":
            values.update(metric.compute(model, original, task))
    return values


def columns(kind: str = "all") -> list[str]:
    """The record columns the registered metrics add (``kind="zscored"``: the first column
    of each metric placed in the retrained spread; ``"chance"``: metrics with a chance
    level; ``"summary"``: metrics with a summary ``label``)."""
    if kind == "zscored":
        return [m.columns[0] for m in METRICS.values() if m.zscored]
    if kind == "chance":
        return [m.columns[0] for m in METRICS.values() if m.chance is not None]
    if kind == "summary":
        return [m.columns[0] for m in METRICS.values() if m.label is not None]
    return [c for m in METRICS.values() for c in m.columns]


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.double(), 1)


def js_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-sample Jensen-Shannon divergence, JS(P, Q) = KL(P || M)/2 + KL(Q || M)/2 with
    M = (P + Q)/2, natural log (so 0 <= JS <= ln 2). Bad Teacher's ``metrics.py`` used a
    mean-reduced ``kl_div``, a different scale."""
    p, q = _probs(logits_p), _probs(logits_q)
    m = (p + q) / 2

    def kl(a, b):  # 0 log 0 = 0
        return torch.where(a > 0, a * (a.clamp_min(1e-300).log() - b.clamp_min(1e-300).log()),
                           0).sum(1)

    return (kl(p, m) + kl(q, m)) / 2


@register_metric("mia_efficacy", columns=("mia_efficacy", "mia_efficacy_chance"),
                 chance="mia_efficacy_chance", zscored=True, label="MIA-efficacy")
def _mia_efficacy(out: Outputs, model: str) -> dict:
    """SalUn's MIA-Efficacy on the forget-train set, with its chance level (see ``mia``)."""
    logits, y = out.logits[model], out.labels
    conf = {s: mia.true_class_confidence(logits[s], y[s]) for s in PROBE_SETS}
    score, chance = mia.mia_efficacy(conf["member"], conf["nonmember"], conf["forget_train"],
                                     conf["forget_test"])
    return {"mia_efficacy": score, "mia_efficacy_chance": chance}


@register_metric("mia_entropy", columns=("mia_entropy", "mia_entropy_chance"),
                 chance="mia_entropy_chance", zscored=True)
def _mia_entropy(out: Outputs, model: str) -> dict:
    """Entropy MIA on the forget-train set, with its chance level (see ``mia``)."""
    ent = {s: mia.entropy(out.logits[model][s]) for s in PROBE_SETS}
    score, chance = mia.mia_entropy(ent["member"], ent["nonmember"], ent["forget_train"],
                                    ent["forget_test"])
    return {"mia_entropy": score, "mia_entropy_chance": chance}


@register_metric("mia_loss", columns=("mia_loss", "mia_loss_auc"), chance=0.5, zscored=True,
                 label="MIA-loss")
def _mia_loss(out: Outputs, model: str) -> dict:
    """Loss MIA (cross-validated accuracy and AUC), chance 0.5 (see ``mia``)."""
    logits, y = out.logits[model], out.labels
    acc, auc = mia.mia_loss(mia.loss(logits["forget_train"], y["forget_train"]),
                            mia.loss(logits["forget_test"], y["forget_test"]), out.seed)
    return {"mia_loss": acc, "mia_loss_auc": auc}


@register_metric("zrf", columns=("zrf",))
def _zrf(out: Outputs, model: str) -> dict:
    """ZRF, zero retrain forgetting (Chundawat et al., AAAI 2023, "Can Bad Teaching Induce
    Forgetting?"): 1 - mean_i JS(P_model(x_i), P_random(x_i)) over the forget-train set, with
    P_random the freshly initialised (untrained) model. 1 = as uninformative as a random
    model. Textbook JS (natural log), so values are not on Bad Teacher's mean-reduced scale."""
    logits = out.logits
    return {"zrf": float(1 - js_divergence(logits[model]["forget_train"],
                                           logits["untrained"]["forget_train"]).mean())}


@register_metric("js_to_retrained", columns=("js_to_retrained",), roles=("unlearned",))
def _js_to_retrained(out: Outputs, model: str) -> dict:
    """Mean per-sample JS divergence between the model's and the retrained model's softmax on
    the forget-train set (Bad Teacher notebook; SUPREME ``jsdiv``). 0 = identical outputs."""
    return {"js_to_retrained": float(js_divergence(
        out.logits[model]["forget_train"], out.logits["retrained"]["forget_train"]).mean())}


@register_metric("activation_distance", columns=("activation_distance",), roles=("unlearned",))
def _activation_distance(out: Outputs, model: str) -> dict:
    """Mean over forget-train samples of ||softmax_model - softmax_retrained||_2 (Bad Teacher
    ``metrics.py: actv_dist``; SCRUB uses the L1 norm instead)."""
    diff = _probs(out.logits[model]["forget_train"]) - _probs(
        out.logits["retrained"]["forget_train"])
    return {"activation_distance": float(torch.linalg.vector_norm(diff, dim=1).mean())}


@register_metric("agreement_with_retrained", columns=("agreement_with_retrained",),
                 roles=("unlearned",))
def _agreement(out: Outputs, model: str) -> dict:
    """Completeness (SUPREME ``completeness.py``): the fraction of forget-train samples on which
    the model and the retrained model predict the same class."""
    a = out.logits[model]["forget_train"].argmax(1)
    b = out.logits["retrained"]["forget_train"].argmax(1)
    return {"agreement_with_retrained": float((a == b).double().mean()) if len(a) else None}


def relearn_steps(model: nn.Module, forget_x: torch.Tensor, forget_y: torch.Tensor,
                  retain_x: torch.Tensor, retain_y: torch.Tensor, reference: nn.Module, seed: int,
                  lr: float = 1e-3, batch_size: int = 32, max_steps: int = 200,
                  probe: int = 512) -> tuple[int, bool]:
    """Relearn time (Golatkar et al. 2020 "readout"; ERASURE ``RelearnTime``): fine-tune a copy
    with Adam(``lr``) on batches of ``batch_size`` forget plus ``batch_size`` retain samples
    until the accuracy on a fixed sample of ``probe`` forget samples reaches 0.95 x the
    ``reference`` (original) model's accuracy on it (alpha = 0.05). Returns (steps, reached);
    ``reached`` is False when ``max_steps`` passed first. Deviation: ERASURE fine-tunes on the
    forget set alone, which for class forgetting is solved by predicting one class; the retain
    half of each batch rules that shortcut out. The anamnesis index (AIN, Chundawat et al.
    2023) is steps(unlearned) / steps(retrained)."""
    import copy

    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    net = copy.deepcopy(model).to(device)
    rows = torch.randperm(len(forget_y), generator=gen)[:probe]
    px, py = forget_x[rows], forget_y[rows]

    def acc(m: nn.Module) -> float:
        return float((predict(m, px, device=device).argmax(1) == py).double().mean())

    target = 0.95 * acc(reference)

    def reached() -> bool:
        return acc(net) >= target

    if reached():
        return 0, True
    optimizer = adam(net.parameters(), lr)
    for step in range(1, max_steps + 1):
        f = torch.randint(len(forget_y), (batch_size,), generator=gen)
        r = torch.randint(len(retain_y), (batch_size,), generator=gen)
        x = torch.cat([forget_x[f], retain_x[r]]).to(device)
        y = torch.cat([forget_y[f], retain_y[r]]).to(device)
        net.train()
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if reached():
            return step, True
    return max_steps, False


@register_metric("relearn_steps", columns=("relearn_steps", "relearn_reached"),
                 roles=("retrained", "unlearned"), needs="model")
def _relearn(model: nn.Module, original: nn.Module, task: UnlearnTask) -> dict:
    """``relearn_steps`` on the scenario's forget and retain training samples."""
    steps, reached = relearn_steps(model, task.forget_x, task.forget_y, task.retain_x,
                                   task.retain_y, original, task.seed)
    return {"relearn_steps": steps, "relearn_reached": reached}


def anamnesis_index(evaluations: dict) -> float | None:
    """AIN = relearn steps of the unlearned model / those of the retrained model (Chundawat et
    al. 2023, "Zero-shot machine unlearning"); about 1 when the forgotten knowledge is as hard
    to relearn as if it had never been learned, near 0 when it comes straight back."""
    unlearned, retrained = evaluations.get("unlearned") or {}, evaluations["retrained"]
    steps_u, steps_r = unlearned.get("relearn_steps"), retrained.get("relearn_steps")
    if steps_u is None or not steps_r:
        return None
    return steps_u / steps_r
