"""Where a grid's independent jobs run: one after another in this process (``local``, the
default), on a pool of local worker processes (``process:N``) or as tasks of a Ray cluster
(``ray``, ``ray:HOST:PORT``, ``ray://HOST:PORT``).

A job is one picklable argument of a module-level function; ``Executor.map(fn, jobs)`` returns
``[fn(job) for job in jobs]`` in job order, whichever worker ran each. Jobs share the data root
and its content-addressed caches, which are written atomically (``outputs.atomic_path``) and
claimed while an entry is computed (``cache.claim``): a job that fails or is stopped leaves no
half-written file, and two jobs that need one model train it once.

Failures. With ``local`` the first job to raise stops the grid. With workers, a job whose
worker dies (killed, out of memory, a lost node) is run again, at most ``retries`` times; a job
that raises is not (its error would repeat): it is reported in one log line, the other jobs
finish, and ``map`` then raises one ``ExecutorError`` naming how many jobs failed and the first
error.

Threads and identical numbers: torch's matrix products split their reductions by thread, so a
model trained with 1 thread and the same model trained with 2 differ in rounding (each count is
deterministic), and the cache key does not name the thread count. A worker of ``process:N``
therefore trains with ``min(T, cores // N)`` threads (at least 1), ``T`` being this process's
thread count (what ``local`` trains with: ``OMP_NUM_THREADS`` or ``torch.set_num_threads``), so
that ``N x threads <= cores`` and, whenever ``T <= cores // N`` (e.g. ``OMP_NUM_THREADS=1``), the
records of ``process:N`` equal those of ``local`` bit for bit. Otherwise the executor says so
in one warning line naming the fix. A Ray task trains with ``T`` threads and reserves ``T`` CPUs
of the cluster (``num_cpus``), so its records always equal ``local``'s. See docs/scaling.md.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import torch

from .config import RunConfig
from .errors import ConfigError, ExecutorError, one_line

log = logging.getLogger("unlearnlab")

CHOICES = "use local, process:N, ray, ray:HOST:PORT or ray://HOST:PORT"
DEFAULT_RETRIES = 2


# ------------------------------------------------------------------------------ job progress

def describe_job(fn: Callable, job) -> str:
    """A job in words: ``fn.describe(job)`` when the function has one, else the function's name
    and the job's fields (a ``RunConfig`` as its dataset, forget spec, architecture and seed)."""
    custom = getattr(fn, "describe", None)
    if custom is not None:
        return custom(job)
    parts = []
    for field in job if isinstance(job, tuple) else (job,):
        if isinstance(field, RunConfig):
            arch = f" ({field.arch})" if field.arch else ""
            parts.append(f"{field.dataset} {field.forget}{arch}, seed {field.seed}")
        elif isinstance(field, str | int | float | os.PathLike):
            parts.append(str(field))
        elif isinstance(field, tuple | list) and all(isinstance(f, str) for f in field):
            parts.append("+".join(field) or "no methods")
        elif isinstance(field, type):
            parts.append(field.__name__)
        elif not isinstance(field, dict):  # parameters and settings stay out of the line
            parts.append(type(field).__name__)
    return f"{getattr(fn, '__name__', 'job')}: {', '.join(parts)}"


def job_error_line(exc: BaseException) -> str:
    """``errors.one_line`` of a job's error, its type's name when it has no message."""
    return one_line(str(exc).strip() or type(exc).__name__)


