"""Records kept in git: a profile's records copied out of results/cells, so REPORT.md shows them on a fresh clone."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from harness.files import write_atomic
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.grid.run import dataset_digests
from harness.method.config import CellConfig
from harness.method.record import read_record, record_path


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
    profile = load_profile(profile_name, params)
    cells = expand(profile)
    dest = dest or f"results/records/{profile.name}"
    kept = keep_records(cells, dataset_digests(cells, data_dir), cells_dir, dest)
    print(f"profile {profile.name}: {kept} of {len(cells)} records copied to {dest}", file=sys.stderr)
