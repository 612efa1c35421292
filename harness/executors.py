"""Where the grid's cells run: a process pool on this machine, Ray tasks, or a Slurm job array.

The grid hands an executor a ``Work``: the cells still to run and two functions, ``run(config,
folder) -> record`` (runs one cell, writing its files into ``folder``) and ``is_done(config)``.
An executor knows nothing of how a record is named or checked; it only decides where ``run`` is
called and makes sure that

* a cell is run at most once per grid run (a cell lost with a dead node or job runs again, a
  finished one never does);
* a killed driver resumes where it stopped: the grid only hands over the cells not yet done.

Executors:

``local``   today's process pool; where CUDA is present, one worker per visible GPU instead, each
            pinned to its own device through ``CUDA_VISIBLE_DEVICES`` (``cells_per_gpu`` > 1 packs
            small cells onto one GPU).
``ray``     one Ray task per cell (``num_cpus`` also sets its torch threads, ``num_gpus`` may be a
            fraction), collected with ``ray.wait``. A task runs its cell in a private folder and
            returns the files; the driver writes them, so the nodes need no shared filesystem, and
            a task whose node died is retried elsewhere (``max_retries``).
``slurm``   a submitit job array; the tasks write their records into the shared results folder, and
            the job ids of cells in flight are kept in ``<folder>/inflight.json`` so that a
            restarted driver waits for them rather than submitting them twice.

The settings come from params.yaml's ``run:`` block and the command line; they are never part of
a cell's identity, so changing them recomputes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from multiprocessing import get_context
from pathlib import Path

from harness import BadInput
from harness.config import CellConfig
from harness.results import write_atomic, write_text_atomic

EXECUTORS = ("local", "ray", "slurm")
SLURM_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}  # squeue's states of a live job

# What a Ray worker needs from the driver's environment to run a cell the same way: where the code
# is (a source checkout on PYTHONPATH), offline hub settings, and quiet/passive threading.
FORWARDED_ENV = ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_VERBOSITY",
                 "OMP_WAIT_POLICY")


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


# ---------------------------------------------------------------- dispatch


def execute(work: Work, settings: RunSettings, on_done: OnDone = lambda config, record: None) -> None:
    """Run ``work.todo`` with the chosen executor, calling ``on_done`` once per finished cell."""
    if not work.todo:
        return  # nothing to do: start no pool, cluster or job
    run = {"local": run_local, "ray": run_ray, "slurm": run_slurm}[settings.executor]
    run(work, settings, on_done)


def _cell_error(work: Work, config: CellConfig, error: BaseException | str) -> BadInput:
    """The cell's failure, naming the cell, in the error's own class (so with its own exit code)."""
    kind = type(error) if isinstance(error, BadInput) else BadInput
    return kind(f"cell {config.hash} ({work.describe(config)}): {error}")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---------------------------------------------------------------- local: a process pool, one worker per GPU


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries for its workers."""
    import torch

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
                raise _cell_error(work, config, error) from error
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
                        raise _cell_error(work, config, error) from error
                    on_done(config, record)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # let running cells finish writing; start no more
            raise


# ---------------------------------------------------------------- ray: one task per cell


