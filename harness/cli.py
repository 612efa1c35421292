"""``python -m harness <verb>``: one command line for every step of the benchmark.

Every verb is wired here: its arguments (``add_<verb>_cli``) and the call that unpacks them into
the plain, keyword-argument function its step's module exposes (``run_<verb>_cli``), so no module
below takes an ``argparse.Namespace``. Every expected failure (bad input, bad data, an output that
cannot be written, unreadable results) prints one ``error:`` line and exits with its own code
(``EXIT_CODES``) without touching existing results; warnings print one line each.
"""

from __future__ import annotations

import argparse
import json
import numbers
import sys
import warnings
from collections.abc import Callable
from fractions import Fraction

from harness import EXIT_CODES, BadInput

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``error:`` line (exit 2) like every other failure."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def cli_number(text: str) -> int | float | Fraction | str:
    """A command-line number as what it is (3 -> int, 3.0 -> float, 1/3 -> Fraction), else the text.

    ``CellConfig`` then judges it, so ``--epochs 3.0`` gets the same message as ``epochs: 3.0`` in params.yaml.
    """
    for kind in (int, float, Fraction):
        try:
            return kind(text)
        except (ValueError, ZeroDivisionError):
            pass
    return text


def _corruption_arguments(p: argparse.ArgumentParser, defaults) -> None:
    """--kind, --strength and --component, as `cell` and `corrupt` take them (CellConfig's defaults)."""
    from harness.config import COMPONENTS, CORRUPTIONS

    # Not argparse choices: a bad value gets the same one-line message as in params.yaml.
    p.add_argument("--kind", default=defaults.corruption,
                   help=f"the damage: {', '.join(CORRUPTIONS)} (default: %(default)s, the paper's re-initialisation)")
    p.add_argument("--strength", type=cli_number, default=defaults.strength,
                   help="noise: the noise's std as a multiple of each tensor's std; bitflip: each bit's flip "
                        "probability in [0, 1]; the other kinds take none")
    p.add_argument("--component", default=defaults.component,
                   help=f"the part of each chosen layer: {', '.join(COMPONENTS)} (default: %(default)s)")


def add_cell_cli(subparsers) -> None:
    from harness.config import CellConfig

    defaults = CellConfig(model="minilm-l6", dataset="sst2")
    p = subparsers.add_parser("cell", help="run one experiment cell and write its result record",
                              description="Corrupt, fine-tune and evaluate one (model, dataset, corruption, ...) cell. "
                                          "Refused while the method's code differs from the code recorded for "
                                          "METHOD_VERSION (see `method-digest`).")
    p.add_argument("--model", default=defaults.model, help="bert-base-uncased, bert-large-uncased, distilbert-base-uncased, "
                   "minilm-l6 (offline), tiny-bert, tiny-distilbert, a local folder or org/name (default: %(default)s)")
    p.add_argument("--dataset", default=defaults.dataset, help="sst2 imdb ag_news emotion dbpedia_14 "
                   "twitter_financial_news_topic mrpc rte (default: %(default)s)")
    p.add_argument("--position", default=None, choices=["bottom", "top", "none", "all"],
                   help="which end of the encoder to corrupt (needed when 0 < fraction < 1)")
    p.add_argument("--fraction", type=cli_number, default=0.0,
                   help="share of encoder layers to corrupt (0.5 or 1/3): 0 = clean, 1 = all")
    p.add_argument("--pooling", default=defaults.pooling, choices=["cls", "mean"])
    p.add_argument("--mode", default=defaults.mode, choices=["full", "probe"], help="full fine-tuning or linear probe")
    # Numbers are parsed as what they look like and checked by CellConfig, as params.yaml's are.
    p.add_argument("--lr", type=cli_number, default=defaults.lr)
    p.add_argument("--epochs", type=cli_number, default=defaults.epochs)
    p.add_argument("--seed", type=cli_number, default=defaults.seed)
    p.add_argument("--data-seed", type=cli_number, default=defaults.data_seed)
    p.add_argument("--n-train", type=cli_number, default=None, help="training examples (default: the paper's Table 1 size)")
    p.add_argument("--n-test", type=cli_number, default=None)
    p.add_argument("--n-val", type=cli_number, default=None)
    p.add_argument("--batch-size", type=cli_number, default=defaults.batch_size)
    p.add_argument("--max-length", type=cli_number, default=defaults.max_length)
    p.add_argument("--init", default=defaults.init, help="kaiming_uniform (default), kaiming_uniform_a0, normal_0.02")
    p.add_argument("--scope", default=defaults.scope, help="encoder (default), encoder+embeddings, encoder+pooler, ...")
    p.add_argument("--rounding", default=None, choices=["floor", "ceil", "nearest"],
                   help="allow fractions that are not whole layers, rounded this way")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto (default): bf16 where the hardware computes it natively, else fp32")
    p.add_argument("--no-pooler", dest="pooler", action="store_false",
                   help="feed the pooled vector straight to the classifier, skipping BERT's pooler")
    _corruption_arguments(p, defaults)
    p.add_argument("--probe-dropout", action="store_true",
                   help="linear probe: run the frozen body in train mode (dropout on) for every training batch, "
                        "as transformers' Trainer does (default: once, in eval mode, cached)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--cache-dir", default="cache/tokens")
    p.add_argument("--out", default=None, help="record file (default: results/cells/<cell identity>.json)")
    p.add_argument("--save-features", action="store_true", help="also save the test set's fine-tuned feature vectors")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_cell_cli)


