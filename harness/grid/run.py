"""The experiment grid (the paper's Tables 2-5): the runner that fills a profile's cells.

A profile's cells come from ``harness.grid.expand``. The runner keys every cell by its identity (config,
METHOD_VERSION, data digest; see ``harness.method.config.cell_identity``): ``<out>/<identity>.json`` is
written atomically by ``run_cell``, so a finished cell is never recomputed, a killed grid resumes
where it stopped, and changing one cell's parameters (or its dataset's files) recomputes only that
cell. Before any cell starts, the whole grid is checked (``plan_grid``): the profile, every dataset's
files and splits, and that the output folders can be written. Grids that share a results folder claim
each cell through a lock, so no cell is computed twice. Where the cells run (a process pool, one worker
per GPU, a Ray cluster, a Slurm array) is ``harness/grid/executors.py`` (Ray and Slurm: ``harness/grid/cluster.py``),
chosen by params.yaml's ``run:`` block, which is no part of any cell's identity.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from harness.errors import BadInput
from harness.files import check_writable
from harness.grid.cluster import run_ray, run_slurm
from harness.grid.executors import OnDone, RunSettings, Work, override, run_local, run_settings
from harness.grid.expand import describe, expand, model_layout, saves_vectors
from harness.grid.profiles import Profile, load_profile, read_params
from harness.method.cell import run_cell
from harness.method.config import CellConfig, cell_identity
from harness.method.corrupt import check_components
from harness.method.data import dataset_digest
from harness.method.digest import check_method_digest
from harness.method.models import load_classifier, quiet_transformers
from harness.method.prepare import make_splits, prepare
from harness.method.record import cell_record, features_path, record_path
from harness.method.table1 import OVERRIDE_KEY, BelowTable1, Table1Gap, refusal, table1_gaps

# ---------------------------------------------------------------- running the grid


def is_done(config: CellConfig, out_dir: str | Path, data_digest: str, needs_features: bool = False) -> bool:
    """A cell is done when its record holds its own identity (and its features, if Figure 1 needs them).

    Only the exact file name counts, so the ``.<identity>.json.*.tmp`` files of a killed run are
    ignored, and an unreadable record counts as missing (with a warning naming it).
    """
    if cell_record(config, data_digest, out_dir) is None:
        return False
    return not needs_features or features_path(record_path(config, out_dir, data_digest)).exists()


def check_table1(profile_name: str | None, *, params: str | Path, data_dir: str | Path) -> list[Table1Gap]:
    """Refuse (``BelowTable1``) a profile whose Table-1 cells the data cannot give, unless the profile overrides it;
    where it does, warn and return the gaps. Reads params.yaml and the data only: no model, no hub."""
    profile = load_profile(profile_name, params)
    gaps = table1_gaps(expand(profile), data_dir)
    if gaps and not profile.allow_data_below_table1:
        raise BelowTable1(refusal(profile.name, gaps, data_dir))
    for gap in gaps:  # overridden: said on every run (and each record's notes name the caps)
        warnings.warn(f"profile {profile.name!r} runs below Table 1 ({OVERRIDE_KEY}: true): {gap.describe()}",
                      stacklevel=2)
    return gaps


def execute(work: Work, settings: RunSettings, on_done: OnDone = lambda config, record: None) -> None:
    """Run ``work.todo`` with the chosen executor, calling ``on_done`` once per finished cell."""
    if not work.todo:
        return  # nothing to do: start no pool, cluster or job
    run = {"local": run_local, "ray": run_ray, "slurm": run_slurm}[settings.executor]
    run(work, settings, on_done)


def dataset_digests(cells: Iterable[CellConfig], data_dir: str | Path) -> dict[str, str]:
    """dataset -> the digest of its files (part of each cell's identity), computed once per dataset."""
    return {dataset: dataset_digest(dataset, data_dir) for dataset in sorted({c.dataset for c in cells})}


@dataclass(frozen=True)
class GridPlan:
    todo: list[CellConfig]  # the cells without a record
    digests: dict[str, str]  # dataset -> digest of its files


def plan_grid(cells: Sequence[CellConfig], *, out_dir: str | Path, data_dir: str | Path, cache_dir: str | Path,
              features: Collection[str] = frozenset()) -> GridPlan:
    """The cells to run, after checking everything they need before the first one starts.

    Every dataset is read and split as its cells will read it (files readable, columns and labels
    right, sizes possible), every model asked for one component of its layers has each layer
    parameter in exactly one component, and the output folders must be writable.
    """
    for model in sorted({c.model for c in cells if c.component != "all"}):
        try:  # every parameter of the model's encoder layers belongs to one component (no weights loaded)
            check_components(model_layout(model))
        except BadInput as error:
            raise BadInput(f"model {model}: {error}") from error
    digests = dataset_digests(cells, data_dir)
    splits = sorted({(c.dataset, c.n_train, c.n_test, c.n_val, c.data_seed) for c in cells}, key=str)
    with warnings.catch_warnings():  # the cells themselves report the splits' caps
        warnings.simplefilter("ignore")
        for dataset, n_train, n_test, n_val, data_seed in splits:
            make_splits(dataset, data_dir, n_train=n_train, n_test=n_test, n_val=n_val, data_seed=data_seed)
    todo = [c for c in cells if not is_done(c, out_dir, digests[c.dataset], c.hash in features)]
    if todo:
        for folder in (out_dir, cache_dir):
            check_writable(folder)
    return GridPlan(todo=todo, digests=digests)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    quiet_transformers()  # one load report per cell would break up the grid's progress bar


def _run_one(config: CellConfig, options: dict) -> dict | None:
    """Run one cell unless another run holds its lock (then None: that run computes it)."""
    options = dict(options)
    digests = options.pop("digests")
    return run_cell(config, progress=False, data_digest=digests[config.dataset], **{"wait": False, **options})


def _finish_claimed(plan: GridPlan, options: dict, features: Collection[str], out_dir: str | Path) -> None:
    """Cells that another run claimed: wait for their records, or compute them if that run died."""
    for config in plan.todo:
        if not is_done(config, out_dir, plan.digests[config.dataset], config.hash in features):
            _run_checked(config, {**options, "wait": True}, features)


def _run_checked(config: CellConfig, options: dict, features: Collection[str]) -> dict | None:
    try:
        return _run_one(config, {**options, "save_features": config.hash in features})
    except BadInput as error:  # keep the error's class (and so its exit code), name the cell
        raise type(error)(f"cell {config.hash} ({describe(config)}): {error}") from error


@dataclass(frozen=True)
class CellRunner:
    """Runs one cell of this grid into a folder: the one function every executor calls (picklable)."""

    data_dir: str
    cache_dir: str
    digests: dict[str, str]  # dataset -> digest of its files (part of each cell's identity)
    features: frozenset[str] = frozenset()  # hashes of the cells that also save their test-set features

    def __call__(self, config: CellConfig, out_dir: str) -> dict | None:
        return _run_one(config, {"out_dir": str(out_dir), "data_dir": self.data_dir, "cache_dir": self.cache_dir,
                                 "save_features": config.hash in self.features, "digests": self.digests})


@dataclass(frozen=True)
class DoneCheck:
    out_dir: str
    digests: dict[str, str]
    features: frozenset[str] = frozenset()

    def __call__(self, config: CellConfig) -> bool:
        return is_done(config, self.out_dir, self.digests[config.dataset], config.hash in self.features)


def run_grid(
    cells: Sequence[CellConfig],
    *,
    out_dir: str | Path = "results/cells",
    data_dir: str | Path = "data",
    cache_dir: str | Path = "cache/tokens",
    workers: int = 1,
    threads: int | None = None,
    features: Collection[str] = frozenset(),
    progress: bool = True,
    settings: RunSettings | None = None,
) -> list[CellConfig]:
    """Run every cell whose record is missing; return those cells (run here or by a concurrent run).

    ``features``: hashes of the cells that also save their test-set features (Figure 1).
    ``settings`` picks the executor (``harness.grid.executors``: local, ray, slurm); without it, the
    local one with ``workers`` processes of ``threads`` torch threads each (None: cores // workers;
    with one worker None keeps torch's own choice). A cell that fails on bad input stops the grid
    with one message naming the cell.
    """
    plan = plan_grid(cells, out_dir=out_dir, data_dir=data_dir, cache_dir=cache_dir, features=features)
    todo = plan.todo
    settings = settings or RunSettings(workers=workers, threads=threads)
    digests = dict(plan.digests)
    done = DoneCheck(str(out_dir), digests, frozenset(features))  # runs in the driver: paths as given
    # Absolute paths: a Ray worker or Slurm task need not start in this folder.
    runner = CellRunner(str(Path(data_dir).resolve()), str(Path(cache_dir).resolve()), digests, frozenset(features))
    work = Work(todo=tuple(todo), run=runner, is_done=done, out_dir=Path(out_dir).resolve(), init_worker=_init_worker,
                describe=describe, data_dir=Path(data_dir).resolve())
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="grid", unit="cell",
               disable=not progress, dynamic_ncols=True)

    def finished(config: CellConfig, record: dict | None) -> None:
        bar.set_postfix_str(describe(config))
        bar.update()

    try:
        execute(work, settings, finished)
    finally:
        bar.close()
    # cells another run claimed: wait for their records, or compute them here if that run died
    options = {"out_dir": str(out_dir), "data_dir": str(data_dir), "cache_dir": str(cache_dir), "digests": digests}
    _finish_claimed(plan, options, features, out_dir)
    return todo


