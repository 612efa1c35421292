"""The paper grid at scale, by simulation (issue 23, item 6): ``python -m harness simulate-cluster``.

How long the whole ``paper`` profile (2,880 cells) takes on 8, 64 and 512 GPUs under the Ray
executor, how much of the cluster idles, what the scheduler costs per cell, and what packing buys.
No GPU is needed; two instruments, kept apart in the output:

**Real Ray** (``ray_run``): the real executor, ``harness.grid.cluster.run_ray``, drives the profile's real
cells on a one-machine Ray cluster that declares G *logical* GPUs. Each cell is a no-op
(``NoOpCell``) that sleeps for the cell's estimated duration divided by a time-compression factor
C and returns a small record, which the driver writes as it would a cell's files. Tasks ask for
``num_gpus`` as params.yaml's ``run.ray`` says (``gpus_by_model`` packs DistilBERT/MiniLM at 0.5).
What is measured is in **real seconds** and is not compressed: the gap between a GPU share falling
free and the next cell starting on it (the scheduler's dispatch overhead per cell) and the gap
between a cell ending and its record reaching the driver. Compression shrinks only the sleeps: a
compressed run's own idle share therefore overstates the overhead's weight C-fold, which is why the
wall times below do not come from scaling a compressed run up. Every concurrently running Ray task
needs its own worker process (~60 MB of its own memory here), so the sizes that fit this machine run for real and
the rest do not. ``run_ray`` leaves Ray's ``max_calls`` at its default (``num_gpus`` is set per
task through ``.options``), so workers are reused across cells; the pool is started once before the
clock starts (a real cluster starts each node's workers on that node's own cores) and its start-up
time is reported separately.

**Event simulation** (``simulate``): the same schedule replayed exactly, without Ray, in
uncompressed seconds: the same cells, durations, GPU shares and submission order, a greedy list
scheduler that keeps one FIFO queue per resource shape (as Ray keeps one per scheduling class,
so a cell waiting for a whole GPU does not hold back half-GPU cells behind it) and puts a cell on
the fullest GPU that has room for it, and every cell's start delayed by the dispatch overhead
measured in the real Ray runs. It is checked against each real Ray run at that run's compression
(predicted vs measured makespan), and then gives the 8/64/512-GPU table.

Cell durations: ``harness.grid.cost`` (``cell_frame`` + ``datasheet_hours``): each cell's FLOPs on the real
data, at an ASSUMED ``GPU_UTILISATION`` of the GPU type's datasheet peak, with a small-model cell
alone keeping a GPU ``SMALL_CELL_GPU_SHARE`` busy (so two of them share one GPU at full speed).
These are the same assumptions ``python -m harness estimate --gpus N`` prints; model loading and
data preparation are not in them.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.files import write_text_atomic
from harness.grid.cluster import run_ray
from harness.grid.cost import GPU_UTILISATION, SMALL_CELL_GPU_SHARE, SMALL_MODEL_PARAMS, cell_frame, datasheet_hours
from harness.grid.executors import RaySettings, RunSettings, Work, run_settings
from harness.grid.expand import expand
from harness.grid.profiles import load_profile, read_params

# Only the standard library at the top: Ray workers import this module to unpickle ``NoOpCell``,
# and must not pay for torch, pandas or transformers (harness.cost) for a cell that only sleeps.

HOUR = 3600.0
ORDERS = ("submission", "longest-first")


# ---------------------------------------------------------------- tasks: what the scheduler places


@dataclass(frozen=True)
class Task:
    """One unit the scheduler places: one cell, or several cells run one after another (seeds packed)."""

    name: str
    seconds: float  # run time once started, uncompressed
    gpus: float  # share of one GPU held while it runs (Ray's num_gpus): 1, 0.5, 0.25, ...
    work: float  # GPU-seconds of compute actually done (a lone small cell does seconds x its share)
    cells: int = 1


def cell_seconds(hours: float, gpus: float, small: bool, share: float) -> float:
    """A cell's run time when it holds ``gpus`` of one GPU.

    As ``harness.cost.gpu_wall_hours`` assumes: a small-model cell alone keeps a GPU only ``share``
    busy, so it runs at full speed on any share >= ``share`` and proportionally slower below; any
    other cell needs the whole GPU and slows by 1/gpus on a fraction of one.
    """
    need = share if small else 1.0
    return hours * HOUR * max(1.0, need / gpus)


def cell_tasks(cells: Sequence, hours: Sequence[float], gpus_for: Callable[[str], float],
               small: Callable[[str], bool], share: float = 0.5, seeds_per_task: int = 1) -> list[Task]:
    """The scheduler's tasks for ``cells`` (in their submission order), with each cell's ``hours`` on one GPU.

    ``seeds_per_task`` > 1 runs that many seeds of one setting (the cells equal in every field but
    ``seed``) one after another in one task, as ``run.slurm.cells_per_task`` does: one dispatch per
    task, run time the sum of its cells'. A task takes the position of its first cell.
    """
    if seeds_per_task < 1:
        raise ValueError(f"seeds_per_task must be >= 1, got {seeds_per_task}")
    groups: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        key = json.dumps({k: v for k, v in asdict(cell).items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    chunks = [idx[j:j + seeds_per_task] for idx in groups.values() for j in range(0, len(idx), seeds_per_task)]
    chunks.sort(key=lambda chunk: chunk[0])
    tasks = []
    for chunk in chunks:
        model = cells[chunk[0]].model
        g, is_small = gpus_for(model), small(model)
        if not 0 < g <= 1:
            raise ValueError(f"num_gpus for {model} must be in (0, 1] here, got {g}")
        tasks.append(Task(name="+".join(_name(cells[i]) for i in chunk),
                          seconds=sum(cell_seconds(hours[i], g, is_small, share) for i in chunk), gpus=g,
                          work=sum(hours[i] * HOUR * (share if is_small else 1.0) for i in chunk), cells=len(chunk)))
    return tasks


def _name(cell) -> str:
    return getattr(cell, "hash", None) or str(cell)


def ordered(tasks: Sequence[Task], order: str = "submission") -> list[Task]:
    """``tasks`` in the order they are submitted: as given, or longest first (stable)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return list(tasks) if order == "submission" else sorted(tasks, key=lambda t: -t.seconds)


