"""The one way files are written, and result tables read.

Every file the project writes goes through ``write_atomic``: a temporary file in the same folder,
fsync, then a rename, so a reader (or a kill -9) never sees half a file, and an output that cannot
be written is one ``Unwritable`` error naming it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import pandas as pd

from harness.errors import BadResults, Unwritable


def unwritable(path: Path, error: OSError) -> Unwritable:
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
        raise unwritable(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise unwritable(path, error) from error
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
        raise unwritable(folder, error) from error
    return folder


def read_csv(path: str | Path, what: str, hint: str, columns: Iterable[str] = (), numeric: Iterable[str] = ()):
    """A results CSV as a DataFrame, or one ``BadResults`` naming the file and ``hint`` (what to run).

    ``columns`` must be present; ``numeric`` columns, where present, must hold numbers (or be empty).
    """
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
