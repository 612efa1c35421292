"""Records kept in git: a profile's records copied out of results/cells, so REPORT.md shows them on a fresh clone."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from harness.files import write_atomic
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.grid.run import dataset_digests
from harness.method.config import METHOD_VERSION, CellConfig
from harness.method.record import read_record, record_path


def keep_records(cells: Iterable[CellConfig], digests: dict[str, str], cells_dir: str | Path, dest: str | Path
                 ) -> tuple[int, list[str]]:
    """Copy the records of ``cells`` (a profile's) from ``cells_dir`` into ``dest`` (e.g. results/records/<profile>,
    kept in git so REPORT.md can show them on a fresh clone), and remove from ``dest`` every record that is no
    cell of the profile any more (a changed setting gave its cells new identities: the report reads every record
    in ``dest``, so a superseded one would be counted beside its successor; git history keeps it). Only records
    of this method version on the profile's datasets as they are now can be superseded. Returns how many were copied and the
    names removed. Missing records are skipped."""
    cells = list(cells)
    kept, wanted = 0, set()
    for config in cells:
        source = record_path(config, cells_dir, digests[config.dataset])
        wanted.add(source.name)
        if read_record(source) is not None:
            write_atomic(Path(dest) / source.name, lambda handle, s=source: handle.write(s.read_bytes()))
            kept += 1
    superseded = sorted(path.name for path in Path(dest).glob("*.json")
                        if path.name not in wanted and _supersedable(read_record(path), digests))
    for name in superseded:
        (Path(dest) / name).unlink()
    return kept, superseded


def _supersedable(record: dict | None, digests: dict[str, str]) -> bool:
    """A record this profile's present settings could have made (its method version, one of its datasets at
    its present digest): only such a record is superseded by a changed setting; records of another method or
    data version are another version's results, left alone."""
    config = (record or {}).get("config") or {}
    return (record is not None and str(record.get("method_version")) == METHOD_VERSION
            and digests.get(config.get("dataset")) == record.get("data_digest"))


def keep_profile(profile_name: str | None, *, params: str | Path, cells_dir: str | Path, dest: str | Path | None,
                 data_dir: str | Path) -> None:
    """``keep_records`` for the profile of ``params`` named ``profile_name`` (None: its ``profile:`` key), into
    ``dest`` (None: results/records/<profile>)."""
    profile = load_profile(profile_name, params)
    cells = expand(profile)
    dest = dest or f"results/records/{profile.name}"
    kept, superseded = keep_records(cells, dataset_digests(cells, data_dir), cells_dir, dest)
    print(f"profile {profile.name}: {kept} of {len(cells)} records copied to {dest}", file=sys.stderr)
    if superseded:
        print(f"removed {len(superseded)} record(s) of cells no longer in the profile (still in git history): "
              f"{', '.join(superseded)}", file=sys.stderr)
