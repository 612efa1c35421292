"""Profiles expand into the paper's grids, and the runner computes each cell exactly once."""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from harness.errors import BadInput
from harness.files import write_json_atomic
from harness.grid.expand import describe, expand, tsne_cells
from harness.grid.profiles import load_profile
from harness.grid.run import dataset_digests, is_done, run_grid
from harness.method.config import METHOD_VERSION, CellConfig, cell_identity
from harness.method.corrupt import layers_to_corrupt
from harness.method.record import RECORD_SCORES, RecordWarning, features_path, record_path

PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def write_params(tmp_path: Path, **blocks_and_defaults) -> Path:
    """A params.yaml with one profile ``t`` (MiniLM: its depth is known without loading anything)."""
    profile = {"defaults": {"lrs": [5.0e-5], "seeds": [0, 1], "epochs": 1, "n_train": 32, "n_test": 16},
               "blocks": [{"name": "b", "models": {"minilm-l6": [0, "1/3", 1]}, "datasets": ["sst2"]}]}
    profile.update(blocks_and_defaults)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "t", "profiles": {"t": profile}}))
    return path


# ---------------------------------------------------------------- the profiles of params.yaml


def test_paper_profile_is_tables_2_to_5():
    cells = expand(load_profile("paper", PARAMS))
    assert len(cells) == 960 * 3  # the paper's 960 runs, at three seeds (the paper: one)
    assert len({c.hash for c in cells}) == 960 * 3
    assert {c.lr for c in cells} == {1e-5, 2e-5, 5e-5} and {c.epochs for c in cells} == {10}
    assert {c.seed for c in cells} == {0, 1, 2}

    def settings(model):
        return {(c.position, c.fraction) for c in cells if c.model == model}

    quarters = {("none", 0.0), ("all", 1.0)} | {(p, f) for p in ("bottom", "top") for f in (0.25, 0.5, 0.75)}
    assert settings("bert-base-uncased") == settings("bert-large-uncased") == quarters
    assert settings("distilbert-base-uncased") == {("none", 0.0), ("all", 1.0), ("bottom", 0.5), ("top", 0.5)}
    six = {"sst2", "imdb", "ag_news", "emotion", "dbpedia_14", "twitter_financial_news_topic"}
    tables = Counter((c.pooling, c.mode, c.dataset in six) for c in cells)
    per_dataset = 20 * 3 * 3  # (8 + 8 + 4) settings x 3 learning rates x 3 seeds
    assert tables == {("cls", "full", True): 6 * per_dataset, ("mean", "full", True): 6 * per_dataset,
                      ("cls", "probe", True): 2 * per_dataset, ("cls", "full", False): 2 * per_dataset}
    assert {c.dataset for c in cells if c.mode == "probe"} == {"ag_news", "dbpedia_14"}
    assert {c.dataset for c in cells if c.dataset not in six} == {"mrpc", "rte"}


def test_paper_profile_settings_follow_the_paper_and_its_stack():
    """Issue 23: Table 1's sizes, fp32, batch 8 (Trainer's default), max_length 512, the mean straight into the
    classifier (Table 3), the pooler over [CLS] elsewhere, Figure 1 from the final layer's [CLS] token."""
    profile = load_profile("paper", PARAMS)
    cells = expand(profile)
    assert {(c.n_train, c.n_test, c.n_val) for c in cells} == {(None, None, None)}
    assert {(c.precision, c.batch_size, c.max_length) for c in cells} == {("fp32", 8, 512)}
    assert {(c.pooling, c.pooler) for c in cells} == {("mean", False), ("cls", True)}
    assert profile.tsne.vectors == "cls" and not profile.allow_data_below_table1


def test_mini_profile_has_what_the_issue_asks(machine):
    """Issue 11: MiniLM's trained path (mean pooling, no pooler), clean/bottom/top/100%, 3 seeds, a probe
    slice on the same dataset, a test set whose sampling noise is <= ~2 F1 points. Issue 22: 3 of 6 layers,
    the paper's 50%. Issue 20: fp32 pinned, on an AVX2-only and on a bf16-native machine alike (its
    records are kept in git: one grid, one arithmetic)."""
    profile = load_profile("mini", PARAMS)
    cells = expand(profile)
    assert {c.model for c in cells} == {"minilm-l6"}
    assert {(c.pooling, c.pooler) for c in cells} == {("mean", False)}
    full = [c for c in cells if c.mode == "full"]
    corrupted = {(c.position, len(layers_to_corrupt(6, c.corrupt_position, c.fraction))) for c in full}
    assert corrupted == {("none", 0), ("bottom", 3), ("top", 3), ("all", 6)}
    assert len({c.seed for c in cells}) >= 3
    assert {c.dataset for c in cells if c.mode == "probe"} <= {c.dataset for c in full}
    assert all(100 * (2 * 0.85 * 0.15 / c.n_test) ** 0.5 <= 2.0 for c in cells)  # SE of a difference near 85%
    assert {c.precision for c in cells} == {"fp32"}  # whatever `auto` would resolve to on this machine
    panels = tsne_cells(profile, cells)
    assert list(panels) == ["clean", "top 50%", "bottom 50%", "100%"]


