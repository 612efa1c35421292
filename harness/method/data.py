"""The paper's datasets (Section 4.1, Table 1): the registry, and their files on disk, read and checked.

Data on disk: ``<data_dir>/<name>/<split>.parquet`` for each upstream split (columns ``text``, or
``text_a`` + ``text_b`` for pair tasks, and ``label`` int64) plus ``labels.json`` (label names in id
order, the Hugging Face ids). ``dvc pull`` restores the project's copy; ``python -m harness
fetch-data`` writes the same layout from the hub.

A dataset's files have a digest (``dataset_digest``): it is part of every cell's identity and of
the token cache's key. How the paper's splits are re-drawn from these files and tokenised once is
``harness.method.prepare``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from harness.errors import BadData, BadInput
from harness.files import write_atomic, write_text_atomic

UPSTREAM_ORDER = ("train", "validation", "test")  # pooling order: decides which copy of a duplicate is kept
FETCH_HINT = "run `dvc pull`, or `python -m harness fetch-data` (needs internet)"
RESTORE_HINT = "restore the data with `dvc checkout data` (or `dvc pull`)"


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: where it lives on the hub, its columns and labels, and its Table-1 sizes."""

    name: str
    hub_id: str
    hub_config: str | None
    text_fields: tuple[str, ...]  # ("text",) or ("text_a", "text_b")
    label_names: tuple[str, ...]
    paper_train: int | None  # Table 1; None: the whole GLUE split (pair tasks are not in Table 1)
    paper_test: int | None
    hub_columns: tuple[tuple[str, str], ...] = ()  # hub column -> ours, where they differ

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2


