"""Result records: one JSON per cell, written atomically, stamped with what made it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import harness

RECORD_PACKAGES = ("torch", "transformers", "datasets", "scikit-learn", "numpy", "tokenizers")


def write_json_atomic(path: str | Path, payload: dict) -> Path:
    """Write JSON so that a reader (or a kill -9) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=1, sort_keys=False, allow_nan=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates owner-only files; results are for everyone
    os.replace(handle.name, path)
    return path


def features_path(record: Path) -> Path:
    """Where the test-set feature vectors of a cell (for t-SNE) sit beside its record."""
    return record.with_name(record.name.removesuffix(".json") + ".features.npz")


def read_record(path: str | Path) -> dict | None:
    """The record at ``path``, or None if it is missing or unreadable (e.g. from an older crash)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# What "the code" is: a pipeline run rewrites dvc.lock, results/ and REPORT.md as it goes, which
# must not mark the code that produced the results as modified.
CODE_PATHS = ("harness", "pyproject.toml")


@cache
def code_revision(root: Path | None = None) -> str:
    """git commit of the harness checkout, with ``+dirty`` when its code has uncommitted changes."""
    root = root or Path(harness.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


@cache
def versions() -> dict[str, str]:
    """Package versions and the code revision that produced a result."""
    found = {"harness": harness.__version__, "revision": code_revision(), "python": platform.python_version()}
    for package in RECORD_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found