def test_replication_profile_has_what_issue_22_asks():
    """Issue 22: MiniLM-L6 with mean pooling (no pooler) on all eight datasets at clean, bottom/top 3 of 6 and
    100%, two datasets (one binary, one multi-class) also at 2 and 4 of 6; the probe on Table 4's datasets;
    3 seeds; fp32; every budget past the healing curve's plateau; two lrs to choose from somewhere."""
    cells = expand(load_profile("replication", PARAMS))
    full = [c for c in cells if c.mode == "full"]
    assert {c.model for c in cells} == {"minilm-l6"} and {(c.pooling, c.pooler) for c in cells} == {("mean", False)}
    assert {c.dataset for c in full} == {"sst2", "imdb", "ag_news", "emotion", "dbpedia_14",
                                         "twitter_financial_news_topic", "mrpc", "rte"}

    def layers(dataset):
        return {(c.position, len(layers_to_corrupt(6, c.corrupt_position, c.fraction))) for c in full
                if c.dataset == dataset}

    paper_levels = {("none", 0), ("bottom", 3), ("top", 3), ("all", 6)}
    steps = paper_levels | {(p, k) for p in ("bottom", "top") for k in (2, 4)}
    assert {d for d in {c.dataset for c in full} if layers(d) == steps} == {"sst2", "emotion"}
    assert all(layers(d) == paper_levels for d in {c.dataset for c in full} - {"sst2", "emotion"})
    assert {c.dataset for c in cells if c.mode == "probe"} == {"ag_news", "dbpedia_14"}
    assert {c.seed for c in cells} == {0, 1, 2} and {c.precision for c in cells} == {"fp32"}
    assert all(c.n_train * c.epochs >= 6000 for c in full)  # the healing curve's gaps stop moving from 6,000
    assert any(len({c.lr for c in full if c.dataset == d}) >= 2 for d in {c.dataset for c in full})
    mini = {c.hash for c in expand(load_profile("mini", PARAMS)) if c.mode == "full"}
    assert mini <= {c.hash for c in full}  # SST-2's cells at mini's lr are mini's: never computed twice


def test_ci_profile_is_small_and_offline():
    cells = expand(load_profile("ci", PARAMS))
    assert {c.model for c in cells} == {"tiny-bert", "tiny-distilbert"}
    assert len(cells) <= 60 and all(c.n_train <= 128 and c.epochs <= 2 for c in cells)


def test_default_profile_is_the_params_key(tmp_path):
    assert load_profile(None, write_params(tmp_path)).name == "t"


# ---------------------------------------------------------------- bad profiles


