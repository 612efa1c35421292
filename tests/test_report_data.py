"""REPORT.md's data table: sizes and, per dataset, where its validation set came from (issue 23)."""

from __future__ import annotations

from harness.method.prepare import validation_note
from harness.report.document import data_table, validation_source


def record(dataset: str, n_train: int, n_val: int, n_test: int, notes: list[str]) -> dict:
    return {"config": {"dataset": dataset}, "data": {"n_train": n_train, "n_val": n_val, "n_test": n_test,
                                                     "notes": notes}}


def test_validation_source_is_read_from_the_split_notes():
    carved = validation_note("sst2", 0, 2000, 2000, "test", 10_000)
    assert validation_source([carved]) == ("only 0 rows outside train and test for validation; 2,000 of its 2,000 "
                                           "rows carved out of test, leaving 10,000 test")
    assert validation_source([]) == "rows outside train and test"
    old = "rte: only 0 rows left over for validation; 249 of its 249 rows carved out of train, leaving 2,239 train"
    assert validation_source([old]).startswith("only 0 rows left over for validation")  # records made before


def test_one_row_per_dataset_and_split_with_its_caps():
    cap = "ag_news: only 19,565 distinct labelled texts exist; the paper's 48,000 train capped to 13,565 (test keeps 6,000)"
    records = [record("sst2", 55_850, 2000, 10_000, [validation_note("sst2", 0, 2000, 2000, "test", 10_000)])] * 3
    records += [record("imdb", 25_000, 2000, 5000, []),
                record("ag_news", 13_565, 1356, 4644, [cap, validation_note("ag_news", 0, 1356, 1356, "test", 4644)])]
    lines = data_table(records).splitlines()
    assert len(lines) == 2 + 3  # header, rule, one row per dataset (sst2's three cells share one)
    assert lines[2].startswith("| ag_news | 13565 | 1356 | 4644 | only 0 rows outside") and "capped to 13,565" in lines[2]
    assert "| imdb | 25000 | 2000 | 5000 | rows outside train and test | none |" == lines[3]
