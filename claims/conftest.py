"""``pytest claims/``: the paper's findings as verdicts, on our results or on the paper's own tables.

    pytest claims/                                 # results/cells.csv (after `dvc repro`)
    pytest claims/ --results PATH --metric best     # the paper's protocol (best epoch on test), a second reading
    pytest claims/ --source paper                  # claims/paper_tables.csv, the transcribed Tables 2-5
    pytest claims/ --source replication            # the kept replication records: per dataset, claims 1-3 pooled
    pytest claims/ --verdicts-out verdicts.json    # the verdicts for the report
    pytest claims/ -k no_complete_recovery         # one claim's verdict

The items are generated from the declarations (claims/claims.yaml). The exit code is the verdict: each of the
paper's findings has one headline item (``test_<module>_verdict``) that passes only when it is SUPPORTED (its
weakest stratum, ``harness.verdict.decision``), so the run exits 0 only when every one is SUPPORTED; findings
declared ``headline: false`` (ours, another paper's) have their comparison items only. Every comparison is an
item ``test_<module>[<id>]``: CONTRADICTED ones fail, INCONCLUSIVE ones are skipped with their reason and minimum detectable difference (never a
silent pass), SUPPORTED ones pass. The run ends with the claim x stratum table and one line per claim:
``claim-name: VERDICT (supported S / contradicted C / inconclusive I)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.errors import BadInput
from harness.files import check_writable, write_text_atomic
from harness.verdict.claims import Comparison
from harness.verdict.decision import Verdict
from harness.verdict.declared import CLAIMS_FILE, load_claims
from harness.verdict.integrity import Finding
from harness.verdict.replication import replication_judgement
from harness.verdict.sources import REPLICATION_RECORDS
from harness.verdict.verdicts import ClaimVerdict, judge, verdicts_document


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("claims", "claim verdicts (claims/)")
    group.addoption("--source", choices=["results", "paper", "replication"], default="results",
                    help="results: our grid (default); paper: the paper's transcribed tables; replication: the kept "
                         "replication records (eight datasets; claims 1-3 pooled over them, as REPORT.md's answer)")
    group.addoption("--results", metavar="PATH", default=None,
                    help="results CSV for --source results (default: results/cells.csv); the records folder for "
                         "--source replication (default: results/records/replication)")
    group.addoption("--metric", choices=["selected", "best"], default="selected",
                    help="selected: epoch and lr chosen on validation, scored on test (default); best: the best "
                         "epoch on test, the paper's protocol, a labelled second reading")
    group.addoption("--verdicts-out", metavar="PATH", default=None, help="also write the verdicts as JSON")


@dataclass
class ClaimSession:
    """What one run knows: the source, every comparison, the verdicts, and what ran."""

    source: str
    path: str
    metric: str
    comparisons: list[Comparison]
    verdicts: dict[str, ClaimVerdict]
    findings: list[Finding]
    notes: list[str]
    convergence: list[dict]
    ran: set[str] = field(default_factory=set)  # claims whose tests ran

    def cases(self, claim: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.claim == claim]


STATE = pytest.StashKey[ClaimSession]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Load and judge the source once; a missing or malformed file is one clear usage error."""
    config = session.config
    source, metric = config.getoption("source"), config.getoption("metric")
    path = config.getoption("results") if source in ("results", "replication") else None
    try:
        if config.getoption("verdicts_out"):  # fail now, not after every test has run
            check_writable(Path(config.getoption("verdicts_out")).parent)
        found = (replication_judgement(path or REPLICATION_RECORDS) if source == "replication"
                 else judge(source, path, metric))
    except BadInput as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[STATE] = ClaimSession(found.source, found.path, metric, found.comparisons, found.verdicts,
                                       found.findings, found.notes, found.diagnosis.to_dict("records"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The findings' pytest items come from their declarations (claims/claims.yaml)."""
    if file_path.name == CLAIMS_FILE.name:
        return DeclaredClaims.from_parent(parent, path=file_path)
    return None


class DeclaredClaims(pytest.File):
    """Per declared finding: its headline item ``test_<module>_verdict`` (the paper's findings: ``headline``) and
    one item ``test_<module>[<comparison id>]`` per comparison, so ``-k <module>`` selects a finding."""

    def collect(self):
        state = self.config.stash[STATE]
        for spec in load_claims(self.path):
            if spec.headline:
                yield FindingItem.from_parent(self, name=f"test_{spec.module}_verdict", claim=spec.name, comparison=None)
            for case in state.cases(spec.name):
                yield FindingItem.from_parent(self, name=f"test_{spec.module}[{case.id}]", claim=spec.name,
                                              comparison=case)


class FindingItem(pytest.Item):
    """A headline (passes only when the finding is SUPPORTED) or one comparison (SUPPORTED passes, CONTRADICTED
    fails, INCONCLUSIVE is skipped with its reason and minimum detectable difference: never a silent pass)."""

    def __init__(self, *, claim: str, comparison: Comparison | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.claim, self.comparison = claim, comparison

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        state.ran.add(self.claim)
        if self.comparison is None:
            verdict = state.verdicts[self.claim]
            self.user_properties += [("verdict", str(verdict.verdict)), ("provisional", verdict.provisional)]
            if verdict.verdict is not Verdict.SUPPORTED:
                pytest.fail(f"{verdict.line()}: {verdict.detail}"
                            + (f"; {verdict.provisional_detail}" if verdict.provisional else ""), pytrace=False)
            return
        case = self.comparison
        self.user_properties += [("claim", case.claim), ("stratum", case.stratum), ("verdict", str(case.verdict)),
                                 ("detail", case.detail)]
        provisional = " [PROVISIONAL: under-trained slice]" if case.provisional else ""
        if case.verdict is Verdict.CONTRADICTED:
            pytest.fail(f"CONTRADICTED{provisional}: {case.detail}", pytrace=False)
        if case.verdict is Verdict.INCONCLUSIVE:
            pytest.skip(f"INCONCLUSIVE{provisional} [{case.stratum}] {case.id}: {case.detail}")

    def reportinfo(self):
        return self.path, None, self.name


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    out = session.config.getoption("verdicts_out")
    if state is None or not out:
        return
    document = verdicts_document(state.comparisons, source=state.source, path=state.path, metric=state.metric,
                                 findings=state.findings, notes=state.notes, convergence=state.convergence,
                                 verdicts=state.verdicts)
    write_text_atomic(out, json.dumps(document, indent=1, default=str) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"claim verdicts ({state.source}: {state.path}"
                             + (f", metric {state.metric}" if state.source == "results" else "") + ")")
    shown = [v for claim, v in state.verdicts.items() if claim in state.ran]
    for verdict in shown:
        write(f"{verdict.claim} — {verdict.detail}")
        for stratum in verdict.strata:
            write(f"    {stratum.name:<28} {stratum.verdict:<13} supported {stratum.supported} / contradicted "
                  f"{stratum.contradicted} / inconclusive {stratum.inconclusive}")
        if verdict.provisional:
            write(f"    {verdict.provisional_detail}")
    under = [row for row in state.convergence if row.get("under_trained")]
    for row in under:
        write(f"under-trained slice {row['model']}/{row['dataset']} {row['pooling']}-{row['mode']}: {row['reason']}")
    if state.findings:
        write("data integrity (suspected transcription or copy errors, or degenerate runs):")
        for finding in state.findings:
            write(f"  {finding.kind} {finding.where}: {finding.message}")
    for note in state.notes:
        write(f"note: {note}")
    if config.getoption("verdicts_out"):
        write(f"verdicts written to {config.getoption('verdicts_out')}")
    for verdict in shown:
        write(verdict.line(), bold=True)
