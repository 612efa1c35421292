"""Markdown for REPORT.md: tables from frames, numbers, and the provenance line of kept records."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pandas as pd


def markdown_table(frame: pd.DataFrame, missing: str = "–") -> str:
    """A pandas frame as a GitHub markdown table (no index), ``missing`` where a value is NaN."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(missing if pd.isna(v) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def provenance(frame: pd.DataFrame, folder: Path) -> str:
    """Profile, code revision(s), METHOD_VERSION and the date the records were committed."""
    revisions = sorted(set(frame.get("revision", pd.Series(dtype=str)).dropna()))
    try:
        date = subprocess.run(["git", "log", "-1", "--format=%cs", "--", "."], capture_output=True, text=True,
                              cwd=folder, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        date = ""
    return (f"profile `{folder.name}`, {len(frame)} records in `{folder.as_posix()}`, code "
            f"{', '.join(revisions) or '?'}, committed {date or '(not yet committed)'}")
