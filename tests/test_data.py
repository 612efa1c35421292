"""harness.method.data and .prepare: Table-1 splits on the real data, tokenisation, the token cache, and bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from harness.errors import BadInput
from harness.method import data as hd
from harness.method import prepare as hp
from harness.method.data import DATASETS, dataset_spec, load_raw
from harness.method.models import minilm_dir
from harness.method.prepare import encode, make_splits, prepare

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"  # ../shared beside the repo (CI has it too)
SINGLE = [name for name, spec in DATASETS.items() if not spec.is_pair]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_dir())


def quiet_splits(name: str, **kwargs) -> hp.Splits:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_splits(name, DATA, **kwargs)


def keys(frame: pd.DataFrame, spec) -> set:
    return set(map(tuple, frame[list(spec.text_fields)].to_numpy()))


# ---------------------------------------------------------------- registry and raw data


def test_registry_matches_the_data_on_disk():
    assert set(DATASETS) == {p.name for p in DATA.iterdir() if p.is_dir()}
    for name, spec in DATASETS.items():
        assert tuple(json.loads((DATA / name / "labels.json").read_text())) == spec.label_names
        for frame in load_raw(name, DATA).values():
            assert {*spec.text_fields, "label"} <= set(frame.columns)


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", ["imdb", "emotion"])
def test_paper_sizes_where_the_data_suffices(name):
    spec, splits = dataset_spec(name), quiet_splits(name)
    assert (len(splits.train), len(splits.test)) == (spec.paper_train, spec.paper_test)
    assert len(splits.validation) == min(2000, spec.paper_train // 10)
    assert splits.notes == ()


def test_scaled_sizes():
    splits = quiet_splits("sst2", n_train=300, n_test=120, n_val=40)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (300, 40, 120)
    assert len(quiet_splits("sst2", n_train=300, n_test=120).validation) == 30  # default: 10% of train
    assert len(quiet_splits("sst2", n_train=5, n_test=120).validation) == 1  # ... at least 1


def test_pair_tasks_keep_glue_splits():
    raw = load_raw("rte", DATA)
    splits = quiet_splits("rte")
    assert len(splits.test) == len(raw["validation"])
    assert keys(splits.test, dataset_spec("rte")) == keys(raw["validation"], dataset_spec("rte"))
    assert keys(splits.train, dataset_spec("rte")) <= keys(raw["train"], dataset_spec("rte"))
    assert any("carved out of train" in note for note in splits.notes)  # GLUE train is all used: validation from it


def test_ag_news_is_capped_with_a_note_and_a_warning():
    with pytest.warns(UserWarning, match="ag_news: only .* distinct labelled texts exist; the paper's 48,000"):
        splits = make_splits("ag_news", DATA)
    pool = len(hp.distinct_pool(dataset_spec("ag_news"), load_raw("ag_news", DATA)))
    # test is drawn at Table 1's 6,000 first, train takes every row left; validation then comes out of test
    assert len(splits.train) == pool - 6000 and len(splits.validation) + len(splits.test) == 6000
    assert any("capped" in note for note in splits.notes)
    assert any("carved out of test" in note for note in splits.notes)


@pytest.mark.parametrize("name, rows_outside", [("sst2", 0), ("twitter_financial_news_topic", 107)])
def test_table1_training_size_is_kept_and_validation_comes_out_of_test(name, rows_outside):
    spec, splits = dataset_spec(name), quiet_splits(name)
    pool = len(hp.distinct_pool(spec, load_raw(name, DATA)))
    assert len(splits.train) == min(spec.paper_train, pool - spec.paper_test)  # SST-2: 150 short of 56k, not 2,150
    want = min(2000, len(splits.train) // 10)
    assert len(splits.validation) == want and len(splits.test) == spec.paper_test - (want - rows_outside)
    assert any(f"only {rows_outside:,} rows outside train and test for validation" in note
               and "carved out of test" in note for note in splits.notes)


def test_mrpc_validation_comes_from_its_labelled_test_split_so_glue_train_is_kept():
    spec, raw, splits = dataset_spec("mrpc"), load_raw("mrpc", DATA), quiet_splits("mrpc")
    assert keys(splits.train, spec) == keys(raw["train"], spec)  # the whole GLUE train
    assert keys(splits.validation, spec) <= keys(raw["test"], spec)
    assert len(splits.validation) == round(0.1 * len(raw["train"])) and splits.notes == ()


def test_too_large_train_request_is_capped_not_an_error():
    splits = quiet_splits("mrpc", n_train=10**6, n_test=100)
    assert len(splits.test) == 100 and len(splits.train) == 3668  # all of GLUE train: validation from MRPC test
    assert any("n_train=1,000,000 capped" in note for note in splits.notes)


# ---------------------------------------------------------------- stratification, determinism, overlap


@pytest.mark.parametrize("name", ["emotion", "twitter_financial_news_topic"])
def test_splits_are_stratified(name):
    splits = quiet_splits(name, n_train=3000, n_test=1000, n_val=300)
    pool = pd.concat(load_raw(name, DATA).values()).drop_duplicates("text")
    share = pool["label"].value_counts(normalize=True)
    for frame in (splits.train, splits.validation, splits.test):
        counts = frame["label"].value_counts().reindex(share.index, fill_value=0)
        assert np.abs(counts - share * len(frame)).max() <= 2.0


def test_same_seed_same_rows_other_seed_other_rows():
    a = quiet_splits("sst2", n_train=200, n_test=100, data_seed=0)
    b = quiet_splits("sst2", n_train=200, n_test=100, data_seed=0)
    c = quiet_splits("sst2", n_train=200, n_test=100, data_seed=1)
    for split in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(a, split), getattr(b, split))
    assert set(a.train["text"]) != set(c.train["text"]) and set(a.test["text"]) != set(c.test["text"])


@pytest.mark.parametrize("name", ["emotion", "ag_news", "twitter_financial_news_topic", "mrpc", "rte"])
def test_no_text_in_two_splits(name):
    spec, splits = dataset_spec(name), quiet_splits(name)
    train, val, test = (keys(f, spec) for f in (splits.train, splits.validation, splits.test))
    assert len(train) == len(splits.train) and len(test) == len(splits.test)  # no duplicates inside a split
    assert not (train & test) and not (train & val) and not (val & test)


# ---------------------------------------------------------------- tokenisation


def test_pair_task_segments(tokenizer):
    spec = dataset_spec("mrpc")
    encoded = encode(quiet_splits("mrpc", n_train=20, n_test=10).test, spec, tokenizer, 128)
    assert len(encoded) == 10 and encoded.offsets[-1] == len(encoded.input_ids) == len(encoded.token_type_ids)
    for i in range(len(encoded)):
        ids = encoded.input_ids[encoded.offsets[i]:encoded.offsets[i + 1]]
        types = encoded.token_type_ids[encoded.offsets[i]:encoded.offsets[i + 1]]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == 102 and (ids == 102).sum() == 2
        first_b = int(np.argmax(types))
        assert first_b > 0 and not types[:first_b].any() and types[first_b:].all()
        assert ids[first_b - 1] == 102  # segment a ends with its [SEP]


def test_single_sentence_segments_and_truncation(tokenizer):
    spec = dataset_spec("imdb")
    frame = quiet_splits("imdb", n_train=40, n_test=20).test
    encoded = encode(frame, spec, tokenizer, max_length=16)
    assert encoded.lengths.max() == 16 and (encoded.lengths <= 16).all()
    assert not encoded.token_type_ids.any()
    assert encoded.input_ids.dtype == np.int32 and encoded.token_type_ids.dtype == np.int8
    assert encoded.offsets.dtype == np.int64 and np.array_equal(encoded.labels, frame["label"].to_numpy())
    ends = encoded.input_ids[encoded.offsets[1:] - 1]
    assert (ends == tokenizer.sep_token_id).all()


# ---------------------------------------------------------------- the token cache


class CountingTokenizer:
    """The real tokenizer, counting batch calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_second_prepare_hits_the_cache(tokenizer, tmp_path):
    counting = CountingTokenizer(tokenizer)
    args = dict(data_dir=DATA, n_train=100, n_test=50, cache_dir=tmp_path)
    first = prepare("sst2", counting, **args)
    assert counting.calls == 3  # one batch call per split
    second = prepare("sst2", counting, **args)
    assert counting.calls == 3
    for split in ("train", "validation", "test"):
        for field in hp.ENCODED_FIELDS:
            assert np.array_equal(getattr(getattr(first, split), field), getattr(getattr(second, split), field))
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]  # no temporary file left behind
    prepare("sst2", counting, **{**args, "max_length": 32})  # another key: tokenised afresh
    assert counting.calls == 6