def run_cell_cli(args: argparse.Namespace) -> int:
    import torch

    from harness.cell import run_cell
    from harness.config import CellConfig
    from harness.method_version import check_method_digest
    from harness.precision import resolve_precision

    partial = isinstance(args.fraction, numbers.Real) and 0 < args.fraction < 1
    if partial and args.position in (None, "none", "all"):
        raise BadInput(f"--fraction {args.fraction} needs --position bottom or --position top")
    config = CellConfig(
        model=args.model, dataset=args.dataset, position=args.position or "none", fraction=args.fraction,
        pooling=args.pooling, mode=args.mode, lr=args.lr, epochs=args.epochs, seed=args.seed, data_seed=args.data_seed,
        n_train=args.n_train, n_test=args.n_test, n_val=args.n_val, batch_size=args.batch_size,
        max_length=args.max_length, init=args.init, scope=args.scope, rounding=args.rounding,
        precision=resolve_precision(args.precision), pooler=args.pooler, corruption=args.kind, strength=args.strength,
        component=args.component, probe_dropout=args.probe_dropout,
    )
    check_method_digest()  # before the cell: its record, if found, would pass for the current code's
    if args.threads:
        torch.set_num_threads(args.threads)
    record = run_cell(config, record_path=args.out, data_dir=args.data_dir, cache_dir=args.cache_dir,
                      save_features=args.save_features, progress=not args.no_progress)
    summary = {k: record[k] for k in ("identity", "config_hash", "status", "best_test_f1", "selected_test_f1", "majority_f1",
                                      "level", "tokens_per_s", "wall_s")}
    print(json.dumps(summary))
    if record["status"] == "diverged":
        print(f"error: the run diverged ({record['divergence']}); record written with status 'diverged'", file=sys.stderr)
        return 3
    return 0


def add_corrupt_cli(subparsers) -> None:
    from harness.config import CellConfig

    p = subparsers.add_parser("corrupt", help="corrupt a model and print the names of the parameters reset")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--position", default="bottom", choices=["bottom", "top"])
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="kaiming_uniform")
    p.add_argument("--scope", default="encoder")
    p.add_argument("--rounding", default=None, choices=["floor", "ceil", "nearest"])
    _corruption_arguments(p, CellConfig(model="minilm-l6", dataset="sst2"))
    p.set_defaults(func=run_corrupt_cli)


