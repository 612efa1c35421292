"""Every bad input and fault: one ``error:`` line, a documented exit code, no traceback, good results kept.

Each case breaks one thing in a small project folder (a two-cell tiny profile, its data, two good
records and the tables made from them) and runs one command there: ``python -m harness cell | grid
| corrupt | aggregate | plots | report`` or ``pytest claims/``. The cases that used to end in a
traceback run as real subprocesses (started together, to keep the battery short); the others call
``harness.cli.main`` in-process, where an uncaught exception would fail the test just the same.
After every case the pre-existing good records and tables are byte-identical.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import EXIT_CODES, BadData, BadInput, BadResults, Unwritable
from harness.files import write_json_atomic
from harness.grid.aggregate import aggregate
from harness.method.config import METHOD_VERSION, CellConfig, cell_identity
from harness.method.data import dataset_digest
from harness.method.record import RECORD_SCORES, read_record, record_path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
PAPER_TABLES = REPO / "claims" / "paper_tables.csv"
TINY = ("--model", "tiny-bert", "--dataset", "sst2", "--n-train", "32", "--n-test", "16", "--n-val", "8",
        "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--no-progress")
# precision fixed, not `auto`: the template's records are made here (under conftest's fake machine) and found by
# `python -m harness grid` subprocesses, which resolve `auto` on the real one.
PROFILE = {"defaults": {"epochs": 1, "n_train": 32, "n_test": 16, "n_val": 8, "batch_size": 16, "max_length": 32,
                        "lrs": [1.0e-3], "seeds": [0], "precision": "fp32"},
           "blocks": [{"name": "b", "models": {"tiny-bert": [0, 1]}, "datasets": ["sst2"]}]}
CODE = {"input": BadInput.exit_code, "data": BadData.exit_code, "unwritable": Unwritable.exit_code,
        "results": BadResults.exit_code, "pytest usage": 4}


# ---------------------------------------------------------------- the project folder every case starts from


def params_text(**defaults) -> str:
    profile = {**PROFILE, "defaults": {**PROFILE["defaults"], **defaults}}
    return yaml.safe_dump({"profile": "t", "profiles": {"t": profile}})


def good_record(config: CellConfig, digest: str, f1: float) -> dict:
    scores = {**dict.fromkeys(RECORD_SCORES, 1.0), "best_test_f1": f1, "selected_test_f1": f1, "selected_val_f1": f1,
              "majority_f1": 40.0, "final_test_f1": f1, "level": 100.0 * config.fraction, "n_layers": 4,
              "n_corrupted": round(4 * config.fraction), "best_epoch": 1, "selected_epoch": 1}
    return {"config": config.to_dict(), "config_hash": config.hash, "identity": cell_identity(config, digest),
            "method_version": METHOD_VERSION, "data_digest": digest, "status": "ok", **scores,
            "data": {"n_train": 32, "n_val": 8, "n_test": 16, "notes": []}, "versions": {"harness": "test"},
            "device": "cpu"}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """params.yaml, data/sst2, results/cells/ with the profile's two (made-up) records, results/*.csv."""
    from harness.grid.expand import expand
    from harness.grid.profiles import load_profile

    root = tmp_path_factory.mktemp("template")
    (root / "params.yaml").write_text(params_text())
    shutil.copytree(DATA / "sst2", root / "data" / "sst2")
    digest = dataset_digest("sst2", root / "data")
    cells = expand(load_profile("t", root / "params.yaml"))
    for config, f1 in zip(cells, (80.0, 50.0)):
        write_json_atomic(record_path(config, root / "results" / "cells", digest), good_record(config, digest, f1))
    aggregate("t", cells, root / "results" / "cells", root / "results", {"sst2": digest})
    return root


def copy_world(template: Path, to: Path) -> Path:
    shutil.copytree(template, to, symlinks=True)
    return to


