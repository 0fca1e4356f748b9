"""The helpers the built-in methods share (``unlearnlab.methods._common``)."""

from __future__ import annotations

import torch

from unlearnlab.methods._common import sample_rows


def test_sample_rows_without_repeats():
    gen = torch.Generator().manual_seed(0)
    rows = sample_rows(50, 20, gen)
    assert len(rows) == 20 and len(set(rows.tolist())) == 20 and rows.max() < 50
    assert sorted(sample_rows(50, 0, gen).tolist()) == list(range(50))  # 0 = all
    assert sorted(sample_rows(50, 80, gen).tolist()) == list(range(50))  # capped
