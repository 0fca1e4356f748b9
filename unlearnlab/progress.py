"""How the lab shows progress: a tqdm bar on a terminal and in a Jupyter notebook (tqdm's
notebook widget), and, when the output goes to a file or a pipe, where a bar would only write
carriage returns, one log line per finished step instead (``step``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm

log = logging.getLogger("unlearnlab")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's kernel app is running)."""
    shell = sys.modules.get("IPython")
    ipython = shell.get_ipython() if shell is not None else None
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def interactive() -> bool:
    """True when a bar can be drawn: a notebook, or stderr is a terminal."""
    return in_notebook() or sys.stderr.isatty()


def bar(iterable: Iterable, *, desc: str, total: int | None = None, leave: bool = False):
    """``iterable`` wrapped in a progress bar when one can be drawn, else returned as it is."""
    if not interactive():
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=leave)


def step(message: str, *args) -> None:
    """One line for a finished step (an epoch, a job) when no bar can be drawn; on a terminal
    or in a notebook the bars say it and the line is left out."""
    if not interactive():
        log.info(message, *args)
