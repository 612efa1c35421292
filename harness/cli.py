"""``python -m harness <verb>``: one command line for every step of the benchmark.

Each step's module registers its own verb (``add_cli``). Every expected failure (bad input, bad
data, an output that cannot be written, unreadable results) prints one ``error:`` line and exits
with its own code (``EXIT_CODES``) without touching existing results; warnings print one line each.
"""

from __future__ import annotations

import argparse
import json
import numbers
import sys
import warnings
from fractions import Fraction
from importlib import import_module

from harness import EXIT_CODES, BadInput

VERB_MODULES = ("harness.grid", "harness.aggregate", "harness.plots", "harness.report", "harness.bench", "harness.cost",
                "harness.data")
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



def add_cell_cli(subparsers) -> None:
    from harness.config import CellConfig

    defaults = CellConfig(model="minilm-l6", dataset="sst2")
    p = subparsers.add_parser("cell", help="run one experiment cell and write its result record",
                              description="Corrupt, fine-tune and evaluate one (model, dataset, corruption, ...) cell.")
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
    from harness.precision import resolve_precision

    partial = isinstance(args.fraction, numbers.Real) and 0 < args.fraction < 1
    if partial and args.position in (None, "none", "all"):
        raise BadInput(f"--fraction {args.fraction} needs --position bottom or --position top")
    config = CellConfig(
        model=args.model, dataset=args.dataset, position=args.position or "none", fraction=args.fraction,
        pooling=args.pooling, mode=args.mode, lr=args.lr, epochs=args.epochs, seed=args.seed, data_seed=args.data_seed,
        n_train=args.n_train, n_test=args.n_test, n_val=args.n_val, batch_size=args.batch_size,
        max_length=args.max_length, init=args.init, scope=args.scope, rounding=args.rounding,
        precision=resolve_precision(args.precision), pooler=args.pooler,
    )
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
    p = subparsers.add_parser("corrupt", help="corrupt a model and print the names of the parameters reset")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--position", default="bottom", choices=["bottom", "top"])
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="kaiming_uniform")
    p.add_argument("--scope", default="encoder")
    p.add_argument("--rounding", default=None, choices=["floor", "ceil", "nearest"])
    p.set_defaults(func=run_corrupt_cli)


def run_corrupt_cli(args: argparse.Namespace) -> int:
    from harness.corrupt import corrupt
    from harness.models import load_classifier

    model, _ = load_classifier(args.model, 2)
    for name in corrupt(model, args.position, args.fraction, seed=args.seed, init=args.init,
                        scope=args.scope, rounding=args.rounding):
        print(name)
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
    state = "recorded" if stored.get(METHOD_VERSION) == digest else "NOT recorded (run with --write)"
    print(f"METHOD_VERSION {METHOD_VERSION}: digest {digest} {state} in {METHOD_DIGESTS}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m harness", description=__doc__.splitlines()[0], epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="verb", required=True)
    add_cell_cli(subparsers)
    add_corrupt_cli(subparsers)
    add_method_digest_cli(subparsers)
    for module_name in VERB_MODULES:
        module = import_module(module_name)
        if hasattr(module, "add_cli"):
            module.add_cli(subparsers)
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
