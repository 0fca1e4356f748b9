"""Where a grid's independent jobs run: one after another in this process (``local``, the
default) or on a pool of local worker processes (``process:N``).

A job is one picklable argument of a module-level function; ``Executor.map(fn, jobs)`` returns
``[fn(job) for job in jobs]`` in job order, whichever worker ran each. Jobs share the data root
and its content-addressed caches, which are written atomically (``outputs.atomic_path``): a job
that fails or is stopped leaves no half-written file. The first job to raise stops the grid:
the jobs not yet started are cancelled, the pool is shut down and the job's exception (an
``UnlearnlabError`` with its one-line message) reaches the caller.

Threads and identical numbers: torch's matrix products split their reductions by thread, so a
model trained with 1 thread and the same model trained with 2 differ in rounding (each count is
deterministic), and the cache key does not name the thread count. A worker of ``process:N``
therefore trains with ``min(T, cores // N)`` threads (at least 1), ``T`` being this process's
thread count (what ``local`` trains with: ``OMP_NUM_THREADS`` or ``torch.set_num_threads``), so
that ``N x threads <= cores`` and, whenever ``T <= cores // N`` (e.g. ``OMP_NUM_THREADS=1``), the
records of ``process:N`` equal those of ``local`` bit for bit. Otherwise the executor says so
in one warning line naming the fix. See docs/scaling.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import torch

from .errors import ConfigError, ExecutorError

log = logging.getLogger("unlearnlab")

CHOICES = "use local or process:N"


class Executor:
    """Runs jobs: ``map(fn, jobs)`` -> results in job order. ``spec`` is the text it was made
    from, ``workers`` the jobs run at once, ``threads`` the torch threads each job trains with;
    ``in_process``: jobs run in this process (nothing to warm ahead of the sequential code).
    Use it as a context manager (or call ``close``) to release its workers."""

    spec = "local"
    workers = 1
    in_process = True

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def map(self, fn: Callable, jobs: Iterable) -> list:
        return [fn(job) for job in jobs]

    def close(self) -> None:
        """Release the workers (nothing to release in this process)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProcessExecutor(Executor):
    """``process:N``: a ``ProcessPoolExecutor`` of N workers started with ``spawn`` (no state
    forked from this process, the same on every platform), started at the first ``map`` and
    kept for the next ones until ``close``."""

    in_process = False

    def __init__(self, workers: int, cores: int | None = None):
        cores = cores or os.cpu_count() or 1
        if workers > cores:
            raise ConfigError(f"--executor process:{workers} asks for more workers than this "
                              f"machine's {cores} cores; use process:{cores} or fewer")
        self.spec, self.workers = f"process:{workers}", workers
        self.local_threads = torch.get_num_threads()
        self._threads = min(self.local_threads, max(1, cores // workers))
        self._pool: ProcessPoolExecutor | None = None

    @property
    def threads(self) -> int:
        return self._threads

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            if self._threads != self.local_threads:
                log.warning("%s trains with %d thread(s) per worker, this process with %d: "
                            "models trained now round differently from ones `local` would "
                            "train here; set OMP_NUM_THREADS=%d for identical numbers "
                            "(docs/scaling.md)", self.spec, self._threads, self.local_threads,
                            self._threads)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._threads, log.getEffectiveLevel()))
        return self._pool

    def map(self, fn: Callable, jobs: Iterable) -> list:
        jobs = list(jobs)
        if not jobs:
            return []
        pool = self._start()
        try:
            futures = [pool.submit(fn, job) for job in jobs]
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C: the workers got it too; leave without waiting
            self.close(wait=False)
            raise
        failed = [f for f in futures if f.done() and not f.cancelled()
                  and f.exception() is not None]
        if failed:
            # Cancel what has not started and let running jobs finish: each writes its cache
            # entry whole or not at all, so none is left half-written.
            self.close()
            exc = failed[0].exception()
            if isinstance(exc, BrokenProcessPool):
                raise ExecutorError(f"a worker process of {self.spec} died ({exc}); the jobs "
                                    "it finished are cached: run the command again (retries "
                                    "are not built yet)") from exc
            raise exc
        return [f.result() for f in futures]

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=wait, cancel_futures=True)


def _start_worker(threads: int, level: int) -> None:
    """A worker's set-up: its thread count (see the module docstring) and the lab's log lines
    on its stderr, as the command's own."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="unlearnlab: %(message)s", stream=sys.stderr)


def parse_executor(spec) -> Executor:
    """``local`` or ``process:N`` (N >= 1 workers, at most the machine's cores) as an
    ``Executor``; anything else is a one-line ``ConfigError``. Starts no process."""
    if isinstance(spec, Executor):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"executor must be a str ({CHOICES}), got {type(spec).__name__}")
    if spec == "local":
        return Executor()
    kind, sep, count = spec.partition(":")
    if kind == "process":
        if not sep or not count.isdigit() or not count.isascii() or int(count) < 1:
            raise ConfigError(f"--executor '{spec}': the number of workers must be a positive "
                              "integer, e.g. process:2")
        return ProcessExecutor(int(count))
    if kind == "ray":
        raise ConfigError(f"--executor '{spec}' is not built yet: {CHOICES}")
    raise ConfigError(f"unknown executor '{spec}': {CHOICES}")


@contextmanager
def open_executor(spec) -> Iterator[Executor]:
    """The executor of ``spec`` (a spec string or an ``Executor``); one made here is closed on
    leaving, one passed in is left open for its owner."""
    if isinstance(spec, Executor):
        yield spec
        return
    with parse_executor(spec) as executor:
        yield executor


def check_fresh(executor: Executor, reuse: bool) -> None:
    """Refuse ``--fresh`` with workers: they would retrain every model and this process, which
    loads their results through the caches, would retrain them once more."""
    if not executor.in_process and not reuse:
        raise ConfigError(f"--fresh with --executor {executor.spec} is not built yet; run "
                          "--fresh with --executor local, or leave --fresh out")
