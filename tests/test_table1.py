"""harness.method.table1: a profile that asks for Table 1 on data that cannot give it is refused before any cell or model."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.errors import BadData, BadInput
from harness.grid.run import check_table1
from harness.method.config import CellConfig
from harness.method.data import dataset_spec, load_raw
from harness.method.table1 import (
    OVERRIDE_KEY,
    TABLE1_ROUNDING,
    BelowTable1,
    Table1Gap,
    ag_news_text,
    dataset_gap,
    table1_datasets,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"  # the project's copy: AG News and DBpedia are subsets


def paper_params(tmp_path: Path, **extra) -> Path:
    """params.yaml with the repository's `paper` profile, plus ``extra`` keys in it."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profiles"]["paper"].update(extra)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_rounding_of_table1_figures():
    # Table 1 prints thousands: 55,850 to train on is "56k", 55,499 is not
    assert not Table1Gap("sst2", 67_850, 56_000, 12_000).too_small
    assert Table1Gap("sst2", 56_000 - TABLE1_ROUNDING - 1 + 12_000, 56_000, 12_000).too_small
    gap = Table1Gap("ag_news", 19_565, 48_000, 6_000)
    assert gap.too_small and gap.train_available == 13_565
    assert gap.describe() == "ag_news: 19,565 distinct rows, so 13,565 to train on (Table 1: 48,000 train + 6,000 test)"


def test_ag_news_text_against_the_hubs_title_plus_description():
    description_only = {"test": pd.DataFrame({"text": ["Unions say ...", "AP - A company ..."], "label": [2, 3],
                                              "title": ["Fears for T N pension", "Ky. Company Wins Grant"]})}
    hub_like = {"test": pd.DataFrame({"text": ["Fears for T N pension Unions say ..."], "label": [2],
                                      "title": ["Fears for T N pension"]})}
    assert "description alone" in ag_news_text(description_only)
    assert ag_news_text(hub_like) is None
    assert ag_news_text({"train": pd.DataFrame({"text": ["x"], "label": [0]})}) is None  # nothing to tell from


def test_the_projects_copy_measured_against_table1():
    gaps = {name: dataset_gap(dataset_spec(name), load_raw(name, DATA)) for name in
            ("sst2", "imdb", "ag_news", "emotion", "dbpedia_14", "twitter_financial_news_topic")}
    assert {name for name, gap in gaps.items() if gap is not None} == {"ag_news", "dbpedia_14"}
    assert gaps["ag_news"].too_small and "description alone" in gaps["ag_news"].text
    assert gaps["dbpedia_14"].too_small and gaps["dbpedia_14"].text is None


def test_only_cells_asking_table1_sizes_count():
    cells = [CellConfig(model="minilm-l6", dataset="ag_news", n_train=1500),
             CellConfig(model="minilm-l6", dataset="sst2"), CellConfig(model="minilm-l6", dataset="rte")]
    assert table1_datasets(cells) == ("sst2",)  # rte: not in Table 1; ag_news: its size is set


def test_paper_profile_refused_before_any_model_with_one_error_line(tmp_path, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr("harness.method.models.load_classifier", no_model)
    params = paper_params(tmp_path)
    for verb in (["--prepare"], []):
        code = main(["grid", "--profile", "paper", "--params", str(params), "--data-dir", str(DATA),
                     "--out", str(tmp_path / "cells"), "--cache-dir", str(tmp_path / "tokens"), *verb])
        err = capsys.readouterr().err
        assert code == BadData.exit_code and err.count("\n") == 1 and err.startswith("error: profile 'paper' asks")
        assert "python -m harness fetch-data --dataset ag_news --dataset dbpedia_14" in err and OVERRIDE_KEY in err
    assert not (tmp_path / "cells").exists() and not (tmp_path / "tokens").exists()


def test_mini_is_not_checked_and_list_is_never_refused(tmp_path, capsys):
    assert check_table1("mini", params=REPO / "params.yaml", data_dir=DATA) == []
    assert main(["grid", "--profile", "paper", "--params", str(paper_params(tmp_path)), "--data-dir", str(DATA),
                 "--list", "--out", str(tmp_path / "cells")]) == 0
    capsys.readouterr()


def test_the_override_is_explicit_and_warns(tmp_path):
    params = paper_params(tmp_path, **{OVERRIDE_KEY: True})
    with pytest.warns(UserWarning, match=rf"runs below Table 1 \({OVERRIDE_KEY}: true\): ag_news"):
        gaps = check_table1("paper", params=params, data_dir=DATA)
    assert [g.dataset for g in gaps] == ["ag_news", "dbpedia_14"]
    with pytest.raises(BelowTable1):
        check_table1("paper", params=paper_params(tmp_path, **{OVERRIDE_KEY: False}), data_dir=DATA)
    with pytest.raises(BadInput, match=f"{OVERRIDE_KEY} must be true or false"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_table1("paper", params=paper_params(tmp_path, **{OVERRIDE_KEY: "yes"}), data_dir=DATA)
