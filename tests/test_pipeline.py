"""The whole DVC pipeline on the `ci` profile (tiny models), as `dvc repro` runs it: what CI checks."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.report.answer import inconsistencies
from harness.report.document import MEASURED_INPUTS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"


def _dvc(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A copy of the pipeline with `profile: ci`, its data, and one `dvc repro` already run."""
    root = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "harness", "claims"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc-plots-template")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "ci"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(SHARED_DATA, root / "data")
    shutil.copytree(REPO / "results" / "records", root / "results" / "records")  # the report's beyond-the-paper part
    for measured in MEASURED_INPUTS:  # the report's error rates and cost, which no stage makes
        shutil.copy(REPO / "results" / measured, root / "results")
    _dvc("init", "--no-scm", "-q", cwd=root)
    shutil.copytree(root / ".dvc-plots-template", root / ".dvc" / "plots", dirs_exist_ok=True)
    log = _dvc("repro", cwd=root)
    return root, log


def test_repro_runs_every_stage_and_writes_the_report(pipeline):
    root, log = pipeline
    for stage in ("prepare", "grid", "aggregate", "plots", "analyse", "report"):
        assert f"Running stage '{stage}'" in log
    cells = pd.read_csv(root / "results" / "cells.csv")
    listed = subprocess.run([sys.executable, "-m", "harness", "grid", "--profile", "ci", "--list"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert len(cells) == len(listed) and set(cells["status"]) <= {"ok", "failed_run", "diverged"}
    report = (root / "REPORT.md").read_text()
    assert "## Verdicts" in report and "no-complete-recovery" in report
    for section in ("### Claim × stratum, the paper's own tables", "### Claim × stratum, our grid",
                    "### Convergence of our grid", "### Per setting, our grid"):
        assert section in report
    assert "weakest stratum" in report and "Hardware and precision" in report
    for figure in ("f1_vs_level.png", "tsne.png", "cka.png", "layers.png"):
        assert (root / "results" / "plots" / figure).stat().st_size > 10_000
    assert "## How healing changes the representations" in report and "separation-order" in report
    assert "## Beyond the paper: the healing curve and the ablations" in report
    analysis = pd.read_csv(root / "results" / "analysis.csv")
    assert set(analysis["setting"]) == {"clean", "top", "bottom", "100%"} and set(analysis["seed"]) == {0, 1}
    # the answer first, each source judged once: no claim of one source with two verdicts anywhere in the report
    assert report.index("## The answer") < report.index("## Verdicts")
    assert inconsistencies(report) == []
    assert "## Healing or under-training?" in report and "**What would decide each open comparison**" in report


def test_a_second_repro_does_nothing(pipeline):
    root, _ = pipeline
    log = _dvc("repro", cwd=root)
    assert "Running stage" not in log


def test_changing_one_seed_reruns_only_those_cells(pipeline):
    root, _ = pipeline
    params = yaml.safe_load((root / "params.yaml").read_text())
    before = {p.name for p in (root / "results" / "cells").glob("*.json")}
    seeds = params["profiles"]["ci"]["defaults"]["seeds"]
    params["profiles"]["ci"]["defaults"]["seeds"] = seeds[:-1] + [max(seeds) + 100]
    params["profiles"]["ci"]["analysis"]["seeds"] = seeds[:-1] + [max(seeds) + 100]  # it names cells of the grid
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _dvc("repro", cwd=root)
    after = {p.name for p in (root / "results" / "cells").glob("*.json")}
    new = after - before
    assert before <= after  # finished cells are never deleted or recomputed
    per_seed = len(before) // len(seeds)
    assert len(new) == per_seed
