"""``--executor ray``, ``ray:HOST:PORT`` and ``ray://HOST:PORT``: a grid's jobs as tasks of a Ray
cluster (``RayExecutor``), with the failure rules and progress of every executor
(``unlearnlab.executor``). Ray is an optional extra: without it, ``--executor ray`` fails in one
line naming the install command. See docs/scaling.md."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable

import torch

from .config import RunConfig
from .errors import ConfigError, ExecutorError
from .executor import (
    DEFAULT_RETRIES,
    Executor,
    JobProgress,
    job_error_line,
    jobs_failed,
    start_worker,
)

log = logging.getLogger("unlearnlab")

INSTALL_RAY = "pip install 'unlearnlab[ray]'"
# GPU share a Ray task reserves per architecture when the cluster has GPUs and --gpus-per-job is
# not given: the lab's models are small (the CNN's training needs well under 1 GB), so several
# share one GPU; these are starting points, not measurements (docs/scaling.md).
GPUS_PER_JOB = {"mlp": 0.125, "cnn": 0.25, "convnet": 0.25}
GPUS_PER_JOB_OTHER = 0.5
# Seconds to wait for a TCP connection to a Ray address before calling it unreachable.
CONNECT_TIMEOUT = 5.0


def _import_ray():
    """The ``ray`` module, or a one-line ``ConfigError`` naming the install command."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray, which is not installed here: "
                          f"{INSTALL_RAY}") from exc
    return ray


def _ray_job(fn: Callable, job, threads: int, level: int):
    """A Ray task: the worker's set-up, then the job (``start_worker`` is idempotent, and a
    Ray worker process may run many tasks)."""
    start_worker(threads, level)
    return fn(job)


