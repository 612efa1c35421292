"""METHOD_VERSION must move when the method's code does: a record is never reused across methods.

The method modules' code (harness/method/corrupt.py, models.py, train.py, optim.py, data.py, prepare.py,
cell.py, config.py; comments, docstrings and layout excluded) has a digest recorded per
METHOD_VERSION in harness/method/method_digests.json. When the code changes, this test fails until a
developer decides:
  * the change can alter a cell's numbers: bump METHOD_VERSION in harness/method/config.py (every cell
    then gets a new identity and is recomputed), then `python -m harness method-digest --write`;
  * it cannot (a refactor): just `python -m harness method-digest --write`.
A researcher who changes the method and runs the pipeline is told as well: `grid` (the pipeline's
grid stage) and `cell` run no cell until the decision is recorded; reading the records stays allowed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_bad_inputs import good_record

import harness
import harness.method.digest
from harness.cli import main
from harness.errors import MethodChanged
from harness.files import write_json_atomic
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.method.config import METHOD_VERSION
from harness.method.data import dataset_digest
from harness.method.digest import (
    METHOD_DIGESTS,
    METHOD_MODULES,
    check_method_digest,
    method_digest,
    refusal,
    stored_method_digests,
)
from harness.method.record import record_path

PACKAGE = Path(harness.__file__).parent
METHOD = PACKAGE / "method"  # where the method modules are
DATA = PACKAGE.parents[1] / "shared" / "datasets"
# The mutation: LayerNorm weights reset to 0.5 instead of 1, committed, then `dvc repro`.
LAYERNORM_RESET = 'param.fill_(1.0 if param_name == "weight" else 0.0)'


def test_method_version_is_bumped_when_the_method_changes():
    stored, current = stored_method_digests().get(METHOD_VERSION), method_digest()
    assert stored == current, (
        f"the method's code (harness/method/{', '.join(METHOD_MODULES)}) changed since METHOD_VERSION "
        f"{METHOD_VERSION!r} was recorded (digest {stored} -> {current}). If the change can alter any cell's "
        "numbers, bump METHOD_VERSION in harness/method/config.py; either way then run "
        "`python -m harness method-digest --write` to record the new digest.")


def copy_of_the_method(to: Path) -> Path:
    to.mkdir()
    for name in METHOD_MODULES:
        shutil.copy(METHOD / name, to / name)
    return to


def test_comments_and_docstrings_do_not_count_but_code_does(tmp_path):
    folder = copy_of_the_method(tmp_path / "method")
    reference = method_digest(folder)
    train = folder / "train.py"
    source = train.read_text()
    reworded = source.replace('"""', '"""Reworded. ', 1).replace("\n\n", "\n\n# a comment\n\n", 3)
    train.write_text("# a header comment\n" + reworded + "\n# end\n")
    assert method_digest(folder) == reference
    train.write_text(source.replace("def ", "def _renamed_", 1))
    assert method_digest(folder) != reference


def test_the_digest_is_printed_by_one_command(capsys):
    assert main(["method-digest"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == method_digest()
    assert f"METHOD_VERSION {METHOD_VERSION}" in captured.err and str(METHOD_DIGESTS.name) in captured.err


# ---------------------------------------------------------------- where cells run: grid and cell refuse a changed method


def mutated_method(to: Path) -> Path:
    """A copy of the method modules with the issue's one-line change to the corruption."""
    folder = copy_of_the_method(to)
    corrupt = folder / "corrupt.py"
    source = corrupt.read_text()
    assert source.count(LAYERNORM_RESET) == 1
    corrupt.write_text(source.replace(LAYERNORM_RESET, LAYERNORM_RESET.replace("1.0", "0.5")))
    return folder


def write_params(tmp_path: Path) -> Path:
    # precision fixed: the subprocess below resolves `auto` on the real machine, this process on a fake one
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": {
        "defaults": {"epochs": 1, "n_train": 32, "n_test": 16, "n_val": 8, "batch_size": 16, "max_length": 32,
                     "lrs": [1.0e-3], "seeds": [0], "precision": "fp32"},
        "blocks": [{"name": "b", "models": {"tiny-bert": [0, 1]}, "datasets": ["sst2"]}]}}}))
    return params


