"""A cell's identity: canonical numbers, the method's version and the data; records read and written safely."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml

import harness.method.config
from harness.cli import main
from harness.errors import BadInput, Unwritable
from harness.files import write_atomic, write_json_atomic, write_text_atomic
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.grid.run import is_done
from harness.method.config import INT_FIELDS, CellConfig, cell_identity
from harness.method.data import dataset_digest
from harness.method.record import RECORD_SCORES, RecordWarning, cell_record, read_record, record_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BASE = CellConfig(model="tiny-bert", dataset="sst2")


# ---------------------------------------------------------------- canonical numbers


@pytest.mark.parametrize("fraction", [1, 1.0, Fraction(1), np.float64(1.0), np.int64(1)])
def test_numbers_are_normalised_before_hashing(fraction):
    config = BASE.with_(fraction=fraction, lr=1, epochs=np.int64(3))
    reference = BASE.with_(fraction=1.0, lr=1.0, epochs=3)
    assert config.hash == reference.hash and config.to_dict() == reference.to_dict()
    assert type(config.fraction) is float and type(config.lr) is float and type(config.epochs) is int


def test_zero_fraction_is_one_cell_whatever_its_spelling():
    hashes = {BASE.with_(fraction=f, position=p).hash for f in (0, 0.0, -0.0, Fraction(0)) for p in ("none", "top")}
    assert len(hashes) == 1
    assert BASE.with_(position="bottom", fraction=Fraction(1, 2)).hash == BASE.with_(position="bottom", fraction=0.5).hash


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("value", [3.0, "3", True, None, 2.5])
def test_integer_fields_must_be_integers(name, value):
    if value is None and name in harness.method.config.OPTIONAL_INT_FIELDS:
        return  # None means "the default size"
    with pytest.raises(BadInput, match=rf"^{name} must be a whole number \(an integer such as 3\), got {value!r}$"):
        BASE.with_(**{name: value})


@pytest.mark.parametrize("name, value", [("fraction", "0.5"), ("lr", "1e-3"), ("lr", True), ("fraction", None)])
def test_real_fields_must_be_numbers(name, value):
    with pytest.raises(BadInput, match=f"{name} must be a number"):
        BASE.with_(**{name: value})


def test_params_and_cli_give_the_same_message(tmp_path, capsys):
    message = "epochs must be a whole number (an integer such as 3), got 3.0"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": {"blocks": [
        {"models": {"tiny-bert": [0]}, "datasets": ["sst2"], "lrs": [1e-3], "seeds": [0], "epochs": 3.0}]}}}))
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand(load_profile("t", params))
    assert main(["cell", "--model", "tiny-bert", "--epochs", "3.0"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_a_whole_epochs_value_is_one_cell_from_the_cli_and_params(tmp_path, machine):
    # The profile leaves precision at `auto`: its cells hold what auto resolves to on this (fake) machine,
    # and so must the configs they are compared with (CellConfig's own default is fp32).
    params = tmp_path / "params.yaml"
    params.write_text("profile: t\nprofiles:\n  t:\n    blocks:\n      - {models: {tiny-bert: [0, '1/2']}, "
                      "datasets: [sst2], positions: [top], lrs: [5e-5], seeds: [0], epochs: 3}\n")
    cells = expand(load_profile("t", params))
    expected = BASE.with_(precision=machine.precision)
    assert {c.hash for c in cells} == {expected.with_(epochs=3).hash, expected.with_(position="top", fraction=0.5).hash}


# ---------------------------------------------------------------- what the identity covers


def test_identity_covers_config_method_version_and_data(monkeypatch):
    identity = cell_identity(BASE, "data-a")
    assert len(identity) == 16 and identity == cell_identity(BASE.with_(fraction=0), "data-a")
    assert cell_identity(BASE.with_(seed=1), "data-a") != identity
    assert cell_identity(BASE.with_(precision="bf16"), "data-a") != identity
    assert cell_identity(BASE, "data-b") != identity
    monkeypatch.setattr(harness.method.config, "METHOD_VERSION", "999")
    assert cell_identity(BASE, "data-a") != identity


def record(config: CellConfig, digest: str) -> dict:
    return {"config": config.to_dict(), "config_hash": config.hash, "identity": cell_identity(config, digest),
            "method_version": harness.method.config.METHOD_VERSION, "data_digest": digest, "status": "ok", "data": {},
            **dict.fromkeys(RECORD_SCORES, 1.0)}


def test_a_record_is_never_reused_for_other_data(tmp_path):
    import shutil

    shutil.copytree(DATA / "sst2", tmp_path / "data" / "sst2")
    before = dataset_digest("sst2", tmp_path / "data")
    write_json_atomic(record_path(BASE, tmp_path / "cells", before), record(BASE, before))
    assert is_done(BASE, tmp_path / "cells", before)
    labels = tmp_path / "data" / "sst2" / "labels.json"
    labels.write_text(labels.read_text() + "\n")  # any byte of any file of the dataset
    after = dataset_digest("sst2", tmp_path / "data")
    assert after != before and not is_done(BASE, tmp_path / "cells", after)


def test_a_record_holding_another_identity_is_not_this_cells(tmp_path):
    path = write_json_atomic(record_path(BASE, tmp_path, "d"), record(BASE.with_(seed=5), "d"))
    assert read_record(path) is not None and cell_record(BASE, "d", tmp_path) is None


# ---------------------------------------------------------------- unreadable records are missing records


@pytest.mark.parametrize("content, why", [
    (b"\xff\xfe\x00{", "not UTF-8"),
    (b'{"config": {', "not JSON"),
    (b"[1, 2, 3]", "JSON list, not an object"),
    (b'"a string"', "JSON str, not an object"),
    (b'{"config": {}, "status": "ok"}', "missing or malformed keys"),
    (b"", "not JSON"),
])
def test_unreadable_records_are_warned_about_by_name_and_count_as_missing(tmp_path, content, why):
    path = record_path(BASE, tmp_path, "d")
    path.write_bytes(content)
    with pytest.warns(RecordWarning, match=f"{path.name} is not a readable result record \\({why}"):
        assert cell_record(BASE, "d", tmp_path) is None
    assert not path.with_name("missing.json").exists() and read_record(tmp_path / "missing.json") is None


# ---------------------------------------------------------------- the one atomic writer


def test_the_atomic_writer_leaves_a_complete_0644_file_or_nothing(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello" and stat.S_IMODE(path.stat().st_mode) == 0o644

    def torn(handle):
        handle.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(path, torn)
    assert path.read_text() == "hello" and sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_an_unwritable_target_is_one_unwritable_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(Unwritable, match="cannot write .*a-file"):
        write_json_atomic(tmp_path / "a-file" / "r.json", {})
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):
        pytest.skip("this process may write into read-only folders (root)")
    with pytest.raises(Unwritable, match="Permission denied"):
        write_json_atomic(locked / "r.json", {})
    assert list(locked.iterdir()) == []


def test_no_module_writes_files_but_through_the_atomic_writer():
    """Every file the project writes goes through harness.files.write_atomic (one rule, one place)."""
    root = Path(__file__).resolve().parents[1]
    writers = (".write_text(", ".write_bytes(", "savefig(", ".to_csv(", ".to_parquet(", "np.savez(", "json.dump(",
               "open(\"w", "open('w", "NamedTemporaryFile(\"w", "os.replace(")
    allowed = {("harness/files.py", "os.replace("), ("harness/method/memory.py", ".write_text(")}  # memory: /proc's clear_refs
    found = []
    for path in [*root.glob("harness/**/*.py"), *root.glob("claims/*.py")]:
        text = path.read_text()
        for writer in writers:
            if writer in text and (str(path.relative_to(root)), writer) not in allowed:
                lines = [line.strip() for line in text.splitlines() if writer in line]
                if not all("lambda handle" in line or "to_csv(index" in line or ".to_csv()" in line for line in lines):
                    found.append(f"{path.relative_to(root)}: {lines}")
    assert not found, found
