"""The grid's cluster executors: one Ray task per cell, or a Slurm job array through submitit.

What an executor is handed (``Work``) and must guarantee, its settings (params.yaml's ``run:``
block) and the local process pool are ``harness.grid.executors``; ``execute`` there picks one of these.

``ray``     one Ray task per cell (``num_cpus`` also sets its torch threads, ``num_gpus`` may be a
            fraction), collected with ``ray.wait``. A task runs its cell in a private folder and
            returns the files; the driver writes them, so the nodes need no shared filesystem, and
            a task whose node died is retried elsewhere (``max_retries``).
``slurm``   a submitit job array; the tasks write their records into the shared results folder, and
            the job ids of cells in flight are kept in ``<folder>/inflight.json`` so that a
            restarted driver waits for them rather than submitting them twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from harness.errors import BadInput
from harness.files import write_atomic, write_text_atomic
from harness.grid.cost import suggested_timeout_min
from harness.grid.executors import OnDone, RaySettings, RunSettings, SlurmSettings, Work, available_cores, cell_error
from harness.grid.remote import run_chunk, run_detached

SLURM_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}  # squeue's states of a live job

# What a Ray worker needs from the driver's environment to run a cell the same way: where the code
# is (a source checkout on PYTHONPATH), offline hub settings, and quiet/passive threading.
FORWARDED_ENV = ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_VERBOSITY",
                 "OMP_WAIT_POLICY")


# ---------------------------------------------------------------- ray: one task per cell


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
                raise cell_error(work, config, getattr(error, "cause", error)) from None
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
                        raise cell_error(work, by_hash[cell_hash], message)
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