# ---------------------------------------------------------------- the event simulation


@dataclass(frozen=True)
class Schedule:
    """What ``simulate`` found: when each task started and ended, and the cluster's totals."""

    gpus: int
    overhead_s: float
    starts: tuple[float, ...]  # when each task's run began (after its dispatch overhead)
    ends: tuple[float, ...]
    on_gpu: tuple[int, ...]
    tasks: tuple[Task, ...] = field(repr=False)

    @property
    def makespan(self) -> float:
        return max(self.ends, default=0.0)

    def _capacity(self) -> float:
        return self.gpus * self.makespan

    @property
    def idle_share(self) -> float:
        """Share of the cluster's GPU-time held by no running cell: dispatch gaps, the tail, unpaired halves."""
        if not self.tasks:
            return 0.0
        return 1 - sum(t.seconds * t.gpus for t in self.tasks) / self._capacity()

    @property
    def dispatch_share(self) -> float:
        """Share of the cluster's GPU-time spent waiting for the scheduler to start a cell (part of idle)."""
        if not self.tasks:
            return 0.0
        return self.overhead_s * sum(t.gpus for t in self.tasks) / self._capacity()

    @property
    def utilisation(self) -> float:
        """Compute done over GPU-time: a lone small cell holding a whole GPU counts at its share."""
        if not self.tasks:
            return 0.0
        return sum(t.work for t in self.tasks) / self._capacity()

    @property
    def lower_bound(self) -> float:
        """No schedule of these tasks is shorter: the longest task, or all GPU-time spread evenly."""
        if not self.tasks:
            return 0.0
        per_task = [t.seconds + self.overhead_s for t in self.tasks]
        return max(max(per_task), sum(s * t.gpus for s, t in zip(per_task, self.tasks)) / self.gpus)

    @property
    def bound_by(self) -> str:
        if not self.tasks:
            return "-"
        longest = max(t.seconds for t in self.tasks) + self.overhead_s
        return "longest task" if math.isclose(longest, self.lower_bound) else "GPU-time / GPUs"

    def last_task(self) -> Task | None:
        return self.tasks[max(range(len(self.tasks)), key=self.ends.__getitem__)] if self.tasks else None


