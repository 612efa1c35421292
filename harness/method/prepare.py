"""The paper's Table-1 splits, re-drawn from the datasets' files (``harness.method.data``) and tokenised once.

How the paper's splits are re-drawn (``make_splits``); every draw is sklearn's
``train_test_split(stratify=label, random_state=data_seed)``, so a ``data_seed`` names one split:

* Single-sentence datasets (sst2, imdb, ag_news, emotion, dbpedia_14, twitter_financial_news_topic):
  all labelled upstream splits are pooled and duplicate texts dropped (first copy kept, upstream
  order train, validation, test), so no text can sit in two of our splits. From the pool we draw
  the test set first, then the training set from the rest, at Table 1's sizes unless ``n_train``/
  ``n_test`` say otherwise (smaller sizes are how CPU runs scale down).
* Pair tasks (mrpc, rte) keep GLUE's split: test = GLUE ``validation`` and train is drawn from GLUE
  ``train``. RTE's GLUE test split has no labels, so its validation split is the only labelled
  held-out set (the usual practice); MRPC, whose test labels do exist, is treated the same way so
  the two pair tasks follow one protocol. Default sizes are the whole GLUE splits.
* Capping: the test set keeps its size (so the F1's sampling noise matches the paper's); a
  training set larger than the rows that remain is capped to them. AG News and DBpedia are subsets
  here (19.6k and 23.8k rows; the `paper` profile refuses them, ``harness.method.table1``), and SST-2 falls
  short of 56k + 12k by 150 rows once duplicate texts are dropped. Each cap adds a note to
  ``Splits.notes`` and a ``warnings.warn``.
* Validation (model selection, never reported as the score): ``n_val`` defaults to 10% of the
  training size, at most 2,000 and at least 1. It is drawn from the rows outside train and test
  (left over after both draws; for the pair tasks also the labelled upstream splits that are
  neither, MRPC's test). The training set is never shrunk for it where the dataset has a Table-1
  size: Table 1's training size is what shapes the scores, the test size only their noise, so a
  single-sentence dataset without enough rows left over (SST-2, whose pool is used up by Table 1,
  and TFNT) takes the shortfall out of its *test* set. The pair tasks have no Table-1 size and a
  small test set (GLUE validation: 277 and 408 pairs), so RTE, which has no rows outside its two
  GLUE splits, carves its validation out of GLUE train, as is usual for GLUE. Either way a note says
  so (``validation_note``).
* Draws are stratified whenever sklearn can (every class has 2+ rows and the draw and the rest
  each have room for one row per class); tiny draws fall back to a plain seeded random draw.

``prepare`` tokenises each split once with the fast tokenizer's batch call (truncation to
``max_length``, special tokens, segment ids) into ragged ``Encoded`` arrays and caches them under
``<cache_dir>/<name>-<key>.npz``; the key hashes everything the arrays depend on.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from harness.errors import BadData, BadInput
from harness.files import write_atomic
from harness.method.data import (
    FETCH_HINT,
    DatasetSpec,
    check_frame,
    dataset_folder,
    dataset_spec,
    files_digest,
    load_raw,
)

CACHE_VERSION = 2  # bump when the split rule or the Encoded layout changes: old cache files stop matching
VAL_SHARE, VAL_MAX = 0.1, 2000


# ---------------------------------------------------------------- Table-1 splits


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    notes: tuple[str, ...]  # where the splits depart from what was asked (caps, validation carved from train)


def _draw(frame: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(n rows drawn stratified by label, the rest); all rows when n >= len(frame)."""
    if n >= len(frame):
        return frame, frame.iloc[:0]
    counts = frame["label"].value_counts()
    stratify = frame["label"] if counts.min() >= 2 and min(n, len(frame) - n) >= len(counts) else None
    chosen, rest = train_test_split(frame, train_size=n, stratify=stratify, random_state=seed)
    return chosen, rest


def _check_sizes(**sizes: int | None) -> None:
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise BadInput(f"{name} must be None (the default size) or a positive number of examples, got {value!r}")


def default_n_val(n_train: int) -> int:
    return int(min(VAL_MAX, max(1, round(VAL_SHARE * n_train))))


