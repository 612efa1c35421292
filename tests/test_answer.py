"""REPORT.md's first table (harness.report.answer): one row per declared claim, each source's verdict as the engine
judged it, resting on the stratum furthest from support."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.answer import answer_table, inconsistencies, replication_cell
from harness.report.protocol import protocol_table
from harness.report.replication import kept_replication
from harness.verdict.claims import SPECS
from harness.verdict.replication import ORDERING_CLAIMS, replication_judgement
from harness.verdict.verdicts import judge

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "results" / "records"
PAPER = REPO / "claims" / "paper_tables.csv"


@pytest.fixture(scope="module")
def sources():
    assert (RECORDS / "replication").is_dir(), "the replication's records are kept in git: results/records/replication"
    return judge("paper", PAPER), kept_replication(RECORDS, PAPER)


def test_one_row_per_declared_claim_with_each_sources_own_verdict(sources):
    paper, kept = sources
    table = answer_table(paper.verdicts, paper.comparisons, kept, paper.verdicts, paper.comparisons, "paper-again")
    assert list(table["claim"]) == [spec.name for spec in SPECS]
    for row in table.itertuples(index=False):
        assert row[1].startswith(f"**{paper.verdicts[row[0]].verdict}**")
        assert row[1] == row[3]  # the same judgement read twice gives the same cell
    for claim in ORDERING_CLAIMS:
        decision = kept.replication.pooled_verdict(claim)
        cell = replication_cell(kept, claim, 0.9)
        assert cell.startswith(f"**{decision.verdict}**")
        # it rests on the pooled stratum furthest from support, and shows that stratum's every-dataset p
        furthest = max((p for p in kept.replication.pooled if p.claim == claim and p.source == "ours"),
                       key=lambda p: p.p_support)
        assert f"rests on {furthest.stratum}: every dataset p = {furthest.p_support:.2g}" in cell


def test_near_chance_datasets_are_named_where_they_are_left_out(sources):
    _, kept = sources
    near = kept.replication.near_chance
    for claim in ORDERING_CLAIMS:
        assert ("NEAR CHANCE" in replication_cell(kept, claim, 0.9)) == bool(near)
    assert "not measured by the replication" in replication_cell(kept, "separation-order", 0.9)
    assert replication_cell(None, ORDERING_CLAIMS[0], 0.9).startswith("–")


def test_the_protocol_table_is_params_yaml_beside_the_paper():
    assert (REPO / "data").is_dir(), "data/ is missing: run `dvc pull` first (README command 1)"
    table = protocol_table(REPO / "params.yaml", REPO / "data", scored={"mrpc": 408}).set_index("dataset")
    assert {"SST-2", "IMDB", "AG News", "Emotion", "MRPC", "RTE"} <= set(table.index)
    assert table.loc["SST-2", "paper's (× 10 epochs)"] == "560,000"  # Table 1's 56k x 10
    passes = int(table.loc["SST-2", "example-passes"].replace(",", ""))
    assert table.loc["SST-2", "paper / ours"] == f"{560_000 / passes:.0f}×"
    assert table.loc["MRPC", "n_test (paper's)"] == "408 (408)"
    assert float(table.loc["IMDB", "cut by it"].rstrip("%")) > 50  # reviews run long: 128 tokens cut most of them


def test_the_consistency_check_finds_one_section_changed():
    """REPORT.md as committed reads each source's judgement once; changing one section's verdict is caught."""
    report = (REPO / "REPORT.md").read_text(encoding="utf-8")
    assert inconsistencies(report) == []
    line = next(x for x in report.splitlines() if x.startswith("Across datasets (the dataset"))
    claim, verdict = re.search(r"([a-z-]+) \*\*(SUPPORTED|CONTRADICTED|INCONCLUSIVE)\*\*", line).groups()
    other = "SUPPORTED" if verdict != "SUPPORTED" else "INCONCLUSIVE"
    changed = report.replace(line, line.replace(f"{claim} **{verdict}**", f"{claim} **{other}**", 1))
    assert inconsistencies(changed) == [(f"{claim} (replication): the answer says {verdict}, the replication section "
                                        f"{other}")]
    row = next(x for x in report.splitlines() if x.startswith("| no-complete-recovery | **"))
    swapped = row.replace("**INCONCLUSIVE**", "**CONTRADICTED**", 1) if "**INCONCLUSIVE**" in row else \
        row.replace("**SUPPORTED**", "**CONTRADICTED**", 1)
    assert any("(paper)" in p for p in inconsistencies(report.replace(row, swapped)))
    assert inconsistencies("no report") == ["no answer table"]


def test_pytest_claims_on_the_replication_exits_on_the_answer_tables_verdicts(sources, tmp_path):
    """`pytest claims/ --source replication` and REPORT.md's answer read one judgement: the same verdict per claim,
    and every item named by its dataset (no two items share a name)."""
    _, kept = sources
    judged = replication_judgement(RECORDS / "replication")
    for spec in SPECS:
        cell = replication_cell(kept, spec.name, 0.9)
        if cell.startswith("–"):
            continue
        assert cell.startswith(f"**{judged.verdicts[spec.name].verdict}**"), (spec.name, cell)
    ids = [f"{c.claim}/{c.id}" for c in judged.comparisons]
    assert len(ids) == len(set(ids)) and not any("/-/" in i.split("/", 1)[1].split("/", 3)[2] for i in ids)
    out = tmp_path / "verdicts.json"
    run = subprocess.run([sys.executable, "-m", "pytest", "claims/", "--source", "replication", "-q", "-p",
                          "no:cacheprovider", "--verdicts-out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout[-2000:]  # not every finding SUPPORTED: the exit code is the verdict
    ran = {c.claim for c in judged.comparisons} | {spec.name for spec in SPECS if spec.headline}
    for claim, verdict in judged.verdicts.items():
        assert (f"\n{verdict.line()}" in run.stdout) == (claim in ran), (claim, run.stdout[-3000:])
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["source"] == "replication"
    assert {c: d["verdict"] for c, d in document["claims"].items()} == {c: str(v.verdict) for c, v in
                                                                         judged.verdicts.items()}