class JobProgress:
    """Done / running / failed over one ``map``'s jobs: a tqdm bar (with its ETA) when
    ``stream`` (default stderr) is a terminal, else one log line per finished job,
    ``job 3/12 done (...)``. A failed or retried job is always one log line."""

    def __init__(self, fn: Callable, jobs: list, spec: str, stream=None):
        self.labels = [describe_job(fn, job) for job in jobs]
        self.total, self.done, self.running, self.failed = len(jobs), 0, 0, 0
        stream = sys.stderr if stream is None else stream
        self.bar = None
        if self.total and getattr(stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=f"jobs on {spec}", unit="job", file=stream,
                            dynamic_ncols=True, leave=False)

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix(running=self.running, failed=self.failed, refresh=True)

    def _say(self, level: int, message: str, *args) -> None:
        if self.bar is not None:  # a line above the bar, not through it
            self.bar.write(f"unlearnlab: {message % args}", file=self.bar.fp)
        else:
            log.log(level, message, *args)

    def start(self, i: int) -> None:
        self.running += 1
        self._refresh()

    def finish(self, i: int) -> None:
        self.running -= 1
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self._refresh()
        else:
            log.info("job %d/%d done (%s); %d of %d done, %d running, %d failed", i + 1,
                     self.total, self.labels[i], self.done, self.total, self.running,
                     self.failed)

    def fail(self, i: int, exc: BaseException) -> None:
        self.running -= 1
        self.failed += 1
        if self.bar is not None:
            self.bar.update(1)
        self._say(logging.ERROR, "job %d/%d failed (%s): %s", i + 1, self.total, self.labels[i],
                  job_error_line(exc))
        self._refresh()

    def retry(self, i: int, attempt: int, retries: int, reason: str) -> None:
        self.running -= 1
        self._say(logging.WARNING, "job %d/%d (%s) lost its worker (%s); running it again "
                  "(retry %d of %d)", i + 1, self.total, self.labels[i], reason, attempt,
                  retries)
        self._refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def jobs_failed(spec: str, total: int, errors: dict[int, BaseException],
                 labels: list[str]) -> ExecutorError:
    """The one error of a grid whose jobs failed: how many, and the first to fail."""
    first = next(iter(errors))
    exc = ExecutorError(f"{len(errors)} of {total} jobs failed on {spec}; the other jobs "
                        f"finished and are cached; the first failure ({labels[first]}): "
                        f"{job_error_line(errors[first])}")
    exc.__cause__ = errors[first]
    return exc


# --------------------------------------------------------------------------------- executors

class Executor:
    """Runs jobs: ``map(fn, jobs)`` -> results in job order. ``spec`` is the text it was made
    from, ``workers`` the jobs run at once, ``threads`` the torch threads each job trains with,
    ``retries`` how often a job whose worker died is run again; ``in_process``: jobs run in this
    process (nothing to warm ahead of the sequential code). Use it as a context manager (or call
    ``close``) to release its workers."""

    spec = "local"
    workers = 1
    retries = 0
    in_process = True

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def map(self, fn: Callable, jobs: Iterable) -> list:
        return [fn(job) for job in self.track(fn, jobs)]

    def track(self, fn: Callable, jobs: Iterable) -> Iterator:
        """Yield each job under the progress display (``JobProgress``), a job counting as done
        when the next is asked for: for a loop in this process that does the work of ``fn``'s
        jobs itself (``compare``'s loop with ``local``)."""
        jobs = list(jobs)
        progress = JobProgress(fn, jobs, self.spec)
        try:
            for i, job in enumerate(jobs):
                progress.start(i)
                yield job
                progress.finish(i)
        finally:
            progress.close()

    def close(self) -> None:
        """Release the workers (nothing to release in this process)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProcessExecutor(Executor):
    """``process:N``: a ``ProcessPoolExecutor`` of N workers started with ``spawn`` (no state
    forked from this process, the same on every platform), started at the first ``map`` and
    kept for the next ones until ``close``. With CUDA, the workers share this machine's GPU.

    At most N jobs are submitted at once, so the jobs in flight are the jobs running. When a
    worker dies the pool is broken and every job in flight is lost with it (the pool stops its
    other workers too): the pool is started again and each lost job resubmitted, counting one
    retry against it."""

    in_process = False

    def __init__(self, workers: int, cores: int | None = None,
                 retries: int = DEFAULT_RETRIES):
        cores = cores or os.cpu_count() or 1
        if workers > cores:
            raise ConfigError(f"--executor process:{workers} asks for more workers than this "
                              f"machine's {cores} cores; use process:{cores} or fewer")
        self.spec, self.workers, self.retries = f"process:{workers}", workers, retries
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
                initializer=_start_pool_worker,
                initargs=(self._threads, log.getEffectiveLevel()))
        return self._pool

    def map(self, fn: Callable, jobs: Iterable) -> list:
        jobs = list(jobs)
        if not jobs:
            return []
        progress = JobProgress(fn, jobs, self.spec)
        results: list = [None] * len(jobs)
        attempts = [0] * len(jobs)
        errors: dict[int, BaseException] = {}
        todo, in_flight = deque(range(len(jobs))), {}
        try:
            while todo or in_flight:
                pool = self._start()
                while todo and len(in_flight) < self.workers:
                    i = todo.popleft()
                    in_flight[pool.submit(fn, jobs[i])] = i
                    progress.start(i)
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in finished):
                    # The pool is gone with all its workers: every job in flight is lost.
                    wait(in_flight)
                    finished = set(in_flight)
                lost = []
                for future in finished:
                    i = in_flight.pop(future)
                    exc = future.exception()
                    if exc is None:
                        results[i] = future.result()
                        progress.finish(i)
                    elif isinstance(exc, BrokenProcessPool):
                        lost.append(i)
                    else:
                        errors[i] = exc
                        progress.fail(i, exc)
                if lost:
                    self.close(wait=False)
                    for i in sorted(lost):
                        attempts[i] += 1
                        if attempts[i] > self.retries:
                            errors[i] = ExecutorError(
                                f"its worker process died {attempts[i]} time(s) (--retries "
                                f"{self.retries})")
                            progress.fail(i, errors[i])
                        else:
                            progress.retry(i, attempts[i], self.retries, "worker process died")
                            todo.appendleft(i)
        except BaseException:  # Ctrl-C: the workers got it too; leave without waiting
            progress.close()
            self.close(wait=False)
            raise
        progress.close()
        if errors:
            raise jobs_failed(self.spec, len(jobs), errors, progress.labels)
        return results

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=wait, cancel_futures=True)


def start_worker(threads: int, level: int) -> None:
    """A worker's set-up: its thread count (see the module docstring) and the lab's log lines
    on its stderr, as the command's own."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="unlearnlab: %(message)s", stream=sys.stderr)


