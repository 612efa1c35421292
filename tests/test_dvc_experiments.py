"""The verdicts in DVC's own views: `dvc exp run -S` twice with two settings, then `dvc exp show`.

The report stage declares results/verdicts.json (per source, claim -> "VERDICT (S/C/I)") as a DVC
metrics file, so each experiment carries its verdicts and `dvc exp show` sets them side by side. This
test runs README's "The verdicts in DVC's views" in a real git + DVC project: a copy of this
checkout's files (tracked and untracked-but-not-ignored, as they are on disk: the code under test, not
HEAD's), committed as `main` in a fresh repository under tmp_path, with data/ copied from this
checkout (`dvc pull` first). Experiments and their refs live in that temporary repository only.

On the `ci` profile (tiny random models): the first experiment runs the whole pipeline (40 cells),
the second drops SST-2 from table2_cls, so it computes no new cell (results/cells persists) and
reruns the stages after the grid. Measured on 2 cores shared with other jobs (load average 12-16):
292 s + 61 s, 6 minutes in all. The first experiment alone used 91 CPU-s in another run, so on 2 idle
cores the test should take about 2 minutes (an estimate, not measured). Hence the `slow` mark.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VERDICTS = "results/verdicts.json"
SETTINGS = {  # experiment name -> its `-S` overrides, as README shows them
    "ci-both": ["profile=ci"],
    "ci-agnews": ["profile=ci", "profiles.ci.blocks.0.datasets=[ag_news]"],
}
DATASETS = {"ci-both": ["sst2", "ag_news"], "ci-agnews": ["ag_news"]}  # table2_cls's datasets in each
TABLE = ["--drop", ".*", "--keep", r"^Experiment$|^cells\.(expected|ok)$|^grid\."]  # README's columns

pytestmark = pytest.mark.slow


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _dvc(*args: str, cwd: Path) -> str:
    return _run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def _copy_checkout(root: Path) -> None:
    """This checkout's files as they are on disk (not git's HEAD), ignored ones left out."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = REPO / name
        if source.is_file():  # a tracked file deleted on disk is left out, as a commit would
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """A git + DVC project from this checkout, both experiments run in it; (root, verdicts each run wrote, seconds)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the project is copied from `git ls-files`")
    if not (REPO / "data").is_dir():
        pytest.skip("data/ is missing: run `dvc pull` first")
    root = tmp_path_factory.mktemp("dvc-exp") / "repo"
    root.mkdir()
    _copy_checkout(root)
    shutil.copytree(REPO / "data", root / "data")
    assert (root / ".dvc" / "config").is_file() and (root / "dvc.yaml").is_file()
    _run("git", "init", "-q", "-b", "main", cwd=root)
    for key, value in (("user.name", "test"), ("user.email", "test@example.com"), ("commit.gpgsign", "false")):
        _run("git", "config", key, value, cwd=root)
    _run("git", "add", "-A", cwd=root)
    _run("git", "commit", "-q", "-m", "baseline", cwd=root)

    wrote, seconds = {}, {}
    for name, overrides in SETTINGS.items():
        start = time.monotonic()
        _dvc("exp", "run", "-n", name, *(arg for o in overrides for arg in ("-S", o)), cwd=root)
        seconds[name] = time.monotonic() - start
        # `dvc exp run` applies the experiment to the workspace: what this run wrote
        wrote[name] = json.loads((root / VERDICTS).read_text())
    return root, wrote, seconds


def _shown(root: Path) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> its data (params, metrics), the experiments of `main`."""
    baselines = json.loads(_dvc("exp", "show", "--json", cwd=root))
    found = {}
    for baseline in baselines:
        for experiment in baseline.get("experiments") or []:
            rev = experiment["revs"][0]
            assert not rev.get("error"), rev["error"]
            found[experiment["name"]] = rev["data"]
    return found


def test_exp_show_holds_each_experiments_own_verdicts(experiments):
    root, wrote, seconds = experiments
    print(f"dvc exp run: {', '.join(f'{n} {s:.0f} s' for n, s in seconds.items())}")
    shown = _shown(root)
    assert set(SETTINGS) <= set(shown), f"experiments in `dvc exp show`: {sorted(shown)}"
    for name in SETTINGS:
        metrics = shown[name]["metrics"]
        assert VERDICTS in metrics, f"{VERDICTS} is not among {name}'s metrics: {sorted(metrics)}"
        assert metrics[VERDICTS]["data"] == wrote[name]
        params = shown[name]["params"]["params.yaml"]["data"]
        assert params["profile"] == "ci"
        assert params["profiles"]["ci"]["blocks"][0]["datasets"] == DATASETS[name]
        assert set(wrote[name]) == {"paper", "grid"}
        assert wrote[name]["grid"] and all(v.split(" (")[0] in {"SUPPORTED", "CONTRADICTED", "INCONCLUSIVE"}
                                           for v in wrote[name]["grid"].values())
    # the setting reached each experiment: one dataset fewer, fewer cells; the paper's tables are the same. The
    # ci profile's tiny random models learn nothing, so every one of their runs is a failed run (at or below what a
    # guess scores: issue 32) and both experiments' F1 verdicts read INCONCLUSIVE with nothing compared: they may
    # agree, so the setting is read off the cells each experiment expected
    expected = {name: shown[name]["metrics"]["results/summary.json"]["data"]["cells"]["expected"] for name in SETTINGS}
    assert expected["ci-both"] > expected["ci-agnews"], expected
    assert wrote["ci-both"]["grid"].keys() == wrote["ci-agnews"]["grid"].keys()
    assert wrote["ci-both"]["paper"] == wrote["ci-agnews"]["paper"]


def test_exp_show_table_prints_the_verdict_columns(experiments):
    """README's `dvc exp show --md ...` command: one row per experiment, with its grid verdicts."""
    root, wrote, _ = experiments
    table = _dvc("exp", "show", "--md", "--hide-workspace", *TABLE, cwd=root)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Experiment", "cells.expected", "cells.ok", *(f"grid.{c}" for c in wrote["ci-both"]["grid"])]
    for name in SETTINGS:
        rows = [line for line in table.splitlines() if f"[{name}]" in line]
        assert len(rows) == 1, table
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[3:] == list(wrote[name]["grid"].values()), table
