"""Hyperparameter search: the held-out validation split, the ``tuned`` preset file,
``unlearnlab tune`` on SQLite (run, resume, Ctrl-C) and on a real PostgreSQL server with two
workers on one study. Runs on scikit-learn's bundled digits in quick mode (no files needed).

The PostgreSQL test starts Debian's server binaries (``/usr/lib/postgresql/<ver>/bin``) on a
free loopback port with a throw-away cluster, as an unprivileged user when run as root, and
stops it afterwards. ``make test`` installs the Debian package ``postgresql`` when it is
missing; where it cannot be installed the test skips (and fails under ``$CI``)."""

from __future__ import annotations

import json
import math
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import REPO, skip_or_fail

from unlearnlab.cache import model_config
from unlearnlab.cli import main
from unlearnlab.config import RunConfig
from unlearnlab.data import default_arch
from unlearnlab.errors import ConfigError
from unlearnlab.methods import create, get_method
from unlearnlab.methods.presets import TUNED_FILE, tuned_preset
from unlearnlab.scenario import build_scenario, validation_rows
from unlearnlab.studies import storage_url, write_preset
from unlearnlab.tuning import TuneConfig, baselines

optuna = pytest.importorskip("optuna")


def tune_cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "unlearnlab", "tune", "--dataset", "digits", "--quick",
            "--seeds", "1", "--data-dir", str(root), *extra]


def env() -> dict:
    out = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out.pop("UNLEARNLAB_DATA", None)
    return out


def complete(study) -> list:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


# ----------------------------------------------------------------------- validation split

def test_validation_rows_are_a_stratified_partition():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (2000,), generator=gen)
    forget = (labels == 7) & (torch.rand(2000, generator=gen) < 0.4)
    held, kept = validation_rows(labels, forget, 0.1)
    assert len(set(held.tolist()) & set(kept.tolist())) == 0
    assert sorted(held.tolist() + kept.tolist()) == list(range(2000))
    for c in range(10):  # every class and the forget set lose their own 10 %
        assert int((labels[held] == c).sum()) == pytest.approx(0.1 * int((labels == c).sum()),
                                                               abs=1.01)
    assert int(forget[held].sum()) == round(0.1 * int(forget.sum()))
    again, _ = validation_rows(labels, forget, 0.1)
    assert torch.equal(held, again)  # fixed seed: the same rows for every run seed


@pytest.mark.parametrize("quick", [False, True])
def test_validation_split_never_reads_the_test_set(tmp_path, quick):
    from unlearnlab.data import load_dataset

    data = load_dataset("digits")
    base = RunConfig(dataset="digits", forget="class:6", quick=quick, data_dir=str(tmp_path))
    sc = build_scenario(replace(base, validation=0.1))
    train_pos, val_pos = set(sc.train.index.tolist()), set(sc.test.index.tolist())
    test_pos = set(data.test.index.tolist())
    assert not train_pos & val_pos, "validation rows leak into training"
    assert not (train_pos | val_pos) & test_pos, "test rows leak into training or validation"
    assert val_pos <= set(data.train.index.tolist())
    assert len(val_pos) == pytest.approx(0.1 * len(data.train), abs=10)
    # The roles follow the rows: forget masks are the class-6 rows of each split.
    assert torch.equal(sc.masks["train"], sc.train.y == 6)
    assert torch.equal(sc.masks["test"], sc.test.y == 6)
    # Models trained without the validation rows never share a cache entry with the report's.
    plain = build_scenario(base)
    assert model_config(sc, "original") != model_config(plain, "original")
    assert model_config(sc, "original")["validation"]["fraction"] == 0.1


@pytest.mark.parametrize("bad", [0, 0.0, 0.7, -0.1, True, "0.1"])
def test_bad_validation_fraction(tmp_path, bad):
    with pytest.raises(ConfigError, match="validation must be a fraction"):
        build_scenario(RunConfig(dataset="digits", data_dir=str(tmp_path), validation=bad))


# ----------------------------------------------------------------------------- preset file

