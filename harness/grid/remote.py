"""What a cluster's worker runs around a cell: the Ray task (``run_detached``) and the Slurm array task
(``run_chunk``).

A worker imports this module to unpickle them, before its cell imports anything: so it imports only the
standard library and the package's lightest modules. The cell itself (``work.run``) brings torch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.errors import BadInput
from harness.method.config import CellConfig


def run_detached(run: Callable[[CellConfig, str], dict], init_worker: Callable[[int], None], threads: int,
                 config: CellConfig) -> tuple[dict, list[tuple[str, bytes]]]:
    """On a worker: run the cell in a private folder and return its record and files, in the order written."""
    init_worker(threads)
    with tempfile.TemporaryDirectory(prefix="cell-") as folder:
        record = run(config, folder)
        written = sorted((p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime_ns)
        return record, [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in written]


def run_chunk(run: Callable[[CellConfig, str], dict], init_worker: Callable[[int], None], threads: int,
              configs: Sequence[CellConfig], out_dir: str) -> list[tuple[str, str | None]]:
    """One array task: its cells, one after another; (hash, bad-input message or None) for each."""
    init_worker(threads)
    outcome = []
    for config in configs:
        try:
            run(config, out_dir)
            outcome.append((config.hash, None))
        except BadInput as error:  # reported by the driver, naming the cell, as the other executors do
            outcome.append((config.hash, str(error)))
            break
    return outcome
