"""METHOD_VERSION must move when the method's code does: a record is never reused across methods.

The method modules' code (harness/corrupt.py, models.py, train.py, optim.py, data.py, prepare.py,
cell.py, config.py; comments, docstrings and layout excluded) has a digest recorded per
METHOD_VERSION in harness/method_digests.json. When the code changes, this test fails until a
developer decides:
  * the change can alter a cell's numbers: bump METHOD_VERSION in harness/config.py (every cell
    then gets a new identity and is recomputed), then `python -m harness method-digest --write`;
  * it cannot (a refactor): just `python -m harness method-digest --write`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import harness
from harness.cli import main
from harness.config import METHOD_DIGESTS, METHOD_MODULES, METHOD_VERSION, method_digest, stored_method_digests

PACKAGE = Path(harness.__file__).parent


def test_method_version_is_bumped_when_the_method_changes():
    stored, current = stored_method_digests().get(METHOD_VERSION), method_digest()
    assert stored == current, (
        f"the method's code (harness/{', '.join(METHOD_MODULES)}) changed since METHOD_VERSION "
        f"{METHOD_VERSION!r} was recorded (digest {stored} -> {current}). If the change can alter any cell's "
        "numbers, bump METHOD_VERSION in harness/config.py; either way then run "
        "`python -m harness method-digest --write` to record the new digest.")


def copy_of_the_method(to: Path) -> Path:
    to.mkdir()
    for name in METHOD_MODULES:
        shutil.copy(PACKAGE / name, to / name)
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
