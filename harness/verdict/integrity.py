"""Data integrity of a table of F1 values: values out of range, runs copied between series, repeated values.

Run on the transcribed paper tables (``claims/paper_tables.csv``) before their claims are judged:
a suspected transcription or copy error is reported next to the verdicts it could affect.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from harness.verdict.claims import _order, setting_label
from harness.verdict.sources import _require


@dataclass(frozen=True)
class Finding:
    """A suspected transcription or copy error (or a degenerate run) in a table of F1 values."""

    kind: str  # out_of_range | copied_run | repeated_value
    where: str
    values: tuple[float, ...]
    message: str


def _series(tables: pd.DataFrame) -> dict[str, dict[str, float]]:
    """F1 per series (a table's column pair for one model and dataset) by setting, in reading order."""
    keys = [k for k in ("table", "model", "dataset") if k in tables.columns]
    keys += ["seed"] if "seed" in tables.columns and tables["seed"].nunique() > 1 else []
    rows = defaultdict(list)
    for row in tables.itertuples(index=False):
        name = " ".join(f"{k}={getattr(row, k)}" for k in keys)
        rows[name].append(((row.position, float(row.level)), float(row.f1)))
    return {name: {setting_label(s): f1 for s, f1 in sorted(found, key=lambda r: _order(r[0]))}
            for name, found in rows.items()}


def _runs(equal: list[bool], min_run: int) -> list[tuple[int, int]]:
    """(start, stop) of every stretch of at least ``min_run`` consecutive True values."""
    edges = np.diff(np.concatenate([[0], np.array(equal, dtype=int), [0]]))
    return [(int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))
            if b - a >= min_run]


def integrity_findings(tables: pd.DataFrame, min_run: int = 3) -> list[Finding]:
    """Values outside 0-100; runs of >= ``min_run`` identical values in the same positions of two series
    (two models, tables or datasets); a value repeated >= ``min_run`` times within one series."""
    _require(tables, ["position", "level", "f1"], "integrity check")
    findings = []
    series = _series(tables)
    for name, values in series.items():
        findings += [Finding("out_of_range", f"{name} {label}", (v,), f"F1 {v} is outside 0-100 (or missing)")
                     for label, v in values.items() if not 0 <= v <= 100]
        for value in sorted({v for v in values.values() if not math.isnan(v)}):
            labels = [label for label, v in values.items() if v == value]
            if len(labels) >= min_run:
                findings.append(Finding("repeated_value", f"{name}: {', '.join(labels)}", (value,) * len(labels),
                                        f"{value:g} appears {len(labels)} times in one series: a copied value, or a "
                                        "degenerate run (e.g. constant predictions) reported for several settings"))
    for (name_a, a), (name_b, b) in combinations(series.items(), 2):
        common = [label for label in a if label in b]
        equal = [a[label] == b[label] for label in common]
        for start, stop in _runs(equal, min_run):
            labels = common[start:stop]
            findings.append(Finding("copied_run", f"{name_a} vs {name_b}: {labels[0]}..{labels[-1]}",
                                    tuple(a[label] for label in labels),
                                    f"{stop - start} consecutive identical values ({sum(equal)} of {len(common)} "
                                    "shared settings equal): likely copied from one series into the other"))
    return findings