def slots_per_gpu(shares: Sequence[float], limit: int = 64) -> int:
    """The fewest equal slots a GPU splits into so that every share is whole slots (1, 0.5, 0.25 -> 4)."""
    for slots in range(1, limit + 1):
        if all(math.isclose(s * slots, round(s * slots), abs_tol=1e-9) and round(s * slots) >= 1 for s in shares):
            return slots
    raise ValueError(f"GPU shares {sorted(set(shares))} are not multiples of 1/{limit} or less")


def simulate(tasks: Sequence[Task], gpus: int, overhead_s: float = 0.0) -> Schedule:
    """Run ``tasks`` (in submission order) on ``gpus`` GPUs, every start ``overhead_s`` after its place fell free.

    One FIFO queue per resource shape, as Ray's scheduling classes: whenever shares fall free, the
    earliest-submitted queue head that fits anywhere starts, on the fullest GPU with room for it
    (best fit: half-GPU cells pair up and whole GPUs stay whole), until no head fits. A task
    holds its share from the moment it is placed, through its dispatch overhead, to its end.
    """
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    if overhead_s < 0:
        raise ValueError(f"overhead_s must be >= 0, got {overhead_s}")
    tasks = tuple(tasks)
    if not tasks:
        return Schedule(gpus, overhead_s, (), (), (), ())
    slots = slots_per_gpu([t.gpus for t in tasks])
    need = [round(t.gpus * slots) for t in tasks]
    queues: dict[int, deque[int]] = {}
    for i, k in enumerate(need):
        queues.setdefault(k, deque()).append(i)
    free = [slots] * gpus
    starts, ends, on_gpu = [0.0] * len(tasks), [0.0] * len(tasks), [-1] * len(tasks)
    running: list[tuple[float, int]] = []  # (end, task)
    now = 0.0
    while True:
        most = max(free)
        while most:
            heads = [(q[0], k) for k, q in queues.items() if q and k <= most]
            if not heads:
                break
            i, k = min(heads)
            queues[k].popleft()
            g = min((f, g) for g, f in enumerate(free) if f >= k)[1]
            free[g] -= k
            starts[i] = now + overhead_s
            ends[i] = starts[i] + tasks[i].seconds
            on_gpu[i] = g
            heapq.heappush(running, (ends[i], i))
            most = max(free)
        if not running:
            break
        now, i = heapq.heappop(running)
        free[on_gpu[i]] += need[i]
        while running and running[0][0] == now:  # everything ending at the same instant frees together
            _, j = heapq.heappop(running)
            free[on_gpu[j]] += need[j]
    return Schedule(gpus, overhead_s, tuple(starts), tuple(ends), tuple(on_gpu), tasks)


# ---------------------------------------------------------------- real Ray: the executor on logical GPUs


@dataclass(frozen=True)
class NoOpCell:
    """A cell's ``run`` for ``harness.grid.cluster.run_ray``: sleep for the cell's (compressed) seconds, write a record."""

    seconds: Mapping[str, float]  # cell hash -> seconds to sleep

    def __call__(self, config, folder: str) -> dict:
        start = time.time()
        ray = sys.modules.get("ray")  # a Ray worker has it; elsewhere (the tests) there are no GPU ids,
        # and asking Ray for them would start a cluster
        gpu = [str(g) for g in ray.get_gpu_ids()] if ray is not None and ray.is_initialized() else []
        time.sleep(self.seconds[config.hash])
        record = {"hash": config.hash, "start": start, "end": time.time(), "gpu": gpu, "pid": os.getpid()}
        write_text_atomic(Path(folder, f"{config.hash}.json"), json.dumps(record))
        return record


def no_init(threads: int) -> None:
    """``Work.init_worker`` for a no-op cell: nothing to set up."""


