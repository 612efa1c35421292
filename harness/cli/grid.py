"""The verbs of many cells: ``grid``, ``aggregate``, ``keep``."""

from __future__ import annotations

import argparse

from harness.cli.arguments import add_records_verb
from harness.grid.aggregate import aggregate_profile
from harness.grid.executors import EXECUTORS
from harness.grid.keep import keep_profile
from harness.grid.run import check_table1, list_cells, prepare_profile, run_profile


def add_grid_cli(subparsers) -> None:
    p = subparsers.add_parser("grid", help="run (or list) every cell of a profile of params.yaml",
                              description="Expand a profile of params.yaml into cells and run those without a "
                                          "result record. Finished cells are never recomputed. No cell runs "
                                          "while the method's code differs from the code recorded for "
                                          "METHOD_VERSION (see `method-digest`).")
    p.add_argument("--profile", default=None, help="mini, paper, ci, ... (default: the 'profile:' key of --params)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--list", action="store_true", help="print one line per cell (record identity, done/todo, cell) and exit")
    p.add_argument("--prepare", action="store_true", help="only build the data splits and token cache (dvc 'prepare')")
    # How the grid runs: params.yaml's `run:` block, overridden here; never part of a cell's identity.
    p.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local (processes here, one per GPU), ray (a Ray cluster), slurm (a submitit job array); "
                        "default: run.executor of --params, else local")
    p.add_argument("--workers", type=int, default=None, help="local, without GPUs: cells in parallel, as CPU processes "
                   "(default: run.workers of --params, else 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="local: torch threads per worker (0: cores // workers; default: run.threads). On a busy "
                        "shared machine 1 thread per process can be several times faster than 2")
    p.add_argument("--cells-per-gpu", type=int, default=None, help="local, with GPUs: cells at once on each GPU")
    p.add_argument("--ray-address", default=None, help="ray: 'auto' joins the cluster of `ray start`, HOST:PORT "
                   "another; default run.ray.address, none: a one-machine cluster started for this grid")
    p.add_argument("--cpus-per-cell", type=float, default=None, help="ray: num_cpus per cell (also its torch threads)")
    p.add_argument("--gpus-per-cell", type=float, default=None, help="ray: num_gpus per cell (0.5: two cells per GPU)")
    p.add_argument("--partition", default=None, help="slurm: the partition (default: run.slurm.partition)")
    p.add_argument("--out", default="results/cells", help="folder of the result records (default: %(default)s)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--cache-dir", default="cache/tokens")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_grid_cli)


def run_grid_cli(args: argparse.Namespace) -> int:
    if not args.list:  # before any cell, and before anything loads a model from the hub
        check_table1(args.profile, params=args.params, data_dir=args.data_dir)
    if args.list:
        list_cells(args.profile, params=args.params, out_dir=args.out, data_dir=args.data_dir)
    elif args.prepare:
        prepare_profile(args.profile, params=args.params, data_dir=args.data_dir, cache_dir=args.cache_dir)
    else:
        run_profile(args.profile, params=args.params, executor=args.executor, workers=args.workers,
                    threads=args.threads, cells_per_gpu=args.cells_per_gpu, ray_address=args.ray_address,
                    cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell, partition=args.partition,
                    out_dir=args.out, data_dir=args.data_dir, cache_dir=args.cache_dir, progress=not args.no_progress)
    return 0


def add_aggregate_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cells", default="results/cells", help="folder of the result records (default: %(default)s)")
        p.add_argument("--out", default="results", help="folder for the tables (default: %(default)s)")

    add_records_verb(subparsers, "aggregate", own_arguments, run_aggregate_cli,
                      help="tabulate a profile's result records (cells.csv, summary)",
                      description="Read the records of a profile's cells and write cells.csv, summary.csv, "
                                  "summary.json (DVC metrics) and f1_by_level.csv (DVC plots).")


def run_aggregate_cli(args: argparse.Namespace) -> int:
    aggregate_profile(args.profile, params=args.params, cells_dir=args.cells, out_dir=args.out, data_dir=args.data_dir)
    return 0


def add_keep_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cells", default="results/cells", help="folder of the result records (default: %(default)s)")
        p.add_argument("--dest", default=None, help="default: results/records/<profile>")

    add_records_verb(subparsers, "keep", own_arguments, run_keep_cli,
                      help="copy a profile's records into results/records/<profile> (kept in git)",
                      description="Copy the result records of a profile's cells into a folder kept in git, so "
                                  "REPORT.md shows them on a fresh clone.")


def run_keep_cli(args: argparse.Namespace) -> int:
    keep_profile(args.profile, params=args.params, cells_dir=args.cells, dest=args.dest, data_dir=args.data_dir)
    return 0
