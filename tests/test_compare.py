"""The ensemble comparison through the Python API, on scikit-learn's bundled digits in quick
mode (seconds, no files needed)."""

from __future__ import annotations

import numpy as np

from unlearnlab.compare import compare
from unlearnlab.config import RunConfig
from unlearnlab.metrics import kl_matrix
from unlearnlab.scenario import build_scenario
from unlearnlab.training import predict


def test_kl_matrix_reuses_the_probe_logits_and_equals_fresh_predictions(tmp_path):
    """The KL matrix comes from the logits every evaluation already holds; it equals the
    matrix of a separate prediction pass on the forget training set."""
    cfg = RunConfig(dataset="digits", forget="class:6", quick=True, arch="mlp",
                    data_dir=str(tmp_path), metrics=["mia_efficacy"])
    cmp = compare(cfg, ["gradient_ascent", "finetune"], seeds=2)
    sc = build_scenario(cfg)  # the forget training set is the same for every seed
    forget_x = sc.train.x[sc.masks["train"]]
    for seed, (names, matrix) in cmp.kl.items():
        assert names == ["untrained", "original", "retrained", "gradient_ascent", "finetune"]
        fresh = kl_matrix({n: predict(m, forget_x) for n, m in cmp.models[seed].items()})
        assert fresh[0] == names
        np.testing.assert_allclose(matrix, fresh[1], rtol=1e-5, atol=1e-6)
        assert np.all(np.diag(matrix) == 0) and np.all(matrix[~np.eye(5, dtype=bool)] > 0)
