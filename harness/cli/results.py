"""The verbs that read results: ``plots``, ``analyse``, ``report``, ``claims-tables``, ``calibrate``, ``plan``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from harness.beyond.analysis import analyse
from harness.beyond.plan import DESIGN_COLUMNS, write_plan
from harness.cli.arguments import add_records_verb
from harness.errors import BadInput
from harness.figures import plot_profile
from harness.files import write_text_atomic
from harness.report.document import write_report
from harness.report.markdown import markdown_table
from harness.verdict.calibration import write_calibration
from harness.verdict.declared import CLAIMS_FILE, claims_table, load_claims, with_table
from harness.verdict.pooled_calibration import write_pooled_calibration
from harness.verdict.stress_calibration import write_stress_calibration


def add_plots_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default="results",
                       help="folder holding summary.csv and cells.csv (default: %(default)s)")
        p.add_argument("--cells", default="results/cells", help="folder of the result records and features")
        p.add_argument("--out", default="results/plots", help="folder for the PNG files (default: %(default)s)")
        p.add_argument("--max-points", type=int, default=2000,
                       help="test examples per t-SNE panel (default: %(default)s)")

    add_records_verb(subparsers, "plots", own_arguments, run_plots_cli,
                      help="draw f1_vs_level.png and Figure 1's tsne.png for a profile",
                      description="Draw the figures from results/summary.csv, results/cells.csv and the "
                                  "saved features of the profile's tsne cells.")


def run_plots_cli(args: argparse.Namespace) -> int:
    plot_profile(args.profile, params=args.params, results_dir=args.results, cells_dir=args.cells, out_dir=args.out,
                 max_points=args.max_points, data_dir=args.data_dir)
    return 0


def add_analyse_cli(subparsers) -> None:
    def own_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cells", default="results/cells", help="folder of the result records and vectors")
        p.add_argument("--results", default="results", help="folder for the tables (default: %(default)s)")
        p.add_argument("--plots", default="results/plots", help="folder for the figures (default: %(default)s)")
        p.add_argument("--jobs", type=int, default=2, help="cells measured in parallel (default: %(default)s)")

    add_records_verb(subparsers, "analyse", own_arguments, run_analyse_cli,
                      help="measure how healing changes the representations, layer by layer",
                      description="For the profile's analysis cells (clean, top-k, bottom-k, 100%; per seed), "
                                  "measure every layer before and after fine-tuning (probe accuracy, label "
                                  "separation, spatial similarity, centroid movement, linear CKA); write "
                                  "analysis.csv, analysis_by_layer.csv, analysis.json, cka.png and layers.png.")


def run_analyse_cli(args: argparse.Namespace) -> int:
    written = analyse(args.profile, params=args.params, cells_dir=args.cells, data_dir=args.data_dir,
                      results_dir=args.results, plots_dir=args.plots, jobs=args.jobs)
    print(written or "the profile has no 'analysis:' entry: nothing to analyse", file=sys.stderr)
    return 0


def add_report_cli(subparsers) -> None:
    p = subparsers.add_parser("report", help="write REPORT.md from the results and the paper's tables")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--paper-tables", default="claims/paper_tables.csv")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="REPORT.md")
    p.set_defaults(func=run_report_cli)


def run_report_cli(args: argparse.Namespace) -> int:
    write_report(results_dir=args.results_dir, paper_tables=args.paper_tables, params=args.params, out=args.out)
    return 0


def add_plan_cli(subparsers) -> None:
    p = subparsers.add_parser("plan", help="what would decide each open comparison of the replication: seeds, test "
                                           "size and their cost, projected from the kept records")
    p.add_argument("--records", default="results/records", help="the kept records (<records>/replication)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--bench", default="results/bench.json", help="the cost model's measured rates")
    p.add_argument("--out", default="results/plan.json")
    p.add_argument("--profile-out", default=None, metavar="YAML", help="also write the plan as a profile (the "
                   "replication's blocks at the seeds and test sizes the cheapest options ask for), to paste under "
                   "params.yaml's profiles: and commit before its cells run")
    p.add_argument("--profile-name", default="decide", help="the name of that profile (default: decide)")
    p.add_argument("--hours", type=float, default=24.0, help="with --profile-out: the design's budget in worker-hours "
                   "(measured per-cell hours of the kept records): comparisons are taken cheapest first while the "
                   "whole design fits (default 24)")
    p.set_defaults(func=run_plan_cli)


def run_plan_cli(args: argparse.Namespace) -> int:
    if args.hours <= 0:
        raise BadInput(f"--hours must be positive, got {args.hours}")
    table, profile = write_plan(records_dir=args.records, params=args.params, data_dir=args.data_dir,
                                bench_json=args.bench, out=args.out, profile_name=args.profile_name,
                                hours=args.hours if args.profile_out else None)
    print(markdown_table(table.drop(columns=DESIGN_COLUMNS) if len(table) else table))
    print(f"wrote {args.out}", file=sys.stderr)
    if args.profile_out:
        if profile is None:
            raise BadInput(f"no comparison can be decided within {args.hours:g} worker-hours: no profile to write")
        budget = json.loads(Path(args.out).read_text(encoding="utf-8"))["budget"]
        write_text_atomic(args.profile_out, f"# `python -m harness plan --hours {args.hours:g}` of {args.records}: "
                          f"{len(budget['targets'])} comparisons targeted, {budget['cost_hours']:.1f} worker-hours "
                          "(measured per-cell hours); paste under profiles:\n"
                          + yaml.safe_dump(profile, sort_keys=False, width=120, default_flow_style=None))
        print(f"wrote {args.profile_out}: cost it with `python -m harness estimate --profile {args.profile_name}` "
              "once it is in params.yaml", file=sys.stderr)
    return 0


def add_claims_tables_cli(subparsers) -> None:
    p = subparsers.add_parser("claims-tables", help="write the claim tables of README.md and claims/README.md from "
                                                    "claims/claims.yaml")
    p.add_argument("--claims", default=str(CLAIMS_FILE))
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 where a table differs from the file")
    p.set_defaults(func=run_claims_tables_cli)


def run_claims_tables_cli(args: argparse.Namespace) -> int:
    specs = load_claims(args.claims)
    stale = []
    for path, detail in (("README.md", False), ("claims/README.md", True)):
        text = Path(path).read_text(encoding="utf-8")
        updated = with_table(text, claims_table(specs, detail=detail), path)
        if updated != text:
            stale.append(path)
            if not args.check:
                write_text_atomic(path, updated)
    verb = "differ from" if args.check else "rewritten from"
    print(f"{', '.join(stale) or 'no table'} {verb} {args.claims}", file=sys.stderr)
    return 1 if args.check and stale else 0


def add_calibrate_cli(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="measure the verdicts' error rates on simulated grids of known truth",
                              description="Simulate grids with the real noise structure (one shared test set per "
                              "dataset, paired settings, seeds) under nulls and alternatives for every claim, judge "
                              "them with the decision rule, and print each claim's false-SUPPORTED and "
                              "false-CONTRADICTED rates and its power (harness/verdict/calibration.py).")
    p.add_argument("--pooled", action="store_true", help="the replication's pooled rule instead: simulated "
                   "replications of several datasets with differing true gaps, pooled by random effects "
                   "(harness/verdict/pooled_calibration.py)")
    p.add_argument("--stress", action="store_true", help="a harsher simulation instead: imbalanced and 6-class "
                   "labels, 277-1,000 test examples, heteroscedastic seeds, collapsed runs, datasets with different "
                   "truths, one-run grids; one grid and pooled (harness/verdict/stress_calibration.py)")
    p.add_argument("--grids", type=int, default=200, help="simulated grids (replications with --pooled) per "
                   "scenario, noise regime and size")
    p.add_argument("--datasets", type=int, nargs="+", default=None,
                   help="datasets per simulated grid (default: 1 8; with --pooled 3 8)")
    p.add_argument("--recheck", type=int, default=None, metavar="GRIDS",
                   help="with --pooled or --stress: simulate every case above the bound again on GRIDS fresh "
                        "replications (default 400; 0: none)")
    p.add_argument("--reuse-cases", action="store_true", help="with --pooled: take the simulated cases from --out "
                   "(run with the same size, rule and pooling: the run is seeded, so it would only repeat them) and "
                   "simulate only the rechecks")
    p.add_argument("--cases-dir", default=None, help="with --stress: keep each finished case in this folder and "
                   "take those already there, so a stopped run resumes (default: results/calibration_stress_cases)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="the table and every case, as JSON (default: "
                   "results/calibration.json; with --pooled results/calibration_pooled.json; with --stress "
                   "results/calibration_stress.json)")
    p.add_argument("--readme", default=None, help="also write the table into this file's calibration block "
                   "(claims/README.md)")
    p.set_defaults(func=run_calibrate_cli)


def run_calibrate_cli(args: argparse.Namespace) -> int:
    if args.stress:
        if args.pooled or args.datasets is not None or args.readme is not None or args.reuse_cases:
            raise BadInput("--stress has its own layouts (one grid and pooled, 1 to 8 datasets): it takes --grids, "
                           "--seed, --recheck, --cases-dir and --out only")
        print(write_stress_calibration(grids=args.grids, seed=args.seed,
                                       out=args.out or "results/calibration_stress.json",
                                       rechecks=400 if args.recheck is None else args.recheck,
                                       cases_dir=args.cases_dir or "results/calibration_stress_cases"))
        return 0
    if args.pooled:
        if args.readme is not None:
            raise BadInput("--readme takes the one-grid table; the pooled one is shown in REPORT.md's replication "
                           "section")
        print(write_pooled_calibration(grids=args.grids, datasets=tuple(args.datasets or (3, 8)), seed=args.seed,
                                       out=args.out or "results/calibration_pooled.json",
                                       rechecks=400 if args.recheck is None else args.recheck,
                                       reuse_cases=args.reuse_cases))
        return 0
    if args.cases_dir is not None:
        raise BadInput("--cases-dir applies to --stress")
    if args.recheck is not None or args.reuse_cases:
        raise BadInput("--recheck and --reuse-cases apply to --pooled (the one-grid table's cases are not simulated "
                       "again)")
    print(write_calibration(grids=args.grids, datasets=tuple(args.datasets or (1, 8)), seed=args.seed,
                            out=args.out or "results/calibration.json", readme=args.readme))
    return 0
