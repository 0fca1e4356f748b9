"""SCRUB (``scrub``), on synthetic data."""

from __future__ import annotations

import copy

import torch
from support import make_task, noise_task, same_weights, unlearn
from support import weights as state

from unlearnlab.methods.scrub import distill_kl
from unlearnlab.training import predict


def test_distill_kl_is_zero_for_equal_logits_and_matches_the_formula():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=gen), torch.randn(8, 10, generator=gen)
    assert distill_kl(t, t, 4.0).abs().item() < 1e-6
    p_t, p_s = torch.softmax(t / 2, 1), torch.softmax(s / 2, 1)
    manual = (p_t * (p_t.log() - p_s.log())).sum(1).mean() * 4
    assert torch.allclose(distill_kl(s, t, 2.0), manual, atol=1e-6)


def test_scrub_teacher_is_the_frozen_original(cnn, cnn_data):
    before = state(cnn)
    method, out = unlearn("scrub", cnn, make_task(cnn_data), epochs=2, msteps=2)
    assert same_weights(state(method.teacher), before)
    assert not method.teacher.training
    assert not any(q.requires_grad for q in method.teacher.parameters())
    assert all(q.requires_grad for q in cnn.parameters()), "the input lost requires_grad"
    assert not same_weights(state(out), before)
    assert [h["phase"] for h in method.history] == ["max", "min", "max", "min"]


def test_scrub_without_max_steps_ignores_the_forget_set(cnn, cnn_data):
    _, a = unlearn("scrub", copy.deepcopy(cnn), make_task(cnn_data), msteps=0)
    _, b = unlearn("scrub", copy.deepcopy(cnn), noise_task(cnn_data), msteps=0)
    assert same_weights(state(a), state(b))
    _, c = unlearn("scrub", copy.deepcopy(cnn), make_task(cnn_data), msteps=1)
    _, d = unlearn("scrub", copy.deepcopy(cnn), noise_task(cnn_data), msteps=1)
    assert not same_weights(state(c), state(d))


def test_scrub_max_step_moves_the_student_away_on_the_forget_set(cnn, cnn_data):
    task = make_task(cnn_data)
    method, out = unlearn("scrub", cnn, task, epochs=1, msteps=1, alpha=0.0, gamma=0.0,
                          forget_batch=8, lr=1e-3, temperature=1.0)
    assert method.history[0]["phase"] == "max"
    with torch.no_grad():
        kl = distill_kl(predict(out, task.forget_x), predict(cnn, task.forget_x), 1.0)
    assert kl.item() > 0.1
