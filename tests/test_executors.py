"""The grid's executors: local (one worker per GPU), Ray (a real 3-node cluster here), Slurm (submitit).

Each runs every cell once, never redoes a finished one, resumes after its driver is killed, and a
cell's scores do not depend on where it ran (CPU determinism: one torch thread everywhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import executor_fakes as fakes
import numpy as np
import pytest
import torch
import yaml

from harness.cli import main as cli_main
from harness.errors import BadInput
from harness.grid import cluster as cl
from harness.grid import executors as ex
from harness.grid import run as grid_run
from harness.grid.expand import describe, expand, tsne_cells
from harness.grid.profiles import load_profile
from harness.grid.run import CellRunner, DoneCheck, _init_worker, dataset_digests, prepare_data, run_grid
from harness.method.config import cell_identity
from harness.method.record import read_record
from harness.report.document import MEASURED_INPUTS

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
DATA = ROOT / "data" if (ROOT / "data" / "sst2").is_dir() else ROOT.parent / "shared" / "datasets"
# Worker processes, Ray workers and submitit jobs import this checkout and tests/executor_fakes.py.
PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])


@pytest.fixture(scope="module", autouse=True)
def worker_path():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", PYTHONPATH)
        yield


def scores(record: dict) -> dict:
    """What a cell measured, without its timings, memory or the machine it ran on."""
    kept = ("status", "best_test_f1", "best_epoch", "selected_test_f1", "selected_epoch", "final_test_f1",
            "majority_f1", "corrupted_layers")
    epochs = [{k: v for k, v in e.items() if k != "train_seconds"} for e in record["epochs"]]
    return {**{k: record[k] for k in kept}, "epochs": epochs}


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    """The `ci` profile, its token cache, and a reference: a few of its cells run by the local executor."""
    root = tmp_path_factory.mktemp("ci")
    profile = load_profile("ci", PARAMS)
    cells = expand(profile)
    features = {c.hash for panel in tsne_cells(profile, cells).values() for c in panel}
    prepare_data(cells, data_dir=DATA, cache_dir=root / "cache")
    subset = [c for c in cells if c.hash not in features][:3] + [c for c in cells if c.hash in features][:1]
    threads = torch.get_num_threads()
    run_grid(subset, out_dir=root / "local", data_dir=DATA, cache_dir=root / "cache", threads=1, features=features,
             progress=False)
    torch.set_num_threads(threads)
    return {"root": root, "cells": cells, "features": features, "subset": subset, "cache": root / "cache",
            "digests": dataset_digests(cells, DATA)}


def record_name(ci: dict, config) -> str:
    """The file name of a cell's record: its identity (config, method version, data digest)."""
    return f"{cell_identity(config, ci['digests'][config.dataset])}.json"


def assert_same_as_local(ci: dict, out: Path, cells=None) -> None:
    for config in cells or ci["subset"]:
        name = record_name(ci, config)
        here, there = read_record(out / name), read_record(ci["root"] / "local" / name)
        assert scores(here) == scores(there), describe(config)
        assert here["device"] == "cpu (1 threads)"
        if config.hash in ci["features"]:  # Figure 1's features travelled back with the record
            npz = name.removesuffix(".json") + ".vectors.npz"
            with np.load(out / npz) as a, np.load(ci["root"] / "local" / npz) as b:
                assert np.array_equal(a["features"], b["features"])


def grid_args(ci: dict, out: Path, *extra: str) -> list[str]:
    return ["grid", "--profile", "ci", "--params", str(PARAMS), "--out", str(out), "--data-dir", str(DATA),
            "--cache-dir", str(ci["cache"]), "--no-progress", *extra]


def count_writes(monkeypatch) -> Counter:
    """Count the records the Ray driver writes, per cell."""
    writes: Counter = Counter()
    real = cl.write_files

    def counting(out_dir, files):
        writes.update(name for name, _ in files if name.endswith(".json"))
        real(out_dir, files)

    monkeypatch.setattr(cl, "write_files", counting)
    return writes


