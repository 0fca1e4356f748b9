"""Methods from anywhere: ``package.module:ClassName``, entry points (group
``unlearnlab.methods``), duplicate names, and typed parameters from every source (``--set``,
the Python API, the tuned-preset file). The example package runs end to end (integration)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, link_real_data

from unlearnlab.cache import class_files
from unlearnlab.cli import main
from unlearnlab.errors import ConfigError
from unlearnlab.methods import (
    UnlearningMethod,
    create,
    get_method,
    list_methods,
    register_method,
    registry,
)
from unlearnlab.methods.gefeu import GeFeU
from unlearnlab.methods.gemu import GEMU
from unlearnlab.methods.presets import TUNED_FILE
from unlearnlab.methods.relabel import Relabel

EXAMPLE = REPO / "examples" / "unlearnlab-example"
EXAMPLE_CLASS = "unlearnlab_example.head_finetune:HeadFinetune"

PLUGIN = '''
from unlearnlab.methods import UnlearningMethod


class Shift(UnlearningMethod):
    """Not a real method: enough to be looked up and built."""

    name = "shift_{tag}"
    defaults = {{"epochs": 1, "lr": 0.1, "flag": False, "layers": ["fc1"], "mode": "a"}}

    def unlearn(self, model, task):
        return model


class Renamed(Shift):
    name = "relabel"


class NoName(UnlearningMethod):
    pass


class NotAMethod:
    name = "nope"
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch, request):
    """A module ``plugin_<test>`` on sys.path holding ``Shift`` (named ``shift_<test>``) and
    a few broken classes; the registry is restored after the test."""
    tag = request.node.name.split("[")[0].removeprefix("test_")[:20]
    module = f"plugin_{tag}"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(tag=tag))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield module
    sys.modules.pop(module, None)


def use_entry_points(monkeypatch, *pairs: tuple[str, str]) -> None:
    """Make ``pairs`` (name, "module:Class") the installed entry points of the group."""
    points = [EntryPoint(name, value, registry.ENTRY_POINT_GROUP) for name, value in pairs]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)


# ------------------------------------------------------------------------ module:ClassName

def test_module_class_is_looked_up_and_built(plugin):
    cls = get_method(f"{plugin}:Shift")
    assert issubclass(cls, UnlearningMethod) and cls.__module__ == plugin
    method = create(f"{plugin}:Shift", params={"lr": 0.5})
    assert method.params == {**cls.defaults, "lr": 0.5}
    assert create(cls).params == cls.defaults  # a class works as well as its name
    assert cls.name not in list_methods()  # looked up, not registered


@pytest.mark.parametrize(("spec", "message"), [
    ("no_such_module_xyz:Cls", r"cannot import module 'no_such_module_xyz' \(No module named"),
    ("{plugin}:Missing", "module '{plugin}' has no attribute 'Missing'"),
    ("{plugin}:NotAMethod", "is not a subclass of unlearnlab.methods.UnlearningMethod"),
    ("{plugin}:NoName", "sets no name"),
    ("{plugin}:Renamed", "is named 'relabel', which unlearnlab.methods.relabel:Relabel already"),
    ("{plugin}:", "is malformed"),
    ("a-b:C", "is malformed"),
])
def test_module_class_errors_are_one_line(plugin, spec, message):
    with pytest.raises(ConfigError, match=message.format(plugin=plugin)) as info:
        get_method(spec.format(plugin=plugin))
    assert "\n" not in str(info.value)


def test_create_rejects_what_is_not_a_method():
    with pytest.raises(ConfigError, match="is not a subclass"):
        create(dict)
    with pytest.raises(ConfigError, match="must be a registry key"):
        create(3)


def test_the_cache_key_covers_the_class_and_its_bases():
    names = [path.name for path in class_files(GeFeU)]
    assert names == ["gefeu.py", "gemu.py", "base.py"]


# ---------------------------------------------------------------------------- entry points

def test_entry_point_methods_are_listed_and_built(plugin, monkeypatch):
    name = f"shift_{plugin.removeprefix('plugin_')}"
    use_entry_points(monkeypatch, (name, f"{plugin}:Shift"))
    assert name in list_methods() and "relabel" in list_methods()
    assert get_method(name).__module__ == plugin
    assert create(name).params["mode"] == "a"


def test_entry_point_clashing_with_a_built_in_names_both(plugin, monkeypatch):
    use_entry_points(monkeypatch, ("relabel", f"{plugin}:Renamed"))
    with pytest.raises(ConfigError, match=rf"'relabel' is registered twice, by "
                                          rf"unlearnlab.methods.relabel:Relabel and by "
                                          rf"{plugin}:Renamed"):
        list_methods()
    with pytest.raises(ConfigError, match="registered twice"):  # again, until it is fixed
        get_method("gemu")


def test_two_entry_points_with_one_name_name_both(plugin, monkeypatch, tmp_path):
    name = f"shift_{plugin.removeprefix('plugin_')}"
    (tmp_path / f"{plugin}_copy.py").write_text(PLUGIN.format(tag=plugin.removeprefix("plugin_")))
    use_entry_points(monkeypatch, (name, f"{plugin}:Shift"), (name, f"{plugin}_copy:Shift"))
    with pytest.raises(ConfigError, match=rf"by {plugin}:Shift and by {plugin}_copy:Shift"):
        get_method(name)
    sys.modules.pop(f"{plugin}_copy", None)


@pytest.mark.parametrize(("value", "message"), [
    ("no_such_module_xyz:Cls", "cannot be loaded"),
    ("{plugin}:Missing", "cannot be loaded"),
    ("{plugin}:NotAMethod", "is not a subclass"),
    ("{plugin}:Shift", "names a class whose name is 'shift_"),
])
def test_broken_entry_points_are_config_errors(plugin, monkeypatch, value, message):
    use_entry_points(monkeypatch, ("broken", value.format(plugin=plugin)))
    with pytest.raises(ConfigError, match=message):
        list_methods()


def test_registering_another_class_under_a_taken_name_names_both(plugin):
    register_method(Relabel)  # the same class again is fine
    clash = type("Relabel2", (Relabel,), {"__module__": plugin})
    with pytest.raises(ConfigError, match=rf"by unlearnlab.methods.relabel:Relabel and by "
                                          rf"{plugin}:Relabel2"):
        register_method(clash)


# ------------------------------------------------------------------------- typed parameters

@pytest.mark.parametrize(("key", "value", "expected"), [
    ("bounded", "false", "true or false"), ("bounded", 0, "true or false"),
    ("hidden", True, "an integer"), ("hidden", 1.5, "an integer"), ("hidden", "64", "an integer"),
    ("lam", "0.1", "a number"), ("lam", True, "a number"), ("lam", None, "a number"),
])
def test_api_params_of_the_wrong_type(key, value, expected):
    with pytest.raises(ConfigError, match=rf"method 'gemu': {key} must be {expected}, got"):
        create("gemu", params={key: value})
    with pytest.raises(ConfigError, match=rf"{key} must be {expected}"):
        GEMU({key: value})  # the class itself validates the same way


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("freeze", "fc1", "a list of strings"), ("freeze", ["fc1", 2], "a list of strings"),
    ("target", 3.0, "an integer"),
])
def test_list_and_int_params_of_the_wrong_type(key, value, expected):
    with pytest.raises(ConfigError, match=rf"{key} must be {expected}"):
        create("relabel", params={key: value})


def test_float_params_accept_ints(plugin):
    assert create("gemu", params={"lam": 1}).params["lam"] == 1
    assert create(f"{plugin}:Shift", params={"layers": []}).params["layers"] == []


def test_cli_set_of_the_wrong_type_is_one_line(tmp_path, capsys):
    argv = ["run", "--data-dir", str(tmp_path), "--dataset", "mnist", "--forget", "class:6",
            "--method", "gemu", "--set", "bounded=maybe"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--set bounded=maybe: expected bool" in err


def write_tuned(root: Path, content) -> Path:
    path = root / TUNED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize(("content", "message"), [
    ({"gemu": {"mnist": {"params": {"n2r": "3"}}}},
     r"tuned presets '{path}', entry gemu/mnist: n2r must be a number, got '3'"),
    ({"gemu": {"mnist": {"params": {"bounded": 1}}}},
     r"entry gemu/mnist: bounded must be true or false, got 1"),
    ({"gemu": {"mnist": {"params": {"epochs": 2.0}}}}, r"entry gemu/mnist: epochs must be an"),
    ({"gemu": {"mnist": [1, 2]}}, r"tuned presets '{path}': entry gemu/mnist has no params"),
    ({"gemu": [{"mnist": {}}]}, r"tuned presets '{path}': the entry of method 'gemu' must be"),
])
def test_tuned_file_values_of_the_wrong_type(tmp_path, content, message):
    path = write_tuned(tmp_path, content)
    with pytest.raises(ConfigError, match=message.format(path=path)) as info:
        create("gemu", preset="tuned", dataset="mnist", data_dir=str(tmp_path))
    assert "\n" not in str(info.value)


def test_resolve_params_needs_the_tuned_entry_but_no_file():
    assert GEMU.resolve_params("tuned", "mnist", tuned={"n2r": 7.0})["n2r"] == 7.0
    with pytest.raises(ConfigError, match="needs its tuned entry"):
        GEMU.resolve_params("tuned", "mnist")


def test_a_user_method_needs_no_init(plugin):
    cls = get_method(f"{plugin}:Shift")
    assert "__init__" not in vars(cls)
    with pytest.raises(ConfigError, match="has no parameter 'nope'"):
        cls({"nope": 1})


# ------------------------------------------------------------- the example, end to end

def cli(*args, pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "unlearnlab", "run", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def example_root(real_data, tmp_path_factory) -> Path:
    """One data root for both runs: the second reuses the first's trained models."""
    return link_real_data(real_data, tmp_path_factory.mktemp("example") / "data")


