"""Where a study lives: its Optuna storage (SQLite in the data root by default, or any
SQLAlchemy URL shared by several workers), the study itself (created, checked against its
setup, resumed) and the ``tuned`` preset file its best trial is written to."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .data import data_root
from .errors import ConfigError
from .methods.presets import TUNED_FILE, read_tuned, scenario_key
from .outputs import write_json

if TYPE_CHECKING:
    from .tuning import TuneConfig

STUDIES = Path("studies") / "optuna.db"


def storage_url(cfg: TuneConfig) -> str:
    """``cfg.storage``, or SQLite at ``<data root>/studies/optuna.db`` (absolute path)."""
    if cfg.storage:
        return cfg.storage
    return f"sqlite:///{(data_root(cfg.data_dir) / STUDIES).resolve()}"


def public_url(url: str) -> str:
    """The storage URL without its password (for logs and the preset file)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"--storage '{url}' is not a database URL ({exc}); e.g. "
                          "sqlite:///studies.db or postgresql+psycopg://user@host/db") from exc
    return parsed.render_as_string(hide_password=True)  # user:***@host


def open_storage(cfg: TuneConfig):
    """An Optuna RDB storage for ``storage_url(cfg)``; a bad URL or an unreachable or
    unusable database is a one-line ConfigError."""
    import optuna

    url = storage_url(cfg)
    public = public_url(url)
    if url.startswith("sqlite:///") and not cfg.storage:
        (data_root(cfg.data_dir) / STUDIES).parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url)
            except (IntegrityError, ProgrammingError):
                # Workers started together on a fresh database race to create Optuna's
                # tables; the loser finds them made when it tries again.
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
    except Exception as exc:  # driver, connection and schema errors all end here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"cannot open the study storage '{public}': {type(exc).__name__}: "
                          f"{reason[:200]}") from exc


def complete_trials(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def own_count(study) -> int:
    """Complete trials of this process (user attribute ``worker``)."""
    from optuna.trial import TrialState

    worker = f"{socket.gethostname()}:{os.getpid()}"
    return sum(t.user_attrs.get("worker") == worker
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def stored_setup(setup: dict) -> dict:
    """A study's stored setup, read with today's keys: a study made before the objective was
    an option scored the average gap."""
    return {"objective": "gap", **setup}


def check_setup(name: str, setup: dict, cfg: TuneConfig) -> None:
    """Raise ``ConfigError`` when study ``name``'s stored ``setup`` is not ``cfg.setup``."""
    setup = stored_setup(setup)
    if setup != cfg.setup:
        differ = ", ".join(f"{k}={setup.get(k)}" for k in sorted(cfg.setup)
                           if setup.get(k) != cfg.setup[k])
        raise ConfigError(f"study '{name}' was made with another setup ({differ}); use the "
                          "same options or another --study")


def load_study(cfg: TuneConfig):
    """Create or load (``load_if_exists``) the study, checking that a loaded study was made
    with the same setup. Its sampler is TPE (``constant_liar`` for parallel workers) seeded by
    ``sampler_seed``, the study name and the number of trials already in the study, so a
    resumed study does not redraw its first trials and two studies draw independently.
    (Workers started at the same moment on an empty study draw the same first random
    trials; start them a trial apart to avoid that.)"""
    import optuna

    storage = open_storage(cfg)
    name = cfg.study_name
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                load_if_exists=True)
    setup = study.user_attrs.get("setup")
    if setup is None:
        study.set_user_attr("setup", cfg.setup)
    else:
        check_setup(name, setup, cfg)
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ConfigError(f"study '{name}' maximises; the gap must be minimised: use --study")
    if not study.trials:
        # Warm start: the first trial runs the shipped default, so the tuned preset is never
        # worse than it on the validation split (``skip_if_exists``: two fresh workers).
        study.enqueue_trial(cfg.default_params(), skip_if_exists=True)
    seed = cfg.sampler_seed + zlib.crc32(name.encode()) + len(study.trials)
    sampler = optuna.samplers.TPESampler(seed=seed % 2**32, constant_liar=True)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)



# ------------------------------------------------------------------------------- preset

def check_preset_file(path: Path, method: str) -> None:
    """Raise ``ConfigError`` unless ``write_preset`` can add ``method``'s entry to the preset
    file at ``path`` (``read_tuned``: missing, or a JSON object; and ``method``'s entry, if
    any, an object). The file holds every method's tuned presets, so the advice names what to
    repair, never to delete the file."""
    entry = read_tuned(path).get(method)
    if entry is not None and not isinstance(entry, dict):
        raise ConfigError(f"tuned presets '{path}': the entry '{method}' must be an object "
                          "{dataset: entry}; fix or remove that entry (the other methods' "
                          "entries stay as they are)")


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path``'s lock file (read-modify-write by several workers)."""
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def preset_entry(study, cfg: TuneConfig) -> dict | None:
    """The best trial as a preset entry: the full resolved hyperparameters (``params``), the
    searched ones, the score and where it came from. None without a complete trial."""
    if complete_trials(study) == 0:
        return None
    best = study.best_trial
    return {"params": cfg.unlearner(**best.params).params, "searched": dict(best.params),
            "value": best.value, "trial": best.number, "trials": complete_trials(study),
            "study": cfg.study_name, "storage": public_url(storage_url(cfg)), **cfg.setup,
            "objective_definition": cfg.objective_definition,
            "written": datetime.now(UTC).isoformat(timespec="seconds")}


def write_preset(study, cfg: TuneConfig) -> dict | None:
    """Write the study's best trial into ``<data root>/presets/tuned.json`` under
    [method][scenario key] (``presets.scenario_key``) and, with ``cfg.dataset_entry``, under
    [method][dataset] too (atomically, under a file lock; other entries are kept)."""
    entry = preset_entry(study, cfg)
    if entry is None:
        return None
    path = data_root(cfg.data_dir) / TUNED_FILE
    keys = [scenario_key(cfg.dataset, cfg.forget, entry["arch"])]
    if cfg.dataset_entry:
        keys.append(cfg.dataset)
    with _locked(path):
        content = read_tuned(path)
        for key in keys:
            content.setdefault(cfg.method, {})[key] = entry
        write_json(path, content)
    return entry
