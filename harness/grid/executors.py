"""Where the grid's cells run: a process pool on this machine, Ray tasks, or a Slurm job array.

The grid hands an executor a ``Work``: the cells still to run and two functions, ``run(config,
folder) -> record`` (runs one cell, writing its files into ``folder``) and ``is_done(config)``.
An executor knows nothing of how a record is named or checked; it only decides where ``run`` is
called and makes sure that

* a cell is run at most once per grid run (a cell lost with a dead node or job runs again, a
  finished one never does);
* a killed driver resumes where it stopped: the grid only hands over the cells not yet done.

Executors:

``local``   here: today's process pool; where CUDA is present, one worker per visible GPU instead,
            each pinned to its own device through ``CUDA_VISIBLE_DEVICES`` (``cells_per_gpu`` > 1
            packs small cells onto one GPU).
``ray``     one Ray task per cell, and
``slurm``   a submitit job array: the cluster engines, in ``harness.grid.cluster``.

The settings come from params.yaml's ``run:`` block and the command line; they are never part of
a cell's identity, so changing them recomputes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from harness.errors import BadInput
from harness.method.config import CellConfig

EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class Work:
    """What the grid hands an executor."""

    todo: tuple[CellConfig, ...]  # the cells whose records are missing
    run: Callable[[CellConfig, str], dict]  # runs one cell into a folder, returns its record (picklable)
    is_done: Callable[[CellConfig], bool]  # the cell's files are complete in out_dir
    out_dir: Path
    init_worker: Callable[[int], None]  # once per worker process: torch threads, quiet logs (picklable)
    describe: Callable[[CellConfig], str] = str
    data_dir: Path = Path("data")  # only for the estimate behind a Slurm time limit


OnDone = Callable[[CellConfig, dict | None], None]  # (cell, its record where the executor has it)


# ---------------------------------------------------------------- settings: params.yaml's run: block


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # "auto": join the cluster of `ray start`; None: start one on this machine
    num_cpus: float = 1  # per cell; also its torch threads
    num_gpus: float = 1  # per cell, where the cluster has GPUs; 0.5 runs two cells on one GPU
    gpus_by_model: tuple[tuple[str, float], ...] = ()  # per-model num_gpus, e.g. (("minilm-l6", 0.5),)
    max_retries: int = 3  # a cell whose worker or node died runs again elsewhere

    def gpus_for(self, model: str) -> float:
        return dict(self.gpus_by_model).get(model, self.num_gpus)


@dataclass(frozen=True)
class SlurmSettings:
    cluster: str | None = None  # None: Slurm (sbatch on PATH); "local": the same array on this machine
    folder: str = "cache/submitit"  # submitit's pickles and logs: must be on the shared filesystem
    partition: str | None = None
    gpus_per_task: int = 1
    cpus_per_task: int = 4  # also the cell's torch threads
    mem_gb: float | None = None
    timeout_min: int | None = None  # None: from the estimate for gpu_type (`python -m harness estimate`)
    gpu_type: str | None = None
    array_parallelism: int = 64  # array tasks running at once (Slurm's %N)
    cells_per_task: int = 1  # cells run one after another in one array task (small cells: less start-up)
    poll_s: float = 30.0  # how often the driver looks at the jobs
    additional: tuple[tuple[str, object], ...] = ()  # more sbatch options, e.g. (("account", "myproj"),)


@dataclass(frozen=True)
class RunSettings:
    """How the grid runs: never part of a cell's identity."""

    executor: str = "local"
    workers: int = 1  # local, without GPUs: worker processes
    threads: int | None = None  # local: torch threads per worker (None: cores // workers)
    cells_per_gpu: int = 1  # local, with GPUs: workers per GPU
    ray: RaySettings = field(default_factory=RaySettings)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise BadInput(f"run.executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.workers < 1 or self.cells_per_gpu < 1 or (self.threads is not None and self.threads < 1):
            raise BadInput(f"workers and cells_per_gpu must be >= 1 and threads >= 1 (or 0: automatic), got "
                           f"workers={self.workers}, cells_per_gpu={self.cells_per_gpu}, threads={self.threads}")
        gpus = [self.ray.num_gpus, *dict(self.ray.gpus_by_model).values()]
        if self.ray.num_cpus <= 0 or any(g < 0 for g in gpus) or self.ray.max_retries < 0:
            raise BadInput(f"run.ray: num_cpus must be > 0, num_gpus >= 0, max_retries >= 0; got {self.ray}")
        s = self.slurm
        if min(s.array_parallelism, s.cells_per_task, s.cpus_per_task) < 1 or s.gpus_per_task < 0 or s.poll_s <= 0:
            raise BadInput(f"run.slurm: array_parallelism, cells_per_task, cpus_per_task must be >= 1; got {s}")


def _section(cls: type, raw: object, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where} must be a mapping, got {raw!r}")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known - ({"ray", "slurm"} if cls is RunSettings else set())
    if unknown:
        raise BadInput(f"{where}: unknown keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
    return dict(raw)


def run_settings(raw: Mapping | None) -> RunSettings:
    """``RunSettings`` from params.yaml's ``run:`` block (missing keys: the defaults above)."""
    top = _section(RunSettings, raw, "run")
    ray = _section(RaySettings, top.pop("ray", None), "run.ray")
    slurm = _section(SlurmSettings, top.pop("slurm", None), "run.slurm")
    ray["gpus_by_model"] = tuple((str(m), float(g)) for m, g in (ray.get("gpus_by_model") or {}).items())
    slurm["additional"] = tuple((slurm.get("additional") or {}).items())
    if top.get("threads") == 0:
        top["threads"] = None  # 0 in params.yaml: cores // workers, as --threads 0
    try:
        return RunSettings(**top, ray=RaySettings(**ray), slurm=SlurmSettings(**slurm))
    except TypeError as error:
        raise BadInput(f"run: {error}") from error


def override(settings: RunSettings, **changes) -> RunSettings:
    """``settings`` with the command line's choices (None: keep params.yaml's); ray_*/slurm_* go to their section."""
    top, ray, slurm = {}, {}, {}
    for key, value in changes.items():
        if value is None:
            continue
        section, _, name = key.partition("_")
        if section == "ray":
            ray[name] = value
        elif section == "slurm":
            slurm[name] = value
        else:
            top[key] = value
    return replace(settings, **top, ray=replace(settings.ray, **ray), slurm=replace(settings.slurm, **slurm))


def cell_error(work: Work, config: CellConfig, error: BaseException | str) -> BadInput:
    """The cell's failure, naming the cell, in the error's own class (so with its own exit code)."""
    kind = type(error) if isinstance(error, BadInput) else BadInput
    return kind(f"cell {config.hash} ({work.describe(config)}): {error}")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---------------------------------------------------------------- local: a process pool, one worker per GPU


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries for its workers."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    inherited = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    # Under CUDA_VISIBLE_DEVICES=2,3 torch sees 2 devices; worker 0 must get "2", not "0".
    return inherited[:count] if len(inherited) >= count else [str(i) for i in range(count)]


def local_slots(settings: RunSettings, gpus: Sequence[str]) -> list[str | None]:
    """One entry per worker: the GPU it is pinned to (None: no pinning, CPU workers)."""
    if gpus:
        return [gpu for gpu in gpus for _ in range(settings.cells_per_gpu)]
    return [None] * settings.workers


def _pin_worker(slots, init_worker: Callable[[int], None], threads: int) -> None:
    # A spawned worker has imported torch (unpickling the grid's functions) but not touched CUDA,
    # which reads CUDA_VISIBLE_DEVICES only when first used: so this still picks the device.
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    init_worker(threads)


def run_local(work: Work, settings: RunSettings, on_done: OnDone) -> None:
    slots = local_slots(settings, visible_gpus())
    threads = settings.threads or max(1, available_cores() // len(slots))
    if len(slots) == 1:  # in this process, as before: no pool to start
        if settings.threads is not None:
            work.init_worker(settings.threads)
        for config in work.todo:
            try:
                record = work.run(config, str(work.out_dir))
            except BadInput as error:
                raise cell_error(work, config, error) from error
            on_done(config, record)
        return
    context = get_context("spawn")
    queue = context.Queue()
    for slot in slots:
        queue.put(slot)
    with ProcessPoolExecutor(max_workers=len(slots), mp_context=context, initializer=_pin_worker,
                             initargs=(queue, work.init_worker, threads)) as pool:
        running = {pool.submit(work.run, config, str(work.out_dir)): config for config in work.todo}
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    config = running.pop(future)
                    try:
                        record = future.result()
                    except BadInput as error:
                        raise cell_error(work, config, error) from error
                    on_done(config, record)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # let running cells finish writing; start no more
            raise