def write_tuned(root: Path, content) -> Path:
    path = root / TUNED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_tuned_preset_is_read_from_the_data_root_then_the_package(tmp_path, monkeypatch):
    from unlearnlab.methods import presets as base

    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({"gemu": {"mnist": {"params": {"n2r": 3.0}},
                                            "cmnist": {"params": {"n2r": 9.0}}}}))
    monkeypatch.setattr(base, "SHIPPED_TUNED", shipped)
    root = tmp_path / "data"
    write_tuned(root, {"gemu": {"mnist": {"params": {"n2r": 5.0, "lam": 0.2}, "value": 0.01}}})
    monkeypatch.setenv("UNLEARNLAB_DATA", str(root))
    mnist = create("gemu", preset="tuned", dataset="mnist")
    assert mnist.params["n2r"] == 5.0 and mnist.params["lam"] == 0.2  # data root first
    # unlisted keys: the dataset's defaults, on which the search ran
    assert mnist.params["epochs"] == create("gemu", dataset="mnist").params["epochs"]
    assert create("gemu", preset="tuned", dataset="cmnist").params["n2r"] == 9.0  # the package
    assert create("gemu", preset="tuned", dataset="mnist",
                  params={"lam": 0.05}).params["lam"] == 0.05  # --set wins
    other = tmp_path / "other"
    write_tuned(other, {"gemu": {"mnist": {"params": {"n2r": 7.0}}}})
    assert create("gemu", preset="tuned", dataset="mnist",
                  data_dir=str(other)).params["n2r"] == 7.0
    with pytest.raises(ConfigError, match="no tuned preset for method 'gemu' on fashion_mnist: "
                                          "run `unlearnlab tune"):
        create("gemu", preset="tuned", dataset="fashion_mnist")
    with pytest.raises(ConfigError, match="is per dataset"):
        create("gemu", preset="tuned")
    write_tuned(root, {"gemu": {"mnist": {"params": {"gone": 1}}}})
    with pytest.raises(ConfigError, match="sets 'gone', which the method no longer has"):
        create("gemu", preset="tuned", dataset="mnist")
    write_tuned(root, "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        tuned_preset("gemu", "mnist")
    write_tuned(root, {"gemu": {"mnist": {"value": 1}}})
    with pytest.raises(ConfigError, match="has no params"):
        tuned_preset("gemu", "mnist")


def test_search_spaces_give_valid_parameters():
    """Every declared search space draws parameters the method accepts (a few random draws)."""
    from unlearnlab.methods import list_methods

    tunable = [m for m in list_methods() if get_method(m).tunable()]
    assert {"gradient_ascent", "gemu", "gefeu"} <= set(tunable)
    for name in tunable:
        method = get_method(name)
        # one study per method, as ``unlearnlab tune`` has: methods share parameter names
        # (alpha, batch_size) with different distributions, which one study refuses
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            params = method.search_space(trial)
            assert set(params) <= set(method.defaults)
            create(method, dataset="mnist", scenario="feature", params=params)
            study.tell(trial, 0.0)


# ----------------------------------------------------------------------- CLI, bad inputs

@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--method", "gemu", "--trials", "0"], "--trials must be a positive integer"),
    (["--method", "gemu", "--seeds", "-1"], "--seeds must be a positive integer"),
    (["--method", "gemu", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["--method", "gemu", "--forget", "class"], "forget spec 'class' is malformed"),
    (["--method", "gemu", "--storage", "garbage"], "is not a database URL"),
    (["--method", "gemu", "--storage", "nosuchdb://x"], "cannot open the study storage"),
    (["--method", "gemu", "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db"],
     r"cannot open the study storage 'postgresql\+psycopg://u:\*\*\*@"),
    (["--trials", "2"], "the following arguments are required: --method"),
])
def test_tune_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main(["tune", "--data-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "secret" not in err
    assert re.search(message, err), err


def test_a_method_without_a_search_space_is_refused(untunable, capsys, tmp_path):
    with pytest.raises(ConfigError, match="declares no search space"):
        create(untunable, preset="tuned", dataset="mnist")
    assert main(["tune", "--data-dir", str(tmp_path), "--method", untunable]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "declares no search space" in err, err


# --------------------------------------------------------------------------- SQLite study

def test_sqlite_study_runs_resumes_and_writes_the_preset(tmp_path):
    """Two trials into the default SQLite storage, the preset written, then the same command
    again (nothing left to do) and a larger target (only the missing trial runs)."""
    root = tmp_path / "data"
    cmd = tune_cmd(root, "--method", "gradient_ascent", "--trials", "2")
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("unlearnlab: trial ")]
    assert len(lines) == 2 and all("best" in line and "lr=" in line for line in lines)
    assert (root / "studies" / "optuna.db").is_file()
    entry = json.loads((root / TUNED_FILE).read_text())["gradient_ascent"]["digits"]
    assert entry["study"] == "gradient_ascent-digits-class:6-quick"
    assert entry["trials"] == 2 and entry["storage"].startswith("sqlite:///")
    assert set(entry["searched"]) == {"lr", "stop_loss", "batch_size"}
    study = optuna.load_study(study_name=entry["study"],
                              storage=storage_url(TuneConfig(data_dir=str(root))))
    assert len(complete(study)) == 2 and entry["value"] == study.best_value
    assert [t.user_attrs["gaps"] for t in complete(study)][0][0] is not None
    default = create("gradient_ascent", dataset="digits", scenario="class",
                     arch=default_arch("digits", "class"))
    first = study.trials[0].params  # warm start: the shipped default runs first
    assert first == {k: default.params[k] for k in first}

    again = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 run by this process" in again.stdout
    more = subprocess.run([*cmd[:-1], "3"], env=env(), capture_output=True, text=True,
                          timeout=600)
    assert more.returncode == 0, more.stderr[-3000:]
    assert "3 complete trials, 1 run by this process" in more.stdout
    other = subprocess.run([*cmd, "--seeds", "2"], env=env(), capture_output=True, text=True)
    assert other.returncode == 2 and "another setup (seeds=1)" in other.stderr


def test_ctrl_c_keeps_finished_trials_and_resumes(tmp_path):
    root = tmp_path / "data"
    cmd = tune_cmd(root, "--method", "gemu", "--trials", "200")
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # wait for the first finished trial
        if line.startswith("unlearnlab: trial ") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "run the same command to resume" in err
    study = optuna.load_study(study_name="gemu-digits-class:6-quick",
                              storage=storage_url(TuneConfig(data_dir=str(root))))
    done = len(complete(study))
    assert 1 <= done < 200
    assert json.loads((root / TUNED_FILE).read_text())["gemu"]["digits"]["trials"] == done


def test_write_preset_keeps_other_entries(tmp_path):
    root = tmp_path / "data"
    write_tuned(root, {"gemu": {"mnist": {"params": {"n2r": 5.0}}}})
    cfg = TuneConfig(dataset="digits", method="gradient_ascent", data_dir=str(root),
                     quick=True, seeds=1)
    study = optuna.create_study(study_name=cfg.study_name)  # in memory
    assert write_preset(study, cfg) is None  # no complete trial: nothing written
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 1e-4}, value=0.05,
        distributions={"lr": optuna.distributions.FloatDistribution(1e-6, 1e-3, log=True)}))
    entry = write_preset(study, cfg)
    content = json.loads((root / TUNED_FILE).read_text())
    assert content["gemu"]["mnist"]["params"] == {"n2r": 5.0}
    assert content["gradient_ascent"]["digits"] == entry
    assert entry["params"]["lr"] == 1e-4 and entry["value"] == 0.05