# ---------------------------------------------------------------- settings


def test_run_block_of_params_yaml_is_todays_local_pool():
    settings = ex.run_settings(yaml.safe_load(PARAMS.read_text())["run"])
    assert (settings.executor, settings.workers, settings.threads, settings.cells_per_gpu) == ("local", 2, 1, 1)
    assert settings.ray.gpus_for("minilm-l6") == 0.5 and settings.ray.gpus_for("bert-large-uncased") == 1
    assert ex.run_settings(None) == ex.RunSettings()
    changed = ex.override(settings, executor="ray", ray_address="auto", ray_num_gpus=0.25, slurm_partition="gpu",
                          workers=None)
    assert (changed.executor, changed.workers, changed.ray.address, changed.ray.num_gpus, changed.slurm.partition) == (
        "ray", 2, "auto", 0.25, "gpu")


@pytest.mark.parametrize("raw, message", [
    ({"executor": "dask"}, "run.executor must be one of"),
    ({"worker": 2}, "run: unknown keys \\['worker'\\]"),
    ({"ray": {"num_gpu": 1}}, "run.ray: unknown keys"),
    ({"ray": {"num_gpus": -1}}, "num_gpus >= 0"),
    ({"slurm": {"cells_per_task": 0}}, "cells_per_task"),
])
def test_bad_run_blocks_fail_clearly(raw, message):
    with pytest.raises(BadInput, match=message):
        ex.run_settings(raw)


def test_changing_how_the_grid_runs_recomputes_nothing(tmp_path):
    """`run:` is not part of a cell's identity: the grid's own skip logic finds every cell done."""
    cells = fakes.fake_cells(4)
    out = tmp_path / "cells"
    work = ex.Work(todo=cells, run=fakes.FakeCell(), is_done=fakes.RecordExists(str(out)), out_dir=out,
                   init_worker=fakes.no_setup)
    grid_run.execute(work, ex.RunSettings())
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    for settings in (ex.RunSettings(executor="ray", ray=ex.RaySettings(address="nowhere:1")),
                     ex.RunSettings(executor="slurm"), ex.RunSettings(workers=8)):
        todo = tuple(c for c in cells if not work.is_done(c))
        grid_run.execute(ex.Work(todo=todo, run=work.run, is_done=work.is_done, out_dir=out, init_worker=fakes.no_setup),
                   settings)  # nothing to do: no cluster is contacted, no job submitted
        assert todo == ()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def bad_input_names_the_cell(settings: ex.RunSettings, tmp_path: Path) -> None:
    cells = fakes.fake_cells(4)
    work = ex.Work(todo=cells, run=fakes.FakeCell(fail_on=cells[1].hash), is_done=fakes.RecordExists(str(tmp_path)),
                   out_dir=tmp_path, init_worker=fakes.no_setup, describe=describe)
    with pytest.raises(BadInput, match=f"cell {cells[1].hash} \\(tiny-bert sst2 clean cls full lr=5e-05 seed=1\\): "
                                       "dataset folder data/sst2 not found"):
        grid_run.execute(work, settings)


def test_bad_input_stops_the_local_pool_naming_the_cell(tmp_path):
    bad_input_names_the_cell(ex.RunSettings(workers=2), tmp_path)


def test_bad_input_stops_a_slurm_array_naming_the_cell(tmp_path):
    pytest.importorskip("submitit")
    bad_input_names_the_cell(ex.RunSettings(executor="slurm", slurm=ex.SlurmSettings(
        cluster="local", folder=str(tmp_path / "submitit"), timeout_min=5, gpus_per_task=0, cells_per_task=4,
        poll_s=0.2)), tmp_path)


# ---------------------------------------------------------------- estimate: N GPUs, packing, the Slurm time limit


