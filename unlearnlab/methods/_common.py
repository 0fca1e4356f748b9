"""Helpers shared by the built-in methods (private: the public contract is ``base``).

- ``begin``: the start of every ``unlearn()``: empty-set checks, fresh ``history`` and
  ``timings``, a copy of the model on the task's device and a ``torch.Generator`` seeded with
  ``task.seed`` (every random draw of a method comes from it, in a fixed order);
- ``Timer``, ``frozen``, ``train_epoch``: phase timing, temporarily fixed parameters, one epoch
  of ``training.fit`` on the method's random stream;
- ``sample_rows``: a uniform sample without repeats;
- ``check_finite``: the divergence check after training (parameter ranges are
  declared in each class's ``ranges``, see ``params``); ``check_choice``: a string parameter
  that names one of a few options (e.g. ``optimizer``, one of ``training.OPTIMIZERS``);
- ``importances``, ``top_fraction``, ``masked_gradients``: SSD's importances (Foster et al.,
  AAAI 2024) and SalUn's weight masks (Fan et al., ICLR 2024), also used by GEMU's impair mask.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError, DivergenceError
from ..training import OPTIMIZERS, fit
from .base import UnlearningMethod, UnlearnTask

# ------------------------------------------------------------------------------ preamble


def begin(method: UnlearningMethod, model: nn.Module, task: UnlearnTask, *,
          needs_forget: bool = True,
          retain_needed_for: str | None = None) -> tuple[nn.Module, torch.Generator]:
    """Start ``method.unlearn``: raise ``ConfigError`` on an empty forget set (when
    ``needs_forget``) or an empty retain set (when ``retain_needed_for`` says why it is
    needed), reset ``method.history`` and ``method.timings``, and return a copy of ``model``
    on ``task.device`` with a CPU generator seeded with ``task.seed``."""
    if needs_forget and len(task.forget_y) == 0:
        raise ConfigError(f"{method.name}: the forget set is empty; nothing to unlearn")
    if retain_needed_for is not None and len(task.retain_y) == 0:
        raise ConfigError(f"{method.name}: the retain set is empty; {retain_needed_for}")
    method.history, method.timings = [], {}
    net = method.copy_model(model).to(task.device)
    return net, torch.Generator().manual_seed(task.seed)


# ------------------------------------------------------------------------- phases, samples


class Timer:
    """Accumulates wall-clock seconds per phase into a dict: ``with Timer(d, "noise"): ...``."""

    def __init__(self, timings: dict[str, float], phase: str):
        self.timings, self.phase = timings, phase

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timings[self.phase] = (self.timings.get(self.phase, 0.0)
                                    + time.perf_counter() - self.start)


@contextlib.contextmanager
def frozen(params: Iterable[nn.Parameter]):
    """Turn ``requires_grad`` off for ``params`` inside the block (autograd then computes no
    gradient for them, and ``training.fit`` leaves them out) and restore each flag after it."""
    params = list(params)
    flags = [q.requires_grad for q in params]
    for q in params:
        q.requires_grad_(False)
    try:
        yield
    finally:
        for q, flag in zip(params, flags, strict=True):
            q.requires_grad_(flag)


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float,
                batch_size: int, gen: torch.Generator, device: torch.device,
                desc: str) -> dict:
    """One shuffled epoch of ``training.fit`` (Adam, mean CE, hard or soft labels) that continues
    the random stream of ``gen``; also raises ``DivergenceError`` when a weight became
    non-finite. Returns the phase's mean loss, accuracy and sample count."""
    (entry,) = fit(model, x, y, epochs=1, batch_size=batch_size, lr=lr, seed=gen,
                   device=device, desc=desc)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise DivergenceError(f"{desc}: a weight became non-finite; lower the learning rate")
    return {"phase": desc, "loss": entry["loss"], "acc": entry["acc"], "samples": len(x)}


def sample_rows(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Row indices of a uniform sample of ``k`` of ``n`` items without repeats (``k`` = 0 or
    ``k`` >= ``n``: all ``n`` rows, in a random order), drawn with ``gen``."""
    order = torch.randperm(n, generator=gen)
    return order if k <= 0 else order[:k]


# --------------------------------------------------------------------------------- checks


def check_finite(net: nn.Module, name: str, lr: float) -> None:
    """Raise ``DivergenceError`` when a weight of ``net`` is non-finite."""
    if not all(torch.isfinite(q).all() for q in net.parameters()):
        raise DivergenceError(f"{name}: a weight became non-finite; lower lr (now {lr})")


def check_choice(method: UnlearningMethod, key: str, choices: Iterable[str]) -> None:
    """Raise ``ConfigError`` when the string parameter ``key`` is not one of ``choices``."""
    choices = tuple(choices)
    value = method.params[key]
    if value not in choices:
        raise ConfigError(f"{method.name}: {key} must be one of {', '.join(choices)}, got "
                          f"{value!r}; e.g. --set {key}={choices[0]}")


def check_optimizer(method: UnlearningMethod) -> None:
    """Raise ``ConfigError`` when the ``optimizer`` parameter is not one of
    ``training.OPTIMIZERS`` (``adam``, the lab's default, or ``sgd`` with momentum)."""
    check_choice(method, "optimizer", OPTIMIZERS)


# ------------------------------------------------------------------ importances and masks


def importances(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                device: torch.device) -> dict[str, torch.Tensor]:
    """Per parameter (by name), the mean over the batches of ``x`` (in order) of the squared
    gradient of the batch's mean cross-entropy (SSD's importance)."""
    params = {name: q for name, q in model.named_parameters() if q.requires_grad}
    out = {name: torch.zeros_like(q) for name, q in params.items()}
    batches = range(0, len(y), batch_size)
    for start in batches:
        loss = nn.functional.cross_entropy(model(x[start:start + batch_size].to(device)),
                                           y[start:start + batch_size].to(device))
        grads = torch.autograd.grad(loss, list(params.values()))
        for name, grad in zip(params, grads, strict=True):
            out[name] += grad.pow(2)
    return {name: imp / max(len(batches), 1) for name, imp in out.items()}


def top_fraction(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Per name, a 0/1 float mask of the entries whose score is among the top ``fraction`` of
    all entries of all tensors (one global threshold; ties broken by position, so exactly
    round(``fraction`` * #entries) entries are 1, at least one)."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = max(1, round(fraction * len(flat)))
    keep = torch.zeros(len(flat), dtype=torch.bool, device=flat.device)
    keep[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    masks, pos = {}, 0
    for name, s in scores.items():
        masks[name] = keep[pos:pos + s.numel()].view_as(s).to(s.dtype)
        pos += s.numel()
    return masks


@contextlib.contextmanager
def masked_gradients(net: nn.Module, masks: dict[str, torch.Tensor], weight_decay: float = 0.0):
    """Inside the block, every gradient g of a parameter q named in ``masks`` becomes
    (g + ``weight_decay`` * q) * mask: the L2 weight decay is added here, before the mask, so
    that the optimiser must be built without it. Adam's moments and SGD's momentum of a
    masked-out weight then stay 0, so the optimiser leaves it unchanged (SalUn's reference
    restores such weights after every step instead)."""
    if weight_decay:
        hooks = [q.register_hook(lambda g, m=masks[n], q=q: (g + weight_decay * q.detach()) * m)
                 for n, q in net.named_parameters() if n in masks]
    else:  # the gradient times the mask alone, the same numbers as without a decay term
        hooks = [q.register_hook(lambda g, m=masks[n]: g * m)
                 for n, q in net.named_parameters() if n in masks]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
