"""Membership-inference attacks (MIA) on the forget set: the three variants the field uses,
side by side and named unambiguously (field notes, section 2.3). Attackers are scikit-learn
classifiers on one scalar feature per sample, computed from the model's logits.

Shared conventions:

- the *shadow* sets are a balanced, seeded sample of retain-train samples (members) and
  retain-test samples (non-members), at most ``SHADOW_CAP`` each;
- every score is a fraction in [0, 1] (SalUn prints MIA-Efficacy in percent);
- each score comes with its *chance level*: the same attacker applied to the forget-*test*
  samples, which no model was trained on. A model that never saw the forget set (the retrained
  one) scores at its chance level; a model that memorised it scores away from it. For the
  loss attack the chance level is 0.5 by construction. Without forget-test samples there is
  no chance level (None). Random forgetting has none in the test split: its forget-test role
  is played by held-out retain-test samples (``scenario.probe_rows``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_validate
from sklearn.svm import SVC

# RBF-SVC training is quadratic in the sample count; 2,000 + 2,000 shadow samples keep one
# attack under a second on a laptop CPU (SalUn used the whole test set).
SHADOW_CAP = 2000
LOSS_SPLITS = 10  # cross-validation splits of the loss attack (the NeurIPS starting kit's 10)


def true_class_confidence(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """p_y: the softmax probability of the true label."""
    return torch.softmax(logits.double(), 1).gather(1, y[:, None]).squeeze(1).numpy()


def entropy(logits: torch.Tensor) -> np.ndarray:
    """H(p) = -sum_c p_c log p_c of the softmax (natural log)."""
    log_p = torch.log_softmax(logits.double(), 1)
    return -(log_p.exp() * log_p).sum(1).numpy()


def loss(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-sample cross-entropy -log p_y."""
    return torch.nn.functional.cross_entropy(logits.double(), y, reduction="none").numpy()


def _shadow(member: np.ndarray, nonmember: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([member, nonmember])[:, None]
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    return x, y


def mia_efficacy(member, nonmember, forget, forget_test) -> tuple[float, float | None]:
    """SalUn / l1-sparse "MIA-Efficacy" (Jia et al. 2023; Fan et al. 2024,
    ``evaluation/SVC_MIA.py``): an ``SVC(C=3, gamma="auto", kernel="rbf")`` learns member vs
    non-member from the true-class confidence of the shadow sets; the score is the fraction of
    forget samples it calls *non-member*. Arguments are confidences (``true_class_confidence``).
    Returns (score on forget-train, chance level on forget-test or None without any)."""
    attacker = SVC(C=3, gamma="auto", kernel="rbf").fit(*_shadow(member, nonmember))
    return (float(1 - _predict_in_threads(attacker, forget).mean()),
            float(1 - _predict_in_threads(attacker, forget_test).mean())
            if len(forget_test) else None)


def _predict_in_threads(attacker: SVC, values: np.ndarray) -> np.ndarray:
    """``attacker.predict`` on chunks of ``values`` in parallel threads (libsvm releases the
    GIL; each row's prediction is independent, so the result is the same as one call). The
    RBF-SVC prediction costs support vectors x samples and was a fifth of a warm grid."""
    chunks = np.array_split(values[:, None], max(1, min(len(values), os.cpu_count() or 1)))
    if len(chunks) == 1:  # (an empty input raises scikit-learn's own error here)
        return attacker.predict(chunks[0])
    with ThreadPoolExecutor(len(chunks)) as pool:
        return np.concatenate(list(pool.map(attacker.predict, chunks)))


def mia_entropy(member, nonmember, forget, forget_test) -> tuple[float, float | None]:
    """Entropy MIA (Golatkar et al. 2020 -> Bad Teacher -> SSD ``metrics.py``): a
    ``LogisticRegression(class_weight="balanced")`` learns member vs non-member from the
    softmax entropy of the shadow sets; the score is the mean predicted-member label on the
    forget samples (SSD's choice of attacker; Golatkar used an SVC). Arguments are entropies.
    Returns (score on forget-train, chance level on forget-test or None without any)."""
    attacker = LogisticRegression(class_weight="balanced").fit(*_shadow(member, nonmember))
    return (float(attacker.predict(forget[:, None]).mean()),
            float(attacker.predict(forget_test[:, None]).mean()) if len(forget_test) else None)


def mia_loss(forget, forget_test, seed: int) -> tuple[float | None, float | None]:
    """Loss MIA, the "simple MIA" of the NeurIPS 2023 starting kit and SCRUB: per-sample
    losses of forget-train samples (label 1) vs forget-test samples (label 0; SCRUB restricts
    the test side to the forgotten classes, we restrict it to the forget subset's test part;
    for random forgetting it is held-out test samples, as in the kit's random forget set),
    balanced by subsampling the larger side, then ``LogisticRegression`` scored by
    ``StratifiedShuffleSplit(10 splits, seed)`` cross-validation. Returns (mean CV accuracy,
    mean CV ROC AUC), chance 0.5 for both; (None, None) with fewer than 5 samples a side."""
    rng = np.random.default_rng(seed)
    n = min(len(forget), len(forget_test))
    if n < 5:
        return None, None
    a = rng.choice(forget, n, replace=False) if len(forget) > n else forget
    b = rng.choice(forget_test, n, replace=False) if len(forget_test) > n else forget_test
    x, y = _shadow(a, b)
    splits = StratifiedShuffleSplit(n_splits=LOSS_SPLITS, test_size=0.3, random_state=seed)
    scores = cross_validate(LogisticRegression(), x, y, cv=splits,
                            scoring=("accuracy", "roc_auc"))
    return float(scores["test_accuracy"].mean()), float(scores["test_roc_auc"].mean())


def shadow_rows(n_member_pool: int, n_nonmember_pool: int, seed: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Seeded positions (within the retain-train and retain-test pools) of a balanced shadow
    sample of min(pools, ``SHADOW_CAP``) members and as many non-members."""
    rng = np.random.default_rng(seed)
    n = min(n_member_pool, n_nonmember_pool, SHADOW_CAP)
    return (np.sort(rng.choice(n_member_pool, n, replace=False)),
            np.sort(rng.choice(n_nonmember_pool, n, replace=False)))