def test_wall_time_on_n_gpus_and_what_packing_buys():
    from harness.grid.cost import SMALL_CELL_GPU_SHARE, gpu_wall_hours, timeout_min

    hours = [2.0] * 8 + [1.0] * 8  # eight big cells, eight small ones
    small = [False] * 8 + [True] * 8
    assert gpu_wall_hours(hours, gpus=4) == 6.0  # 24 GPU-hours over 4 GPUs
    assert gpu_wall_hours(hours, gpus=100) == 2.0  # never shorter than the longest cell
    gain = min(2, 1 / SMALL_CELL_GPU_SHARE)
    assert gpu_wall_hours(hours, 4, small, pack=2) == pytest.approx((16 + 8 / gain) / 4)
    assert timeout_min(2.19) == 280 and timeout_min(0.01, cells_per_task=3) == 20


def test_estimate_prints_n_gpus_packing_and_the_slurm_limit(tmp_path, capsys, machine):
    params = tmp_path / "params.yaml"
    params.write_text("profile: t\nprofiles:\n  t:\n    defaults: {epochs: 1, n_train: 64, n_test: 32, lrs: [1.0e-3], "
                      "seeds: [0]}\n    blocks:\n      - models: {tiny-bert: [0, 1]}\n        datasets: [sst2]\n")
    assert cli_main(["estimate", "--params", str(params), "--bench", str(ROOT / "results" / "bench.json"),
                     "--data-dir", str(DATA), "--gpus", "4", "--gpu-type", "h100", "--pack", "2"]) == 0
    out = capsys.readouterr().out
    # the cells' precision (auto: the machine's) picks the datasheet peak; both round to the same time limit
    assert f"hardware: {machine.hardware.describe()}; precision of the cells: {machine.precision}" in out
    assert "on 4 GPU(s) (h100: ASSUMED 40% of its datasheet 67 fp32" in out
    assert "2 small-model cells per GPU (tiny-bert;" in out and "slurm: timeout_min=20 " in out  # 10 min + a bit
    assert re.search(r"^predicted_wall_hours=\d+\.\d+ predicted_wall_hours_packed=\d+\.\d+$", out, re.MULTILINE)
    work = ex.Work(todo=fakes.fake_cells(2), run=fakes.FakeCell(), is_done=fakes.RecordExists(str(tmp_path)),
                   out_dir=tmp_path, init_worker=fakes.no_setup, data_dir=DATA)
    assert cl.slurm_timeout_min(work, ex.SlurmSettings(gpu_type="a100")) >= 10  # timeout_min: null
    with pytest.raises(BadInput, match="needs timeout_min, or gpu_type"):
        cl.slurm_timeout_min(work, ex.SlurmSettings())


# ---------------------------------------------------------------- local: one worker per GPU


