"""`screener report RESULTS... -o OUT`: attrition, screening log and worklist from results."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from screener.coordinator_cli import EXIT_USAGE, csv_text, labels_of, write_output
from screener.safe import safe_text
from screener.trials import RULES_DIR_HELP, catalog

WORKLIST_COLUMNS = ("candidate_id", "trial_id", "to_collect")


def add_report_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report", help="attrition per criterion, screening log and missing facts, from batch or match results",
        description=(
            "Read the results of screener batch or screener match (.jsonl or .csv, several files "
            "allowed) and write, per trial: a CONSORT-style flow (screened, then each criterion "
            "in protocol order with the candidates failing it, failing it alone, and still not "
            "excluded after it), the screening-log categories, and the facts the pending "
            "candidates lack. OUT ending .csv holds exactly the columns trial_id, criterion, "
            "title, failed, failed_alone, remaining; OUT ending .html is a self-contained, "
            "printable page with an attrition chart (needs the report extra: pip install "
            "'screener[report]'). No candidate id appears unless --with-ids. Exit status: 0 "
            "written; 2 unreadable results, unknown trial or unusable path; 4 not written."))
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results files of batch or match")
    report.add_argument("-o", "--output", required=True, metavar="OUT", help="report file ending .html or .csv")
    report.add_argument("--trial", metavar="TRIAL_ID",
                        help="the trial of results that carry no trial_id (single-trial batch output); "
                             "needed only when several trials are found")
    report.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)
    report.add_argument("--with-ids", action="store_true",
                        help="show candidate ids: the HTML report then lists, per pending candidate, "
                             "what to collect")
    report.add_argument("--worklist", metavar="FILE.csv",
                        help="also write, per pending candidate and trial, what to collect in clinical "
                             "words (candidate_id, trial_id, to_collect): it names candidates")
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from screener.report import CSV_COLUMNS, by_trial, flow_csv_rows, read_results, trial_report
    from screener.rules.check import load_trial

    out_suffix = Path(args.output).suffix.lower()
    if out_suffix not in (".html", ".csv"):
        _say(f"screener report: OUT must end .html or .csv, not {args.output!r}")
        return EXIT_USAGE
    if args.worklist and not args.worklist.lower().endswith(".csv"):
        _say(f"screener report: --worklist must end .csv, not {args.worklist!r}")
        return EXIT_USAGE
    found = catalog(args.rules_dir)
    default = args.trial or (found.trials[0].id if len(found.trials) == 1 else None)
    records = [r for path in args.results for r in read_results(path)]
    groups = by_trial(records, default)
    trials = {trial_id: load_trial(found.get(trial_id).rules) for trial_id in groups}
    labels = labels_of(args, list(trials.values()))
    reports = [trial_report(trials[t], rs, labels.get(t), with_ids=args.with_ids or bool(args.worklist))
               for t, rs in groups.items()]
    if out_suffix == ".csv":
        text = csv_text(CSV_COLUMNS, flow_csv_rows(reports))
    else:
        text = _html(reports, args)
    status = write_output(args.output, text, "report")
    if status == 0 and args.worklist:
        rows = [[w.candidate_id, r.trial_id, "; ".join(w.labels)] for r in reports for w in r.worklist]
        status = write_output(args.worklist, csv_text(WORKLIST_COLUMNS, rows), "report")
    if status == 0:
        _say(f"screener report: {len(records)} records of {len(reports)} trials "
             f"({', '.join(r.trial_id for r in reports)}) -> {args.output}")
    return status


def _html(reports: list[Any], args: argparse.Namespace) -> str:
    from screener.audit.letter import environment

    charts: dict[str, str] = {}
    from screener.report_chart import ChartUnavailable, attrition_svg

    try:
        for report in reports:
            charts[report.trial_id] = attrition_svg(report) if report.steps else ""
    except ChartUnavailable:
        charts = {r.trial_id: "" for r in reports}
        _say("screener report: no chart: matplotlib is not installed (pip install 'screener[report]')")
    names = ", ".join(Path(p).name for p in args.results)
    sources = f"From {names}"
    template = environment().get_template("report.html.j2")
    return template.render(reports=reports, charts=charts, sources=sources, with_ids=args.with_ids)


def _say(text: str) -> None:
    print(safe_text(text), file=sys.stderr)
