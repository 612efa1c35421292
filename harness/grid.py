"""The experiment grid (the paper's Tables 2-5): profiles of cells, and the runner that fills them.

A *profile* in ``params.yaml`` is a list of *blocks*; each block is one table of the paper, the
cross product

    models (each with its corruption fractions) x datasets x positions x poolings x modes x lrs x seeds

with the other ``CellConfig`` fields (epochs, n_train, n_test, batch_size, max_length, ...) fixed.
A fraction of 0 is the clean model and 1 the fully corrupted one: each is a single setting shared
by bottom and top, so ``[0, 1/4, 1/2, 3/4, 1]`` gives the paper's eight settings per model.
Fractions are exact (``1/3`` is 2 of MiniLM's 6 layers) and must be whole layers of the model.
Reading and checking a profile is ``harness.profiles``; expanding it into cells is here.

The runner keys every cell by its identity (config, METHOD_VERSION, data digest; see
``harness.config.cell_identity``): ``<out>/<identity>.json`` is written atomically by ``run_cell``,
so a finished cell is never recomputed, a killed grid resumes where it stopped, and changing one
cell's parameters (or its dataset's files) recomputes only that cell. Before any cell starts, the
whole grid is checked (``plan_grid``): the profile, every dataset's files and splits, and that the
output folders can be written. Grids that share a results folder claim each cell through a lock,
so no cell is computed twice. Where the cells run (a process pool, one worker per GPU, a Ray
cluster, a Slurm array) is ``harness/executors.py`` (Ray and Slurm: ``harness/cluster.py``), chosen
by params.yaml's ``run:`` block, which is no part of any cell's identity.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import product
from pathlib import Path

from tqdm.auto import tqdm

from harness import BadInput
from harness.config import IDENTITY_DEFAULTS, CellConfig, cell_identity, check_corruption
from harness.corrupt import check_components, init_bound, layers_to_corrupt, parse_scope
from harness.executors import RunSettings, Work, execute, override, run_settings
from harness.precision import resolve_precision
from harness.profiles import Block, Profile, load_profile, read_params
from harness.results import cell_record, check_writable, features_path, record_path

# ---------------------------------------------------------------- expanding a profile


def encoder_depth(model: str) -> int:
    """Number of encoder layers of ``model``: the registry's (``harness.models.MODELS``), else its config (no weights)."""
    from harness.models import MODELS

    if model in MODELS:
        return MODELS[model].depth
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except OSError as error:
        raise BadInput(f"cannot read the config of model {model!r} (known offline: "
                       f"{sorted(MODELS)}): {error}") from error
    return config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers


def model_layout(model: str):
    """``model``'s transformers config, for its layout only: the registry's architecture with default sizes
    (no download), else the config of its folder or hub id."""
    from transformers import AutoConfig

    from harness.models import MODELS

    if model in MODELS:
        return AutoConfig.for_model(MODELS[model].architecture)
    try:
        return AutoConfig.from_pretrained(model)
    except OSError as error:
        raise BadInput(f"cannot read the config of model {model!r} (known offline: "
                       f"{sorted(MODELS)}): {error}") from error


def settings(fractions: Iterable[Fraction], positions: Sequence[str]) -> list[tuple[str, Fraction]]:
    """(position, fraction) pairs: clean and 100% once each, partial fractions at every position."""
    pairs = []
    for fraction in fractions:
        if fraction == 0:
            pairs.append(("none", fraction))
        elif fraction == 1:
            pairs.append(("all", fraction))
        else:
            pairs.extend((position, fraction) for position in positions)
    return pairs


def expand_block(block: Block) -> list[CellConfig]:
    from harness.data import dataset_spec

    for dataset in block.datasets:  # an unknown name fails here, not hours into the grid
        try:
            dataset_spec(dataset)
        except BadInput as error:
            raise BadInput(f"block {block.name!r}: {error}") from error
    fixed = dict(block.fixed)
    # "auto" (the default) becomes the precision this machine computes natively: a cell's config,
    # and so its identity, always names the arithmetic that produced it.
    fixed["precision"] = resolve_precision(str(fixed.get("precision", "auto")))
    init, scope = fixed.get("init", CellConfig.init), fixed.get("scope", CellConfig.scope)
    try:  # the corruption's own checks, which would otherwise fail only when a cell starts
        init_bound(init, 1)
        if not isinstance(scope, str):
            raise BadInput(f"scope must be text such as 'encoder+pooler', got {scope!r}")
        parse_scope(scope)
        # kind, strength, component and init together (CellConfig checks them again for every cell)
        check_corruption(fixed.get("corruption", CellConfig.corruption), fixed.get("strength", CellConfig.strength),
                         fixed.get("component", CellConfig.component), init=init, scope=scope)
    except BadInput as error:
        raise BadInput(f"block {block.name!r}: {error}") from None
    cells = []
    for model, fractions in block.models:
        n_layers = encoder_depth(model)
        if fixed.get("component", CellConfig.component) != "all":
            try:  # every parameter of the model's encoder layers belongs to one component (no weights loaded)
                check_components(model_layout(model))
            except BadInput as error:
                raise BadInput(f"block {block.name!r}, model {model}: {error}") from error
        for position, fraction in settings(fractions, block.positions):
            if position not in ("none", "all"):
                try:  # the same rule the corruption itself applies, checked before anything runs
                    layers_to_corrupt(n_layers, position, float(fraction), fixed.get("rounding"))
                except BadInput as error:
                    raise BadInput(f"block {block.name!r}, model {model}: {error}") from error
            for dataset, pooling, mode, lr, seed in product(block.datasets, block.poolings, block.modes,
                                                             block.lrs, block.seeds):
                try:
                    cells.append(CellConfig(model=model, dataset=dataset, position=position, fraction=float(fraction),
                                            pooling=pooling, mode=mode, lr=lr, seed=seed, **fixed))
                except (BadInput, TypeError) as error:  # TypeError: e.g. epochs: "three"
                    raise BadInput(f"block {block.name!r}: {error}") from error
    return cells