@pytest.mark.parametrize("gpus, per_gpu, inherited, expected", [
    (3, 1, None, ["0", "1", "2"]),
    (2, 2, "5,7", ["5", "7"]),  # under CUDA_VISIBLE_DEVICES=5,7 worker 0 gets 5, not 0
])
def test_local_pins_each_worker_to_its_own_gpu(tmp_path, monkeypatch, gpus, per_gpu, inherited, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    if inherited:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", inherited)
    assert ex.visible_gpus() == expected
    cells = fakes.fake_cells(4 * gpus * per_gpu)
    records = {}
    # Every worker runs a cell: each first cell waits until all the workers have started one (not a sleep
    # long enough for a worker that is slow to start under load to still get a cell)
    meet = fakes.ProcessesStarted(gpus * per_gpu)
    work = ex.Work(todo=cells, run=fakes.FakeCell(journal=str(tmp_path / "journal"), meet=meet),
                   is_done=fakes.RecordExists(str(tmp_path)), out_dir=tmp_path, init_worker=fakes.no_setup)
    grid_run.execute(work, ex.RunSettings(workers=1, cells_per_gpu=per_gpu),
               lambda config, record: records.update({config.hash: record}))
    assert sorted(records) == sorted(c.hash for c in cells)
    device_of = {}
    for record in records.values():  # a worker process never changes GPU ...
        assert device_of.setdefault(record["pid"], record["cuda_visible_devices"]) == record["cuda_visible_devices"]
    per_device = Counter(device_of.values())
    assert per_device == {gpu: per_gpu for gpu in expected}  # ... and each GPU has its own cells_per_gpu workers


def test_local_without_gpus_is_the_process_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "visible_gpus", lambda: [])
    assert ex.local_slots(ex.RunSettings(workers=3), []) == [None, None, None]
    records = []
    run = fakes.FakeCell(journal=str(tmp_path / "journal"), meet=fakes.ProcessesStarted(2))  # both workers run cells
    work = ex.Work(todo=fakes.fake_cells(6), run=run, is_done=fakes.RecordExists(str(tmp_path)), out_dir=tmp_path,
                   init_worker=fakes.no_setup)
    grid_run.execute(work, ex.RunSettings(workers=2), lambda config, record: records.append(record))
    assert len(records) == 6 and len({r["pid"] for r in records}) == 2 and os.getpid() not in {r["pid"] for r in records}


# ---------------------------------------------------------------- ray: a head and two worker nodes on this machine


@pytest.fixture(scope="class")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")  # the executors use this connection
    print(f"3-node Ray cluster up in {time.perf_counter() - started:.1f} s")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def ray_settings(cluster, **ray) -> ex.RunSettings:
    return ex.RunSettings(executor="ray", ray=ex.RaySettings(address=cluster.address, **ray))