def run_corrupt_cli(args: argparse.Namespace) -> int:
    from harness.config import check_corruption
    from harness.corrupt import apply_corruption
    from harness.models import load_classifier

    check_corruption(args.kind, args.strength, args.component, init=args.init, scope=args.scope)  # before the model loads
    model, _ = load_classifier(args.model, 2)
    corruption = apply_corruption(model, args.position, args.fraction, seed=args.seed, kind=args.kind,
                                  strength=args.strength, component=args.component, init=args.init,
                                  scope=args.scope, rounding=args.rounding)
    for name in corruption.parameters:
        print(name)
    if corruption.kind != "reinit":
        print(f"{corruption.kind}: " + ", ".join(f"{k} {v}" for k, v in corruption.summary().items() if k != "kind"),
              file=sys.stderr)
    return 0


def add_method_digest_cli(subparsers) -> None:
    p = subparsers.add_parser("method-digest", help="print the digest of the method's code (see METHOD_VERSION)",
                              description="Print the digest of the method modules' code (comments and docstrings "
                                          "excluded). After changing them: bump METHOD_VERSION in harness/config.py "
                                          "if results can change, then run this with --write.")
    p.add_argument("--write", action="store_true",
                   help="record the digest for the current METHOD_VERSION in harness/method_digests.json")
    p.set_defaults(func=run_method_digest_cli)


def run_method_digest_cli(args: argparse.Namespace) -> int:
    from harness.config import METHOD_DIGESTS, METHOD_VERSION, method_digest, stored_method_digests
    from harness.results import write_text_atomic

    digest, stored = method_digest(), stored_method_digests()
    if args.write:
        write_text_atomic(METHOD_DIGESTS, json.dumps({**stored, METHOD_VERSION: digest}, indent=1) + "\n")
        stored = stored_method_digests()
    print(digest)
    state = ("recorded" if stored.get(METHOD_VERSION) == digest
             else "NOT recorded (`grid` and `cell` run no cell until it is: bump METHOD_VERSION if numbers can "
                  "change, then run with --write)")
    print(f"METHOD_VERSION {METHOD_VERSION}: digest {digest} {state} in {METHOD_DIGESTS}", file=sys.stderr)
    return 0


def add_grid_cli(subparsers) -> None:
    from harness.executors import EXECUTORS

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
    from harness.grid import list_cells, prepare_profile, run_profile
    from harness.table1 import check_table1

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


def _add_records_verb(subparsers, name: str, own_arguments: Callable[[argparse.ArgumentParser], None],
                      run: Callable[[argparse.Namespace], int], **texts: str) -> None:
    """A verb that reads a profile's result records: --profile, --params, its own arguments, --data-dir."""
    p = subparsers.add_parser(name, **texts)
    p.add_argument("--profile", default=None, help="default: the 'profile:' key of --params")
    p.add_argument("--params", default="params.yaml")
    own_arguments(p)
    p.add_argument("--data-dir", default="data", help="the data the cells read (part of their identity)")
    p.set_defaults(func=run)


def add_aggregate_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cells", default="results/cells", help="folder of the result records (default: %(default)s)")
        p.add_argument("--out", default="results", help="folder for the tables (default: %(default)s)")

    _add_records_verb(subparsers, "aggregate", own_arguments, run_aggregate_cli,
                      help="tabulate a profile's result records (cells.csv, summary)",
                      description="Read the records of a profile's cells and write cells.csv, summary.csv, "
                                  "summary.json (DVC metrics) and f1_by_level.csv (DVC plots).")


def run_aggregate_cli(args: argparse.Namespace) -> int:
    from harness.aggregate import aggregate_profile

    aggregate_profile(args.profile, params=args.params, cells_dir=args.cells, out_dir=args.out, data_dir=args.data_dir)
    return 0


