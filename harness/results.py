"""Result records (one JSON per cell, stamped with what made it) and the one way files are written.

Every file the project writes goes through ``write_atomic``: a temporary file in the same folder,
fsync, then a rename, so a reader (or a kill -9) never sees half a file, and an output that cannot
be written is one ``Unwritable`` error naming it. A cell's record is found by ``record_path`` only
(its identity: config, METHOD_VERSION, data digest; see ``harness.config.cell_identity``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

from filelock import BaseFileLock, FileLock, Timeout

import harness
from harness import BadResults, Unwritable
from harness.config import CellConfig, cell_identity

RECORD_PACKAGES = ("torch", "transformers", "datasets", "scikit-learn", "numpy", "tokenizers")
# What every record holds (a file without them is not a record, and its cell is recomputed) ...
RECORD_KEYS = {"config": dict, "config_hash": str, "identity": str, "method_version": str, "data_digest": str,
               "status": str, "data": dict}
# ... and the scores the tables read from it (NaN where a diverged run has none).
RECORD_SCORES = ("level", "n_corrupted", "n_layers", "best_test_f1", "best_epoch", "selected_test_f1",
                 "selected_val_f1", "selected_epoch", "majority_f1", "final_test_f1", "tokens_per_s", "wall_s")


class RecordWarning(UserWarning):
    """A record file that cannot be read: it counts as missing and its cell is recomputed."""


# ---------------------------------------------------------------- writing


def _unwritable(path: Path, error: OSError) -> Unwritable:
    return Unwritable(f"cannot write {path}: {error.strerror or error}; choose another output location "
                      "or make it writable")


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, then rename.

    The file gets mode 0644 (results and caches are for everyone); on any error no temporary file
    is left, and an OS error (no permission, disk full, read-only) becomes ``Unwritable``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _unwritable(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise _unwritable(path, error) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, payload: dict) -> Path:
    """JSON (NaN allowed, as Python writes it) through ``write_atomic``."""
    return write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=False, allow_nan=True))


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` and write and delete a probe file in it: fail now, not after the training."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise Unwritable(f"cannot write to {folder}: it is a file, not a folder; choose another output location")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe.", suffix=".tmp"):
            pass
    except OSError as error:
        raise _unwritable(folder, error) from error
    return folder


# ---------------------------------------------------------------- finding and reading records


def record_file(out_dir: str | Path, identity: str) -> Path:
    return Path(out_dir) / f"{identity}.json"


def record_path(config: CellConfig, out_dir: str | Path, data_digest: str) -> Path:
    """Where the record of ``config`` run on data ``data_digest`` lives: ``<out_dir>/<identity>.json``."""
    return record_file(out_dir, cell_identity(config, data_digest))


def features_path(record: Path) -> Path:
    """Where a cell's saved vectors sit beside its record: the head's inputs on the test set (Figure 1's
    t-SNE) and every layer's pooled vectors before and after fine-tuning (``harness.representations``)."""
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
        raise _unwritable(path, error) from error
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


def read_csv(path: str | Path, what: str, hint: str, columns: Iterable[str] = (), numeric: Iterable[str] = ()):
    """A results CSV as a DataFrame, or one ``BadResults`` naming the file and ``hint`` (what to run).

    ``columns`` must be present; ``numeric`` columns, where present, must hold numbers (or be empty).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise BadResults(f"{what} {path} not found: {hint}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as error:
        raise BadResults(f"{what} {path} is not a readable CSV table ({str(error).splitlines()[0]}): {hint}") from error
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadResults(f"{what} {path} lacks column(s) {missing} (it has {list(frame.columns)[:8]}): {hint}")
    if frame.empty:
        raise BadResults(f"{what} {path} has a header but no rows: {hint}")
    for column in (c for c in numeric if c in frame.columns):
        values = frame[column]
        bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        if len(bad):
            raise BadResults(f"{what} {path}: column {column!r} must hold numbers, got {bad.iloc[0]!r} on line "
                             f"{bad.index[0] + 2}: {hint}")
    return frame


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


def keep_records(cells: Iterable[CellConfig], digests: dict[str, str], cells_dir: str | Path, dest: str | Path) -> int:
    """Copy the records of ``cells`` (a profile's) from ``cells_dir`` into ``dest`` (e.g. results/records/<profile>,
    kept in git so REPORT.md can show them on a fresh clone); return how many. Missing records are skipped."""
    kept = 0
    for config in cells:
        source = record_path(config, cells_dir, digests[config.dataset])
        if read_record(source) is not None:
            write_atomic(Path(dest) / source.name, lambda handle, s=source: handle.write(s.read_bytes()))
            kept += 1
    return kept


def keep_profile(profile_name: str | None, *, params: str | Path, cells_dir: str | Path, dest: str | Path | None,
                 data_dir: str | Path) -> None:
    """``keep_records`` for the profile of ``params`` named ``profile_name`` (None: its ``profile:`` key), into
    ``dest`` (None: results/records/<profile>)."""
    from harness.expand import expand
    from harness.grid import dataset_digests
    from harness.profiles import load_profile

    profile = load_profile(profile_name, params)
    cells = expand(profile)
    dest = dest or f"results/records/{profile.name}"
    kept = keep_records(cells, dataset_digests(cells, data_dir), cells_dir, dest)
    print(f"profile {profile.name}: {kept} of {len(cells)} records copied to {dest}", file=sys.stderr)
