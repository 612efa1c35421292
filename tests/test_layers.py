"""The package's floors: imports run one way, down (README "Layout"), with no circle, at the top of each module.

Three checks, each shown to fail on a violation built for it:
* import-linter's layers contract of pyproject.toml (``lint-imports``): no module imports from a floor above;
* no import circle among harness modules, inside a floor too (strongly connected components of grimp's graph);
* no harness module imports inside a function, except the heavy optional packages (ray, submitit, matplotlib).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
OPTIONAL = ("ray", "submitit", "matplotlib", "psutil")  # imported where used, so the package runs without them


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph (module -> modules it imports): its strongly connected components of 2 or more."""
    names = sorted(set(edges) | {m for targets in edges.values() for m in targets})
    index = {name: i for i, name in enumerate(names)}
    rows = [index[a] for a, targets in edges.items() for b in targets]
    cols = [index[b] for targets in edges.values() for b in targets]
    matrix = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(matrix, directed=True, connection="strong")
    groups = [[names[i] for i in np.flatnonzero(labels == label)] for label in np.unique(labels)]
    return [group for group in groups if len(group) > 1]


def imports_inside_functions(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function that is not one of the OPTIONAL packages."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                found += [(node.lineno, name) for name in names if name.split(".")[0] not in OPTIONAL]
    return found


def harness_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("harness")
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules
            if module.startswith("harness")}


def test_the_layers_contract_is_kept():
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_contract_names_every_floor_of_the_package():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    floors = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    here = {f"harness.{p.stem if p.is_file() else p.name}" for p in PACKAGE.iterdir()
            if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    assert floors == here  # a new module or subpackage gets its floor in the contract


def test_a_lower_floor_importing_a_higher_one_breaks_the_contract(tmp_path):
    broken = tmp_path / "harness"
    (broken / "method").mkdir(parents=True)
    (broken / "report").mkdir()
    for package in (broken, broken / "method", broken / "report"):
        (package / "__init__.py").write_text("")
    (broken / "report" / "document.py").write_text("from harness.method import cell\n")
    (broken / "method" / "cell.py").write_text("from harness.report import document\n")  # up a floor
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = harness\n\n[importlinter:contract:floors]\nname = floors\ntype = layers\n"
        "layers =\n    harness.report\n    harness.method\n")
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert done.returncode != 0 and "BROKEN" in done.stdout
    assert "harness.method.cell -> harness.report.document" in done.stdout


def test_no_import_circle():
    assert circles(harness_graph()) == []


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_sit_at_the_top_of_each_module(path):
    assert imports_inside_functions(path.read_text(encoding="utf-8")) == []


def test_an_import_inside_a_function_is_found():
    source = "import os\n\ndef f():\n    from harness.grid import run\n    import matplotlib.pyplot as plt\n    import ray\n"
    assert imports_inside_functions(source) == [(4, "harness.grid")]