def _start_pool_worker(threads: int, level: int) -> None:
    """A ``process:N`` worker's set-up: ``start_worker``'s, and a watch that ends the worker
    when the command that started it is gone."""
    start_worker(threads, level)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="unlearnlab-parent-watch").start()


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this worker once ``parent`` is no longer its parent (killed: the worker was
    re-parented). A worker only notices a dead pool when its job ends, and a killed command's
    worker would otherwise train on alone for minutes, writing into the caches."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


# ------------------------------------------------------------------------------------ specs

def check_retries(retries) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"--retries must be a non-negative integer, got {retries!r}")
    return retries


def check_gpus_per_job(gpus) -> float | None:
    if gpus is None:
        return None
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not math.isfinite(gpus) \
            or gpus < 0:
        raise ConfigError(f"--gpus-per-job must be a number >= 0 (a fraction packs several "
                          f"jobs on one GPU), got {gpus!r}")
    return float(gpus)


def parse_executor(spec, retries: int = DEFAULT_RETRIES,
                   gpus_per_job: float | None = None) -> Executor:
    """``local``, ``process:N`` (N >= 1 workers, at most the machine's cores), ``ray``,
    ``ray:HOST:PORT`` or ``ray://HOST:PORT`` as an ``Executor``; anything else is a one-line
    ``ConfigError``. ``retries``: how often a job whose worker died runs again (not with
    ``local``); ``gpus_per_job``: the GPU share of a Ray task (Ray only). Starts no process
    and connects to nothing."""
    if isinstance(spec, Executor):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"executor must be a str ({CHOICES}), got {type(spec).__name__}")
    retries = check_retries(retries)
    gpus_per_job = check_gpus_per_job(gpus_per_job)
    kind, sep, count = spec.partition(":")
    if kind != "ray" and gpus_per_job is not None:
        raise ConfigError(f"--gpus-per-job applies to --executor ray; with {spec or 'local'} "
                          "jobs use this machine's GPU as `--device` says (leave it out)")
    if spec == "local":
        return Executor()
    if kind == "process":
        if not sep or not count.isdigit() or not count.isascii() or int(count) < 1:
            raise ConfigError(f"--executor '{spec}': the number of workers must be a positive "
                              "integer, e.g. process:2")
        return ProcessExecutor(int(count), retries=retries)
    if kind == "ray":
        from .ray_executor import RayExecutor, ray_address  # Ray is an optional extra

        return RayExecutor(ray_address(spec), retries, gpus_per_job)
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


__all__ = ["CHOICES", "DEFAULT_RETRIES", "Executor", "JobProgress", "ProcessExecutor",
           "check_fresh", "describe_job", "open_executor", "parse_executor"]