def _validation(name: str, left: pd.DataFrame, want: int, seed: int, donor: pd.DataFrame, donor_name: str,
                notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(validation, donor): ``want`` rows drawn from ``left`` (the rows outside train and test); any
    shortfall is carved out of ``donor`` (the split that gives way: test or train), with a note."""
    if len(left) >= want:
        return _draw(left, want, seed)[0], donor
    short = want - len(left)
    if short >= len(donor):
        raise BadInput(f"{name}: a validation set of {want:,} rows would leave no {donor_name} rows "
                       f"({len(donor):,} {donor_name}, {len(left):,} outside train and test)")
    carved, donor = _draw(donor, short, seed)
    notes.append(validation_note(name, len(left), short, want, donor_name, len(donor)))
    return pd.concat([left, carved]), donor


def validation_note(name: str, outside: int, short: int, want: int, donor_name: str, donor_left: int) -> str:
    """The note of a validation set that had to be carved (REPORT.md's data table shows it per dataset)."""
    return (f"{name}: only {outside:,} rows outside train and test for validation; {short:,} of its {want:,} "
            f"rows carved out of {donor_name}, leaving {donor_left:,} {donor_name}")


def distinct_pool(spec: DatasetSpec, raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A single-sentence dataset's labelled rows, all upstream splits pooled, duplicate texts dropped
    (first copy kept, upstream order): what Table 1's splits are drawn from."""
    columns = [*spec.text_fields, "label"]
    pool = pd.concat([frame[columns] for frame in raw.values()], ignore_index=True)
    return pool.drop_duplicates(subset=list(spec.text_fields), ignore_index=True)


def _pooled_splits(spec: DatasetSpec, raw: dict[str, pd.DataFrame], n_train: int | None, n_test: int | None,
                   n_val: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """Single-sentence datasets: pool all splits, drop duplicate texts, draw test, then train, then validation."""
    pool = distinct_pool(spec, raw)
    want_test, want_train = n_test or spec.paper_test, n_train or spec.paper_train
    if want_test >= len(pool) - 1:
        raise BadInput(f"{spec.name}: n_test={want_test:,} leaves too few rows to train on; "
                       f"the pool holds {len(pool):,} distinct texts")
    notes: list[str] = []
    test, rest = _draw(pool, want_test, seed)
    train, left = _draw(rest, want_train, seed)
    if len(train) < want_train:
        asked = "the paper's" if n_train is None else "the requested"
        notes.append(f"{spec.name}: only {len(pool):,} distinct labelled texts exist; {asked} {want_train:,} train "
                     f"capped to {len(train):,} (test keeps {len(test):,})")
    val, test = _validation(spec.name, left, n_val or default_n_val(len(train)), seed, test, "test", notes)
    return train, val, test, notes


def _glue_splits(spec: DatasetSpec, raw: dict[str, pd.DataFrame], n_train: int | None, n_test: int | None,
                 n_val: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """Pair tasks: test from GLUE validation, train from GLUE train, validation from the rest (GLUE train's
    left-over rows and any other labelled split, MRPC's test), carved out of train where that is too little."""
    if not {"train", "validation"} <= raw.keys():
        raise BadData(f"{spec.name} needs GLUE's train and validation splits, found {sorted(raw)}: {FETCH_HINT}")
    pair, columns = list(spec.text_fields), [*spec.text_fields, "label"]
    test_pool = raw["validation"][columns].drop_duplicates(subset=pair, ignore_index=True)
    train_pool = raw["train"][columns].drop_duplicates(subset=pair, ignore_index=True)
    in_test = train_pool.set_index(pair).index.isin(test_pool.set_index(pair).index)
    train_pool = train_pool[~in_test]  # GLUE has none, but the no-overlap promise should not rest on that
    notes: list[str] = []
    want_test, want_train = n_test or len(test_pool), n_train or len(train_pool)
    test, _ = _draw(test_pool, want_test, seed)
    train, left = _draw(train_pool, want_train, seed)
    for split, want, got, source in (("test", want_test, test, "validation"), ("train", want_train, train, "train")):
        if len(got) < want:
            notes.append(f"{spec.name}: GLUE {source} holds only {len(got):,} pairs; n_{split}={want:,} capped to {len(got):,}")
    others = [frame[columns] for split, frame in raw.items() if split not in ("train", "validation")]
    if others:  # labelled rows in neither GLUE split (MRPC's test): validation without shrinking train or test
        extra = pd.concat(others, ignore_index=True).drop_duplicates(subset=pair, ignore_index=True)
        used = pd.concat([train_pool, test_pool]).set_index(pair).index
        left = pd.concat([left, extra[~extra.set_index(pair).index.isin(used)]], ignore_index=True)
    val, train = _validation(spec.name, left, n_val or default_n_val(len(train)), seed, train, "train", notes)
    return train, val, test, notes


def make_splits(name: str, data_dir: str | Path, *, n_train: int | None = None, n_test: int | None = None,
                n_val: int | None = None, data_seed: int = 0) -> Splits:
    """Train/validation/test frames by the rule in the module docstring (deterministic in ``data_seed``)."""
    spec = dataset_spec(name)
    _check_sizes(n_train=n_train, n_test=n_test, n_val=n_val)
    raw = load_raw(name, data_dir)
    draw = _glue_splits if spec.is_pair else _pooled_splits
    train, val, test, notes = draw(spec, raw, n_train, n_test, n_val, data_seed)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    train, val, test = (frame.reset_index(drop=True) for frame in (train, val, test))
    return Splits(train=train, validation=val, test=test, notes=tuple(notes))


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Encoded:
    """Ragged, unpadded token ids: example i is ``input_ids[offsets[i]:offsets[i + 1]]``."""

    input_ids: np.ndarray  # int32, all examples concatenated
    token_type_ids: np.ndarray  # int8, segment ids (all 0 for single-sentence tasks)
    offsets: np.ndarray  # int64, len n + 1
    labels: np.ndarray  # int64, len n

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.labels)


def encode(frame: pd.DataFrame, spec: DatasetSpec, tokenizer, max_length: int) -> Encoded:
    """Tokenise a split in one batch call: special tokens, truncation to ``max_length``, pairs as (a, b)."""
    check_frame(frame, spec, f"{spec.name} frame to encode")
    texts = [frame[field].tolist() for field in spec.text_fields]
    batch = tokenizer(*texts, truncation=True, max_length=max_length, return_token_type_ids=True,
                      return_attention_mask=False)
    ids = batch["input_ids"]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    types = batch.get("token_type_ids")
    return Encoded(
        input_ids=np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=total),
        token_type_ids=(np.fromiter(chain.from_iterable(types), dtype=np.int8, count=total) if types is not None
                        else np.zeros(total, dtype=np.int8)),
        offsets=offsets,
        labels=frame["label"].to_numpy(dtype=np.int64),
    )


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of what the tokenizer does (vocab, normaliser, special-token template), not where it lives."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # The tokenizer stores the last call's truncation/padding on itself: not part of its identity.
        state.pop("truncation", None)
        state.pop("padding", None)
        text = json.dumps(state, sort_keys=True)
    else:  # a slow (pure Python) tokenizer
        text = json.dumps([type(tokenizer).__name__, getattr(tokenizer, "do_lower_case", None),
                           sorted(tokenizer.get_vocab().items())])
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- prepared data and its cache


@dataclass(frozen=True)
class PreparedData:
    spec: DatasetSpec
    train: Encoded
    validation: Encoded
    test: Encoded
    notes: tuple[str, ...]


SPLIT_NAMES = ("train", "validation", "test")
ENCODED_FIELDS = ("input_ids", "token_type_ids", "offsets", "labels")


def cache_key(name: str, folder: Path, tokenizer, *, n_train: int | None, n_test: int | None, n_val: int | None,
              data_seed: int, max_length: int) -> str:
    identity = {
        "version": CACHE_VERSION, "dataset": name, "data": files_digest(folder), "n_train": n_train,
        "n_test": n_test, "n_val": n_val, "data_seed": data_seed, "max_length": max_length,
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _save(path: Path, splits: dict[str, Encoded], notes: tuple[str, ...]) -> None:
    arrays = {f"{split}_{field}": getattr(data, field) for split, data in splits.items() for field in ENCODED_FIELDS}
    arrays["notes"] = np.array(notes, dtype=np.str_)

    write_atomic(path, lambda handle: np.savez(handle, **arrays))  # a file object: np.savez adds ".npz" to a path


def _load(path: Path) -> tuple[dict[str, Encoded], tuple[str, ...]] | None:
    """The cached splits, or None when there is no readable cache file."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {split: Encoded(**{field: stored[f"{split}_{field}"] for field in ENCODED_FIELDS})
                      for split in SPLIT_NAMES}
            return splits, tuple(str(note) for note in stored["notes"])
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # a torn or foreign file: rebuilt
        return None


def prepare(name: str, tokenizer, *, data_dir: str | Path = "data", n_train: int | None = None,
            n_test: int | None = None, n_val: int | None = None, data_seed: int = 0, max_length: int = 128,
            cache_dir: str | Path = "cache/tokens") -> PreparedData:
    """Splits (``make_splits``) tokenised (``encode``), from ``<cache_dir>/<name>-<key>.npz`` when cached."""
    spec = dataset_spec(name)
    _check_sizes(n_train=n_train, n_test=n_test, n_val=n_val)
    key = cache_key(name, dataset_folder(name, data_dir), tokenizer, n_train=n_train, n_test=n_test, n_val=n_val,
                    data_seed=data_seed, max_length=max_length)
    path = Path(cache_dir) / f"{name}-{key}.npz"
    cached = _load(path) if path.exists() else None
    if cached is not None:
        encoded, notes = cached
        for note in notes:  # the same warnings as the run that filled the cache
            warnings.warn(note, stacklevel=2)
    else:
        splits = make_splits(name, data_dir, n_train=n_train, n_test=n_test, n_val=n_val, data_seed=data_seed)
        encoded = {split: encode(getattr(splits, split), spec, tokenizer, max_length) for split in SPLIT_NAMES}
        notes = splits.notes
        _save(path, encoded, notes)
    return PreparedData(spec=spec, train=encoded["train"], validation=encoded["validation"], test=encoded["test"],
                        notes=notes)
