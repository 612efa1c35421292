"""How long each dataset's examples are in MiniLM's tokens: the measurement behind a profile's ``max_length``.

``python -m harness.method.token_lengths [DATASET ...]`` prints, per dataset, the distribution of the untruncated
tokenised length (special tokens included; a pair counts both sentences) over a seeded sample of the
training split that ``harness.method.prepare.make_splits`` draws, and the share of examples a ``max_length``
would truncate. Every uncased BERT here shares MiniLM's WordPiece vocabulary, so these lengths stand
for all of them (as ``harness.grid.cost`` counts tokens).
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import AutoTokenizer

from harness.method.data import DATASETS, dataset_spec
from harness.method.models import minilm_dir
from harness.method.prepare import make_splits

PERCENTILES = (50, 90, 95, 99)
CANDIDATE_LENGTHS = (64, 128, 256, 512)  # 512: BERT's position table, the most any cell can take


@dataclass(frozen=True)
class LengthSummary:
    """One dataset's tokenised lengths (untruncated) over ``n`` sampled training examples."""

    dataset: str
    n: int
    mean: float
    percentiles: tuple[tuple[int, int], ...]  # (percentile, length)
    truncated_share: tuple[tuple[int, float], ...]  # (max_length, share of examples longer than it)


def mean_kept(lengths: np.ndarray, max_length: int) -> float:
    """Mean tokens an example keeps after truncation to ``max_length``: what a cell pays for."""
    return float(np.minimum(lengths, max_length).mean())


def untruncated_lengths(frame: pd.DataFrame, dataset: str, tokenizer) -> np.ndarray:
    """Each example's token count with special tokens and no truncation (pairs: [CLS] a [SEP] b [SEP])."""
    spec = dataset_spec(dataset)
    texts = [frame[field].tolist() for field in spec.text_fields]
    with warnings.catch_warnings():  # "longer than the model's maximum": exactly what is being measured
        warnings.simplefilter("ignore")
        ids = tokenizer(*texts, truncation=False, return_attention_mask=False,
                        return_token_type_ids=False)["input_ids"]
    return np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))


def training_sample(dataset: str, data_dir: str | Path, sample: int, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of at most ``sample`` rows of the training split the cells draw from."""
    with warnings.catch_warnings():  # the splits' capping notes are the profile's business, not this measure's
        warnings.simplefilter("ignore")
        train = make_splits(dataset, data_dir).train
    return train.sample(n=sample, random_state=seed) if len(train) > sample else train


def summarise(dataset: str, lengths: np.ndarray, candidates: Sequence[int] = CANDIDATE_LENGTHS) -> LengthSummary:
    return LengthSummary(
        dataset=dataset, n=len(lengths), mean=float(lengths.mean()),
        percentiles=tuple((p, int(math.ceil(np.percentile(lengths, p)))) for p in PERCENTILES),
        truncated_share=tuple((m, float((lengths > m).mean())) for m in candidates))


def length_table(datasets: Sequence[str], data_dir: str | Path = "data", sample: int = 5000,
                 candidates: Sequence[int] = CANDIDATE_LENGTHS) -> pd.DataFrame:
    """One row per dataset: mean and percentiles of the length, share truncated and mean tokens kept at each
    candidate ``max_length``."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    rows = []
    for dataset in datasets:
        lengths = untruncated_lengths(training_sample(dataset, data_dir, sample), dataset, tokenizer)
        found = summarise(dataset, lengths, candidates)
        rows.append({"dataset": dataset, "n": found.n, "mean": round(found.mean, 1),
                     **{f"p{p}": length for p, length in found.percentiles},
                     **{f"cut@{m}": f"{share:.1%}" for m, share in found.truncated_share},
                     **{f"mean@{m}": round(mean_kept(lengths, m), 1) for m in candidates}})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.method.token_lengths", description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", default=list(DATASETS), help="default: every dataset")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--sample", type=int, default=5000, help="training examples sampled per dataset")
    args = parser.parse_args(argv)
    print(length_table(args.datasets, args.data_dir, args.sample).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
