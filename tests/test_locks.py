"""No cell run twice: runs sharing a results folder claim cells through an OS lock per cell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.files import write_json_atomic
from harness.method.cell import run_cell
from harness.method.config import METHOD_VERSION, CellConfig, cell_identity
from harness.method.data import dataset_digest
from harness.method.record import RECORD_SCORES, lock_path, read_record, record_path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
CONFIG = CellConfig(model="tiny-bert", dataset="sst2", n_train=32, n_test=16, n_val=8, epochs=1, batch_size=16,
                    max_length=32, lr=1e-3)
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

# Holds the lock on argv[1] until killed, or for argv[2] seconds and then (if given) moves argv[3] to argv[4].
HOLDER = """
import os, sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
if len(sys.argv) > 3:
    os.replace(sys.argv[3], sys.argv[4])
lock.release()
"""


def hold(lock: Path, seconds: float, *move: Path) -> subprocess.Popen:
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds), *map(str, move)],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def computed(monkeypatch) -> list[CellConfig]:
    """Stands in for the expensive part of run_cell; lists the cells it computed."""
    calls = []

    def compute(config, spec, data_digest, path, **options):
        calls.append(config)
        return {"computed_by": "this test"}

    monkeypatch.setattr("harness.method.cell._compute", compute)
    return calls


def test_a_claimed_cell_is_left_to_its_holder_and_a_killed_holder_blocks_nothing(tmp_path, computed):
    dirs = {"out_dir": tmp_path / "cells", "data_dir": DATA, "cache_dir": tmp_path / "cache", "progress": False}
    lock = lock_path(record_path(CONFIG, dirs["out_dir"], dataset_digest("sst2", DATA)))
    holder = hold(lock, 600)
    try:
        assert run_cell(CONFIG, wait=False, **dirs) is None and computed == []
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: no cleanup, the OS drops its lock
        holder.wait()
    # wait=False never waits (a held lock gives None at once), so computing the cell proves the lock is free: no clock
    assert run_cell(CONFIG, wait=False, **dirs) == {"computed_by": "this test"}
    assert computed == [CONFIG]


def finished_record(config: CellConfig, digest: str) -> dict:
    return {"config": config.to_dict(), "config_hash": config.hash, "identity": cell_identity(config, digest),
            "method_version": METHOD_VERSION, "data_digest": digest, "status": "ok", "data": {},
            **dict.fromkeys(RECORD_SCORES, 1.0)}


def test_a_waiting_run_returns_the_record_its_holder_wrote(tmp_path, computed, capsys):
    digest = dataset_digest("sst2", DATA)
    path = record_path(CONFIG, tmp_path / "cells", digest)
    staged = write_json_atomic(path.with_name("staged.tmp"), finished_record(CONFIG, digest))
    holder = hold(lock_path(path), 1.5, staged, path)  # "computes" for 1.5 s, writes the record, releases
    record = run_cell(CONFIG, out_dir=tmp_path / "cells", data_dir=DATA, cache_dir=tmp_path / "cache", wait=True)
    holder.wait()
    assert record == finished_record(CONFIG, digest) and computed == []  # re-checked after the wait: not run twice
    assert "another run is computing this cell" in capsys.readouterr().err


# Runs `python -m harness ...`, logging each training that starts (one line per cell) to $RUNS_LOG. A training
# starts only once both grid processes have started one: the grids surely overlap (an event, not a sleep long
# enough to overlap on an idle machine), so the locks, not the timing, keep them off each other's cells.
COUNTED = """
import os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import harness.method.cell
train = harness.method.cell.train_and_evaluate

def grids_training():
    with open(os.environ["RUNS_LOG"]) as log:
        return {line.split("\t")[1] for line in log.read().split("\\n")[:-1]}

def counted(*args, **kwargs):
    with open(os.environ["RUNS_LOG"], "a") as log:
        log.write(f"{kwargs['description']}\t{os.getpid()}\\n")
    deadline = time.monotonic() + 300  # only against a hang: the other grid failing before it trains
    while len(grids_training()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return train(*args, **kwargs)

harness.method.cell.train_and_evaluate = counted
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_grids_started_at_once_compute_every_cell_exactly_once(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": {"blocks": [{
        "models": {"tiny-bert": [0, "1/2", 1]}, "datasets": ["sst2"], "lrs": [1e-3], "seeds": [0, 1], "epochs": 1,
        "n_train": 32, "n_test": 16, "n_val": 8, "batch_size": 16, "max_length": 32}]}}}))
    argv = [sys.executable, "-c", COUNTED, "grid", "--params", str(params), "--out", str(tmp_path / "cells"),
            "--data-dir", str(DATA), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    env = {**ENV, "RUNS_LOG": str(tmp_path / "runs.log")}
    grids = [subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [grid.communicate(timeout=600) for grid in grids]
    assert [grid.returncode for grid in grids] == [0, 0], outputs
    runs = [line.split("\t") for line in (tmp_path / "runs.log").read_text().splitlines()]
    cells = [cell for cell, _ in runs]
    assert len(cells) == 8 and len(set(cells)) == 8, runs  # 4 settings x 2 seeds, each trained once
    per_grid = Counter(pid for _, pid in runs)
    print(f"cells trained per grid process: {sorted(per_grid.values())}")
    assert len(per_grid) == 2  # both grids trained cells, at the same time
    records = sorted((tmp_path / "cells").glob("*.json"))
    assert len(records) == 8 and all(read_record(r)["identity"] == r.stem for r in records)