def dispatch_gaps(records: Sequence[Mapping], t0: float) -> list[tuple[float, bool]]:
    """Per cell: (its start minus when its place on its GPU last fell free, whether it was in the first wave).

    ``records``: the cells' ``start``, ``end`` and ``gpu`` (Ray's GPU ids). A place falls free when
    a cell on the same GPU ends; a cell that started before any cell on its GPU had ended is of the
    first wave and is measured from ``t0``, when the grid began submitting. A cell that found room
    next to a running half-GPU cell is measured from the last end on its GPU before it started,
    the latest moment the room could have appeared, so no gap is overstated.
    """
    ends_on: dict[str, list[float]] = {}
    for r in records:
        for g in r["gpu"]:
            ends_on.setdefault(g, []).append(r["end"])
    for ends in ends_on.values():
        ends.sort()
    gaps = []
    for r in records:
        freed = [ends_on[g][i - 1] for g in r["gpu"] if (i := bisect.bisect_right(ends_on[g], r["start"]))]
        first = not freed
        gaps.append((max(0.0, r["start"] - max(freed, default=t0)), first))
    return gaps


@dataclass(frozen=True)
class RayRun:
    """One real Ray run of the profile on ``gpus`` logical GPUs, at ``compression``."""

    gpus: int
    cells: int
    compression: float
    wall_s: float  # grid start -> last record written, real (compressed) seconds
    simulated_s: float  # the event simulation of the same tasks at this compression, zero overhead
    simulated_with_overhead_s: float  # ... with the measured mean dispatch gap
    idle_share: float  # of this compressed run (overhead weighs C-fold: not the cluster's)
    dispatch_ms: dict  # mean, median, p95, max of the dispatch gaps, all cells
    first_wave_ms: dict  # ... of the cells that started before any cell on their GPU ended (from submission)
    steady_ms: dict  # ... of the others (from the end of the cell before them on their GPU)
    result_ms: dict  # the same for end -> record written by the driver
    sleep_excess_ms: dict
    workers: int  # distinct worker processes that ran cells
    new_workers: int  # of them started after the clock started (not by the warm-up)
    warmup_s: float  # starting the worker pool before the clock: real seconds on this host
    memory: dict  # Ray's workers (count, USS) and all of Ray's processes with the driver (RSS), at their largest
    load_avg: tuple[float, float, float]


def _stats_ms(values: Sequence[float]) -> dict:
    if not values:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0}
    ordered_values = sorted(values)
    p95 = ordered_values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]
    return {"mean": 1e3 * statistics.fmean(values), "median": 1e3 * statistics.median(values), "p95": 1e3 * p95,
            "max": 1e3 * ordered_values[-1]}


def _ray_memory_mb() -> dict:
    """Memory of this host's Ray processes: the workers' unique pages (USS), and all of Ray's with the driver (RSS)."""
    import psutil

    workers, total, count = 0, 0, 0
    for proc in psutil.process_iter(["cmdline", "name"]):
        try:
            command = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["name"] or "")
            if command.startswith("ray::"):
                workers += proc.memory_full_info().uss
                count += 1
            if "ray" in command or proc.pid == os.getpid():
                total += proc.memory_info().rss
        except (psutil.Error, TypeError):
            continue
    return {"workers": count, "worker_uss_mb": workers / 2**20, "ray_and_driver_rss_mb": total / 2**20}


def _warm_up(ray, workers: int, share: float, folder: Path, timeout_s: float = 600) -> tuple[float, set[int]]:
    """Start ``workers`` worker processes (each holding ``share`` of a GPU until all have started)."""
    folder.mkdir(parents=True, exist_ok=True)

    def hold(path: str) -> int:
        Path(path, str(os.getpid())).touch()
        while not Path(path, "go").exists():
            time.sleep(0.05)
        return os.getpid()

    start = time.time()
    refs = [ray.remote(hold).options(num_cpus=1, num_gpus=share).remote(str(folder)) for _ in range(workers)]
    while len([p for p in folder.iterdir() if p.name != "go"]) < workers:
        if time.time() - start > timeout_s:
            raise RuntimeError(f"warm-up: only {len(list(folder.iterdir()))} of {workers} workers started")
        time.sleep(0.1)
    (folder / "go").touch()
    pids = set(ray.get(refs))
    return time.time() - start, pids