_GLUE_PAIR = (("sentence1", "text_a"), ("sentence2", "text_b"))
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("sst2", "stanfordnlp/sst2", None, ("text",), ("negative", "positive"),
                    56_000, 12_000, (("sentence", "text"),)),
        DatasetSpec("imdb", "stanfordnlp/imdb", None, ("text",), ("neg", "pos"), 25_000, 5_000),
        DatasetSpec("ag_news", "fancyzhx/ag_news", None, ("text",), ("World", "Sports", "Business", "Sci/Tech"),
                    48_000, 6_000),
        DatasetSpec("emotion", "dair-ai/emotion", "split", ("text",),
                    ("sadness", "joy", "love", "anger", "fear", "surprise"), 14_000, 4_000),
        DatasetSpec("dbpedia_14", "fancyzhx/dbpedia_14", None, ("text",),
                    ("Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                     "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork"),
                    50_000, 12_000, (("content", "text"),)),  # the copy here has no titles: text = content
        DatasetSpec("twitter_financial_news_topic", "zeroshot/twitter-financial-news-topic", None, ("text",),
                    ("Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt",
                     "Dividend", "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion",
                     "Gold | Metals | Materials", "IPO", "Legal | Regulation", "M&A | Investments", "Macro",
                     "Markets", "Politics", "Personnel Change", "Stock Commentary", "Stock Movement"),
                    17_000, 4_000),
        DatasetSpec("mrpc", "nyu-mll/glue", "mrpc", ("text_a", "text_b"), ("not_equivalent", "equivalent"),
                    None, None, _GLUE_PAIR),
        DatasetSpec("rte", "nyu-mll/glue", "rte", ("text_a", "text_b"), ("entailment", "not_entailment"),
                    None, None, _GLUE_PAIR),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise BadInput(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


# ---------------------------------------------------------------- raw data on disk


def check_frame(frame: pd.DataFrame, spec: DatasetSpec, where: str) -> None:
    """Columns present, no missing text, integer labels inside [0, num_labels), at least one row."""
    missing = [c for c in (*spec.text_fields, "label") if c not in frame.columns]
    if missing:
        raise BadData(f"{where}: missing column(s) {missing}; {spec.name} needs {[*spec.text_fields, 'label']}, "
                       f"found {list(frame.columns)}")
    if frame.empty:
        raise BadData(f"{where}: no rows")
    if frame[list(spec.text_fields)].isna().any().any():
        raise BadData(f"{where}: some rows have no text in {list(spec.text_fields)}")
    labels = frame["label"]
    if not pd.api.types.is_integer_dtype(labels):
        raise BadData(f"{where}: labels must be integer ids, got dtype {labels.dtype}")
    bad = labels[(labels < 0) | (labels >= spec.num_labels)]
    if len(bad):
        raise BadData(f"{where}: labels must be in [0, {spec.num_labels}) {spec.label_names}; "
                       f"found {sorted(bad.unique().tolist())[:5]}")


def dataset_folder(name: str, data_dir: str | Path) -> Path:
    """``<data_dir>/<name>``, or BadData saying how to get it."""
    data_dir = Path(data_dir)
    folder = data_dir / dataset_spec(name).name
    if not data_dir.is_dir():
        raise BadData(f"data folder {data_dir} does not exist: {FETCH_HINT}")
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise BadData(f"no parquet files in {folder}: {FETCH_HINT}")
    return folder


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError: truncated or not parquet
        raise BadData(f"cannot read {path} ({str(error).splitlines()[0]}): {RESTORE_HINT}") from error


def _read_label_names(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: not UTF-8 or not JSON
        raise BadData(f"cannot read {path} ({error}): {RESTORE_HINT}") from error


def load_raw(name: str, data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The upstream splits of one dataset, checked, in upstream order (train, validation, test, others)."""
    spec = dataset_spec(name)
    folder = dataset_folder(name, data_dir)
    labels_file = folder / "labels.json"
    names = _read_label_names(labels_file) if labels_file.exists() else list(spec.label_names)
    if not isinstance(names, list) or tuple(names) != spec.label_names:
        raise BadData(f"{labels_file} lists {names}, expected {list(spec.label_names)}: {RESTORE_HINT}")
    rank = {split: i for i, split in enumerate(UPSTREAM_ORDER)}
    paths = sorted(folder.glob("*.parquet"), key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    raw = {path.stem: _read_parquet(path) for path in paths}
    for split, frame in raw.items():
        try:
            check_frame(frame, spec, f"{folder}/{split}.parquet")
        except BadData as error:
            raise BadData(f"{error}: {RESTORE_HINT}") from None
    return raw


def _hub_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """A hub split in our column names, without unlabelled rows (GLUE test, IMDB unsupervised: label -1)."""
    frame = frame.rename(columns=dict(spec.hub_columns))
    frame = frame.loc[frame["label"] >= 0, [*spec.text_fields, "label"]]
    return frame.astype({"label": "int64"}).reset_index(drop=True)


def fetch_from_hub(name: str, data_dir: str | Path) -> Path:
    """Download one dataset with ``datasets.load_dataset`` into ``<data_dir>/<name>`` (needs internet).

    Writes the project's layout. Note the hub's AG News and DBpedia are the full sets (120k/560k
    training rows, so Table 1's sizes need no cap), AG News's hub text is title + description and
    DBpedia's ``content`` (no title) becomes ``text``.
    """
    spec = dataset_spec(name)
    folder = Path(data_dir) / spec.name
    try:
        loaded = datasets.load_dataset(spec.hub_id, spec.hub_config)
    except OSError as error:  # offline, hub down, renamed: ConnectionError and friends are OSErrors
        raise BadData(f"cannot download {spec.hub_id} from the Hugging Face hub ({error}); it needs internet "
                      "(unset HF_DATASETS_OFFLINE), or restore the project's copy with `dvc pull`") from error
    for split, table in loaded.items():
        hub_names = getattr(table.features.get("label"), "names", None)
        if hub_names is not None and tuple(hub_names) != spec.label_names:
            raise BadInput(f"{spec.hub_id} labels {hub_names} differ from the registry's {list(spec.label_names)}")
        frame = _hub_frame(table.to_pandas(), spec)
        if frame.empty:
            continue  # an unlabelled split
        check_frame(frame, spec, f"{spec.hub_id} {split}")
        write_atomic(folder / f"{split}.parquet", lambda handle: frame.to_parquet(handle, compression="zstd", index=False))
    write_text_atomic(folder / "labels.json", json.dumps(list(spec.label_names), indent=1))
    return folder


# ---------------------------------------------------------------- digests of the files


def files_digest(folder: Path) -> str:
    """Content hash of a dataset folder's files, so a changed copy of the data never hits an old cache
    or an old result record."""
    digest = hashlib.sha256()
    try:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                digest.update(path.name.encode())
                with path.open("rb") as handle:
                    digest.update(hashlib.file_digest(handle, "sha256").digest())
    except OSError as error:
        raise BadData(f"cannot read the data in {folder} ({error.strerror or error}): {RESTORE_HINT}") from error
    return digest.hexdigest()


def dataset_digest(name: str, data_dir: str | Path) -> str:
    """The digest of dataset ``name``'s files under ``data_dir``: part of every cell's identity."""
    return files_digest(dataset_folder(name, data_dir))
