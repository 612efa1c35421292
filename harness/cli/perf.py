"""The verbs of speed and cost: ``bench``, ``estimate``, ``gpu-check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import BadInput
from harness.grid.cost import GPU_TYPES, estimate_profile
from harness.grid.profiles import load_profile
from harness.method.precision import resolve_precision
from harness.perf.bench import bench
from harness.perf.bench_settings import BenchSettings
from harness.perf.cluster_sim import simulate_cluster
from harness.perf.estimate import print_estimate, write_cost_comparison
from harness.perf.gpu_check import run_gpu_check_cli as gpu_check
from harness.perf.performance_doc import generate_performance_md


def add_bench_cli(subparsers) -> None:
    defaults = BenchSettings()
    p = subparsers.add_parser("bench", help="time our training loop against transformers' Trainer, side by side",
                              description="Train the same cell with transformers' Trainer and with our loop, "
                                          "alternating, and print samples/s, real tokens/s, padding, memory and F1.")
    p.add_argument("--model", default=defaults.model)
    p.add_argument("--datasets", nargs="+", default=list(defaults.datasets))
    p.add_argument("--n-train", type=int, default=defaults.n_train)
    p.add_argument("--n-test", type=int, default=defaults.n_test)
    p.add_argument("--n-val", type=int, default=None, help="default: 10%% of --n-train")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--max-length", type=int, default=defaults.max_length)
    p.add_argument("--data-seed", type=int, default=defaults.data_seed)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="our loop's precision: bf16 autocasts the forward pass; auto (default): bf16 where the "
                        "hardware computes it natively, else fp32")
    p.add_argument("--trainer-precision", default=None, choices=["fp32", "bf16"],
                   help="the Trainer's precision (its bf16=True); default: the same as --precision")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", default="results/bench.json", help="JSON of every number (default: %(default)s)")
    p.add_argument("--doc", default=None, help="also write this markdown report (e.g. docs/PERFORMANCE.md)")
    p.add_argument("--doc-only", action="store_true", help="only render --doc from an existing --out JSON")
    p.add_argument("--doc-others", nargs="*", default=[], metavar="JSON",
                   help="further bench JSONs (e.g. another --precision) to render as sections of --doc")
    p.set_defaults(func=run_bench_cli)


def run_bench_cli(args: argparse.Namespace) -> int:
    if args.doc_only:
        if not args.doc:
            raise BadInput("--doc-only needs --doc PATH")
        print(generate_performance_md(args.out, args.doc, args.doc_others))
        return 0
    settings = BenchSettings(model=args.model, datasets=tuple(args.datasets), n_train=args.n_train, n_test=args.n_test,
                             n_val=args.n_val, epochs=args.epochs, seeds=tuple(args.seeds), batch_size=args.batch_size,
                             lr=args.lr, max_length=args.max_length, data_seed=args.data_seed,
                             precision=resolve_precision(args.precision), trainer_precision=args.trainer_precision,
                             threads=args.threads)
    bench(settings, data_dir=args.data_dir, out=args.out, doc=args.doc, doc_others=args.doc_others)
    return 0


def add_estimate_cli(subparsers) -> None:
    e = subparsers.add_parser("estimate", help="predict the wall time of a profile from measured speed",
                              description=estimate_profile.__doc__.split("\n\n")[0])
    e.add_argument("--profile", default=None, help="a profile of --params (default: its 'profile:' key)")
    e.add_argument("--params", default="params.yaml")
    e.add_argument("--bench", default="results/bench.json",
                   help="measured rates (from `python -m harness bench`); missing: a quick calibration run")
    e.add_argument("--calibrate", action="store_true", help="measure this machine now even if --bench exists")
    e.add_argument("--tokens-per-s", type=float, default=None,
                   help="also predict for a GPU: its training real tokens/s for the reference model in our loop")
    e.add_argument("--eval-tokens-per-s", type=float, default=None, help="the GPU's evaluation real tokens/s")
    e.add_argument("--gpus", type=int, default=None, help="also predict the wall time on N GPUs (with --gpu-type)")
    e.add_argument("--gpu-type", default="a100", choices=sorted(GPU_TYPES),
                   help="datasheet peak for --gpus, at an assumed utilisation (default: %(default)s)")
    e.add_argument("--pack", type=int, default=2, help="small-model cells per GPU for the packing line (default: 2)")
    e.add_argument("--cells-per-task", type=int, default=1, help="cells per Slurm array task, for its time limit")
    e.add_argument("--data-dir", default="data")
    e.add_argument("--measured", default=None, metavar="RECORDS_DIR",
                   help="instead: set the estimate beside the wall time the records in RECORDS_DIR measured, per "
                        "dataset and mode (e.g. results/records/replication), written to --out")
    e.add_argument("--out", default=None, help="with --measured: the comparison as JSON (default: "
                   "results/cost_<profile>.json), which REPORT.md reads")
    e.set_defaults(func=run_estimate_cli)


def run_estimate_cli(args: argparse.Namespace) -> int:
    if args.measured is not None:
        profile = load_profile(args.profile, args.params).name
        print(write_cost_comparison(profile, params=args.params, records_dir=args.measured, bench_json=args.bench,
                                    data_dir=args.data_dir, out=args.out or f"results/cost_{profile}.json"))
        return 0
    print_estimate(args.profile, params=args.params, bench_json=args.bench, recalibrate=args.calibrate,
                   tokens_per_s=args.tokens_per_s, eval_tokens_per_s=args.eval_tokens_per_s, gpus=args.gpus,
                   gpu_type=args.gpu_type, pack=args.pack, cells_per_task=args.cells_per_task, data_dir=args.data_dir)
    return 0


def add_gpu_check_cli(subparsers) -> None:
    p = subparsers.add_parser("gpu-check", help="check the GPU path on a GPU: determinism, records, tokens/s, "
                                                "memory, share of peak FLOP/s (under 5 minutes)",
                              description="Train a few small MiniLM cells twice each, in fp32 and bf16, on CUDA into a "
                                          "temporary folder and print one table (harness/perf/gpu_check.py).")
    p.add_argument("--data-dir", default="data", help="the data the cells read (sst2 and imdb)")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU needed: the same table from made-up records, through the same code")
    p.set_defaults(func=run_gpu_check_cli)


def run_gpu_check_cli(args: argparse.Namespace) -> int:
    return gpu_check(args.data_dir, args.dry_run)


def add_simulate_cluster_cli(subparsers) -> None:
    p = subparsers.add_parser("simulate-cluster", help="the paper grid on a simulated Ray cluster of 8/64/512 GPUs: "
                              "wall time, idle share, scheduler overhead, packing",
                              description="Run a profile's cells as no-ops of their estimated duration through the "
                                          "real Ray executor on logical GPUs of this machine, then replay the "
                                          "schedule by event simulation at every --gpus size (harness/perf/cluster_sim.py).")
    p.add_argument("--profile", default="paper")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--gpu-type", default="a100", choices=sorted(GPU_TYPES),
                   help="per-cell durations from this GPU's datasheet (harness/grid/cost.py; default a100)")
    p.add_argument("--gpus", type=int, nargs="+", default=[8, 64, 512], help="cluster sizes of the table")
    p.add_argument("--ray-gpus", type=int, nargs="*", default=[8, 64],
                   help="cluster sizes also run through the real Ray executor (none: --ray-gpus with no value; "
                        "each running task is a Ray worker process, ~60 MB to several hundred with torch)")
    p.add_argument("--ray-seconds", type=float, default=60.0,
                   help="each real Ray run's target length: sets its compression C (default 60 s)")
    p.add_argument("--ray-cells", type=int, default=None, help="only the first N cells in the Ray runs")
    p.add_argument("--ray-from", type=Path, default=None,
                   help="take the real Ray measurements from this earlier --out JSON instead of running Ray")
    p.add_argument("--overhead-ms", type=float, default=None,
                   help="dispatch overhead per cell in the simulation (default: the largest mean Ray measured)")
    p.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")
    p.set_defaults(func=run_simulate_cluster_cli)


def run_simulate_cluster_cli(args: argparse.Namespace) -> int:
    return simulate_cluster(profile=args.profile, params=args.params, data_dir=args.data_dir, gpu_type=args.gpu_type,
                            gpus=args.gpus, ray_gpus=args.ray_gpus, ray_seconds=args.ray_seconds,
                            ray_cells=args.ray_cells, ray_from=args.ray_from, overhead_ms=args.overhead_ms,
                            out=args.out)