def run_detached(run: Callable[[CellConfig, str], dict], init_worker: Callable[[int], None], threads: int,
                 config: CellConfig) -> tuple[dict, list[tuple[str, bytes]]]:
    """On a worker: run the cell in a private folder and return its record and files, in the order written."""
    init_worker(threads)
    with tempfile.TemporaryDirectory(prefix="cell-") as folder:
        record = run(config, folder)
        written = sorted((p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime_ns)
        return record, [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in written]


def write_files(out_dir: Path, files: Sequence[tuple[str, bytes]]) -> None:
    # In the order the cell wrote them (its record last), as on the worker's disk. A record that
    # arrived without its features would not count as done anyway (the grid's is_done checks both).
    for name, payload in files:
        write_atomic(Path(out_dir) / name, lambda handle, payload=payload: handle.write(payload))


def _connect(settings: RaySettings) -> bool:
    """Connect to Ray (or start it here); True when this call did, so the caller disconnects after."""
    import ray

    if ray.is_initialized():  # the caller's own connection (a notebook, a test): use it, leave it open
        return False
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    options = {"runtime_env": {"env_vars": env}, "logging_level": "WARNING"}
    if settings.address:
        ray.init(address=settings.address, **options)
    else:  # a one-machine cluster for this grid, gone when it ends ("local": not one that `ray start` left running)
        ray.init(address="local", num_cpus=available_cores(), include_dashboard=False, **options)
    return True


def run_ray(work: Work, settings: RunSettings, on_done: OnDone) -> None:
    import ray

    own = _connect(settings.ray)
    pending: dict = {}
    try:
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0  # else num_gpus > 0 would wait forever
        threads = max(1, int(settings.ray.num_cpus))
        task = ray.remote(run_detached)
        run, init = ray.put(work.run), ray.put(work.init_worker)
        for config in work.todo:
            options = {"num_cpus": settings.ray.num_cpus, "max_retries": settings.ray.max_retries,
                       "num_gpus": settings.ray.gpus_for(config.model) if has_gpus else 0, "name": f"cell {config.hash}"}
            pending[task.options(**options).remote(run, init, threads, config)] = config
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            config = pending.pop(ref)
            try:
                record, files = ray.get(ref)
            except BadInput as error:  # Ray re-raises the task's exception as a subclass of its type
                raise _cell_error(work, config, getattr(error, "cause", error)) from None
            except ray.exceptions.RayError as error:  # e.g. out of retries after node deaths
                raise RuntimeError(f"cell {config.hash} ({work.describe(config)}) failed on Ray: {error}") from error
            write_files(work.out_dir, files)
            on_done(config, record)
    finally:
        for ref in pending:  # a failed or interrupted grid: stop what runs; nothing of it was written
            ray.cancel(ref, force=True)
        if own:
            ray.shutdown()


# ---------------------------------------------------------------- slurm: a submitit job array


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


def _alive(cluster: str, job_id: str) -> bool:
    """Whether a job submitted by an earlier driver may still write its records."""
    if cluster == "local":  # the job id is the pid of submitit's controller, which outlives its driver
        try:
            return Path(f"/proc/{int(job_id)}/stat").read_text().split(") ")[-1][:1] not in ("Z", "X")
        except (OSError, ValueError):
            return False
    # squeue asks the controller, so it needs no accounting database (sacct does).
    try:
        done = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: wait for it rather than risk running its cells twice
    if done.returncode != 0:
        return "invalid job id" not in done.stderr.lower()  # long gone from the queue, or the queue is down
    return bool(done.stdout.split()) and done.stdout.split()[0] in SLURM_ACTIVE


def slurm_timeout_min(work: Work, settings: SlurmSettings) -> int:
    if settings.timeout_min:
        return int(settings.timeout_min)
    if not settings.gpu_type:
        raise BadInput("run.slurm needs timeout_min, or gpu_type to take it from the estimate "
                       "(python -m harness estimate --gpus N --gpu-type TYPE prints it)")
    from harness.cost import suggested_timeout_min

    return suggested_timeout_min(work.todo, settings.gpu_type, settings.cells_per_task, work.data_dir)


def submitit_executor(work: Work, settings: SlurmSettings, cluster: str):
    import submitit

    executor = submitit.AutoExecutor(folder=Path(settings.folder) / "%j", cluster=cluster)
    parameters = {"name": "bert-healing", "timeout_min": slurm_timeout_min(work, settings), "tasks_per_node": 1,
                  "gpus_per_node": settings.gpus_per_task, "cpus_per_task": settings.cpus_per_task,
                  "slurm_array_parallelism": settings.array_parallelism}
    if settings.mem_gb:
        parameters["mem_gb"] = settings.mem_gb
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    if settings.additional:
        parameters["slurm_additional_parameters"] = dict(settings.additional)
    executor.update_parameters(**parameters)
    return executor


def run_slurm(work: Work, settings: RunSettings, on_done: OnDone) -> None:
    s = settings.slurm
    cluster = s.cluster or ("slurm" if shutil.which("sbatch") else None)
    if cluster is None:
        raise BadInput("executor slurm: no `sbatch` here; run the grid on a Slurm login node, or set "
                       "run.slurm.cluster: local to run the array on this machine")
    folder = Path(s.folder)
    ledger = folder / "inflight.json"  # cell hash -> job id: what a restarted driver must wait for
    inflight = json.loads(ledger.read_text()) if ledger.is_file() else {}
    by_hash = {c.hash: c for c in work.todo}
    adopted = {h: job for h, job in inflight.items() if h in by_hash and _alive(cluster, job)}
    fresh = [c for c in work.todo if c.hash not in adopted]
    chunks = deque(fresh[i:i + s.cells_per_task] for i in range(0, len(fresh), s.cells_per_task))
    running: dict = {}  # submitit job -> its cells
    executor = None

    def submit() -> None:
        nonlocal executor
        # Slurm throttles an array itself (%array_parallelism); on this machine we keep that many running.
        n = len(chunks) if cluster != "local" else min(len(chunks), s.array_parallelism - len(running))
        if n <= 0:
            return
        executor = executor or submitit_executor(work, s, cluster)
        batch = [chunks.popleft() for _ in range(n)]
        jobs = executor.map_array(run_chunk, [work.run] * n, [work.init_worker] * n, [s.cpus_per_task] * n, batch,
                                  [str(work.out_dir)] * n)
        for job, chunk in zip(jobs, batch):
            running[job] = chunk
            inflight.update({c.hash: job.job_id for c in chunk})
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ledger, json.dumps(inflight, indent=1))

    try:
        while chunks or running or adopted:
            submit()
            for job in [j for j in running if j.done()]:
                outcome = job.result()  # a crashed or timed-out task raises here, with its log
                for cell_hash, message in outcome:
                    if message is not None:
                        raise _cell_error(work, by_hash[cell_hash], message)
                    on_done(by_hash[cell_hash], None)
                del running[job]
            for cell_hash, job_id in list(adopted.items()):  # an earlier driver's job: wait for it, or take over
                if work.is_done(by_hash[cell_hash]):
                    on_done(by_hash[cell_hash], None)
                    del adopted[cell_hash]
                elif not _alive(cluster, job_id):
                    del adopted[cell_hash]
                    chunks.append([by_hash[cell_hash]])
            if running or adopted:
                time.sleep(s.poll_s)
    except BaseException:
        for job in running:  # a failed grid stops its own jobs (a killed driver leaves them running)
            job.cancel(check=False)
        raise
    ledger.unlink(missing_ok=True)
