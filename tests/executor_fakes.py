"""Stand-ins for the grid's functions that worker processes, Ray workers and submitit jobs can import
without torch (tests/ is on their PYTHONPATH), and a driver to kill: ``python executor_fakes.py ...``."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.files import write_json_atomic
from harness.method.config import CellConfig


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
    """The journal's complete lines (a line another process is appending right now is left for the next read)."""
    path = Path(journal)
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]] if path.exists() else []


def wait_for(condition: Callable[[], object], limit_s: float = 300.0) -> object:
    """Wait for an event another process causes (``condition()`` truthy) and return it; None after ``limit_s``.

    The limit only keeps a broken executor from hanging the suite (its test then fails on what is
    missing): no test relies on how long anything takes.
    """
    deadline = time.monotonic() + limit_s
    while not (found := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found or None


@dataclass(frozen=True)
class ProcessesStarted:
    """The journal shows cells started by ``n`` distinct processes (a class: worker processes unpickle it)."""

    n: int

    def __call__(self, events: list[dict]) -> bool:
        return len({e["pid"] for e in events if e["event"] == "start"}) >= self.n


def two_cells_on_one_gpu(events: list[dict]) -> bool:
    """The journal shows two cells started on one (node, GPU)."""
    started = Counter((e["node"], tuple(e["gpus"])) for e in events if e["event"] == "start" and e.get("gpus"))
    return any(n >= 2 for n in started.values())


@dataclass(frozen=True)
class FakeCell:
    """A cell that sleeps, then writes ``<hash>.json`` into the folder it is given, as ``run_cell`` does.

    ``meet`` makes cells that must run at the same time wait for each other rather than sleep long
    enough to (probably) overlap: a started cell waits until the journal shows ``meet(events)``.
    """

    sleep_s: float = 0.0
    journal: str | None = None
    tag: str = ""  # which driver started it
    fail_on: str | None = None  # the hash of a cell that fails on bad input, as a missing dataset would
    meet: Callable[[list[dict]], bool] | None = None  # e.g. ProcessesStarted(2), two_cells_on_one_gpu
    # A cell that starts once the journal shows `hold_after` ended cells waits for the file `gate`: a
    # driver killed after that many cells is killed mid-grid whatever the machine's speed.
    hold_after: int | None = None
    gate: str | None = None

    def __call__(self, config: CellConfig, out_dir: str) -> dict:
        if config.hash == self.fail_on:
            from harness.errors import BadInput

            raise BadInput("dataset folder data/sst2 not found")
        node, gpus = where()
        started = time.time()  # before the journal line: a cell that saw this one start ends after it started
        log(self.journal, "start", config, node=node, gpus=gpus, tag=self.tag)
        if self.meet is not None:
            wait_for(lambda: self.meet(read_journal(self.journal)))
        ended = sum(e["event"] == "end" for e in read_journal(self.journal)) if self.hold_after is not None else 0
        if self.hold_after is not None and ended >= self.hold_after:
            wait_for(Path(self.gate).exists)
        time.sleep(self.sleep_s)
        record = {"config_hash": config.hash, "pid": os.getpid(), "node": node, "gpu_ids": gpus, "start": started,
                  "end": time.time(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        write_json_atomic(Path(out_dir) / f"{config.hash}.json", record)
        log(self.journal, "end", config, node=node, tag=self.tag)
        return record


@dataclass(frozen=True)
class Journaled:
    """Wraps the grid's real ``run``: a line when a cell starts and ends, with the node it ran on.

    A cell started on a node of ``hold_on`` waits there until the file ``gate`` exists: the test
    that removes such a node knows a cell is running on it (an event), and opens the gate after.
    """

    run: object
    journal: str
    hold_on: tuple[str, ...] = ()  # Ray node ids
    gate: str | None = None

    def __call__(self, config: CellConfig, out_dir: str) -> dict:
        node, _ = where()
        log(self.journal, "start", config, node=node)
        if node in self.hold_on:
            wait_for(Path(self.gate).exists)
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
    """``executor_fakes.py ray|slurm OUT JOURNAL N SLEEP TAG SETTINGS_JSON [HOLD_AFTER GATE]``: a driver of fake
    cells (HOLD_AFTER, GATE: see ``FakeCell``)."""
    from harness.grid.executors import Work, run_settings
    from harness.grid.run import execute

    kind, out, journal, n, sleep_s, tag, raw, *hold = argv
    cells = fake_cells(int(n))
    done = RecordExists(out)
    hold_after, gate = (int(hold[0]), hold[1]) if hold else (None, None)
    work = Work(todo=tuple(c for c in cells if not done(c)),
                run=FakeCell(float(sleep_s), journal, tag, hold_after=hold_after, gate=gate),
                is_done=done, out_dir=Path(out), init_worker=no_setup)
    print(f"todo {len(work.todo)}", flush=True)
    execute(work, run_settings({"executor": kind, **json.loads(raw)}))
    print("finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