def prepare_data(cells: Sequence[CellConfig], *, data_dir: str | Path = "data",
                 cache_dir: str | Path = "cache/tokens") -> int:
    """The ``prepare`` stage: build the splits and token cache every cell will read; return how many."""
    tokenizers = {}
    jobs = sorted({(c.model, c.dataset, c.n_train, c.n_test, c.n_val, c.data_seed, c.max_length) for c in cells},
                  key=str)
    for model, dataset, n_train, n_test, n_val, data_seed, max_length in tqdm(jobs, desc="prepare", unit="split"):
        if model not in tokenizers:
            tokenizers[model] = load_classifier(model, 2)[1]  # only the tokenizer is used
        prepare(dataset, tokenizers[model], data_dir=data_dir, n_train=n_train, n_test=n_test, n_val=n_val,
                data_seed=data_seed, max_length=max_length, cache_dir=cache_dir)
    return len(jobs)


# ---------------------------------------------------------------- the ``grid`` verb: a profile of params.yaml


def profile_cells(profile_name: str | None, params: str | Path) -> tuple[Profile, list[CellConfig], set[str]]:
    """A profile of ``params`` (None: its ``profile:`` key), checked whole (tsne and analysis entries included); its
    cells, and the hashes of those that also save their vectors (``saves_vectors``)."""
    profile = load_profile(profile_name, params)
    cells = expand(profile)
    features = saves_vectors(profile, cells)
    return profile, cells, features