def ray_run(cells: Sequence, seconds: Mapping[str, float], gpus: int, compression: float, ray_settings,
            tasks: Sequence[Task], root: str | Path) -> RayRun:
    """The real executor (``harness.grid.cluster.run_ray``) on ``gpus`` logical GPUs, cells sleeping seconds / compression.

    ``tasks``: the same cells as the event simulation sees them (uncompressed), for its replay.
    """
    import ray  # optional: pip install -e '.[ray]'

    shares = {c.model: ray_settings.gpus_for(c.model) for c in cells}
    smallest = min(shares.values())
    concurrent = math.ceil(gpus / smallest)  # the most cells that can run at once
    sleep = {c.hash: seconds[c.hash] / compression for c in cells}
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    # Logical resources only: `gpus` GPUs (nothing to do with CUDA here) and enough logical CPUs that
    # the cells' num_cpus never binds, so the GPUs are what the scheduler packs against, as on a cluster.
    ray.init(address="local", num_cpus=concurrent * max(1, math.ceil(ray_settings.num_cpus)), num_gpus=gpus,
             include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             object_store_memory=256 * 2**20, runtime_env={"env_vars": env})
    try:
        with tempfile.TemporaryDirectory(prefix="cluster-sim-") as scratch:
            warmup_s, warm_pids = _warm_up(ray, concurrent, smallest, Path(scratch, "warm"))
            memory = _ray_memory_mb()
            done: dict[str, float] = {}
            records: dict[str, dict] = {}

            def on_done(config, record) -> None:
                done[config.hash] = time.time()
                records[config.hash] = record

            work = Work(todo=tuple(cells), run=NoOpCell(sleep), is_done=lambda config: False,
                        out_dir=Path(scratch, "out"), init_worker=no_init)
            t0 = time.time()
            run_ray(work, RunSettings(executor="ray", ray=ray_settings), on_done)
            wall = max(done.values()) - t0
            after = _ray_memory_mb()
            memory = {k: max(memory[k], after[k]) for k in memory}
        load = os.getloadavg()
    finally:
        ray.shutdown()
    rows = [records[c.hash] for c in cells]
    measured = dispatch_gaps(rows, t0)
    gaps = [gap for gap, _ in measured]
    results = [done[r["hash"]] - r["end"] for r in rows]
    excess = [max(0.0, r["end"] - r["start"] - sleep[r["hash"]]) for r in rows]
    capacity = gpus * wall
    idle = 1 - sum(sleep[c.hash] * shares[c.model] for c in cells) / capacity
    compressed = [Task(t.name, t.seconds / compression, t.gpus, t.work / compression, t.cells) for t in tasks]
    mean_gap = statistics.fmean(gaps)
    pids = {r["pid"] for r in rows}
    return RayRun(gpus=gpus, cells=len(cells), compression=compression, wall_s=wall,
                  simulated_s=simulate(compressed, gpus).makespan,
                  simulated_with_overhead_s=simulate(compressed, gpus, mean_gap).makespan + statistics.fmean(results),
                  idle_share=idle, dispatch_ms=_stats_ms(gaps),
                  first_wave_ms=_stats_ms([gap for gap, first in measured if first]),
                  steady_ms=_stats_ms([gap for gap, first in measured if not first]), result_ms=_stats_ms(results),
                  sleep_excess_ms=_stats_ms(excess), workers=len(pids), new_workers=len(pids - warm_pids),
                  warmup_s=warmup_s, memory=memory, load_avg=tuple(round(x, 2) for x in load))


# ---------------------------------------------------------------- the profile's cells and their durations


@dataclass(frozen=True)
class Grid:
    """The profile's cells in submission order, each one's hours on one GPU, and the executor's packing."""

    profile: str
    gpu_type: str
    cells: tuple
    hours: tuple[float, ...]
    gpus_by_model: tuple[tuple[str, float], ...]  # run.ray.gpus_by_model
    default_gpus: float  # run.ray.num_gpus
    small_models: frozenset[str]
    small_share: float  # harness.cost.SMALL_CELL_GPU_SHARE
    utilisation: float  # harness.cost.GPU_UTILISATION (assumed share of the datasheet peak)

    def gpus_for(self, model: str) -> float:
        return dict(self.gpus_by_model).get(model, self.default_gpus)

    def tasks(self, packing: str = "params", seeds_per_task: int = 1, order: str = "submission") -> list[Task]:
        """``packing``: "params" (run.ray's gpus_by_model) or "one" (every cell a whole GPU)."""
        gpus_for = self.gpus_for if packing == "params" else (lambda model: 1.0)
        return ordered(cell_tasks(self.cells, self.hours, gpus_for, self.small_models.__contains__,
                                  self.small_share, seeds_per_task), order)

    def longest(self) -> tuple[float, str]:
        i = max(range(len(self.hours)), key=self.hours.__getitem__)
        c = self.cells[i]
        same = sum(1 for h in self.hours if math.isclose(h, self.hours[i]))
        return self.hours[i], f"{c.model} {c.dataset} {c.mode} ({same} such cells)"


