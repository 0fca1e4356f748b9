"""Fine-tuning on the retain set (``finetune``), on synthetic data."""

from __future__ import annotations

import copy

from support import make_task, noise_task, same_weights, unlearn
from support import weights as state


def test_finetune_never_reads_the_forget_set(cnn, cnn_data):
    _, a = unlearn("finetune", copy.deepcopy(cnn), make_task(cnn_data))
    _, b = unlearn("finetune", copy.deepcopy(cnn), noise_task(cnn_data))
    _, c = unlearn("finetune", copy.deepcopy(cnn),
                   make_task(cnn_data, forget_x=cnn_data.train.x[:3]))
    assert same_weights(state(a), state(b)) and same_weights(state(a), state(c))


def test_finetune_retain_samples_caps_the_training_set(cnn, cnn_data):
    method, _ = unlearn("finetune", cnn, make_task(cnn_data), retain_samples=40, batch_size=16,
                        epochs=2)
    assert len(method.history) == 2
    # accuracy over 40 samples is a multiple of 1/40
    assert all(abs(h["acc"] * 40 - round(h["acc"] * 40)) < 1e-9 for h in method.history)