def add_plots_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default="results",
                       help="folder holding summary.csv and cells.csv (default: %(default)s)")
        p.add_argument("--cells", default="results/cells", help="folder of the result records and features")
        p.add_argument("--out", default="results/plots", help="folder for the PNG files (default: %(default)s)")
        p.add_argument("--max-points", type=int, default=2000,
                       help="test examples per t-SNE panel (default: %(default)s)")

    _add_records_verb(subparsers, "plots", own_arguments, run_plots_cli,
                      help="draw f1_vs_level.png and Figure 1's tsne.png for a profile",
                      description="Draw the figures from results/summary.csv, results/cells.csv and the "
                                  "saved features of the profile's tsne cells.")


def run_plots_cli(args: argparse.Namespace) -> int:
    from harness.plots import plot_profile

    plot_profile(args.profile, params=args.params, results_dir=args.results, cells_dir=args.cells, out_dir=args.out,
                 max_points=args.max_points, data_dir=args.data_dir)
    return 0


def add_analyse_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cells", default="results/cells", help="folder of the result records and vectors")
        p.add_argument("--results", default="results", help="folder for the tables (default: %(default)s)")
        p.add_argument("--plots", default="results/plots", help="folder for the figures (default: %(default)s)")
        p.add_argument("--jobs", type=int, default=2, help="cells measured in parallel (default: %(default)s)")

    _add_records_verb(subparsers, "analyse", own_arguments, run_analyse_cli,
                      help="measure how healing changes the representations, layer by layer",
                      description="For the profile's analysis cells (clean, top-k, bottom-k, 100%; per seed), "
                                  "measure every layer before and after fine-tuning (probe accuracy, label "
                                  "separation, spatial similarity, centroid movement, linear CKA); write "
                                  "analysis.csv, analysis_by_layer.csv, analysis.json, cka.png and layers.png.")


def run_analyse_cli(args: argparse.Namespace) -> int:
    from harness.analysis import analyse

    written = analyse(args.profile, params=args.params, cells_dir=args.cells, data_dir=args.data_dir,
                      results_dir=args.results, plots_dir=args.plots, jobs=args.jobs)
    print(written or "the profile has no 'analysis:' entry: nothing to analyse", file=sys.stderr)
    return 0


def add_keep_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cells", default="results/cells", help="folder of the result records (default: %(default)s)")
        p.add_argument("--dest", default=None, help="default: results/records/<profile>")

    _add_records_verb(subparsers, "keep", own_arguments, run_keep_cli,
                      help="copy a profile's records into results/records/<profile> (kept in git)",
                      description="Copy the result records of a profile's cells into a folder kept in git, so "
                                  "REPORT.md shows them on a fresh clone.")


def run_keep_cli(args: argparse.Namespace) -> int:
    from harness.results import keep_profile

    keep_profile(args.profile, params=args.params, cells_dir=args.cells, dest=args.dest, data_dir=args.data_dir)
    return 0


def add_report_cli(subparsers) -> None:
    p = subparsers.add_parser("report", help="write REPORT.md from the results and the paper's tables")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--paper-tables", default="claims/paper_tables.csv")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="REPORT.md")
    p.set_defaults(func=run_report_cli)


def run_report_cli(args: argparse.Namespace) -> int:
    from harness.report import write_report

    write_report(results_dir=args.results_dir, paper_tables=args.paper_tables, params=args.params, out=args.out)
    return 0


def add_calibrate_cli(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="measure the verdicts' error rates on simulated grids of known truth",
                              description="Simulate grids with the real noise structure (one shared test set per "
                              "dataset, paired settings, seeds) under nulls and alternatives for every claim, judge "
                              "them with the decision rule, and print each claim's false-SUPPORTED and "
                              "false-CONTRADICTED rates and its power (harness/calibration.py).")
    p.add_argument("--grids", type=int, default=200, help="simulated grids per scenario, noise regime and size")
    p.add_argument("--datasets", type=int, nargs="+", default=[1, 8], help="datasets per simulated grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/calibration.json", help="the table and every case, as JSON")
    p.add_argument("--readme", default=None, help="also write the table into this file's calibration block "
                   "(claims/README.md)")
    p.set_defaults(func=run_calibrate_cli)


