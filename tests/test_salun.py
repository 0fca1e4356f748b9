"""SalUn (``salun``), on synthetic data."""

from __future__ import annotations

import torch
from support import make_task, unlearn
from support import weights as state

from unlearnlab.methods.salun import saliency_mask


def test_saliency_mask_keeps_the_top_fraction(cnn, cnn_data):
    task = make_task(cnn_data)
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


def test_salun_updates_only_the_masked_weights(cnn, cnn_data):
    before = state(cnn)
    method, out = unlearn("salun", cnn, make_task(cnn_data), mask_fraction=0.2, epochs=2,
                          batch_size=16)
    after = dict(out.named_parameters())
    changed = 0
    for name, mask in method.mask.items():
        old, new = before[name], after[name].detach()
        assert torch.equal(new[mask == 0], old[mask == 0]), f"{name}: an unmasked weight moved"
        changed += int((new[mask == 1] != old[mask == 1]).sum())
    assert changed > 0.5 * sum(int(m.sum()) for m in method.mask.values())
    assert not any(q._backward_hooks for q in out.parameters()), "gradient hooks left behind"


def test_salun_full_mask_changes_more_weights(cnn, cnn_data):
    before = state(cnn)
    _, out = unlearn("salun", cnn, make_task(cnn_data), mask_fraction=1.0)
    moved = sum(int((q.detach() != before[n]).sum()) for n, q in out.named_parameters())
    total = sum(q.numel() for q in out.parameters())
    assert moved > 0.6 * total
