"""Before any cell runs, the method's code must be the code recorded for METHOD_VERSION.

A cell's identity names METHOD_VERSION, not the code itself (``harness.config``): after an edit of a
method module that nobody decided on, every finished cell would still count as done and ``dvc
repro`` would report the old code's numbers as the new code's, exit 0. tests/test_method_version.py
catches that in CI; this check catches it where the cells are about to run. ``grid`` (and so the
pipeline's grid stage) and ``cell`` call ``check_method_digest`` before any cell and stop with one
error on a mismatch. Listing a grid, preparing its data, and reading, aggregating and reporting
existing records stay allowed: they compute no cell.

It lives here, not beside ``method_digest`` in harness/config.py, because config.py is itself one
of the method modules: a check written there would change the digest it checks.
"""

from __future__ import annotations

from pathlib import Path

from harness import MethodChanged
from harness.config import METHOD_DIGESTS, METHOD_MODULES, METHOD_VERSION, method_digest, stored_method_digests

PACKAGE = Path(__file__).parent  # where the method modules are


def refusal(stored: str | None, current: str, version: str = METHOD_VERSION) -> str | None:
    """Why no cell may run with the method's code at digest ``current`` (None: it is the recorded one)."""
    if stored == current:
        return None
    write = "`python -m harness method-digest --write`"
    code, digests = f"the method's code (harness/{', '.join(METHOD_MODULES)})", f"harness/{METHOD_DIGESTS.name}"
    if stored is None:  # METHOD_VERSION was just bumped, or the file lost its entry
        return f"{code} has no digest recorded for METHOD_VERSION {version} in {digests}: no cell was run. Run {write}"
    return (f"{code} changed since METHOD_VERSION {version} was recorded in {digests} (digest {stored} -> {current}): "
            f"no cell was run, as the records of finished cells would pass for the new code's. If the change can "
            f"alter a cell's numbers, bump METHOD_VERSION in harness/config.py, then run {write}; if not (a refactor), "
            f"just run {write}")


def check_method_digest(folder: Path | None = None, digests: Path = METHOD_DIGESTS) -> str:
    """The digest of the method modules in ``folder`` (None: this package's), if it is the one recorded for
    METHOD_VERSION; else ``MethodChanged``."""
    current = method_digest(folder or PACKAGE)
    message = refusal(stored_method_digests(digests).get(METHOD_VERSION), current)
    if message is not None:
        raise MethodChanged(message)
    return current