def expand(profile: Profile) -> list[CellConfig]:
    """Every cell of the profile: the union of its blocks, in order, each cell once."""
    unique = {cell.hash: cell for block in profile.blocks for cell in expand_block(block)}
    return list(unique.values())


def tsne_cells(profile: Profile, cells: Sequence[CellConfig]) -> dict[str, list[CellConfig]]:
    """Figure 1's four panels -> the grid cells behind each (one per learning rate)."""
    spec = profile.tsne
    if spec is None:
        return {}
    wanted = {"clean": ("none", 0.0), f"top {fraction_label(spec.fraction)}": ("top", float(spec.fraction)),
              f"bottom {fraction_label(spec.fraction)}": ("bottom", float(spec.fraction)), "100%": ("all", 1.0)}
    panels = {}
    for panel, (position, fraction) in wanted.items():
        panels[panel] = [c for c in cells if (c.model, c.dataset, c.seed, c.pooling, c.mode, c.position, c.fraction)
                         == (spec.model, spec.dataset, spec.seed, spec.pooling, spec.mode, position, fraction)]
        if not panels[panel]:
            raise BadInput(f"profile {profile.name!r}: tsne panel {panel!r} ({spec.model} {spec.dataset} seed "
                           f"{spec.seed} {spec.pooling} {spec.mode}) is not a cell of the grid; add it to a block")
    return panels


def analysis_cells(profile: Profile, cells: Sequence[CellConfig]) -> dict[tuple[str, int], CellConfig]:
    """(setting, seed) -> the grid cell whose layers the representation analysis measures
    (settings ``clean``, ``top``, ``bottom``, ``100%``)."""
    spec = profile.analysis
    if spec is None:
        return {}
    wanted = {"clean": ("none", 0.0), "top": ("top", float(spec.fraction)), "bottom": ("bottom", float(spec.fraction)),
              "100%": ("all", 1.0)}
    chosen = {}
    for (setting, (position, fraction)), seed in product(wanted.items(), spec.seeds):
        found = [c for c in cells if (c.model, c.dataset, c.seed, c.pooling, c.mode, c.position, c.fraction)
                 == (spec.model, spec.dataset, seed, spec.pooling, spec.mode, position, fraction)
                 and (spec.lr is None or c.lr == spec.lr)]
        if len(found) != 1:
            what = (f"{setting} ({spec.model} {spec.dataset} seed {seed} {spec.pooling} {spec.mode}"
                    + (f" lr {spec.lr:g}" if spec.lr is not None else "") + ")")
            raise BadInput(f"profile {profile.name!r}: analysis cell {what} "
                           + ("is not a cell of the grid; add it to a block" if not found else
                              f"matches {len(found)} cells (one per lr): give the analysis an lr"))
        chosen[(setting, seed)] = found[0]
    return chosen


def saves_vectors(profile: Profile, cells: Sequence[CellConfig]) -> set[str]:
    """Hashes of the cells that save their vectors: Figure 1's t-SNE cells and the analysis' cells."""
    return ({c.hash for panel in tsne_cells(profile, cells).values() for c in panel}
            | {c.hash for c in analysis_cells(profile, cells).values()})


def fraction_label(fraction: float | Fraction) -> str:
    return f"{float(fraction):.0%}"


def describe(config: CellConfig) -> str:
    """One line naming a cell, as the paper's tables would."""
    setting = {"none": "clean", "all": "100%"}.get(config.position)
    setting = setting or f"{config.position} {Fraction(config.fraction).limit_denominator(100)}"
    damage = "" if config.corruption == IDENTITY_DEFAULTS["corruption"] else f" {config.corruption}"
    damage += "" if config.strength is None else f"({config.strength:g})"
    damage += "" if config.component == IDENTITY_DEFAULTS["component"] else f" {config.component}"
    damage += " probe-dropout" if config.probe_dropout else ""
    return (f"{config.model} {config.dataset} {setting}{damage} {config.pooling} {config.mode} lr={config.lr:g} "
            f"seed={config.seed}")


# ---------------------------------------------------------------- running the grid


def is_done(config: CellConfig, out_dir: str | Path, data_digest: str, needs_features: bool = False) -> bool:
    """A cell is done when its record holds its own identity (and its features, if Figure 1 needs them).

    Only the exact file name counts, so the ``.<identity>.json.*.tmp`` files of a killed run are
    ignored, and an unreadable record counts as missing (with a warning naming it).
    """
    if cell_record(config, data_digest, out_dir) is None:
        return False
    return not needs_features or features_path(record_path(config, out_dir, data_digest)).exists()


def dataset_digests(cells: Iterable[CellConfig], data_dir: str | Path) -> dict[str, str]:
    """dataset -> the digest of its files (part of each cell's identity), computed once per dataset."""
    from harness.data import dataset_digest

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
    from harness.prepare import make_splits

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
    import torch

    from harness.models import quiet_transformers

    torch.set_num_threads(threads)
    quiet_transformers()  # one load report per cell would break up the grid's progress bar


def _run_one(config: CellConfig, options: dict) -> dict | None:
    """Run one cell unless another run holds its lock (then None: that run computes it)."""
    from harness.cell import run_cell  # looked up at call time: a worker imports torch only when it runs a cell

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
    ``settings`` picks the executor (``harness.executors``: local, ray, slurm); without it, the
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
    from harness.models import load_classifier
    from harness.prepare import prepare

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
    not None (``threads`` 0: cores // workers); then one line of how the profile's cells stand."""
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
