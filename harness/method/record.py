"""The record of one cell: one JSON, stamped with what made it, found by the cell's identity only.

A cell's record is found by ``record_path`` (its identity: config, METHOD_VERSION, data digest; see
``harness.method.config.cell_identity``); a file without the record's keys counts as missing, so its
cell is recomputed. One lock per cell keeps two runs from computing it twice.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import warnings
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from filelock import BaseFileLock, FileLock, Timeout

import harness
from harness.errors import BadResults
from harness.files import unwritable
from harness.method.config import CellConfig, cell_identity

RECORD_PACKAGES = ("torch", "transformers", "datasets", "scikit-learn", "numpy", "tokenizers")
# What every record holds (a file without them is not a record, and its cell is recomputed) ...
RECORD_KEYS = {"config": dict, "config_hash": str, "identity": str, "method_version": str, "data_digest": str,
               "status": str, "data": dict}
# ... and the scores the tables read from it (NaN where a diverged run has none).
RECORD_SCORES = ("level", "n_corrupted", "n_layers", "best_test_f1", "best_epoch", "selected_test_f1",
                 "selected_val_f1", "selected_epoch", "majority_f1", "final_test_f1", "tokens_per_s", "wall_s")


class RecordWarning(UserWarning):
    """A record file that cannot be read: it counts as missing and its cell is recomputed."""


# ---------------------------------------------------------------- finding and reading records


def record_file(out_dir: str | Path, identity: str) -> Path:
    return Path(out_dir) / f"{identity}.json"


def record_path(config: CellConfig, out_dir: str | Path, data_digest: str) -> Path:
    """Where the record of ``config`` run on data ``data_digest`` lives: ``<out_dir>/<identity>.json``."""
    return record_file(out_dir, cell_identity(config, data_digest))


def features_path(record: Path) -> Path:
    """Where a cell's saved vectors sit beside its record: the head's inputs on the test set (Figure 1's
    t-SNE) and every layer's pooled vectors before and after fine-tuning (``harness.method.representations``)."""
    return record.with_name(record.name.removesuffix(".json") + ".vectors.npz")


def lock_path(record: Path) -> Path:
    """The lock a run holds while it computes ``record`` (``<folder>/.locks/<name>.lock``)."""
    return record.parent / ".locks" / (record.name.removesuffix(".json") + ".lock")


def claim(record: Path, *, wait: bool) -> BaseFileLock | None:
    """Acquire the lock on computing ``record``, or None if another process holds it and not ``wait``.

    One lock per cell, so runs that share a results folder (two terminals, two Slurm jobs) never
    compute a cell twice. It is an OS lock (flock): it dies with the process that held it, so a
    killed run never blocks a cell. The caller releases it (``lock.release()``).
    """
    path = lock_path(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                return None
            print(f"{record.name}: another run is computing this cell (lock {path}); waiting for it", file=sys.stderr)
            lock.acquire()
    except OSError as error:
        raise unwritable(path, error) from error
    return lock


def _problem(record: object) -> str | None:
    """Why a parsed JSON value is not a record, or None."""
    if not isinstance(record, dict):
        return f"JSON {type(record).__name__}, not an object"
    wrong = [key for key, kind in RECORD_KEYS.items() if not isinstance(record.get(key), kind)]
    wrong += [key for key in RECORD_SCORES if key not in record]
    return f"missing or malformed keys {wrong}" if wrong else None


def read_record(path: str | Path) -> dict | None:
    """The record at ``path``, or None when there is none.

    A file that is not a record (not UTF-8, not JSON, not an object, keys missing) counts as missing
    too, with a ``RecordWarning`` naming it: its cell is recomputed and the file atomically replaced.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        why = f"not {'UTF-8' if isinstance(error, UnicodeDecodeError) else 'JSON'}"
    except OSError as error:  # e.g. a folder where the record should be, or no permission to read
        raise BadResults(f"cannot read result record {path}: {error.strerror or error}; move it out of the way "
                         "(or make it readable) and rerun") from error
    else:
        why = _problem(record)
        if why is None:
            return record
    # One absolute path and one location: the grid's check and the cell's own read then warn once.
    warnings.warn(f"{Path(path).resolve()} is not a readable result record ({why}): counted as missing, its cell "
                  "will be recomputed", RecordWarning, stacklevel=1)
    return None


def cell_record(config: CellConfig, data_digest: str, out_dir: str | Path = "results/cells",
                path: str | Path | None = None) -> dict | None:
    """The record of ``config`` on data ``data_digest`` (at ``record_path`` unless ``path`` names it).

    The one rule by which every step finds a cell's result: a record counts only if it holds the
    cell's own identity, so a record of another config, method version or data version is missing.
    """
    path = Path(path) if path is not None else record_path(config, out_dir, data_digest)
    record = read_record(path)
    if record is None or record["identity"] != cell_identity(config, data_digest):
        return None  # (a record of another cell sits at a --out path the user reuses)
    return record


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