def run_calibrate_cli(args: argparse.Namespace) -> int:
    from harness.calibration import write_calibration

    print(write_calibration(grids=args.grids, datasets=tuple(args.datasets), seed=args.seed, out=args.out,
                            readme=args.readme))
    return 0


def add_bench_cli(subparsers) -> None:
    from harness.bench_settings import BenchSettings

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
    from harness.bench import bench
    from harness.bench_settings import BenchSettings
    from harness.performance_doc import generate_performance_md
    from harness.precision import resolve_precision

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
    from harness.cost import GPU_TYPES, estimate_profile

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
    e.set_defaults(func=run_estimate_cli)


def run_estimate_cli(args: argparse.Namespace) -> int:
    from harness.cost import print_estimate

    print_estimate(args.profile, params=args.params, bench_json=args.bench, recalibrate=args.calibrate,
                   tokens_per_s=args.tokens_per_s, eval_tokens_per_s=args.eval_tokens_per_s, gpus=args.gpus,
                   gpu_type=args.gpu_type, pack=args.pack, cells_per_task=args.cells_per_task, data_dir=args.data_dir)
    return 0


def add_fetch_data_cli(subparsers) -> None:
    from harness.data import DATASETS

    p = subparsers.add_parser("fetch-data", help="download the datasets from the Hugging Face hub (needs internet)",
                              description="Write <data-dir>/<name>/<split>.parquet + labels.json from the hub.")
    p.add_argument("--dataset", action="append", choices=list(DATASETS),
                   help="a dataset to fetch (repeatable; default: all eight)")
    p.add_argument("--data-dir", default="data")
    p.set_defaults(func=run_fetch_data_cli)


def run_fetch_data_cli(args: argparse.Namespace) -> int:
    from harness.data import DATASETS, fetch_from_hub

    for name in args.dataset or DATASETS:
        print(fetch_from_hub(name, args.data_dir))
    return 0


def add_gpu_check_cli(subparsers) -> None:
    p = subparsers.add_parser("gpu-check", help="check the GPU path on a GPU: determinism, records, tokens/s, "
                                                "memory, share of peak FLOP/s (under 5 minutes)",
                              description="Train a few small MiniLM cells twice each, in fp32 and bf16, on CUDA into a "
                                          "temporary folder and print one table (harness/gpu_check.py).")
    p.add_argument("--data-dir", default="data", help="the data the cells read (sst2 and imdb)")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU needed: the same table from made-up records, through the same code")
    p.set_defaults(func=run_gpu_check_cli)


def run_gpu_check_cli(args: argparse.Namespace) -> int:
    from harness.gpu_check import run_gpu_check_cli as gpu_check

    return gpu_check(args.data_dir, args.dry_run)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m harness", description=__doc__.splitlines()[0], epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="verb", required=True)
    add_cell_cli(subparsers)
    add_corrupt_cli(subparsers)
    add_method_digest_cli(subparsers)
    add_grid_cli(subparsers)
    add_aggregate_cli(subparsers)
    add_plots_cli(subparsers)
    add_analyse_cli(subparsers)
    add_keep_cli(subparsers)
    add_report_cli(subparsers)
    add_calibrate_cli(subparsers)
    add_bench_cli(subparsers)
    add_estimate_cli(subparsers)
    add_fetch_data_cli(subparsers)
    add_gpu_check_cli(subparsers)
    return parser


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, or a usage error already printed as one line
        return exit.code
    from harness.models import quiet_transformers

    quiet_transformers()
    try:
        with warnings.catch_warnings():  # restores the caller's warning display on the way out
            warnings.showwarning = _print_warning
            return args.func(args)
    except BadInput as error:  # and its kinds: BadData, Unwritable, BadResults
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return error.exit_code
    except FileNotFoundError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return BadInput.exit_code
    except BrokenPipeError:  # e.g. `grid --list | head`: the reader left; stop quietly, as coreutils do
        sys.stderr.close()
        return 0