def load_grid(profile: str, params: str | Path, data_dir: str | Path, gpu_type: str) -> Grid:
    """The profile's cells (``harness.grid.expand``) with their datasheet hours on ``gpu_type`` (``harness.grid.cost``)."""
    cells = expand(load_profile(profile, params))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = cell_frame(cells, data_dir)
    hours = datasheet_hours(frame, gpu_type)
    ray_settings = run_settings(read_params(params).get("run")).ray
    small = frozenset(frame.model[frame.params < SMALL_MODEL_PARAMS])
    return Grid(profile=profile, gpu_type=gpu_type, cells=tuple(cells), hours=tuple(float(h) for h in hours),
                gpus_by_model=ray_settings.gpus_by_model, default_gpus=ray_settings.num_gpus, small_models=small,
                small_share=SMALL_CELL_GPU_SHARE, utilisation=GPU_UTILISATION)


# ---------------------------------------------------------------- the report


VARIANTS = (  # (label, packing, seeds per task, order)
    ("one cell per GPU", "one", 1, "submission"),
    ("run.ray packing (small models 0.5 GPU)", "params", 1, "submission"),
    ("run.ray packing + 3 seeds per task", "params", 3, "submission"),
    ("run.ray packing, longest cells first", "params", 1, "longest-first"),
)


def _row(schedule: Schedule) -> dict:
    return {"wall_h": schedule.makespan / HOUR, "lower_bound_h": schedule.lower_bound / HOUR,
            "bound_by": schedule.bound_by, "idle_share": schedule.idle_share,
            "dispatch_share": schedule.dispatch_share, "utilisation": schedule.utilisation,
            "tasks": len(schedule.tasks)}


