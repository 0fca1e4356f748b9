"""The root notebooks: thin (no definitions in code cells), switches in the first code cell,
committed without outputs, and ``project_main.ipynb`` and the four netcomp notebooks run
headless in quick mode on the real data, with a throw-away model cache; ``graphics.ipynb`` runs
against a bench folder made in the test."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(REPO.glob("*.ipynb"))
EXECUTED = ["project_main.ipynb"]
SWITCHES = {"USED_DATASET", "ALLREADY_TRAINED"}
# graphics.ipynb draws a saved bench folder: it trains nothing, so its switch is the folder.
GRAPHICS = "graphics.ipynb"
NOTEBOOK_SWITCHES = {GRAPHICS: {"BENCH_DIR"}}
# The ensemble notebooks of the thesis and the method each one studies (None: baselines only).
NETCOMP = {"netcomp_compare.ipynb": None, "netcomp_SimpleAscent.ipynb": "gradient_ascent",
           "netcomp_GEMU.ipynb": "gemu", "netcomp_GeFeU.ipynb": "gefeu"}
# The Optuna study of GEMU and GeFeU; its trial count comes from UNLEARNLAB_TRIALS.
GENERATOR_OPTIM = "generator_optim.ipynb"


def _code_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def _parse(source: str) -> ast.Module:
    """Parse a code cell, turning IPython syntax (``%magic``, ``!cmd``) into Python first."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def _name(path: Path) -> str:
    return path.name


def test_root_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert "project_main.ipynb" in names
    assert set(NETCOMP) <= set(names)
    assert GENERATOR_OPTIM in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_code_cells_define_nothing(path):
    for i, source in enumerate(_code_cells(path)):
        defs = [f"{type(node).__name__} '{node.name}' (line {node.lineno})"
                for node in ast.walk(_parse(source))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        assert not defs, f"{path.name}, code cell {i}: move {', '.join(defs)} into a module"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_first_code_cell_holds_the_switches(path):
    cells = _code_cells(path)
    assert cells, f"{path.name} has no code cell"
    assigned = {target.id for node in ast.walk(_parse(cells[0])) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    missing = NOTEBOOK_SWITCHES.get(path.name, SWITCHES) - assigned
    assert not missing, f"{path.name}: the first code cell must set {', '.join(sorted(missing))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: strip the outputs of code cells {dirty}"


@pytest.mark.parametrize("name", ["project_main.ipynb", *NETCOMP, GRAPHICS, GENERATOR_OPTIM])
def test_notebook_has_no_loops(name):
    loops = [i for i, source in enumerate(_code_cells(REPO / name))
             if any(isinstance(node, ast.For | ast.While | ast.AsyncFor | ast.comprehension)
                    for node in ast.walk(_parse(source)))]
    assert not loops, f"{name}: code cells {loops} hold loops; call the package"


@pytest.mark.parametrize("name", [n for n, method in NETCOMP.items() if method])
def test_method_notebook_names_its_method_once(name):
    """The method key is a string constant in exactly one code cell, which assigns only
    ``METHOD``; every other cell refers to ``METHOD``, and no other method is named."""
    method = NETCOMP[name]
    cells = _code_cells(REPO / name)
    strings = [[node.value for node in ast.walk(_parse(source))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)]
               for source in cells]
    naming = [i for i, found in enumerate(strings) if method in found]
    assert len(naming) == 1 and strings[naming[0]].count(method) == 1, \
        f"{name}: name '{method}' once, in the METHOD cell (found in code cells {naming})"
    tree = _parse(cells[naming[0]])
    assert [t.id for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets] == ["METHOD"]
    others = {m for m in NETCOMP.values() if m and m != method}
    assert not others & {s for found in strings for s in found}


def _execute(name: str, root: Path, monkeypatch) -> None:
    """Run the notebook in quick mode on the data root ``root``; fail on any error output."""
    monkeypatch.setenv("UNLEARNLAB_QUICK", "1")
    monkeypatch.setenv("UNLEARNLAB_DATA", str(root))
    _run_notebook(name)
    assert any((root / "models").rglob("*.pt")), "the run cached no model"


def _run_notebook(name: str) -> None:
    """Execute the notebook headless in the repository root; fail on any error output."""
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / name, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors


@pytest.mark.notebook
@pytest.mark.parametrize("name", EXECUTED)
def test_notebook_runs_in_quick_mode(name, isolated_root, monkeypatch):
    """``isolated_root`` (conftest) links the real datasets of ``$UNLEARNLAB_DATA`` (else
    ``data/``) into a temporary root, so the notebook's model cache is thrown away; it skips
    without MNIST, and fails instead when ``$CI`` is set."""
    _execute(name, isolated_root, monkeypatch)


@pytest.mark.notebook
@pytest.mark.parametrize("name", list(NETCOMP))
def test_netcomp_notebook_runs_in_quick_mode(name, isolated_root, monkeypatch):
    """Each netcomp notebook, on its own throw-away model cache (so it trains its baselines
    in quick mode). A method that is not registered skips, and fails under ``$CI``."""
    from unlearnlab.methods import list_methods

    method = NETCOMP[name]
    if method is not None and method not in list_methods():
        skip_or_fail(f"{name}: method '{method}' is not registered in unlearnlab.methods")
    _execute(name, isolated_root, monkeypatch)


@pytest.mark.notebook
def test_graphics_notebook_draws_a_saved_bench(quick_bench, monkeypatch):
    """``graphics.ipynb`` against the folder ``unlearnlab bench --quick`` wrote (the session's
    ``quick_bench``), named by ``UNLEARNLAB_BENCH_DIR``."""
    monkeypatch.setenv("UNLEARNLAB_BENCH_DIR", str(quick_bench["out"]))
    _run_notebook(GRAPHICS)


@pytest.mark.notebook
def test_generator_optim_notebook_runs_in_quick_mode(isolated_root, monkeypatch):
    """``generator_optim.ipynb`` with 3 trials per study on its own throw-away data root: it
    tunes GEMU and GeFeU, writes the ``tuned`` presets and compares them with the thesis's."""
    monkeypatch.setenv("UNLEARNLAB_TRIALS", "3")
    _execute(GENERATOR_OPTIM, isolated_root, monkeypatch)
    assert (isolated_root / "studies" / "optuna.db").is_file()
    tuned = json.loads((isolated_root / "presets" / "tuned.json").read_text())
    assert {"gemu", "gefeu"} <= set(tuned)
