"""The verbs of one cell: ``cell``, ``corrupt``, ``method-digest``, ``fetch-data``."""

from __future__ import annotations

import argparse
import json
import numbers
import sys

import torch

from harness.cli.arguments import cli_number, corruption_arguments
from harness.errors import BadInput
from harness.files import write_text_atomic
from harness.method.cell import run_cell
from harness.method.config import METHOD_VERSION, TEST_SCORINGS, CellConfig, check_corruption
from harness.method.corrupt import apply_corruption
from harness.method.data import DATASETS, fetch_from_hub
from harness.method.digest import METHOD_DIGESTS, check_method_digest, method_digest, stored_method_digests
from harness.method.models import load_classifier
from harness.method.precision import resolve_precision


def add_cell_cli(subparsers) -> None:
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
    corruption_arguments(p, defaults)
    p.add_argument("--probe-dropout", action="store_true",
                   help="linear probe: run the frozen body in train mode (dropout on) for every training batch, "
                        "as transformers' Trainer does (default: once, in eval mode, cached)")
    p.add_argument("--test-scoring", default=defaults.test_scoring, choices=TEST_SCORINGS,
                   help="every_epoch (default): score the test set after every epoch (the paper's best-on-test "
                        "reading needs it); selected: once, at the epoch of best validation F1")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--cache-dir", default="cache/tokens")
    p.add_argument("--out", default=None, help="record file (default: results/cells/<cell identity>.json)")
    p.add_argument("--save-features", action="store_true", help="also save the test set's fine-tuned feature vectors")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_cell_cli)


def run_cell_cli(args: argparse.Namespace) -> int:
    partial = isinstance(args.fraction, numbers.Real) and 0 < args.fraction < 1
    if partial and args.position in (None, "none", "all"):
        raise BadInput(f"--fraction {args.fraction} needs --position bottom or --position top")
    config = CellConfig(
        model=args.model, dataset=args.dataset, position=args.position or "none", fraction=args.fraction,
        pooling=args.pooling, mode=args.mode, lr=args.lr, epochs=args.epochs, seed=args.seed, data_seed=args.data_seed,
        n_train=args.n_train, n_test=args.n_test, n_val=args.n_val, batch_size=args.batch_size,
        max_length=args.max_length, init=args.init, scope=args.scope, rounding=args.rounding,
        precision=resolve_precision(args.precision), pooler=args.pooler, corruption=args.kind, strength=args.strength,
        component=args.component, probe_dropout=args.probe_dropout, test_scoring=args.test_scoring,
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
    p = subparsers.add_parser("corrupt", help="corrupt a model and print the names of the parameters reset")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--position", default="bottom", choices=["bottom", "top"])
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="kaiming_uniform")
    p.add_argument("--scope", default="encoder")
    p.add_argument("--rounding", default=None, choices=["floor", "ceil", "nearest"])
    corruption_arguments(p, CellConfig(model="minilm-l6", dataset="sst2"))
    p.set_defaults(func=run_corrupt_cli)


def run_corrupt_cli(args: argparse.Namespace) -> int:
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
                                          "excluded). After changing them: bump METHOD_VERSION in harness/method/config.py "
                                          "if results can change, then run this with --write.")
    p.add_argument("--write", action="store_true",
                   help="record the digest for the current METHOD_VERSION in harness/method/method_digests.json")
    p.set_defaults(func=run_method_digest_cli)


def run_method_digest_cli(args: argparse.Namespace) -> int:
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


def add_fetch_data_cli(subparsers) -> None:
    p = subparsers.add_parser("fetch-data", help="download the datasets from the Hugging Face hub (needs internet)",
                              description="Write <data-dir>/<name>/<split>.parquet + labels.json from the hub.")
    p.add_argument("--dataset", action="append", choices=list(DATASETS),
                   help="a dataset to fetch (repeatable; default: all eight)")
    p.add_argument("--data-dir", default="data")
    p.set_defaults(func=run_fetch_data_cli)


def run_fetch_data_cli(args: argparse.Namespace) -> int:
    for name in args.dataset or DATASETS:
        print(fetch_from_hub(name, args.data_dir))
    return 0