# ----------------------------------------------------------------------- PostgreSQL study

def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parents[1].name) if p.parents[1].name.isdigit() else 0)
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL cluster on a free loopback port with a database
    ``unlearnlab_tune``: yields its SQLAlchemy URL (user ``postgres``, trust auth; the
    password in the URL is ignored by the server and must never be written out)."""
    psycopg = pytest.importorskip("psycopg", reason="the driver psycopg is in requirements.txt")
    bin_dir = _pg_bin()
    if bin_dir is None:
        skip_or_fail("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                     "`make test` installs the Debian package postgresql (needs root)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="unlearnlab-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            skip_or_fail("running as root without runuser: cannot start PostgreSQL")
        user = pwd.getpwnam("nobody")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = folder / "cluster", _free_port()

    def pg(*args: str, timeout: int = 120) -> None:
        proc = subprocess.run([*as_user, *args], capture_output=True, text=True,
                              timeout=timeout, cwd=folder)
        assert proc.returncode == 0, f"{args[0]} failed: {proc.stdout[-1500:]}" \
                                     f"{proc.stderr[-1500:]}"

    try:
        pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
           "--no-locale", "-E", "UTF8", "--no-sync")
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
           "-t", "60", "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start")
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                                 dbname="postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE unlearnlab_tune")
            yield f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/unlearnlab_tune"
        finally:
            pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(postgres, tmp_path):
    root = tmp_path / "data"
    trials = 8
    # Train the quick baselines once, so that both workers start their trials together.
    baselines(TuneConfig(dataset="digits", method="gemu", seeds=1, quick=True,
                         data_dir=str(root)))
    cmd = tune_cmd(root, "--method", "gemu", "--trials", str(trials), "--storage", postgres,
                   "--study", "two-workers")
    workers = [subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-3000:]
        assert "secret" not in out + err
    study = optuna.load_study(study_name="two-workers", storage=postgres)
    done = complete(study)
    assert len(done) >= trials
    by_worker = Counter(t.user_attrs["worker"] for t in done)
    print("complete trials per worker:", dict(by_worker))
    assert len(by_worker) == 2, f"trials from one worker only: {dict(by_worker)}"
    assert {str(w.pid) for w in workers} == {w.rsplit(":", 1)[1] for w in by_worker}
    entry = json.loads((root / TUNED_FILE).read_text())["gemu"]["digits"]
    assert entry["study"] == "two-workers" and entry["value"] == study.best_value
    assert entry["storage"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    assert "secret" not in (root / TUNED_FILE).read_text()


def test_shipped_tuned_presets_construct(tmp_path):
    """Every entry of the package's tuned presets is a runnable preset of a tunable method
    (read from the package: the data root holds no presets)."""
    from unlearnlab.methods import presets as base

    shipped = json.loads(base.SHIPPED_TUNED.read_text())
    assert shipped, "no tuned preset is shipped"
    for method, by_key in shipped.items():
        for key, entry in by_key.items():
            # a dataset's entry, or a scenario's (``presets.scenario_key``: tune-all's)
            dataset, forget, arch = (key.split("|") if "|" in key else (key, None, None))
            built = create(method, preset="tuned", dataset=dataset, forget=forget, arch=arch,
                           data_dir=str(tmp_path))
            assert {k: built.params[k] for k in entry["searched"]} == entry["searched"]
            assert entry["study"]
            if entry.get("objective") == "z":  # avg |z| has no upper bound
                assert 0 <= entry["value"] < math.inf
            else:  # the average gap
                assert 0 <= entry["value"] <= 1
