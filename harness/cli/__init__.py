"""``python -m harness <verb>``: one command line for every step of the benchmark.

Every verb is wired in the module of its group (``method``, ``grid``, ``results``, ``perf``): its
arguments (``add_<verb>_cli``) and the call that unpacks them into the plain, keyword-argument function
its step's module exposes (``run_<verb>_cli``), so no module below takes an ``argparse.Namespace``. Every expected failure (bad input, bad data, an output that
cannot be written, unreadable results) prints one ``error:`` line and exits with its own code
(``EXIT_CODES``) without touching existing results; warnings print one line each.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from harness.cli.grid import add_aggregate_cli, add_grid_cli, add_keep_cli
from harness.cli.method import add_cell_cli, add_corrupt_cli, add_fetch_data_cli, add_method_digest_cli
from harness.cli.perf import add_bench_cli, add_estimate_cli, add_gpu_check_cli, add_simulate_cluster_cli
from harness.cli.results import (
    add_analyse_cli,
    add_calibrate_cli,
    add_claims_tables_cli,
    add_plan_cli,
    add_plots_cli,
    add_report_cli,
)
from harness.errors import EXIT_CODES, BadInput
from harness.method.models import quiet_transformers

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``error:`` line (exit 2) like every other failure."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


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
    add_claims_tables_cli(subparsers)
    add_plan_cli(subparsers)
    add_calibrate_cli(subparsers)
    add_bench_cli(subparsers)
    add_estimate_cli(subparsers)
    add_fetch_data_cli(subparsers)
    add_gpu_check_cli(subparsers)
    add_simulate_cluster_cli(subparsers)
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