def test_cached_notes_warn_again(tokenizer, tmp_path):
    args = dict(data_dir=DATA, n_train=10**6, n_test=50, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="capped"):
        first = prepare("rte", tokenizer, **args)
    with pytest.warns(UserWarning, match="capped"):
        second = prepare("rte", tokenizer, **args)
    assert first.notes == second.notes and first.notes


@pytest.mark.parametrize("damage", [b"", b"not a zip file", b"PK\x03\x04 torn zip"])
def test_a_corrupt_cache_file_is_rebuilt_silently(tokenizer, tmp_path, damage):
    counting = CountingTokenizer(tokenizer)
    args = dict(data_dir=DATA, n_train=100, n_test=50, cache_dir=tmp_path)
    first = prepare("sst2", counting, **args)
    (cached,) = tmp_path.iterdir()
    cached.write_bytes(damage)
    again = prepare("sst2", counting, **args)
    assert counting.calls == 6 and np.array_equal(first.train.input_ids, again.train.input_ids)
    assert prepare("sst2", counting, **args) and counting.calls == 6  # the rebuilt file is read back


def test_a_killed_write_leaves_no_cache_file(tokenizer, tmp_path, monkeypatch):
    def killed(handle, **arrays):
        handle.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(hp.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare("rte", tokenizer, data_dir=DATA, n_train=20, n_test=10, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_from_hub_writes_the_layout_load_raw_reads(tmp_path, monkeypatch):
    import datasets

    def fake_load_dataset(hub_id, config):
        assert (hub_id, config) == ("nyu-mll/glue", "rte")
        features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                      "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                                      "idx": datasets.Value("int32")})

        def split(labels):
            columns = {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": labels, "idx": [0, 1]}
            return datasets.Dataset.from_dict(columns, features=features)

        return datasets.DatasetDict(train=split([0, 1]), validation=split([1, 0]), test=split([-1, -1]))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    folder = hd.fetch_from_hub("rte", tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["labels.json", "train.parquet", "validation.parquet"]
    raw = load_raw("rte", tmp_path)
    assert list(raw["train"].columns) == ["text_a", "text_b", "label"] and raw["train"]["label"].dtype == np.int64


# ---------------------------------------------------------------- bad input


def write_dataset(root: Path, name: str, frame: pd.DataFrame) -> Path:
    (root / name).mkdir(parents=True)
    frame.to_parquet(root / name / "train.parquet")
    return root


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(BadInput, match="unknown dataset 'sst3'.*sst2.*twitter_financial_news_topic.*rte"):
        dataset_spec("sst3")


def test_missing_data_folders_say_how_to_get_them(tmp_path):
    with pytest.raises(BadInput, match="does not exist.*dvc pull.*fetch-data"):
        make_splits("sst2", tmp_path / "nowhere")
    with pytest.raises(BadInput, match="dvc pull.*fetch-data"):
        make_splits("sst2", tmp_path)


def test_labels_outside_the_label_set(tmp_path):
    root = write_dataset(tmp_path, "sst2", pd.DataFrame({"text": ["x", "y", "z"], "label": [0, 1, 2]}))
    with pytest.raises(BadInput, match=r"labels must be in \[0, 2\).*\[2\]"):
        load_raw("sst2", root)


def test_missing_text_column(tmp_path):
    root = write_dataset(tmp_path, "sst2", pd.DataFrame({"sentence": ["x", "y"], "label": [0, 1]}))
    with pytest.raises(BadInput, match="missing column.*'text'"):
        load_raw("sst2", root)


def test_empty_splits_are_errors(tmp_path, tokenizer):
    with pytest.raises(BadInput, match="n_test"):
        make_splits("sst2", DATA, n_test=0)
    with pytest.raises(BadInput, match="n_train"):
        prepare("sst2", tokenizer, data_dir=DATA, n_train=-3, cache_dir=tmp_path)
    root = write_dataset(tmp_path, "sst2", pd.DataFrame({"text": pd.Series([], dtype=str),
                                                        "label": pd.Series([], dtype="int64")}))
    with pytest.raises(BadInput, match="no rows"):
        load_raw("sst2", root)
    spec = dataset_spec("sst2")
    frame = quiet_splits("sst2", n_train=10, n_test=10).test
    with pytest.raises(BadInput, match="no rows"):
        encode(frame[frame["label"] > 5], spec, tokenizer, 32)
