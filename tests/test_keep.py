"""Records kept in git (harness.grid.keep): a profile's records copied out of results/cells, and the kept records
that a changed setting superseded removed, so the report never counts a cell twice."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from harness.cli import main as cli_main
from harness.grid.expand import expand
from harness.grid.keep import keep_records
from harness.grid.profiles import load_profile
from harness.grid.run import dataset_digests
from harness.method.config import METHOD_VERSION, cell_identity
from harness.method.record import RECORD_SCORES, record_path

ROOT = Path(__file__).resolve().parents[1]
DIGESTS = {"sst2": "d-sst2", "ag_news": "d-ag"}


def _write_record(config, folder: Path, digest: str, method_version: str = METHOD_VERSION) -> Path:
    path = record_path(config, folder, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": asdict(config), "config_hash": config.hash, "identity": cell_identity(config, digest),
              "method_version": method_version, "data_digest": digest, "status": "ok", "data": {},
              **dict.fromkeys(RECORD_SCORES, 0.0)}
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def test_keep_copies_the_profiles_records_and_removes_the_superseded_ones(tmp_path):
    cells = expand(load_profile("ci", ROOT / "params.yaml"))
    cells_dir, dest = tmp_path / "cells", tmp_path / "kept"
    done = [_write_record(c, cells_dir, DIGESTS[c.dataset]) for c in cells[:3]]
    # in the kept folder already: a cell whose setting changed since (more epochs: a new identity) ...
    old = replace(cells[0], epochs=cells[0].epochs + 1)
    superseded = _write_record(old, dest, DIGESTS[old.dataset])
    # ... and records no setting of this profile could have made: another data version, another method version
    other_data = _write_record(old, dest, "d-older-data")
    other_method = _write_record(replace(old, seed=77), dest, DIGESTS[old.dataset], method_version="2")

    kept, removed = keep_records(cells, DIGESTS, cells_dir, dest)

    assert kept == 3 and sorted(p.name for p in done) == sorted(p.name for p in dest.glob("*.json")
                                                                   if p.name not in {other_data.name,
                                                                                     other_method.name})
    assert removed == [superseded.name] and not superseded.exists()
    assert other_data.exists() and other_method.exists()
    assert keep_records(cells, DIGESTS, cells_dir, dest) == (3, [])  # again: nothing more to copy or remove


def test_keep_cli_names_what_it_removed(tmp_path, capsys):
    data = ROOT / "data" if (ROOT / "data" / "sst2").is_dir() else ROOT.parent / "shared" / "datasets"
    cells = expand(load_profile("ci", ROOT / "params.yaml"))
    digests = dataset_digests(cells, data)
    dest = tmp_path / "kept"
    old = replace(cells[0], seed=99)
    superseded = _write_record(old, dest, digests[old.dataset])
    assert cli_main(["keep", "--profile", "ci", "--params", str(ROOT / "params.yaml"), "--cells",
                     str(tmp_path / "none"), "--dest", str(dest), "--data-dir", str(data)]) == 0
    err = capsys.readouterr().err
    assert f"0 of {len(cells)} records copied" in err
    assert f"removed 1 record(s) of cells no longer in the profile (still in git history): {superseded.name}" in err
    assert not superseded.exists()
