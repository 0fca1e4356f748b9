"""Shared fixtures: tiny synthetic datasets (unit tests, seconds, CPU) and the real data root
(integration tests), isolated so that model caches written by tests never land in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tests import the checkout, not an installed copy
    sys.path.insert(0, str(REPO))

from unlearnlab.data import DIGIT_CLASSES, Dataset, Split  # noqa: E402

# Read once, before the autouse fixture below hides it from the code under test.
REAL_ROOT = Path(os.environ.get("UNLEARNLAB_DATA") or REPO / "data")
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
LINKED = ("MNIST", "FashionMNIST", "colorized-MNIST", "forget_sets")

# Torch's OpenMP workers spin while they wait: on a shared 2-core machine under other load, two
# threads per process made the unit tests ten times slower (60 s instead of 6 s). Tests run
# torch on one thread, and so do the subprocesses they start, unless OMP_NUM_THREADS is set.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# No example database: runs do not depend on (or accumulate) examples saved by earlier runs.
settings.register_profile("unlearnlab", database=None, deadline=None)
settings.load_profile("unlearnlab")


def skip_or_fail(reason: str):
    """Skip locally; under CI a missing prerequisite is a failure, never a silent skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_implicit_data_root(monkeypatch):
    """Code under test must get its data root explicitly (``data_dir``), so that nothing a
    test runs can fall back to ``$UNLEARNLAB_DATA`` and write model caches into the real root."""
    monkeypatch.delenv("UNLEARNLAB_DATA", raising=False)


# --------------------------------------------------------------------------- synthetic data

def make_split(n: int, gen: torch.Generator, channels: int = 1, with_color: bool = False,
               labels: torch.Tensor | None = None) -> Split:
    """``n`` random 28x28 images, 10 classes (balanced, shuffled), ``index`` = arange. Each
    class also lights a two-row bar at its own height, so the task is learnable."""
    if labels is None:
        labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
    x = torch.rand(n, channels, 28, 28, generator=gen) * 0.3
    for c in range(10):
        x[labels == c, :, 4 + 2 * c:6 + 2 * c, 4:24] = 1.0
    color = torch.randint(0, 3, (n,), generator=gen) if with_color else None
    return Split(x, labels.clone(), torch.arange(n), color)


def make_dataset(name: str = "mnist", n_train: int = 300, n_test: int = 100, channels: int = 1,
                 seed: int = 0) -> Dataset:
    """A tiny in-memory dataset; ``cmnist`` gets 3 channels and background colours."""
    gen = torch.Generator().manual_seed(seed)
    rgb = name == "cmnist"
    channels = 3 if rgb else channels
    train = make_split(n_train, gen, channels, rgb)
    test = make_split(n_test, gen, channels, rgb)
    source = {"mnist": "MNIST", "cmnist": "MNIST", "fashion_mnist": "FashionMNIST"}.get(name)
    return Dataset(name, train, test, f"synthetic-{seed}", DIGIT_CLASSES, source)


@pytest.fixture
def synthetic() -> Dataset:
    """300 train / 100 test samples, 1 channel, 10 classes, named ``mnist``."""
    return make_dataset()


@pytest.fixture
def synthetic_cmnist() -> Dataset:
    """The same on 3 channels with a background colour per sample, named ``cmnist``."""
    return make_dataset("cmnist")


def write_forget_list(root: Path, name: str, content) -> Path:
    """Write ``<root>/forget_sets/<name>.json`` (``content`` as JSON, or raw text if str)."""
    path = Path(root) / "forget_sets" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -------------------------------------------------------------------------------- real data

@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data root: ``$UNLEARNLAB_DATA`` if set, else ``<repo>/data``. Skips when the
    MNIST ``.gz`` files are missing (fails instead when ``$CI`` is set)."""
    raw = REAL_ROOT / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if missing:
        skip_or_fail(f"real data not found: {', '.join(missing)} missing under '{raw}'; set "
                     "UNLEARNLAB_DATA to a data root (or run `make data`)")
    return REAL_ROOT


def link_real_data(real: Path, root: Path) -> Path:
    """Make ``root`` a data root whose datasets and forget lists are symlinks into ``real``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (real / name).exists():
            skip_or_fail(f"real data root '{real}' has no '{name}'")
        (root / name).symlink_to((real / name).resolve(), target_is_directory=True)
    return root


