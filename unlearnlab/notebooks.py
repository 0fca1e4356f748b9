"""Rendering the root notebooks: ``python -m unlearnlab.notebooks [NAME.ipynb ...]`` (``make
notebooks``) executes each notebook top to bottom with nbclient on the real data (never quick
mode), reusing the cached models of the data root, and writes it back in place with its outputs.

A rendered notebook records the switch values it ran with in its metadata
(``metadata["unlearnlab"]["switches"]``: every name the first code cell assigns, plus
``quick``), so a test can check that the committed outputs belong to the committed switches.
Outputs are kept small and stable: figures as PNG at ``FIGURE_DPI``, no progress widgets, no
execution timestamps or widget state, execution counts
numbered 1..n over the notebook's own code cells. The file is replaced atomically (a temporary
file in the same folder, then a rename), so an interrupted run leaves the committed notebook
as it was.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# Metadata key of the render record.
METADATA_KEY = "unlearnlab"
# 80 dpi keeps a 12-inch-wide figure under 1000 pixels: readable in a repository viewer, and a
# notebook of a dozen figures stays well under a megabyte.
FIGURE_DPI = 80
# Run in the kernel before the notebook's cells (not stored): PNG figures at FIGURE_DPI, then the
# inline backend loaded up front (it applies InlineBackend.rc when it loads).
SETUP = ("%config InlineBackend.figure_formats = ['png']\n"
         f"%config InlineBackend.rc = {{'figure.dpi': {FIGURE_DPI}}}\n%matplotlib inline")
CELL_TIMEOUT_S = 4 * 3600
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Rendered:
    """One rendered notebook: its path, wall seconds and size in bytes once written."""

    path: Path
    seconds: float
    size: int


def root_notebooks(repo: Path = REPO) -> list[Path]:
    """The repository's root notebooks, sorted by name."""
    return sorted(repo.glob("*.ipynb"))


def first_cell_switches(nb) -> list[str]:
    """The names the first code cell assigns (the notebook's switches), in order."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if not code:
        raise ConfigError("the notebook has no code cell; its first code cell must set its "
                          "switches")
    tree = ast.parse(TransformerManager().transform_cell(code[0].source))
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def _readout(names: list[str]) -> str:
    """Kernel code that prints the switches' values as one JSON line."""
    pairs = ", ".join(f"{name!r}: {name}" for name in names)
    return f"import json as _json\nprint(_json.dumps({{{pairs}}}))"


def _kernel_env(data_dir: str | None) -> dict[str, str]:
    """The environment the kernel inherits: the data root."""
    if os.environ.get("UNLEARNLAB_QUICK") == "1":
        raise ConfigError("UNLEARNLAB_QUICK=1 is set: the committed notebooks are rendered from "
                          "full runs; unset it (quick-mode copies are the tests' job)")
    env = {}
    if data_dir is not None:
        env["UNLEARNLAB_DATA"] = str(Path(data_dir).resolve())
    return env


def _clean(nb) -> None:
    """Number the code cells 1..n and drop what changes from run to run (timings, widget
    state), so that a re-render of unchanged results changes no line."""
    count = 0
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        cell.metadata.pop("execution", None)
        # A progress widget's output is a bar frozen mid-run, with no state to draw it from.
        cell.outputs = [out for out in cell.outputs
                        if WIDGET_VIEW not in out.get("data", {})]
        for out in cell.outputs:
            if "execution_count" in out:
                out["execution_count"] = count


def _execute_hidden(client, nb, source: str):
    """Run ``source`` in the kernel as a cell that is not kept in ``nb`` (nbclient stores an
    executed cell at its index, so it is appended for the run and removed after); returns
    the cell with its outputs."""
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        return client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()


def execute(path: Path, *, data_dir: str | None = None, timeout: int = CELL_TIMEOUT_S):
    """``path`` executed top to bottom in the repository root, its outputs in place and its
    switch values in ``metadata["unlearnlab"]``; returns the notebook (not written). Raises
    ``nbclient``'s ``CellExecutionError`` on the first failing cell."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    names = first_cell_switches(nb)
    saved = {key: os.environ.get(key) for key in ("UNLEARNLAB_DATA",)}
    os.environ.update(_kernel_env(data_dir))
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                record_timing=False,
                                resources={"metadata": {"path": str(path.parent)}})
        with client.setup_kernel():
            _execute_hidden(client, nb, SETUP)
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            readout = _execute_hidden(client, nb, _readout(names))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = "".join(out.get("text", "") for out in readout.outputs if out.output_type == "stream")
    switches = json.loads(text.strip().splitlines()[-1])
    switches["quick"] = False
    nb.metadata[METADATA_KEY] = {"switches": switches, "figure_dpi": FIGURE_DPI}
    _clean(nb)
    return nb


def write_atomically(nb, path: Path) -> int:
    """Write ``nb`` to ``path`` through a temporary file in the same folder and a rename;
    returns the size in bytes."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, mode)  # mkstemp creates 0600; keep the notebook's own mode
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            nbformat.write(nb, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.stat().st_size


def render(path: Path, *, data_dir: str | None = None) -> Rendered:
    """Execute ``path`` (``execute``) and write it back in place, atomically."""
    start = time.perf_counter()
    nb = execute(path, data_dir=data_dir)
    seconds = time.perf_counter() - start
    return Rendered(path, seconds, write_atomically(nb, path))


def _resolve(names: list[str]) -> list[Path]:
    if not names:
        return root_notebooks()
    paths = [REPO / name if not Path(name).is_absolute() else Path(name) for name in names]
    missing = [str(p) for p in paths if not p.is_file() or p.suffix != ".ipynb"]
    if missing:
        raise ConfigError(f"no such notebook: {', '.join(missing)}; name root notebooks, e.g. "
                          "project_main.ipynb")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearnlab.notebooks",
                                     description="Render the root notebooks in place from full "
                                     "runs (cached models reused).")
    parser.add_argument("notebooks", nargs="*", help="notebook files (default: every root one)")
    parser.add_argument("--data-dir", default=None,
                        help="data root of every notebook (default: $UNLEARNLAB_DATA or data)")
    args = parser.parse_args(argv)
    try:
        paths = _resolve(args.notebooks)
        _kernel_env(args.data_dir)
    except ConfigError as exc:
        print(f"unlearnlab: error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    for path in paths:
        print(f"rendering {path.name} ...", flush=True)
        done = render(path, data_dir=args.data_dir)
        print(f"rendered {path.name} in {done.seconds / 60:.1f} min ({done.size / 1e3:.0f} kB)",
              flush=True)
    print(f"{len(paths)} notebook(s) in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
