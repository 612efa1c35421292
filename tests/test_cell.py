"""One experiment cell end to end: tiny fixtures (seconds), one real MiniLM smoke cell, bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures import random_encoded

from harness.cli import main
from harness.errors import BadInput
from harness.method.cell import run_cell
from harness.method.config import METHOD_VERSION, CellConfig, cell_identity
from harness.method.data import dataset_digest
from harness.method.models import load_classifier, sentence_vector
from harness.method.train import TrainSettings, length_bucketed_batches, token_budget_batches, train_and_evaluate

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TINY = dict(n_train=64, n_test=32, n_val=16, epochs=2, lr=1e-3, batch_size=16, max_length=32)


@pytest.fixture
def dirs(tmp_path):
    return {"out_dir": tmp_path / "cells", "data_dir": DATA, "cache_dir": tmp_path / "cache", "progress": False}


# ---------------------------------------------------------------- batching


@pytest.mark.parametrize("n, batch_size", [(1, 32), (31, 32), (32, 32), (1000, 32), (1601, 32), (70, 7)])
def test_bucketed_batches_are_a_shuffled_partition_with_the_plain_step_count(n, batch_size):
    lengths = np.random.default_rng(1).integers(3, 120, size=n)
    batches = length_bucketed_batches(lengths, batch_size, np.random.default_rng(0))
    assert len(batches) == math.ceil(n / batch_size)  # same optimiser steps as a plain shuffled loader
    assert all(len(b) <= batch_size for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n))


def test_bucketed_batches_pad_less_than_random_ones_and_depend_on_the_seed():
    lengths = np.random.default_rng(1).integers(3, 120, size=3200)
    bucketed = length_bucketed_batches(lengths, 32, np.random.default_rng(0))
    padded = sum(len(b) * lengths[b].max() for b in bucketed)
    random = sum(len(b) * lengths[b].max() for b in np.array_split(np.random.default_rng(0).permutation(3200), 100))
    assert padded < 0.7 * random
    again = length_bucketed_batches(lengths, 32, np.random.default_rng(0))
    other = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(bucketed, again))
    assert not all(np.array_equal(a, b) for a, b in zip(bucketed, other))


def test_token_budget_batches_cover_everything_within_budget():
    lengths = np.random.default_rng(2).integers(1, 300, size=500)
    batches = token_budget_batches(lengths, 2048)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    assert all(len(b) == 1 or len(b) * lengths[b].max() <= 2048 for b in batches)


# ---------------------------------------------------------------- pooling and probing


def test_mean_pooling_ignores_padding_and_cls():
    model, tokenizer = load_classifier("tiny-bert", 2)
    short = tokenizer(["a short one"], return_tensors="pt")
    padded = tokenizer(["a short one", "a much longer sentence than the first one, with padding"],
                       padding=True, return_tensors="pt")
    alone = sentence_vector(model, short["input_ids"], short["attention_mask"], short["token_type_ids"], "mean")
    batched = sentence_vector(model, padded["input_ids"], padded["attention_mask"], padded["token_type_ids"], "mean")
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
def test_linear_probe_trains_only_the_head(name):
    model, _ = load_classifier(name, 2, seed=0)
    body_before = {k: v.clone() for k, v in model.base_model.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(model.base_model_prefix)}
    data = random_encoded(48, 0)
    outcome = train_and_evaluate(model, data, data, data, TrainSettings(lr=1e-2, epochs=2, batch_size=8, mode="probe"),
                                 pad_id=0, device=torch.device("cpu"), progress=False)
    assert len(outcome.epochs) == 2
    assert all(torch.equal(body_before[k], v) for k, v in model.base_model.state_dict().items())
    after = model.state_dict()
    assert any(not torch.equal(head_before[k], after[k]) for k in head_before)


# ---------------------------------------------------------------- cells


def test_tiny_cell_writes_a_complete_record(dirs):
    config = CellConfig(model="tiny-bert", dataset="sst2", position="bottom", fraction=0.5, **TINY)
    record = run_cell(config, **dirs)
    digest = dataset_digest("sst2", DATA)
    path = dirs["out_dir"] / f"{cell_identity(config, digest)}.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert record["config"] == config.to_dict() and record["config_hash"] == config.hash
    assert (record["identity"], record["method_version"], record["data_digest"]) == (
        cell_identity(config, digest), METHOD_VERSION, digest)
    assert record["status"] in ("ok", "failed_run")
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert all(0 <= e["test_f1_weighted"] <= 100 for e in record["epochs"])
    assert record["best_test_f1"] == max(e["test_f1_weighted"] for e in record["epochs"])
    assert record["corrupted_layers"] == [0, 1] and record["level"] == 50.0
    assert record["data"] == {"n_train": 64, "n_val": 16, "n_test": 32, "notes": []}
    for key in ("selected_test_f1", "majority_f1", "tokens_per_s", "peak_rss_mb", "wall_s"):
        assert isinstance(record[key], float) and record[key] > 0
    assert {"revision", "torch", "transformers", "datasets"} <= set(record["versions"])


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_every_epoch_records_each_examples_prediction_and_they_give_its_scores(mode, dirs):
    """The verdicts' evidence (issue 20): the predicted label of every validation and test example at every
    epoch, and the true labels once; the recorded F1 is the F1 of those predictions."""
    from sklearn.metrics import f1_score

    from harness.method.predictions import decode_labels

    record = run_cell(CellConfig(model="tiny-bert", dataset="emotion", mode=mode, **TINY), **dirs)
    labels = {split: decode_labels(record["labels"][split]) for split in ("val", "test")}
    assert [len(labels["val"]), len(labels["test"])] == [16, 32]
    for epoch in record["epochs"]:
        for split in ("val", "test"):
            predicted = decode_labels(epoch[f"{split}_predictions"])
            assert len(predicted) == len(labels[split]) and predicted.max() < 6
            assert epoch[f"{split}_f1_weighted"] == pytest.approx(
                100 * f1_score(labels[split], predicted, average="weighted", zero_division=0))
    assert len(json.dumps(record)) < 20_000  # compact: a few KB per cell


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_config_and_seed_give_identical_scores(precision, dirs, tmp_path):
    config = CellConfig(model="tiny-distilbert", dataset="emotion", position="top", fraction=0.25, precision=precision,
                        **TINY)
    first = run_cell(config, **dirs)
    second = run_cell(config, **{**dirs, "out_dir": tmp_path / "again"})
    scores = lambda r: [{k: v for k, v in e.items() if k != "train_seconds"} for e in r["epochs"]]  # noqa: E731
    assert scores(first) == scores(second)
    third = run_cell(config.with_(seed=1), **dirs)
    assert scores(third) != scores(first)


def test_an_existing_record_is_never_recomputed(dirs, monkeypatch):
    config = CellConfig(model="tiny-bert", dataset="sst2", **TINY)
    record = run_cell(config, **dirs)
    monkeypatch.setattr("harness.method.cell.train_and_evaluate", lambda *a, **k: pytest.fail("recomputed a finished cell"))
    assert run_cell(config, **dirs) == record


def test_pair_task_probe_and_mean_pooling_cell(dirs):
    config = CellConfig(model="tiny-bert", dataset="rte", fraction=1.0, pooling="mean", mode="probe", **TINY)
    record = run_cell(config, save_features=True, **dirs)
    assert record["config"]["position"] == "all" and record["n_corrupted"] == 4
    features = np.load(dirs["out_dir"] / f"{record['identity']}.vectors.npz")
    assert features["features"].shape == (32, 32) and features["labels"].shape == (32,)


def test_a_non_finite_loss_marks_the_run_diverged_and_the_cli_exits_nonzero(dirs, capsys):
    out = dirs["out_dir"] / "diverged.json"
    # lr 1e30: finite, so accepted (inf is refused up front), and the weights blow up at the first step
    code = main(["cell", "--model", "tiny-bert", "--dataset", "sst2", "--lr", "1e30", "--n-train", "64", "--n-test",
                 "32", "--epochs", "2", "--data-dir", str(DATA), "--cache-dir", str(dirs["cache_dir"]),
                 "--out", str(out), "--no-progress"])
    assert code == 3
    assert "diverged" in capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["status"] == "diverged" and "non-finite loss" in record["divergence"]


@pytest.mark.parametrize("mode", ["full", "probe"])
def test_scoring_the_test_set_once_at_the_selected_epoch_gives_what_every_epoch_scoring_selects(mode, dirs, tmp_path):
    """test_scoring: selected (issue 35: test sets of thousands, scored once) keeps the chosen epoch's weights and
    scores them at the end: the same selected epoch, test F1 and per-example predictions as scoring every epoch;
    no best-on-test reading (NaN), and a new identity while the default keeps every old one."""
    from harness.verdict.sources import load_predictions

    every = CellConfig(model="tiny-bert", dataset="emotion", mode=mode, seed=3, **{**TINY, "epochs": 4})
    once = every.with_(test_scoring="selected")
    assert every.canonical_json() == CellConfig(model="tiny-bert", dataset="emotion", mode=mode, seed=3,
                                                **{**TINY, "epochs": 4}).canonical_json()
    assert "test_scoring" not in every.canonical_json() and once.hash != every.hash
    a = run_cell(every, **dirs)
    b = run_cell(once, **{**dirs, "out_dir": tmp_path / "once"})
    for key in ("selected_epoch", "selected_test_f1", "selected_val_f1", "majority_f1", "status"):
        assert a[key] == b[key], key
    chosen = a["selected_epoch"]
    assert [e["val_predictions"] for e in a["epochs"]] == [e["val_predictions"] for e in b["epochs"]]
    assert [e["epoch"] for e in b["epochs"] if "test_predictions" in e] == [chosen]
    assert b["epochs"][chosen - 1]["test_predictions"] == a["epochs"][chosen - 1]["test_predictions"]
    assert math.isnan(b["best_test_f1"]) and math.isnan(b["best_epoch"])
    assert (b["final_test_f1"] == a["final_test_f1"]) if chosen == 4 else math.isnan(b["final_test_f1"])
    # the verdicts read the chosen epoch's predictions from either record
    frame = pd.DataFrame({"identity": [b["identity"]], "epoch": [chosen]})
    (labels, predicted), = load_predictions(frame, tmp_path / "once").values()
    assert len(labels) == len(predicted) == 32


def test_selected_test_scoring_costs_one_test_pass():
    from harness.grid.cost import cell_cost

    config = CellConfig(model="tiny-bert", dataset="sst2", epochs=4)
    tokens = {"train": 1000.0, "validation": 100.0, "test": 1000.0}
    every, once = cell_cost(config, tokens, 10), cell_cost(config.with_(test_scoring="selected"), tokens, 10)
    assert (every.eval_tokens, once.eval_tokens) == (4 * 1100.0, 4 * 100.0 + 1000.0)
    with pytest.raises(BadInput, match="test_scoring"):
        config.with_(test_scoring="best")


# ---------------------------------------------------------------- bad input: one message, exit 2, nothing overwritten

BAD_INPUTS = {
    "unknown model": (["--model", "no-such-model"], "unknown model", 2),
    "unknown dataset": (["--dataset", "no_such_data"], "unknown dataset", 2),
    "fraction not whole layers": (["--position", "bottom", "--fraction", "0.3"], "not a whole number", 2),
    "fraction out of range": (["--position", "bottom", "--fraction", "1.5"], "fraction", 2),
    "fraction without position": (["--fraction", "0.5"], "--position", 2),
    # the data is part of a cell's identity: without it there is no record to return either
    "missing data folder": (["--data-dir", "/nonexistent/data"], "dvc pull", 4),
    "empty test split": (["--n-test", "0"], "n_test", 2),
    "offline hub model": (["--model", "bert-base-uncased"], "Offline alternatives", 2),
}


@pytest.mark.parametrize("argv, message, code", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_gives_one_clear_error_and_keeps_the_good_result(argv, message, code, dirs, capsys):
    out = dirs["out_dir"] / "good.json"
    base = ["cell", "--model", "tiny-bert", "--dataset", "sst2", "--n-train", "64", "--n-test", "32", "--epochs", "1",
            "--data-dir", str(DATA), "--cache-dir", str(dirs["cache_dir"]), "--out", str(out), "--no-progress"]
    assert main(base) == 0
    good = out.read_bytes()
    capsys.readouterr()
    assert main(base + argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert out.read_bytes() == good


# ---------------------------------------------------------------- the real pretrained model on real data


@pytest.mark.slow
def test_minilm_smoke_cell_learns_sst2(dirs):
    config = CellConfig(model="minilm-l6", dataset="sst2", n_train=320, n_test=200, n_val=50, epochs=1, lr=1e-4,
                        max_length=64)
    record = run_cell(config, **dirs)
    assert record["status"] == "ok"
    assert record["best_test_f1"] > record["majority_f1"] + 15  # a pretrained BERT learns sentiment in 10 steps