def report(grid: Grid, gpu_counts: Sequence[int], overhead_s: float, overhead_source: str,
           ray_runs: Sequence[RayRun] = ()) -> tuple[str, dict]:
    """The markdown tables, and the same numbers as a dict (the JSON of --out)."""
    base = grid.tasks("params")
    checks = {run.gpus: run for run in ray_runs}
    main_rows, variant_rows = [], []
    for gpus in gpu_counts:
        schedule = simulate(base, gpus, overhead_s)
        main_rows.append({"gpus": gpus, **_row(schedule), "overhead_ms": 1e3 * overhead_s,
                          "last_cell": _describe_task(grid, schedule.last_task())})
        for label, packing, seeds, order in VARIANTS:
            variant_rows.append({"gpus": gpus, "variant": label,
                                 **_row(simulate(grid.tasks(packing, seeds, order), gpus, overhead_s))})
    longest_h, longest_what = grid.longest()
    total_h = sum(grid.hours)
    lines = [
        f"# The `{grid.profile}` grid on a simulated Ray cluster",
        "",
        f"{len(grid.cells)} cells, {total_h:,.0f} GPU-hours on {grid.gpu_type} (harness.cost: ASSUMED "
        f"{grid.utilisation:.0%} of the datasheet peak; a small-model cell alone keeps a GPU "
        f"{grid.small_share:.0%} busy; model and data loading not counted). Longest cell: {longest_h:.2f} h, "
        f"{longest_what}. Packing from params.yaml run.ray: num_gpus {grid.default_gpus:g}, gpus_by_model "
        f"{dict(grid.gpus_by_model)}. Past GPU-time / longest cell = {saturation(base):.0f} GPUs no schedule "
        "gets shorter: the longest cell is the critical path.",
        "",
    ]
    if ray_runs:
        lines += [
            "## Real Ray: harness.cluster.run_ray on logical GPUs of this host, no-op cells sleeping duration / C",
            "",
            "Overheads are real seconds (not compressed). 'sim' = the event simulation of the same tasks at the same "
            "compression; its match to the measured wall validates the simulator used below. The measured idle share "
            "is of the compressed run, where the overhead weighs C times more than on the real cluster.",
            "",
            "| GPUs | cells | compression C | measured wall (s) | sim, no overhead (s) | sim, measured overhead (s) "
            "| dispatch gap per cell, all: mean / median / p95 (ms) | first wave: mean / max (ms) "
            "| steady: mean / median / p95 (ms) | end -> record written: mean / p95 (ms) "
            "| oversleep mean (ms) | idle share (compressed) | workers (started late) | pool start-up (s) "
            "| memory: worker USS total / Ray + driver RSS (MB) | host load, 1 min (" + f"{os.cpu_count()} cores) |",
            "|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|---|---:|---|---:|",
        ]
        for run in ray_runs:
            d, r, f, st = run.dispatch_ms, run.result_ms, run.first_wave_ms, run.steady_ms
            lines.append(
                f"| {run.gpus} | {run.cells} | {run.compression:,.0f} | {run.wall_s:.1f} | {run.simulated_s:.1f} "
                f"| {run.simulated_with_overhead_s:.1f} | {d['mean']:.1f} / {d['median']:.1f} / {d['p95']:.1f} "
                f"| {f['mean']:.0f} / {f['max']:.0f} | {st['mean']:.1f} / {st['median']:.1f} / {st['p95']:.1f} "
                f"| {r['mean']:.1f} / {r['p95']:.1f} | {run.sleep_excess_ms['mean']:.1f} | {run.idle_share:.1%} "
                f"| {run.workers} ({run.new_workers}) | {run.warmup_s:.0f} "
                f"| {run.memory['worker_uss_mb']:,.0f} ({run.memory['workers']} workers) / "
                f"{run.memory['ray_and_driver_rss_mb']:,.0f} | {run.load_avg[0]:.1f} |")
        lines.append("")
    lines += [
        f"## The grid on 8 / 64 / 512 GPUs (EVENT SIMULATION, uncompressed; every cell's start delayed by "
        f"{1e3 * overhead_s:.1f} ms: {overhead_source})",
        "",
        "idle share: GPU-time held by no running cell (dispatch gaps, the tail, unpaired half-GPUs); utilisation: "
        "compute done over GPU-time (a lone small cell on a whole GPU counts at its share).",
        "",
        "| GPUs | wall (h) | lower bound (h), bound by | idle share | of it dispatch | utilisation |"
        " scheduler overhead per cell (ms) | real Ray check (measured / simulated, compressed) | last cell to finish |",
        "|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for row in main_rows:
        run = checks.get(row["gpus"])
        check = (f"{run.wall_s:.1f} s / {run.simulated_with_overhead_s:.1f} s at C={run.compression:,.0f}"
                 if run else "none (event simulation only)")
        lines.append(f"| {row['gpus']} | {row['wall_h']:.2f} | {row['lower_bound_h']:.2f}, {row['bound_by']} "
                     f"| {row['idle_share']:.1%} | {row['dispatch_share']:.4%} | {row['utilisation']:.1%} "
                     f"| {row['overhead_ms']:.1f} | {check} | {row['last_cell']} |")
    lines += [
        "",
        "## Packing (EVENT SIMULATION, same overhead)",
        "",
        "| GPUs | variant | tasks | wall (h) | lower bound (h), bound by | idle share | utilisation |",
        "|---:|---|---:|---:|---|---:|---:|",
    ]
    for row in variant_rows:
        lines.append(f"| {row['gpus']} | {row['variant']} | {row['tasks']} | {row['wall_h']:.2f} "
                     f"| {row['lower_bound_h']:.2f}, {row['bound_by']} | {row['idle_share']:.1%} "
                     f"| {row['utilisation']:.1%} |")
    data = {"profile": grid.profile, "gpu_type": grid.gpu_type, "cells": len(grid.cells), "gpu_hours": total_h,
            "longest_cell_h": longest_h, "longest_cell": longest_what,
            "saturation_gpus": saturation(base), "overhead_s": overhead_s,
            "overhead_source": overhead_source, "gpus_by_model": dict(grid.gpus_by_model),
            "assumed_gpu_utilisation": grid.utilisation, "assumed_small_cell_share": grid.small_share,
            "grid": main_rows, "packing": variant_rows, "ray_runs": [asdict(run) for run in ray_runs]}
    return "\n".join(lines), data


def saturation(tasks: Sequence[Task]) -> float:
    """The GPU count past which the longest task, not the GPU-time, bounds the wall time."""
    return sum(t.seconds * t.gpus for t in tasks) / max(t.seconds for t in tasks) if tasks else 0.0


def load_ray_runs(path: Path) -> list[RayRun]:
    """The real Ray measurements of an earlier ``--out`` JSON, to report again without rerunning Ray."""
    runs = json.loads(Path(path).read_text())["ray_runs"]
    return [RayRun(**{**run, "load_avg": tuple(run["load_avg"])}) for run in runs]


def _describe_task(grid: Grid, task: Task | None) -> str:
    if task is None:
        return "-"
    first = task.name.split("+")[0]
    cell = next((c for c in grid.cells if _name(c) == first), None)
    what = f"{cell.model} {cell.dataset} {cell.mode}" if cell is not None else first
    return f"{what}, {task.seconds / HOUR:.2f} h" + (f" ({task.cells} cells)" if task.cells > 1 else "")


def compression_for(tasks: Sequence[Task], gpus: int, target_s: float) -> float:
    """The compression that makes the zero-overhead schedule of ``tasks`` on ``gpus`` last ``target_s`` real seconds."""
    return simulate(tasks, gpus).makespan / target_s


def simulate_cluster(*, profile: str, params: str | Path, data_dir: str | Path, gpu_type: str,
                     gpus: Sequence[int], ray_gpus: Sequence[int], ray_seconds: float, ray_cells: int | None,
                     ray_from: Path | None, overhead_ms: float | None, out: Path | None) -> int:
    """The ``simulate-cluster`` verb: real Ray at ``ray_gpus`` (unless ``ray_from`` holds earlier measurements),
    then the event simulation at ``gpus``; prints the tables and writes ``out`` (JSON)."""
    grid = load_grid(profile, params, data_dir, gpu_type)
    runs = load_ray_runs(ray_from) if ray_from else []
    if ray_gpus and not ray_from:
        ray_settings = RaySettings(num_gpus=grid.default_gpus, gpus_by_model=grid.gpus_by_model, max_retries=0)
        cells = grid.cells[:ray_cells] if ray_cells else grid.cells
        hours = grid.hours[:len(cells)]
        seconds = {c.hash: cell_seconds(h, grid.gpus_for(c.model), c.model in grid.small_models, grid.small_share)
                   for c, h in zip(cells, hours)}
        tasks = cell_tasks(cells, hours, grid.gpus_for, grid.small_models.__contains__, grid.small_share)
        root = Path(__file__).resolve().parents[2]
        for size in ray_gpus:
            compression = compression_for(tasks, size, ray_seconds)
            print(f"real Ray: {len(cells)} cells on {size} logical GPUs, C={compression:,.0f} ...", file=sys.stderr)
            runs.append(ray_run(cells, seconds, size, compression, ray_settings, tasks, root))
    if overhead_ms is not None:
        overhead_s, source = overhead_ms / 1e3, "given by --overhead-ms"
    elif runs:
        worst = max(runs, key=lambda r: r.dispatch_ms["mean"])
        overhead_s = worst.dispatch_ms["mean"] / 1e3
        source = f"the largest mean dispatch gap measured by real Ray ({worst.gpus} logical GPUs)"
    else:
        overhead_s, source = 0.0, "none measured (no Ray run): zero"
    text, data = report(grid, gpus, overhead_s, source, runs)
    data["ray_runs_from"] = str(ray_from) if ray_from else ("this run" if runs else None)
    print(text)
    if out:
        write_text_atomic(out, json.dumps(data, indent=1, default=str) + "\n")
    return 0
