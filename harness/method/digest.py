"""Before any cell runs, the method's code must be the code recorded for METHOD_VERSION.

A cell's identity names METHOD_VERSION, not the code itself (``harness.method.config``): after an edit of a
method module that nobody decided on, every finished cell would still count as done and ``dvc
repro`` would report the old code's numbers as the new code's, exit 0. tests/test_method_version.py
catches that in CI; this check catches it where the cells are about to run. ``grid`` (and so the
pipeline's grid stage) and ``cell`` call ``check_method_digest`` before any cell and stop with one
error on a mismatch. Listing a grid, preparing its data, and reading, aggregating and reporting
existing records stay allowed: they compute no cell.

The digest and its check live here, not beside METHOD_VERSION in config.py, because config.py is
itself one of the method modules: a check written there would change the digest it checks.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from harness.errors import MethodChanged
from harness.method.config import METHOD_VERSION

PACKAGE = Path(__file__).parent  # where the method modules are
# The modules that turn a config into numbers: their code is what METHOD_VERSION names.
METHOD_MODULES = ("corrupt.py", "models.py", "train.py", "optim.py", "data.py", "prepare.py", "cell.py", "config.py")
METHOD_DIGESTS = PACKAGE / "method_digests.json"  # METHOD_VERSION -> digest of METHOD_MODULES


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(folder: Path, names: tuple[str, ...]) -> str:
    """sha256 of these modules' syntax trees: comments, docstrings and layout do not count."""
    digest = hashlib.sha256()
    for name in names:
        tree = _without_docstrings(ast.parse((folder / name).read_text(encoding="utf-8")))
        digest.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()[:16]


def method_digest(folder: Path = PACKAGE) -> str:
    """The digest of the method modules (``source_digest``)."""
    return source_digest(folder, METHOD_MODULES)


def stored_method_digests(path: Path = METHOD_DIGESTS) -> dict[str, str]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def refusal(stored: str | None, current: str, version: str = METHOD_VERSION) -> str | None:
    """Why no cell may run with the method's code at digest ``current`` (None: it is the recorded one)."""
    if stored == current:
        return None
    write = "`python -m harness method-digest --write`"
    code, digests = f"the method's code (harness/method/{', '.join(METHOD_MODULES)})", f"harness/method/{METHOD_DIGESTS.name}"
    if stored is None:  # METHOD_VERSION was just bumped, or the file lost its entry
        return f"{code} has no digest recorded for METHOD_VERSION {version} in {digests}: no cell was run. Run {write}"
    return (f"{code} changed since METHOD_VERSION {version} was recorded in {digests} (digest {stored} -> {current}): "
            f"no cell was run, as the records of finished cells would pass for the new code's. If the change can "
            f"alter a cell's numbers, bump METHOD_VERSION in harness/method/config.py, then run {write}; if not (a refactor), "
            f"just run {write}")


def check_method_digest(folder: Path | None = None, digests: Path = METHOD_DIGESTS) -> str:
    """The digest of the method modules in ``folder`` (None: this package's), if it is the one recorded for
    METHOD_VERSION; else ``MethodChanged``."""
    current = method_digest(folder or PACKAGE)
    message = refusal(stored_method_digests(digests).get(METHOD_VERSION), current)
    if message is not None:
        raise MethodChanged(message)
    return current