@pytest.mark.parametrize("change, message", [
    ({"blocks": [{"models": {"minilm-l6": ["1/4"]}, "datasets": ["sst2"]}]}, "not a whole number"),
    ({"blocks": [{"models": {"minilm-l6": [0]}, "datasets": ["sst3"]}]}, "unknown dataset 'sst3'"),
    ({"blocks": [{"models": {"minilm-l6": [0]}, "datasets": ["sst2"], "learning_rates": [1]}]}, "unknown keys"),
    ({"blocks": [{"models": ["minilm-l6"], "datasets": ["sst2"]}]}, "must map each model"),
    ({"blocks": [{"models": {"minilm-l6": ["2/3", 1.5]}, "datasets": ["sst2"]}]}, "in [0, 1]"),
    ({"tsne": {"model": "minilm-l6", "dataset": "ag_news", "fraction": "1/3"}}, "not a cell of the grid"),
    ({"blocks": [{"models": {"minilm-l6": [0]}, "datasets": ["sst2"], "poolings": ["max"]}]}, "block 'block0': pooling"),
])
def test_bad_profiles_fail_clearly(tmp_path, change, message):
    with pytest.raises(BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(load_profile("t", write_params(tmp_path, **change)))


def test_unknown_profile_names_the_known_ones():
    known = ", ".join(yaml.safe_load(PARAMS.read_text())["profiles"])
    with pytest.raises(BadInput, match=re.escape(f"defines {known}")):
        load_profile("full", PARAMS)


def test_fractions_are_exact(tmp_path):
    (block,) = load_profile("t", write_params(tmp_path)).blocks
    assert dict(block.models)["minilm-l6"] == (Fraction(0), Fraction(1, 3), Fraction(1))
    cells = expand(load_profile("t", write_params(tmp_path)))
    assert {c.fraction for c in cells} == {0.0, 1 / 3, 1.0}


# ---------------------------------------------------------------- the runner


class FakeCells:
    """Stands in for ``harness.method.cell``: records each call and writes a record as run_cell does."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, bool]] = []
        self.fail_on = fail_on

    def run_cell(self, config: CellConfig, *, out_dir, data_dir, cache_dir, data_digest, save_features=False,
                 progress=True, wait=True):
        self.calls.append((config.hash, save_features))
        if config.hash == self.fail_on:
            raise BadInput("dataset folder data/sst2 not found")
        record = fake_record(config, data_digest)
        path = write_json_atomic(record_path(config, out_dir, data_digest), record)
        if save_features:
            features_path(path).write_bytes(b"npz")
        return record


def fake_record(config: CellConfig, data_digest: str) -> dict:
    return {"config": config.to_dict(), "config_hash": config.hash, "identity": cell_identity(config, data_digest),
            "method_version": METHOD_VERSION, "data_digest": data_digest, "status": "ok", "data": {},
            **dict.fromkeys(RECORD_SCORES, 1.0)}


@pytest.fixture
def fake_cells(monkeypatch):
    fake = FakeCells()
    monkeypatch.setattr("harness.grid.run.run_cell", fake.run_cell)
    return fake


def grid_dirs(tmp_path: Path) -> dict:
    return {"out_dir": tmp_path / "cells", "data_dir": DATA, "cache_dir": tmp_path / "cache", "progress": False}


def test_a_second_run_computes_nothing(tmp_path, fake_cells):
    cells = expand(load_profile("t", write_params(tmp_path)))
    assert len(run_grid(cells, **grid_dirs(tmp_path))) == len(cells) == 8
    assert sorted(h for h, _ in fake_cells.calls) == sorted(c.hash for c in cells)
    assert run_grid(cells, **grid_dirs(tmp_path)) == []
    assert len(fake_cells.calls) == 8


def test_changing_one_seed_recomputes_only_its_cells(tmp_path, fake_cells):
    run_grid(expand(load_profile("t", write_params(tmp_path))), **grid_dirs(tmp_path))
    fake_cells.calls.clear()
    changed = expand(load_profile("t", write_params(tmp_path, defaults={
        "lrs": [5.0e-5], "seeds": [0, 2], "epochs": 1, "n_train": 32, "n_test": 16})))
    ran = run_grid(changed, **grid_dirs(tmp_path))
    assert {c.seed for c in ran} == {2} and len(ran) == 4
    assert [h for h, _ in fake_cells.calls] == [c.hash for c in ran]


def test_stray_temp_files_and_broken_records_are_not_results(tmp_path, fake_cells):
    cells = expand(load_profile("t", write_params(tmp_path)))
    out = tmp_path / "cells"
    out.mkdir()
    digest = dataset_digests(cells, DATA)["sst2"]
    first, second = cells[0], cells[1]
    # what a kill -9 during an atomic write leaves: a temp file beside the record that never appeared
    (out / f".{cell_identity(first, digest)}.json.x1y2.tmp").write_text(json.dumps({"config_hash": first.hash})[:10])
    record_path(second, out, digest).write_text('{"config_hash": "')  # a torn write from a non-atomic tool
    with pytest.warns(RecordWarning, match=f"{cell_identity(second, digest)}.json is not a readable result record"):
        assert not is_done(first, out, digest) and not is_done(second, out, digest)
    with pytest.warns(RecordWarning):
        ran = run_grid(cells, **grid_dirs(tmp_path))
    assert {first.hash, second.hash} <= {c.hash for c in ran}
    assert all(is_done(c, out, digest) for c in cells)


def test_feature_cells_save_features_and_count_as_done_only_with_them(tmp_path, fake_cells):
    cells = expand(load_profile("t", write_params(tmp_path)))
    run_grid(cells, **grid_dirs(tmp_path))
    wanted = cells[0].hash
    fake_cells.calls.clear()
    ran = run_grid(cells, features={wanted}, **grid_dirs(tmp_path))
    assert [c.hash for c in ran] == [wanted] and fake_cells.calls == [(wanted, True)]
    assert run_grid(cells, features={wanted}, **grid_dirs(tmp_path)) == []


def test_bad_input_stops_the_grid_naming_the_cell(tmp_path, monkeypatch):
    cells = expand(load_profile("t", write_params(tmp_path)))
    fake = FakeCells(fail_on=cells[2].hash)
    monkeypatch.setattr("harness.grid.run.run_cell", fake.run_cell)
    with pytest.raises(BadInput, match=f"cell {cells[2].hash} \\({describe(cells[2])}\\): dataset folder"):
        run_grid(cells, **grid_dirs(tmp_path))
    assert len(fake.calls) == 3  # the cells after the bad one never started


def test_list_cli_lists_every_cell_once(tmp_path, capsys):
    from harness.cli import main

    assert main(["grid", "--profile", "t", "--params", str(write_params(tmp_path)), "--list",
                 "--out", str(tmp_path / "cells"), "--data-dir", str(DATA)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and len({line.split("\t")[0] for line in lines}) == 8
    assert all(line.split("\t")[1] == "todo" for line in lines)


def test_code_revision_marks_code_changes_but_not_pipeline_outputs(tmp_path):
    import subprocess

    from harness.method.record import code_revision

    git = lambda *args: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],  # noqa: E731
                                       cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "train.py").write_text("x = 1\n")
    (tmp_path / "dvc.lock").write_text("a\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "dvc.lock").write_text("b\n")  # what `dvc repro` does while it runs
    assert code_revision.__wrapped__(tmp_path) == commit
    (tmp_path / "harness" / "train.py").write_text("x = 2\n")
    assert code_revision.__wrapped__(tmp_path) == commit + "+dirty"
