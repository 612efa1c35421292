"""Stand-ins for the grid's functions that worker processes, Ray workers and submitit jobs can import
without torch (tests/ is on their PYTHONPATH), and a driver to kill: ``python executor_fakes.py ...``."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config import CellConfig
from harness.results import write_json_atomic


def where() -> tuple[str | None, list]:
    """(Ray node id, Ray GPU ids) of this process, where it is a Ray worker."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None, []
    return ray.get_runtime_context().get_node_id(), [str(g) for g in ray.get_gpu_ids()]


def log(journal: str | None, event: str, config: CellConfig, **extra) -> None:
    if journal:  # one short line per write: O_APPEND keeps lines from several processes whole
        with open(journal, "a") as handle:
            handle.write(json.dumps({"event": event, "cell": config.hash, "pid": os.getpid(), **extra}) + "\n")


def read_journal(journal: str | Path) -> list[dict]:
    path = Path(journal)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@dataclass(frozen=True)
class FakeCell:
    """A cell that sleeps, then writes ``<hash>.json`` into the folder it is given, as ``run_cell`` does."""

    sleep_s: float = 0.0
    journal: str | None = None
    tag: str = ""  # which driver started it
    fail_on: str | None = None  # the hash of a cell that fails on bad input, as a missing dataset would

    def __call__(self, config: CellConfig, out_dir: str) -> dict:
        if config.hash == self.fail_on:
            from harness import BadInput

            raise BadInput("dataset folder data/sst2 not found")
        node, gpus = where()
        log(self.journal, "start", config, node=node, tag=self.tag)
        started = time.time()
        time.sleep(self.sleep_s)
        record = {"config_hash": config.hash, "pid": os.getpid(), "node": node, "gpu_ids": gpus, "start": started,
                  "end": time.time(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        write_json_atomic(Path(out_dir) / f"{config.hash}.json", record)
        log(self.journal, "end", config, node=node, tag=self.tag)
        return record


@dataclass(frozen=True)
class Journaled:
    """Wraps the grid's real ``run``: a line when a cell starts and ends, with the node it ran on."""

    run: object
    journal: str
    delay_s: float = 0.0  # a wider window in which a cell is running, to kill its node then

    def __call__(self, config: CellConfig, out_dir: str) -> dict:
        node, _ = where()
        log(self.journal, "start", config, node=node)
        time.sleep(self.delay_s)
        record = self.run(config, out_dir)
        log(self.journal, "end", config, node=node)
        return record


@dataclass(frozen=True)
class RecordExists:
    out_dir: str

    def __call__(self, config: CellConfig) -> bool:
        return (Path(self.out_dir) / f"{config.hash}.json").exists()


def no_setup(threads: int) -> None:
    pass


def fake_cells(n: int) -> tuple[CellConfig, ...]:
    return tuple(CellConfig(model="tiny-bert", dataset="sst2", seed=i) for i in range(n))


def main(argv: list[str]) -> None:
    """``executor_fakes.py ray|slurm OUT JOURNAL N SLEEP TAG SETTINGS_JSON``: a driver of fake cells."""
    from harness.executors import Work, execute, run_settings

    kind, out, journal, n, sleep_s, tag, raw = argv
    cells = fake_cells(int(n))
    done = RecordExists(out)
    work = Work(todo=tuple(c for c in cells if not done(c)), run=FakeCell(float(sleep_s), journal, tag),
                is_done=done, out_dir=Path(out), init_worker=no_setup)
    print(f"todo {len(work.todo)}", flush=True)
    execute(work, run_settings({"executor": kind, **json.loads(raw)}))
    print("finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