@pytest.mark.usefixtures("cluster")
class TestRay:
    def test_ci_profile_on_three_nodes_matches_the_local_executor(self, ci, cluster, tmp_path, monkeypatch, capsys):
        writes = count_writes(monkeypatch)
        out = tmp_path / "ray"
        assert cli_main(grid_args(ci, out, "--executor", "ray", "--ray-address", cluster.address,
                                  "--gpus-per-cell", "0")) == 0
        n = len(ci["cells"])
        assert f"{n} cells ({n} run now, executor ray)" in capsys.readouterr().err
        assert sorted(writes) == sorted(record_name(ci, c) for c in ci["cells"]) and set(writes.values()) == {1}
        assert all(DoneCheck(str(out), ci["digests"], frozenset(ci["features"]))(c) for c in ci["cells"])
        assert_same_as_local(ci, out)
        # a second run finds every cell done and contacts no worker
        assert cli_main(grid_args(ci, out, "--executor", "ray", "--ray-address", cluster.address)) == 0
        assert f"({0} run now, executor ray)" in capsys.readouterr().err

    def test_cells_on_logical_gpus_stay_on_the_cpu(self, ci, cluster, tmp_path):
        # Ray sets CUDA_VISIBLE_DEVICES for a task with num_gpus; a CPU-only torch must still run on the CPU.
        cells = ci["subset"][:2]
        run_grid(cells, out_dir=tmp_path, data_dir=DATA, cache_dir=ci["cache"], progress=False,
                 settings=ray_settings(cluster, num_gpus=1))
        assert_same_as_local(ci, tmp_path, cells)

    def test_two_half_gpu_cells_run_at_once_on_one_gpu(self, cluster, tmp_path):
        records = []
        # Cells wait until two have started on one GPU (an event), rather than sleep long enough to overlap
        run = fakes.FakeCell(journal=str(tmp_path / "journal"), meet=fakes.two_cells_on_one_gpu)
        work = ex.Work(todo=fakes.fake_cells(6), run=run, is_done=fakes.RecordExists(str(tmp_path)), out_dir=tmp_path,
                       init_worker=fakes.no_setup)
        grid_run.execute(work, ray_settings(cluster, num_cpus=0.5, num_gpus=1, gpus_by_model=(("tiny-bert", 0.5),)),
                   lambda config, record: records.append(record))
        assert len(records) == 6 and all(len(r["gpu_ids"]) == 1 for r in records)
        shared = [(a, b) for i, a in enumerate(records) for b in records[i + 1:]
                  if (a["node"], a["gpu_ids"]) == (b["node"], b["gpu_ids"]) and a["start"] < b["end"] and b["start"] < a["end"]]
        assert shared, "no two 0.5-GPU cells overlapped on one GPU"

    def test_bad_input_stops_the_grid_naming_the_cell(self, cluster, tmp_path):
        bad_input_names_the_cell(ray_settings(cluster, num_gpus=0), tmp_path)

    def test_a_killed_driver_resumes_with_only_the_missing_cells(self, cluster, tmp_path):
        out, journal, gate = tmp_path / "cells", tmp_path / "journal", tmp_path / "gate"
        raw = json.dumps({"ray": {"address": cluster.address, "num_gpus": 0}})
        driver = [sys.executable, str(ROOT / "tests" / "executor_fakes.py"), "ray", str(out), str(journal), "16", "0"]
        # The first driver's cells that start after 4 have ended wait at the gate: it is killed mid-grid by
        # construction, not because the rest of its cells were too slow to finish before the kill landed.
        first = subprocess.Popen([*driver, "first", raw, "4", str(gate)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        fakes.wait_for(lambda: len(list(out.glob("*.json"))) >= 4 or first.poll() is not None)
        first.send_signal(signal.SIGKILL)
        first.wait()
        kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
        assert 4 <= len(kept) < 16
        gate.touch()  # were a held task to outlive its driver, it ends now: no driver is left to write its record
        second = subprocess.run([*driver, "second", raw], capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr[-3000:]
        assert f"todo {16 - len(kept)}" in second.stdout
        ran_again = {e["cell"] for e in fakes.read_journal(journal) if e["tag"] == "second" and e["event"] == "end"}
        assert ran_again == {c.hash for c in fakes.fake_cells(16)} - {name.removesuffix(".json") for name in kept}
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name in kept} == kept  # untouched
        assert len(list(out.glob("*.json"))) == 16

    def test_a_worker_node_removed_mid_grid_loses_and_duplicates_nothing(self, ci, cluster, tmp_path, monkeypatch):
        writes = count_writes(monkeypatch)
        out, journal, gate = tmp_path / "cells", tmp_path / "journal", tmp_path / "gate"
        features = frozenset(ci["features"])
        victims = {node.node_id: node for node in cluster.worker_nodes}
        # A cell started on a worker node waits there until the gate opens: when the test removes the node, a
        # cell is running on it by construction (an event), not by the luck of polling inside a 0.3 s window.
        run = fakes.Journaled(CellRunner(str(DATA), str(ci["cache"]), ci["digests"], features), str(journal),
                              hold_on=tuple(victims), gate=str(gate))
        work = ex.Work(todo=tuple(ci["cells"]), run=run, is_done=DoneCheck(str(out), ci["digests"], features),
                       out_dir=out,
                       init_worker=_init_worker, describe=describe)
        failures = []
        driver = threading.Thread(target=lambda: _catch(failures, grid_run.execute, work,
                                                        ray_settings(cluster, num_gpus=0)))

        def held_on_a_worker_node() -> dict | None:
            """A cell waiting at the gate on a worker node, once 3 cells have ended (on the head node)."""
            events = fakes.read_journal(journal)
            ended = {(e["cell"], e["pid"]) for e in events if e["event"] == "end"}
            held = [e for e in events if e["event"] == "start" and e["node"] in victims
                    and (e["cell"], e["pid"]) not in ended]
            return held[0] if held and len(ended) >= 3 else None

        driver.start()
        try:
            held = fakes.wait_for(lambda: held_on_a_worker_node() or not driver.is_alive())
            assert isinstance(held, dict), "the grid ended (or hung) before a cell was held on a worker node"
            removed = held["node"]  # the node goes as a machine would: its raylet and its workers, mid-cell
            cluster.remove_node(victims[removed], allow_graceful=False)
            for pid in {e["pid"] for e in fakes.read_journal(journal) if e["node"] == removed}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            gate.touch()  # the other worker node's cells (and the retried one) go on
            driver.join(timeout=600)
        assert not driver.is_alive() and not failures, failures
        events = fakes.read_journal(journal)
        ends = Counter(e["cell"] for e in events if e["event"] == "end")
        assert set(ends) == {c.hash for c in ci["cells"]}  # no cell lost ...
        assert set(writes.values()) == {1} and len(writes) == len(ci["cells"])  # ... none written twice
        # The cell that was running there ran again on another node, and the driver wrote it once.
        started_there = {e["cell"] for e in events if e["event"] == "start" and e["node"] == removed}
        ended_elsewhere = {e["cell"] for e in events if e["event"] == "end" and e["node"] != removed}
        assert started_there & ended_elsewhere, "no cell of the removed node was run again elsewhere"
        assert all(DoneCheck(str(out), ci["digests"], features)(c) for c in ci["cells"])


def _catch(failures: list, function, *args) -> None:
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 - reported by the test
        failures.append(error)


# ---------------------------------------------------------------- slurm: submitit arrays


def slurm_is_up() -> bool:
    """A Slurm controller answers here (`sbatch` alone is not enough: its daemons may be stopped)."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return False
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return ping.returncode == 0 and "UP" in ping.stdout


NO_SLURM = "no Slurm here: `sbatch` is not on PATH or `scontrol ping` finds no controller"
SLURM_UP = slurm_is_up()


def slurm_params(tmp_path: Path, **slurm) -> Path:
    params = yaml.safe_load(PARAMS.read_text())
    params["run"]["slurm"].update({"cluster": "local", "folder": str(tmp_path / "submitit"), "timeout_min": 20,
                                   "gpus_per_task": 0, "cpus_per_task": 1, "poll_s": 0.5, **slurm})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_slurm_runs_the_ci_profile_through_submitits_local_executor(ci, tmp_path, capsys):
    pytest.importorskip("submitit")
    params = slurm_params(tmp_path, cells_per_task=20, array_parallelism=2)
    out = tmp_path / "cells"
    args = grid_args(ci, out, "--executor", "slurm")
    args[args.index("--params") + 1] = str(params)
    assert cli_main(args) == 0
    n = len(ci["cells"])
    assert f"{n} cells ({n} run now, executor slurm)" in capsys.readouterr().err
    assert all(DoneCheck(str(out), ci["digests"], frozenset(ci["features"]))(c) for c in ci["cells"])
    assert_same_as_local(ci, out)
    assert not (tmp_path / "submitit" / "inflight.json").exists()  # a finished grid leaves no jobs to wait for
    assert cli_main(args) == 0 and "(0 run now, executor slurm)" in capsys.readouterr().err


@pytest.mark.parametrize("cluster", ["local", pytest.param("slurm", marks=pytest.mark.skipif(not SLURM_UP,
                                                                                          reason=NO_SLURM))])
def test_a_killed_slurm_driver_waits_for_its_jobs_instead_of_resubmitting(tmp_path, cluster):
    pytest.importorskip("submitit")
    out, journal = tmp_path / "cells", tmp_path / "journal"
    raw = json.dumps({"slurm": {"cluster": cluster, "folder": str(tmp_path / "submitit"), "timeout_min": 5,
                                "gpus_per_task": 0, "cpus_per_task": 1, "array_parallelism": 2, "poll_s": 0.2}})
    driver = [sys.executable, str(ROOT / "tests" / "executor_fakes.py"), "slurm", str(out), str(journal), "8", "2"]
    first = subprocess.Popen([*driver, "first", raw], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def one_done_one_running() -> bool:
        events = fakes.read_journal(journal)
        ended = {e["cell"] for e in events if e["event"] == "end"}
        return bool(ended and {e["cell"] for e in events if e["event"] == "start"} - ended)

    # Kill it once a cell is done and another still runs in its job (cells of 2 s, 2 at a time: 6 s of margin).
    fakes.wait_for(lambda: one_done_one_running() or first.poll() is not None)
    first.send_signal(signal.SIGKILL)
    first.wait()
    started_by_first = {e["cell"] for e in fakes.read_journal(journal) if e["event"] == "start"}
    second = subprocess.run([*driver, "second", raw], capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    events = fakes.read_journal(journal)
    ends = Counter(e["cell"] for e in events if e["event"] == "end")
    assert set(ends) == {c.hash for c in fakes.fake_cells(8)} and set(ends.values()) == {1}  # each cell once
    assert {e["cell"] for e in events if e["tag"] == "second"}.isdisjoint(started_by_first)
    assert not (tmp_path / "submitit" / "inflight.json").exists()


@pytest.mark.skipif(not SLURM_UP, reason=NO_SLURM)
def test_slurm_runs_cells_through_real_sbatch(ci, tmp_path, capsys):
    pytest.importorskip("submitit")
    params = slurm_params(tmp_path, cluster=None, cells_per_task=5, array_parallelism=2, poll_s=1, mem_gb=None,
                          partition=os.environ.get("SLURM_TEST_PARTITION"))
    profile = yaml.safe_load(params.read_text())
    profile["profiles"]["ci"]["defaults"]["seeds"] = [0]  # half the profile: a real queue is slower to start
    params.write_text(yaml.safe_dump(profile, sort_keys=False))
    out = tmp_path / "cells"
    args = grid_args(ci, out, "--executor", "slurm")
    args[args.index("--params") + 1] = str(params)
    assert cli_main(args) == 0
    assert "executor slurm" in capsys.readouterr().err
    assert_same_as_local(ci, out, [c for c in ci["subset"] if c.seed == 0])


# ---------------------------------------------------------------- dvc repro with run.executor: ray


def _dvc(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_dvc_repro_with_the_ray_executor_and_a_change_of_run_recomputes_nothing(tmp_path):
    pytest.importorskip("ray")
    root = tmp_path / "pipeline"
    root.mkdir()
    for name in ("dvc.yaml", "harness", "claims"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    params = yaml.safe_load(PARAMS.read_text())
    params["profile"] = "ci"
    params["run"]["executor"] = "ray"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(DATA, root / "data")
    shutil.copytree(ROOT / "results" / "records", root / "results" / "records")  # the report's beyond-the-paper part
    for measured in MEASURED_INPUTS:  # the report's error rates and cost, which no stage makes
        shutil.copy(ROOT / "results" / measured, root / "results")
    _dvc("init", "--no-scm", "-q", cwd=root)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots", dirs_exist_ok=True)
    log = _dvc("repro", cwd=root)
    for stage in ("prepare", "grid", "aggregate", "plots", "analyse", "report"):
        assert f"Running stage '{stage}'" in log
    n = len(expand(load_profile("ci", PARAMS)))
    assert f"({n} run now, executor ray)" in log
    records = {p.name: p.stat().st_mtime_ns for p in (root / "results" / "cells").iterdir()}
    params["run"].update({"executor": "local", "workers": 1})  # how it runs, not what it computes
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = _dvc("repro", cwd=root)
    assert "Running stage 'grid'" in log and "(0 run now, executor local)" in log
    assert "Running stage 'aggregate'" not in log  # the records did not change, so nothing downstream reruns
    assert {p.name: p.stat().st_mtime_ns for p in (root / "results" / "cells").iterdir()} == records
