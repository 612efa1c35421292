"""The replication's protocol beside the paper's, per dataset, generated from params.yaml: what it trained on, for
how long, at which lrs and lengths, what it scored on, and how far its budget sits below the paper's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import AutoTokenizer

from harness.beyond.budget import PAPER_EPOCHS, paper_budget
from harness.grid.expand import expand
from harness.grid.profiles import load_profile
from harness.method.models import minilm_dir
from harness.method.token_lengths import training_sample, untruncated_lengths
from harness.verdict.replication import PROFILE, dataset_name
from harness.verdict.sources import PAPER_TEST_SIZES

PAPER_LRS = "1e-05, 2e-05, 5e-05"  # Section 4: "learning rates of 1e-5, 2e-5, and 5e-5 and choose the best"
LENGTH_SAMPLE = 1000  # training examples tokenised per dataset for the share max_length cuts


def protocol_table(params: str | Path, data_dir: str | Path = "data", profile: str = PROFILE,
                   scored: Mapping[str, int] | None = None) -> pd.DataFrame:
    """One row per dataset of ``profile``: our protocol and the paper's, side by side. ``scored``: the test size each
    dataset's records were scored on (the data caps what params.yaml asks for: MRPC and RTE hold fewer)."""
    configs = expand(load_profile(profile, params))
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    rows = []
    for dataset in dict.fromkeys(c.dataset for c in configs):
        mine = [c for c in configs if c.dataset == dataset and c.mode == "full"]
        if not mine:
            continue
        first = mine[0]
        passes = first.n_train * first.epochs
        lengths = untruncated_lengths(training_sample(dataset, data_dir, LENGTH_SAMPLE), dataset, tokenizer)
        rows.append({
            "dataset": dataset_name(dataset), "n_train": f"{first.n_train:,}", "epochs": first.epochs,
            "example-passes": f"{passes:,}", "paper's (× 10 epochs)": f"{paper_budget(dataset):,}",
            "paper / ours": f"{paper_budget(dataset) / passes:.0f}×",
            "lrs (ours; paper's: " + PAPER_LRS + ")": ", ".join(f"{x:g}" for x in sorted({c.lr for c in mine})),
            "max length": first.max_length, "cut by it": f"{float(np.mean(lengths > first.max_length)):.1%}",
            "n_val": f"{first.n_val:,}" if first.n_val else "default", "n_test (paper's)":
                f"{(scored or {}).get(dataset, first.n_test):,} ({PAPER_TEST_SIZES.get(dataset, 0):,})",
            "seeds": len({c.seed for c in mine})})
    return pd.DataFrame(rows)


PROTOCOL_NOTE = (f"Selection: every epoch is scored on validation, the run is read at its best validation epoch, and "
                 f"each setting at the lr whose seeds' mean validation F1 is highest; the paper reports the best "
                 f"test epoch over {PAPER_EPOCHS} epochs at the best of its three lrs (\"we test every epoch and "
                 "choose the best\"). \"cut by it\": the share of training examples longer than the max length "
                 f"(a sample of {LENGTH_SAMPLE:,}, MiniLM's WordPiece tokens, pairs counted whole).")
