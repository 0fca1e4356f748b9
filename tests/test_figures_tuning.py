"""``unlearnlab.figures.tuning``: Optuna's plots leave the caller's matplotlib state usable."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from unlearnlab.figures import tuning  # noqa: E402


def test_optuna_plotting_keeps_interactive_mode_switched_on_inside_it():
    """A notebook's inline backend loads on the first figure, inside the context, and switches
    interactive mode on; restoring the old value would hide every later figure."""
    was = matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        with tuning._optuna_plotting():
            matplotlib.interactive(True)  # what the inline backend does when it loads
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(was)