def list_cells(profile_name: str | None, *, params: str | Path, out_dir: str | Path, data_dir: str | Path) -> None:
    """Print one line per cell of the profile: its record's identity, done or todo, the cell."""
    profile, cells, features = profile_cells(profile_name, params)
    digests = dataset_digests(cells, data_dir)
    done = 0
    for config in cells:
        state = "done" if is_done(config, out_dir, digests[config.dataset], config.hash in features) else "todo"
        done += state == "done"
        print(f"{cell_identity(config, digests[config.dataset])}\t{state}\t{describe(config)}")
    print(f"profile {profile.name}: {len(cells)} cells, {done} done", file=sys.stderr)


def prepare_profile(profile_name: str | None, *, params: str | Path, data_dir: str | Path,
                    cache_dir: str | Path) -> None:
    """The ``prepare`` stage for the profile: its splits and token cache (``prepare_data``)."""
    profile, cells, _ = profile_cells(profile_name, params)
    n = prepare_data(cells, data_dir=data_dir, cache_dir=cache_dir)
    print(f"profile {profile.name}: {n} dataset splits prepared in {cache_dir}", file=sys.stderr)


def run_profile(profile_name: str | None, *, params: str | Path, executor: str | None, workers: int | None,
                threads: int | None, cells_per_gpu: int | None, ray_address: str | None, cpus_per_cell: float | None,
                gpus_per_cell: float | None, partition: str | None, out_dir: str | Path, data_dir: str | Path,
                cache_dir: str | Path, progress: bool) -> None:
    """``run_grid`` for the profile, run as params' ``run:`` block says, overridden by the arguments that are
    not None (``threads`` 0: cores // workers); then one line of how the profile's cells stand.

    First of all, the method's code must be the code recorded for METHOD_VERSION (``check_method_digest``):
    otherwise the grid would find its cells done and report the old code's records as the new code's.
    """
    check_method_digest()
    profile, cells, features = profile_cells(profile_name, params)
    settings = override(run_settings(read_params(params).get("run")), executor=executor,
                        workers=workers, threads=threads or None, cells_per_gpu=cells_per_gpu,
                        ray_address=ray_address, ray_num_cpus=cpus_per_cell,
                        ray_num_gpus=gpus_per_cell, slurm_partition=partition)
    if threads == 0:
        settings = replace(settings, threads=None)
    ran = run_grid(cells, out_dir=out_dir, data_dir=data_dir, cache_dir=cache_dir, features=features,
                   progress=progress, settings=settings)
    digests = dataset_digests(cells, data_dir)
    statuses = [(cell_record(c, digests[c.dataset], out_dir) or {}).get("status") for c in cells]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("ok", "failed_run", "diverged") if s in statuses)
    print(f"profile {profile.name}: {len(cells)} cells ({len(ran)} run now, executor {settings.executor}): {counts}",
          file=sys.stderr)