RUN = ["--quick", "--dataset", "mnist", "--forget", "class:6", "--arch", "mlp"]


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example package installed (offline) into a folder of its own: its entry point is
    then seen by any process with that folder on its path."""
    tmp = tmp_path_factory.mktemp("example-site")
    source, target = tmp / "src", tmp / "site"
    shutil.copytree(EXAMPLE, source)  # setuptools writes build files next to the sources
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                          "--no-build-isolation", "--no-index", "--target", str(target),
                          str(source)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return target


@pytest.mark.integration
def test_installed_example_runs_by_its_entry_point_name(example_root, installed_example,
                                                         tmp_path):
    record = tmp_path / "record.json"
    proc = cli(*RUN, "--method", "head_finetune", "--data-dir", example_root, "--json", record,
               pythonpath=[installed_example, REPO], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    content = json.loads(record.read_text())
    assert content["method"] == "head_finetune"
    assert content["params"] == {"epochs": 2, "lr": 1e-2, "batch_size": 128,
                                 "retain_samples": 4000}


@pytest.mark.integration
def test_example_runs_by_module_and_class_without_installing(example_root, tmp_path):
    record = tmp_path / "record.json"
    proc = cli(*RUN, "--method", EXAMPLE_CLASS, "--set", "epochs=1", "--data-dir",
               example_root, "--json", record, pythonpath=[EXAMPLE, REPO], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    content = json.loads(record.read_text())
    assert content["method"] == "head_finetune" and content["params"]["epochs"] == 1


def test_the_example_method_is_a_plain_subclass():
    source = (EXAMPLE / "unlearnlab_example" / "head_finetune.py").read_text()
    assert "unlearnlab.methods._common" not in source  # the public API only
    assert "def __init__" not in source


SHRINK = '''"""An outside method: scale the output layer's weights."""
import copy