def _reachable(host: str, port: int) -> str | None:
    """None when a TCP connection to ``host:port`` opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def job_gpus(job) -> float:
    """The default GPU share of a job on a cluster with GPUs: ``GPUS_PER_JOB`` of the
    architecture of the job's first ``RunConfig`` (its default for the dataset and forget kind
    when none is set); ``GPUS_PER_JOB_OTHER`` for another architecture or no RunConfig."""
    from .forget import parse_forget
    from .scenario import resolve_arch

    for field in job if isinstance(job, tuple) else (job,):
        if isinstance(field, RunConfig):
            arch = resolve_arch(field, parse_forget(field.forget))
            return GPUS_PER_JOB.get(arch, GPUS_PER_JOB_OTHER)
    return GPUS_PER_JOB_OTHER


class RayExecutor(Executor):
    """``ray`` (the cluster named by ``RAY_ADDRESS`` or one ``ray start`` runs on this machine,
    else a new local one for this command), ``ray:HOST:PORT`` (an existing cluster's GCS
    address; this machine must be a node of it) or ``ray://HOST:PORT`` (Ray Client, from a
    machine outside the cluster). Each job is a Ray task reserving ``threads`` CPUs and
    ``gpus_per_job`` GPUs (None: ``job_gpus`` when the cluster has GPUs, else none); Ray
    reruns a task whose worker or node died up to ``retries`` times (``max_retries``) and never
    one that raised (``retry_exceptions=False``). Connects at the first ``map``; ``close``
    disconnects (and stops a local cluster started for this command)."""

    in_process = False

    def __init__(self, address: str | None, retries: int = DEFAULT_RETRIES,
                 gpus_per_job: float | None = None):
        self._ray = _import_ray()
        if address is None:
            self.spec = "ray"
        elif address.startswith("ray://"):
            self.spec = address
            try:
                import grpc  # noqa: F401  (Ray Client's transport)
            except ImportError as exc:
                raise ConfigError(f"--executor {address} connects through Ray Client, which "
                                  "needs grpcio: pip install 'ray[client]'") from exc
        else:
            self.spec = f"ray:{address}"
        self.address, self.retries, self.gpus_per_job = address, retries, gpus_per_job
        self._threads = torch.get_num_threads()
        self._connected = False
        self._cluster_gpus = 0.0

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def workers(self) -> int:
        """Jobs the cluster runs at once (its CPUs over ``threads``); 1 before connecting."""
        if not self._connected:
            return 1
        cpus = self._ray.cluster_resources().get("CPU", 0)
        return max(1, int(cpus // self._threads))

    def _start(self) -> None:
        ray = self._ray
        if self._connected:
            return
        if ray.is_initialized():  # connected by the caller: use it, leave it to its owner
            self._owner = False
        else:
            if self.address is not None:
                hostport = self.address.removeprefix("ray://")
                host, _, port = hostport.rpartition(":")
                why = _reachable(host, int(port))
                if why is not None:
                    raise ConfigError(f"--executor {self.spec}: no Ray cluster answers at "
                                      f"{hostport} ({why}); start one there (`ray start "
                                      "--head`) or fix the address (docs/scaling.md)")
            try:
                ray.init(address=self.address, logging_level=logging.WARNING,
                         log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                # Ray's message may carry a remote traceback: its last line names the cause.
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                cause = (lines[-1] if lines else type(exc).__name__)[:300]
                raise ConfigError(f"--executor {self.spec}: cannot connect to Ray ({cause}); "
                                  "check the address, the authentication token and that this "
                                  "machine's Ray and Python match the cluster's") from exc
            self._owner = True
        self._connected = True
        self._cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        log.info("%s: a cluster of %d CPU(s) and %g GPU(s); %d thread(s) per job", self.spec,
                 ray.cluster_resources().get("CPU", 0), self._cluster_gpus, self._threads)

    def _gpus(self, job) -> float:
        if self.gpus_per_job is not None:
            return self.gpus_per_job
        return job_gpus(job) if self._cluster_gpus > 0 else 0.0

    def map(self, fn: Callable, jobs: Iterable) -> list:
        jobs = list(jobs)
        if not jobs:
            return []
        ray = self._ray
        self._start()
        if self.gpus_per_job and self.gpus_per_job > self._cluster_gpus:
            raise ConfigError(f"--gpus-per-job {self.gpus_per_job:g} asks for more GPUs than "
                              f"the cluster's {self._cluster_gpus:g}; lower it or add GPU "
                              "nodes")
        task = ray.remote(_ray_job)
        progress = JobProgress(fn, jobs, self.spec)
        level = log.getEffectiveLevel()
        refs = {}
        for i, job in enumerate(jobs):
            ref = task.options(num_cpus=self._threads, num_gpus=self._gpus(job),
                               max_retries=self.retries, retry_exceptions=False,
                               name=progress.labels[i][:100]
                               ).remote(fn, job, self._threads, level)
            refs[ref] = i
        results: list = [None] * len(jobs)
        errors: dict[int, BaseException] = {}
        running = min(len(jobs), self.workers)
        for i in range(running):
            progress.start(i)
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                i = refs[ready[0]]
                try:
                    results[i] = ray.get(ready[0])
                    progress.finish(i)
                except ray.exceptions.RayTaskError as exc:  # the job raised
                    errors[i] = exc.cause if exc.cause is not None else exc
                    progress.fail(i, errors[i])
                except ray.exceptions.RayError as exc:  # its worker or node died, retries spent
                    errors[i] = ExecutorError(f"its Ray worker died and {self.retries} "
                                              f"retries did not finish it: {job_error_line(exc)}")
                    progress.fail(i, errors[i])
                if len(pending) >= running:  # another queued task starts in its place
                    progress.start(i)
        except BaseException:  # Ctrl-C: cancel what is left, leave without waiting
            progress.close()
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        progress.close()
        if errors:
            raise jobs_failed(self.spec, len(jobs), errors, progress.labels)
        return results

    def close(self) -> None:
        if self._connected:
            self._connected = False
            if self._owner:
                self._ray.shutdown()


def ray_address(spec: str) -> str | None:
    """The address of a ``ray`` spec: None, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if spec == "ray":
        return None
    client = spec.startswith("ray://")
    hostport = spec.removeprefix("ray://") if client else spec.removeprefix("ray:")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or "/" in host or not port.isascii() or not port.isdigit() \
            or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--executor '{spec}': a Ray address is HOST:PORT with a port in "
                          "1-65535, e.g. ray:10.0.0.1:6379 (GCS) or ray://10.0.0.1:10001 "
                          "(Ray Client)")
    return f"ray://{hostport}" if client else hostport


__all__ = ["GPUS_PER_JOB", "RayExecutor", "job_gpus", "ray_address"]