@pytest.fixture
def isolated_root(real_data, tmp_path) -> Path:
    """A fresh temporary data root linking the real datasets; model caches land here."""
    return link_real_data(real_data, tmp_path / "data")


@pytest.fixture(scope="session")
def shared_isolated_root(real_data, tmp_path_factory) -> Path:
    """One isolated root for the whole session: read-only data tests share it, so each
    dataset is decoded once per session (the loader caches per root)."""
    return link_real_data(real_data, tmp_path_factory.mktemp("shared") / "data")


@pytest.fixture(scope="session")
def quick_bench(real_data, tmp_path_factory) -> dict:
    """``unlearnlab bench --quick --seeds 1`` (every method, the standard scenarios) run once
    per session in its own data root: {"out": folder, "root": data root, "proc": process}."""
    tmp = tmp_path_factory.mktemp("bench")
    root, out = link_real_data(real_data, tmp / "data"), tmp / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("UNLEARNLAB_DATA", None)
    proc = subprocess.run([sys.executable, "-m", "unlearnlab", "bench", "--quick", "--seeds",
                           "1", "--out", str(out), "--data-dir", str(root)],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "root": root, "proc": proc}


# ------------------------------------------------------------------ unlearning-method tests
# The data and trained models of the method tests; their plain helpers (the forget task, one
# unlearning run, weight snapshots) are in support.py.

def _trained(arch: str, ds: Dataset, epochs: int, batch_size: int, lr: float):
    from unlearnlab.models import create_model
    from unlearnlab.training import fit, seed_everything

    seed_everything(0)
    model = create_model(arch)
    fit(model, ds.train.x, ds.train.y, epochs=epochs, batch_size=batch_size, lr=lr, seed=0)
    return model


@pytest.fixture(scope="session")
def cnn_data() -> Dataset:
    """The data of the CNN method tests: 300 train / 200 test samples, seed 3."""
    return make_dataset(n_train=300, n_test=200, seed=3)


@pytest.fixture(scope="session")
def trained_cnn(cnn_data):
    """A briefly trained CNN that knows every class (trained once; tests get deep copies)."""
    return _trained("cnn", cnn_data, epochs=3, batch_size=64, lr=3e-3)


@pytest.fixture
def cnn(trained_cnn):
    import copy

    return copy.deepcopy(trained_cnn)


@pytest.fixture(scope="session")
def mlp_data() -> Dataset:
    """The data of the MLP method tests: 300 train / 200 test samples, seed 4."""
    return make_dataset(n_train=300, n_test=200, seed=4)


@pytest.fixture(scope="session")
def trained_mlp(mlp_data):
    """A small MLP that knows every class (trained once; tests get deep copies)."""
    return _trained("mlp", mlp_data, epochs=4, batch_size=32, lr=2e-3)


@pytest.fixture
def mlp(trained_mlp):
    import copy

    return copy.deepcopy(trained_mlp)


@pytest.fixture(scope="session")
def thesis_data() -> Dataset:
    """The data of the thesis-method tests (gradient ascent, GEMU, GeFeU): 300 train / 100
    test samples, seed 4."""
    return make_dataset(n_train=300, n_test=100, seed=4)


@pytest.fixture(scope="session")
def thesis_trained_mlp(thesis_data):
    """An MLP trained for two epochs on ``thesis_data`` (trained once; tests get copies)."""
    return _trained("mlp", thesis_data, epochs=2, batch_size=32, lr=2e-3)


@pytest.fixture
def thesis_mlp(thesis_trained_mlp):
    import copy

    return copy.deepcopy(thesis_trained_mlp)


# -------------------------------------------------------------------------------- figures

@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test left open (pyplot keeps every figure alive until closed);
    nothing to do, and nothing imported, when the test never loaded pyplot."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture
def untunable():
    """A method without a search space and without named presets, registered for one test
    (every built-in method is tunable and has a ``paper`` preset): ``keep``, which returns the
    original model unchanged."""
    from unlearnlab.methods import registry
    from unlearnlab.methods.base import UnlearningMethod

    class Keep(UnlearningMethod):
        name = "keep"
        defaults = {}

        def unlearn(self, model, task):
            return self.copy_model(model)

    registry.register_method(Keep)
    yield "keep"
    registry._METHODS.pop("keep")
    registry._ORIGINS.pop("keep")
