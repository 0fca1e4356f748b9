"""Figures of an Optuna study of ``unlearnlab tune``: the optimisation history and the
hyperparameter importances, drawn by Optuna's matplotlib backend (so plotly is not needed)."""

from __future__ import annotations

import contextlib
import warnings

from ..tuning import complete_trials

TARGET = "average gap to the retrained ensemble (validation)"


@contextlib.contextmanager
def _optuna_plotting():
    """Optuna's matplotlib plots are marked experimental and switch the global style to
    ggplot: silence the warning and restore the caller's rcParams afterwards, except
    ``interactive``: a notebook's inline backend loads on the first figure and switches it on,
    and restoring it would stop every later figure of the notebook from showing."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna

    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
        interactive = matplotlib.is_interactive()
    matplotlib.interactive(interactive)


def plot_history(study):
    """Optuna's optimisation-history plot: every trial's objective and the best so far (its
    matplotlib backend, so plotly is not needed)."""
    from optuna.visualization.matplotlib import plot_optimization_history

    with _optuna_plotting():
        return plot_optimization_history(study, target_name=TARGET)


def plot_importances(study):
    """Optuna's hyperparameter-importance plot (fANOVA, Hutter et al. 2014), or a note when
    the study has fewer than 3 complete trials to estimate importances from."""
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_param_importances

    if complete_trials(study) < 3:
        _, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "parameter importances need at least 3 complete trials",
                ha="center", va="center")
        return ax
    with _optuna_plotting():
        return plot_param_importances(study, target_name=TARGET)