def good_files(world: Path) -> dict[str, bytes]:
    """The results a failed command must leave alone (lock files are not results)."""
    return {str(p.relative_to(world)): p.read_bytes() for p in sorted((world / "results").rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


def one_cell_record(world: Path, index: int = 1) -> Path:
    """The record file of the profile's ``index``-th cell."""
    return sorted((world / "results" / "cells").glob("*.json"))[index]


# ---------------------------------------------------------------- the cases


def break_file(relative: str, content: bytes | None = None, size: int | None = None) -> Callable[[Path], None]:
    def setup(world: Path) -> None:
        path = world / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            os.truncate(path, size)
        else:
            path.write_bytes(content)
    return setup


def rewrite_parquet(change: Callable) -> Callable[[Path], None]:
    def setup(world: Path) -> None:
        import pandas as pd

        path = world / "data" / "sst2" / "train.parquet"
        change(pd.read_parquet(path)).to_parquet(path)
    return setup


def read_only(relative: str) -> Callable[[Path], None]:
    def setup(world: Path) -> None:
        (world / relative).mkdir(parents=True, exist_ok=True)
        (world / relative).chmod(0o555)
    return setup


def break_record(content: bytes) -> Callable[[Path], None]:
    return lambda world: one_cell_record(world).write_bytes(content)


def record_is_a_folder(world: Path) -> None:
    """A folder where a record should be: unreadable, and not the harness's to delete."""
    path = one_cell_record(world)
    path.unlink()
    path.mkdir()


def text_in_a_score(world: Path) -> None:
    """cells.csv with one best_test_f1 that is not a number."""
    table = (world / "results" / "cells.csv").read_text()
    (world / "scores.csv").write_text(re.sub(r",ok,[0-9.]+,", ",ok,abc,", table, count=1))


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]  # after `python -m harness`, or after `pytest claims/` for tool "pytest"
    code: int
    message: str  # a fragment of the error line (of the warning line when code is 0)
    setup: Callable[[Path], None] | None = None
    tool: str = "harness"
    subprocess: bool = False  # a traceback case of the issue: prove it in a real process
    replaced: bool = False  # the case breaks a record that must come back recomputed
    root_proof: bool = False  # needs writes really refused: drop root's override (setpriv) in the subprocess


PARAMS = ("--params", "params.yaml")
CASES = {
    # --- the tracebacks, as real processes
    "cell: corrupt parquet": Case(("cell", *TINY), CODE["data"], "train.parquet", break_file("data/sst2/train.parquet", size=100), subprocess=True),
    "grid: epochs 3.0": Case(("grid", *PARAMS, "--list"), CODE["input"], "epochs must be a whole number (an integer such as 3), got 3.0",
                             break_file("params.yaml", params_text(epochs=3.0).encode()), subprocess=True),
    "cell: read-only output folder": Case(("cell", *TINY, "--out", "locked/r.json"), CODE["unwritable"], "locked",
                                          read_only("locked"), subprocess=True, root_proof=True),
    "grid: malformed YAML": Case(("grid", *PARAMS), CODE["input"], "params.yaml, line 3",
                                 break_file("params.yaml", b"profile: t\nprofiles:\n  t: {blocks: [}\n"), subprocess=True),
    "grid: record not UTF-8": Case(("grid", *PARAMS, "--no-progress"), 0, "not UTF-8", break_record(b"\xff\xfe{}"),
                                   subprocess=True, replaced=True),

    "claims: empty results CSV": Case(("--results", "empty.csv"), CODE["pytest usage"], "empty.csv",
                                      break_file("empty.csv", b""), tool="pytest", subprocess=True),
    # --- cell
    "cell: unknown model": Case(("cell", *TINY, "--model", "no-such-model"), CODE["input"], "unknown model"),
    "cell: unknown dataset": Case(("cell", *TINY, "--dataset", "no_such_data"), CODE["input"], "unknown dataset"),
    "cell: fraction not whole layers": Case(("cell", *TINY, "--position", "bottom", "--fraction", "0.3"), CODE["input"], "not a whole number"),
    "cell: fraction 1.5": Case(("cell", *TINY, "--position", "bottom", "--fraction", "1.5"), CODE["input"], "fraction must be in [0, 1]"),
    "cell: negative lr": Case(("cell", *TINY, "--lr=-1e-3"), CODE["input"], "lr must be a finite number > 0"),
    "cell: infinite lr": Case(("cell", *TINY, "--lr", "inf"), CODE["input"], "lr must be a finite number > 0, got inf"),
    "cell: max_length beyond the position table": Case(("cell", *TINY, "--max-length", "100000"), CODE["input"],
                                                        "exceeds tiny-bert's 512 position embeddings"),
    "cell: epochs 3.0": Case(("cell", *TINY, "--epochs", "3.0"), CODE["input"], "epochs must be a whole number (an integer such as 3), got 3.0"),
    "cell: epochs three": Case(("cell", *TINY, "--epochs", "three"), CODE["input"], "got 'three'"),
    "cell: n_train 0": Case(("cell", *TINY, "--n-train", "0"), CODE["input"], "n_train must be a positive number"),
    "cell: negative seed": Case(("cell", *TINY, "--seed=-1"), CODE["input"], "seed must be in [0, 2**32)"),
    "cell: n_test beyond the data": Case(("cell", *TINY, "--n-test", "100000000"), CODE["input"], "too few rows to train on"),
    "cell: text labels": Case(("cell", *TINY), CODE["data"], "labels must be integer ids",
                              rewrite_parquet(lambda f: f.assign(label=f["label"].astype(str)))),
    "cell: missing data folder": Case(("cell", *TINY, "--data-dir", "no-data"), CODE["data"], "dvc pull"),
    "cell: labels out of range": Case(("cell", *TINY), CODE["data"], "labels must be in [0, 2)",
                                      rewrite_parquet(lambda f: f.assign(label=f["label"] + 5))),
    "cell: missing column": Case(("cell", *TINY), CODE["data"], "missing column(s) ['text']",
                                 rewrite_parquet(lambda f: f.rename(columns={"text": "sentence"}))),
    "cell: empty split": Case(("cell", *TINY), CODE["data"], "no rows", rewrite_parquet(lambda f: f.iloc[:0])),
    "cell: labels.json not JSON": Case(("cell", *TINY), CODE["data"], "labels.json", break_file("data/sst2/labels.json", b"{oops")),
    "cell: output under a file": Case(("cell", *TINY, "--out", "params.yaml/r.json"), CODE["unwritable"], "params.yaml"),
    "cell: cache under a file": Case(("cell", *TINY, "--cache-dir", "params.yaml/cache"), CODE["unwritable"], "params.yaml"),
    "cell: non-finite loss": Case(("cell", *TINY, "--lr", "1e30"), 3, "diverged"),
    # --- grid
    "grid: record a JSON list": Case(("grid", *PARAMS, "--no-progress"), 0, "JSON list, not an object",
                                     break_record(b"[1, 2]"), replaced=True),
    "grid: params not a mapping": Case(("grid", *PARAMS), CODE["input"], "must be a mapping", break_file("params.yaml", b"- 1\n- 2\n")),
    "grid: params not found": Case(("grid", "--params", "nope.yaml"), CODE["input"], "nope.yaml not found"),
    "grid: unknown profile key": Case(("grid", *PARAMS), CODE["input"], "unknown keys ['learning_rates']",
                                      break_file("params.yaml", params_text(learning_rates=[1]).encode())),
    "grid: seeds [0.5]": Case(("grid", *PARAMS), CODE["input"], "seeds must be a whole number",
                              break_file("params.yaml", params_text(seeds=[0.5]).encode())),
    "grid: epochs true": Case(("grid", *PARAMS), CODE["input"], "got True", break_file("params.yaml", params_text(epochs=True).encode())),
    "grid: n_train 'many'": Case(("grid", *PARAMS), CODE["input"], "n_train must be a whole number",
                                 break_file("params.yaml", params_text(n_train="many").encode())),
    "grid: corrupt parquet": Case(("grid", *PARAMS), CODE["data"], "train.parquet", break_file("data/sst2/train.parquet", size=100)),
    "grid: output under a file": Case(("grid", *PARAMS, "--out", "params.yaml/cells"), CODE["unwritable"], "params.yaml"),
    "grid: record is a folder": Case(("grid", *PARAMS), CODE["results"], "cannot read result record", record_is_a_folder),
    "unknown verb": Case(("fly",), CODE["input"], "invalid choice"),
    # --- corrupt
    "corrupt: fraction 1.5": Case(("corrupt", "--model", "tiny-bert", "--fraction", "1.5"), CODE["input"], "fraction"),
    "corrupt: fraction abc": Case(("corrupt", "--model", "tiny-bert", "--fraction", "abc"), CODE["input"], "--fraction"),
    "corrupt: unknown model": Case(("corrupt", "--model", "no-such-model", "--fraction", "0.5"), CODE["input"], "unknown model"),
    # --- aggregate, plots, report
    "aggregate: no records": Case(("aggregate", *PARAMS, "--cells", "empty-cells", "--out", "tables"), CODE["results"], "no result records"),
    "aggregate: output under a file": Case(("aggregate", *PARAMS, "--out", "params.yaml/t"), CODE["unwritable"], "params.yaml"),
    "aggregate: data changed": Case(("aggregate", *PARAMS, "--out", "tables"), CODE["results"], "no result records",
                                    rewrite_parquet(lambda f: f.iloc[:-1])),
    "plots: no tables": Case(("plots", *PARAMS, "--results", "nowhere"), CODE["results"], "summary.csv not found"),
    "report: missing results folder": Case(("report", "--results-dir", "nowhere", "--paper-tables", str(PAPER_TABLES), "--out", "R.md"),
                                           CODE["results"], "cells.csv not found"),
    "report: empty cells.csv": Case(("report", "--results-dir", "results", "--paper-tables", str(PAPER_TABLES), "--out", "R.md"),
                                    CODE["results"], "not a readable CSV", break_file("results/cells.csv", b"")),
    "report: binary cells.csv": Case(("report", "--results-dir", "results", "--paper-tables", str(PAPER_TABLES), "--out", "R.md"),
                                     CODE["results"], "cells.csv", break_file("results/cells.csv", bytes(range(256)))),
    "report: output under a file": Case(("report", "--results-dir", "results", "--paper-tables", str(PAPER_TABLES),
                                         "--out", "params.yaml/R.md"), CODE["unwritable"], "params.yaml"),
    # --- pytest claims/
    "claims: binary results": Case(("--results", "results.bin"), CODE["pytest usage"], "results.bin",
                                   break_file("results.bin", bytes(range(256)) * 4), tool="pytest", subprocess=True),
    "claims: text in a score column": Case(("--results", "scores.csv"), CODE["pytest usage"],
                                           "column 'best_test_f1' must hold numbers, got 'abc'", text_in_a_score,
                                           tool="pytest", subprocess=True),
    "claims: headerless results": Case(("--results", "numbers.csv"), CODE["pytest usage"], "lacks column",
                                       break_file("numbers.csv", b"1,2,3\n4,5,6\n"), tool="pytest", subprocess=True),
}



# ---------------------------------------------------------------- running them


def command(case: Case) -> list[str]:
    if case.tool == "pytest":
        return [sys.executable, "-m", "pytest", str(REPO / "claims"), "-q", "-p", "no:cacheprovider", *case.argv]
    prefix = []
    if case.root_proof and os.geteuid() == 0:  # root writes into read-only folders unless it drops that power
        prefix = ["setpriv", "--bounding-set=-dac_override"]
    return [*prefix, sys.executable, "-m", "harness", *case.argv]


def runnable(case: Case) -> bool:
    return not (case.root_proof and os.geteuid() == 0 and not shutil.which("setpriv"))


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1"}


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    world: Path
    before: dict[str, bytes]
    replaced: Path | None


def _prepared(case: Case, world: Path) -> tuple[dict[str, bytes], Path | None]:
    replaced = one_cell_record(world) if case.replaced else None
    if case.setup:
        case.setup(world)
    before = good_files(world)
    if replaced is not None:
        before.pop(str(replaced.relative_to(world)))
    return before, replaced


@pytest.fixture(scope="module")
def subprocess_outcomes(template, tmp_path_factory) -> dict[str, Outcome]:
    """Every subprocess case, started at once (their imports, not their work, take the time)."""
    started = {}
    for name, case in CASES.items():
        if case.subprocess and runnable(case):
            world = copy_world(template, tmp_path_factory.mktemp("case") / "world")
            before, replaced = _prepared(case, world)
            process = subprocess.Popen(command(case), cwd=world, env=subprocess_env(), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            started[name] = (process, world, before, replaced)
    outcomes = {}
    for name, (process, world, before, replaced) in started.items():
        out, err = process.communicate(timeout=600)
        outcomes[name] = Outcome(process.returncode, out, err, world, before, replaced)
    return outcomes


def check(case: Case, outcome: Outcome) -> None:
    text = outcome.out + outcome.err
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert outcome.code == case.code, text
    if case.tool == "pytest":  # pytest's own format for a usage error: "ERROR: <message>"
        errors = [line for line in text.splitlines() if line.startswith("ERROR:")]
    else:
        errors = [line for line in outcome.err.splitlines() if line.startswith("error:")]
        others = [line for line in outcome.err.splitlines() if line and not line.startswith(("error:", "warning:"))]
        assert case.code == 0 or not others, outcome.err  # a failure says nothing but one error line (and warnings)
    if case.code == 0:
        warned = [line for line in outcome.err.splitlines() if line.startswith("warning:") and case.message in line]
        assert not errors and len(warned) == 1, text
    else:
        assert len(errors) == 1 and case.message in errors[0], text
    after = good_files(outcome.world)
    assert {name: after.get(name) for name in outcome.before} == outcome.before, "a pre-existing good result changed"
    if outcome.replaced is not None:  # recomputed, and atomically replaced by a readable record
        record = read_record(outcome.replaced)
        assert record is not None and record["identity"] == outcome.replaced.stem


def test_there_are_enough_cases():
    assert len(CASES) >= 25
    commands = {case.argv[0] if case.tool == "harness" else "pytest" for case in CASES.values()}
    assert {"cell", "grid", "corrupt", "aggregate", "report", "pytest"} <= commands
    assert {code for code, _ in EXIT_CODES} >= {case.code for case in CASES.values() if case.tool == "harness"}


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.subprocess])
def test_in_a_real_process(name, subprocess_outcomes):
    if not runnable(CASES[name]):
        pytest.skip("running as root without setpriv: a read-only folder cannot refuse writes")
    check(CASES[name], subprocess_outcomes[name])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.subprocess])