from unlearnlab.methods import UnlearningMethod


class Shrink(UnlearningMethod):
    """Multiply the last linear layer's weights by ``factor``."""

    name = "shrink_head"
    defaults = {"factor": 0.5}

    def unlearn(self, model, task):
        net = copy.deepcopy(model)
        last = [m for m in net.modules() if hasattr(m, "weight")][-1]
        last.weight.data.mul_(SCALE * self.params["factor"])
        return net.eval()


SCALE = 1.0
'''


def bench_cli(*args, pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNLAB_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "unlearnlab", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.integration
def test_an_edited_outside_method_is_never_served_from_the_cache(example_root, tmp_path):
    """``--method module:Class``: a docstring edit finds the cached unlearned model, a code edit
    unlearns anew (and the numbers change)."""
    (tmp_path / "shrink.py").write_text(SHRINK)
    path = [tmp_path, REPO]

    def accuracy(out: str):
        proc = cli(*RUN, "--method", "shrink:Shrink", "--data-dir", example_root, "--json",
                   tmp_path / out, pythonpath=path, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return (json.loads((tmp_path / out).read_text())["models"]["unlearned"]["test_acc"],
                "unlearning with shrink_head" in proc.stderr)

    first, unlearned = accuracy("a.json")
    assert unlearned
    (tmp_path / "shrink.py").write_text(SHRINK.replace('"""Multiply', '"""Now: multiply'))
    assert accuracy("b.json") == (first, False)  # prose only: served from the cache
    (tmp_path / "shrink.py").write_text(SHRINK.replace("SCALE = 1.0", "SCALE = -1.0"))
    second, unlearned = accuracy("c.json")
    assert unlearned and second != first


@pytest.mark.integration
def test_outside_methods_join_the_leaderboard(example_root, installed_example, tmp_path):
    """``bench --methods`` takes a ``module:Class`` method and an installed entry point's
    method beside a built-in one, and ranks them by their names."""
    (tmp_path / "shrink.py").write_text(SHRINK)
    out = tmp_path / "bench"
    proc = bench_cli("bench", "--quick", "--seeds", "1", "--methods",
                     "shrink:Shrink,head_finetune,relabel", "--data-dir", example_root,
                     "--out", out, pythonpath=[tmp_path, installed_example, REPO], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(out / "leaderboard.csv")
    assert set(rows["method"]) == {"shrink_head", "head_finetune", "relabel"}
    assert (rows["method"] == "shrink_head").sum() == 4  # every standard scenario
    assert (rows["method"] == "head_finetune").sum() == 1  # it declares class forgetting only
    assert (out / "mnist-six" / "shrink_head_seed0.json").is_file()
    assert (out / "mnist-six" / "head_finetune_seed0.json").is_file()