def test_this_checkout_may_run_cells():
    assert check_method_digest() == method_digest() == stored_method_digests()[METHOD_VERSION]


def test_the_refusal_says_what_happened_and_what_to_do():
    assert refusal("abc", "abc") is None
    changed = refusal("abc", "def", "2")
    assert "changed since METHOD_VERSION 2 was recorded" in changed and "(digest abc -> def)" in changed
    assert "no cell was run" in changed and "bump METHOD_VERSION in harness/method/config.py" in changed
    assert "if not (a refactor), just run `python -m harness method-digest --write`" in changed
    unrecorded = refusal(None, "def", "3")
    assert "no digest recorded for METHOD_VERSION 3" in unrecorded and "method-digest --write" in unrecorded


@pytest.fixture
def changed_method(tmp_path, monkeypatch) -> Path:
    """This package's method modules, as far as the check can tell, carry the issue's mutation; no cell may start."""
    monkeypatch.setattr(harness.method.digest, "PACKAGE", mutated_method(tmp_path / "method"))
    for stage in ("harness.method.cell.run_cell", "harness.cli.method.run_cell", "harness.grid.run.run_grid"):
        monkeypatch.setattr(stage, lambda *a, **k: pytest.fail("a cell started"))
    return tmp_path


@pytest.mark.parametrize("verb", ["grid", "cell"])
def test_a_changed_method_runs_no_cell_and_says_so_in_one_line(verb, changed_method, capsys):
    out = changed_method / "cells"
    argv = (["grid", "--params", str(write_params(changed_method)), "--out", str(out), "--data-dir", str(DATA),
             "--cache-dir", str(changed_method / "cache"), "--no-progress"] if verb == "grid" else
            ["cell", "--model", "tiny-bert", "--dataset", "sst2", "--out", str(out / "r.json"), "--data-dir",
             str(DATA), "--no-progress"])
    with pytest.raises(MethodChanged):
        check_method_digest()
    assert main(argv) == MethodChanged.exit_code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the method's code (harness/method/corrupt.py, "), captured.err
    assert f"changed since METHOD_VERSION {METHOD_VERSION} was recorded" in lines[0]
    assert "method-digest --write" in lines[0] and captured.out == ""
    assert not out.exists()  # no record, no lock, nothing


def test_a_changed_method_still_lists_reads_and_aggregates_the_records(changed_method, capsys):
    params, cells_dir = write_params(changed_method), changed_method / "cells"
    digest = dataset_digest("sst2", DATA)
    cells = expand(load_profile("t", params))
    for config, f1 in zip(cells, (80.0, 50.0)):
        write_json_atomic(record_path(config, cells_dir, digest), good_record(config, digest, f1))
    common = ["--params", str(params), "--data-dir", str(DATA)]
    assert main(["grid", *common, "--list", "--out", str(cells_dir)]) == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == ["done", "done"]
    assert main(["aggregate", *common, "--cells", str(cells_dir), "--out", str(changed_method / "tables")]) == 0
    assert (changed_method / "tables" / "cells.csv").exists()


def test_the_pipelines_grid_command_refuses_a_committed_change_of_the_corruption(tmp_path):
    """The issue's case, as `dvc repro` runs its grid stage: a copy of the package with corrupt.py changed."""
    source = tmp_path / "src"
    shutil.copytree(PACKAGE, source / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    mutated_method(tmp_path / "method")  # the same edit, checked to apply once
    corrupt = source / "harness" / "method" / "corrupt.py"
    corrupt.write_text(corrupt.read_text().replace(LAYERNORM_RESET, LAYERNORM_RESET.replace("1.0", "0.5")))
    env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "harness", "grid", "--params", str(write_params(tmp_path)),
                           "--out", str(tmp_path / "cells"), "--data-dir", str(DATA), "--cache-dir",
                           str(tmp_path / "cache"), "--no-progress"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == MethodChanged.exit_code, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: the method's code"), done.stderr
    assert not (tmp_path / "cells").exists()