def test_in_process(name, template, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    world = copy_world(template, tmp_path / "world")
    before, replaced = _prepared(case, world)
    monkeypatch.chdir(world)
    code = main(list(case.argv))
    captured = capsys.readouterr()
    check(case, Outcome(code, captured.out, captured.err, world, before, replaced))


# ---------------------------------------------------------------- an unwritable output fails at once


def unwritable_folders(tmp_path: Path) -> dict[str, Path]:
    """Folders that refuse writes: read-only (where this process cannot override it) and one under a file."""
    (tmp_path / "a-file").write_text("x")
    folders = {"under a file": tmp_path / "a-file" / "out"}
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if not os.access(locked, os.W_OK):  # root may write anyway; the subprocess case covers it
        folders["read-only"] = locked
    return folders


@pytest.mark.parametrize("verb", ["cell", "grid"])
def test_an_unwritable_output_fails_at_once_before_any_model_tokenising_or_training(verb, template, tmp_path,
                                                                                     monkeypatch, capsys):
    # "At once" is what it does, not how long it takes (a clock would flake on a loaded machine): the slow
    # stages of a cell, loading the model, tokenising the data and training, must not start.
    world = copy_world(template, tmp_path / "world")
    monkeypatch.chdir(world)
    (world / "params.yaml").write_text(params_text(seeds=[7]))  # cells without records: the grid has work to do
    for stage in ("harness.method.cell.load_classifier", "harness.method.cell.prepare", "harness.method.cell.train_and_evaluate"):
        monkeypatch.setattr(stage, lambda *a, **k: pytest.fail("a model was loaded, data tokenised or a cell trained"))
    for kind, folder in unwritable_folders(tmp_path).items():
        argv = ["cell", *TINY, "--out", str(folder / "r.json")] if verb == "cell" else ["grid", *PARAMS, "--out", str(folder)]
        assert main(argv) == Unwritable.exit_code, kind
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write") and str(folder).split("/")[-1] in err, err
