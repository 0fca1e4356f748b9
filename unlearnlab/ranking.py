"""The uncertainty of the leaderboard's order (issue 18): a seeded bootstrap interval of each
method's overall avg |z| over its seeds, and rank groups of methods whose intervals overlap,
so that the table does not imply a strict order the seeds cannot support."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError

# Percentile intervals want 1000 resamples or more (Efron & Tibshirani 1993, ch. 13); the fixed
# seed makes the interval, and with it the groups, the same on every rendering.
RESAMPLES = 2000
LEVEL = 0.95
BOOTSTRAP_SEED = 0


def bootstrap_interval(rows: pd.DataFrame, column: str = "z_gap", resamples: int = RESAMPLES,
                       level: float = LEVEL, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per method (index, in order of first appearance): ``low`` and ``high``, the percentile
    interval (``level``, 95 %: the 2.5th and 97.5th percentiles) of its overall score under
    ``resamples`` bootstrap resamples of its runs.

    The score is the leaderboard's: the mean over the scenarios a method ran on of its mean
    ``column`` over the seeds there. One resample draws, in every scenario, as many runs as
    the method has there, with replacement from those runs (stratified by scenario), and
    takes the same mean of means. The scenarios are not resampled: the score is a mean over a
    fixed, named set of scenarios (a different set per method), not over a sample from a
    population of scenarios; resampling a handful of them would make the interval mostly say
    how unlike each other a method's scenarios are, which the per-scenario columns already
    show. What varies from one bench to the next is the seeds, and that is what the interval
    measures. Each run's z is taken as given: the uncertainty of the
    retrained ensemble it is measured against, shared by all runs of a scenario, is not in
    the interval; and with 5 seeds the bootstrap's spread of a mean is sqrt(4/5) = 0.89 of
    the usual standard error, so the interval runs narrow. Read the groups as a guide, not as
    a test.

    Deterministic: each method's draws come from ``numpy.random.default_rng(seed)`` over its
    scenarios sorted by name and its values sorted, so its interval depends on its own runs
    only. Runs whose ``column`` is NaN are left out, as the leaderboard's means leave them
    out; a method with none (one seed: no spread, no z) or with an infinite value has NaN
    bounds."""
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 1:
        raise ConfigError(f"resamples must be a positive integer, got {resamples!r}")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie between 0 and 1 (0.95 for 95 %), got {level!r}")
    percentiles = [50 * (1 - level), 50 * (1 + level)]
    bounds = {}
    for method, runs in rows.groupby("method", sort=False):
        cells = [np.sort(values[~np.isnan(values)])
                 for _, values in sorted((scenario, group[column].to_numpy(dtype=float))
                                         for scenario, group in runs.groupby("scenario"))]
        cells = [values for values in cells if values.size]
        if not cells or any(np.isinf(values).any() for values in cells):
            bounds[method] = (np.nan, np.nan)
            continue
        rng = np.random.default_rng(seed)
        total = np.zeros(resamples)
        for values in cells:
            total += values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
        low, high = np.percentile(total / len(cells), percentiles)
        bounds[method] = (float(low), float(high))
    return pd.DataFrame.from_dict(bounds, orient="index", columns=["low", "high"])


def overlap_groups(low: Sequence[float], high: Sequence[float]) -> list[int | None]:
    """Rank groups of methods given in rank order (best first) with their interval bounds:
    the best method opens group 1; each following method joins the current group when its
    lower bound is at most the upper bound of the method that opened it, else it opens the
    next group. Groups are thus runs of consecutive ranks whose intervals reach back to their
    leader's. A method without an interval (NaN bounds: one seed, diverged) gets None."""
    if len(low) != len(high):
        raise ConfigError(f"low and high must have one bound per method, got {len(low)} and "
                          f"{len(high)}")
    groups: list[int | None] = []
    group, leader_high = 0, None
    for lo, hi in zip(low, high, strict=True):
        if np.isnan(lo) or np.isnan(hi):
            groups.append(None)
            continue
        if leader_high is None or lo > leader_high:
            group, leader_high = group + 1, hi
        groups.append(group)
    return groups
