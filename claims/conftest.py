"""``pytest claims/``: the paper's findings as verdicts, on our results or on the paper's own tables.

    pytest claims/                                 # results/cells.csv (after `dvc repro`)
    pytest claims/ --results PATH --metric best     # the paper's protocol (best epoch on test), a second reading
    pytest claims/ --source paper                  # claims/paper_tables.csv, the transcribed Tables 2-5
    pytest claims/ --verdicts-out verdicts.json    # the verdicts for the report
    pytest claims/ -k no_complete_recovery         # one claim's verdict

The exit code is the verdict: each claim module has one headline test (``test_<claim>_verdict``) that
passes only when the claim is SUPPORTED (its weakest stratum, ``harness.verdict.decision``), so the run exits 0
only when every claim is SUPPORTED. Every comparison is a case of ``test_<claim>``: CONTRADICTED ones
fail, INCONCLUSIVE ones are skipped with their reason and minimum detectable difference (never a
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
from harness.verdict.integrity import Finding
from harness.verdict.verdicts import ClaimVerdict, judge, verdicts_document


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("claims", "claim verdicts (claims/)")
    group.addoption("--source", choices=["results", "paper"], default="results",
                    help="results: our grid (default); paper: the paper's transcribed tables")
    group.addoption("--results", metavar="PATH", default=None,
                    help="results CSV for --source results (default: results/cells.csv)")
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
    path = config.getoption("results") if source == "results" else None
    try:
        if config.getoption("verdicts_out"):  # fail now, not after every test has run
            check_writable(Path(config.getoption("verdicts_out")).parent)
        found = judge(source, path, metric)
    except BadInput as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[STATE] = ClaimSession(found.source, found.path, metric, found.comparisons, found.verdicts,
                                       found.findings, found.notes, found.diagnosis.to_dict("records"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test module names its claim (``CLAIM``); its comparison test runs once per comparison."""
    if "comparison" in metafunc.fixturenames:
        cases = metafunc.config.stash[STATE].cases(metafunc.module.CLAIM)
        metafunc.parametrize("comparison", cases, ids=[c.id for c in cases])


@pytest.fixture
def judge_comparison(request: pytest.FixtureRequest, record_property):
    """Pass SUPPORTED, fail CONTRADICTED, skip INCONCLUSIVE with its reason (never a silent pass)."""

    def judge(comparison: Comparison) -> None:
        record_property("claim", comparison.claim)
        record_property("stratum", comparison.stratum)
        record_property("verdict", str(comparison.verdict))
        record_property("detail", comparison.detail)
        request.config.stash[STATE].ran.add(comparison.claim)
        provisional = " [PROVISIONAL: under-trained slice]" if comparison.provisional else ""
        if comparison.verdict is Verdict.CONTRADICTED:
            pytest.fail(f"CONTRADICTED{provisional}: {comparison.detail}", pytrace=False)
        if comparison.verdict is Verdict.INCONCLUSIVE:
            pytest.skip(f"INCONCLUSIVE{provisional} [{comparison.stratum}] {comparison.id}: {comparison.detail}")

    return judge


@pytest.fixture
def judge_claim(request: pytest.FixtureRequest, record_property):
    """The headline test: passes only when the claim (its weakest stratum) is SUPPORTED."""

    def judge(claim: str) -> None:
        state = request.config.stash[STATE]
        state.ran.add(claim)
        verdict = state.verdicts[claim]
        record_property("verdict", str(verdict.verdict))
        record_property("provisional", verdict.provisional)
        if verdict.verdict is not Verdict.SUPPORTED:
            pytest.fail(f"{verdict.line()}: {verdict.detail}"
                        + (f"; {verdict.provisional_detail}" if verdict.provisional else ""), pytrace=False)

    return judge


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    out = session.config.getoption("verdicts_out")
    if state is None or not out:
        return
    document = verdicts_document(state.comparisons, source=state.source, path=state.path, metric=state.metric,
                                 findings=state.findings, notes=state.notes, convergence=state.convergence)
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
