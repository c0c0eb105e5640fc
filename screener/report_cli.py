"""`screener report RESULTS... -o OUT`: attrition, screening log and worklist from results."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from screener.coordinator_cli import EXIT_USAGE, csv_text, dialogs_of, write_output
from screener.i18n import tr
from screener.safe import safe_text
from screener.trials import RULES_DIR_HELP, catalog

WORKLIST_COLUMNS = ("candidate_id", "trial_id", "to_collect")
# The words a screening log files candidates under, and the kinds of criteria, as shown.
CATEGORY_WORDS = {"eligible": tr("eligible"), "screen failure": tr("screen failure"),
                  "declined": tr("declined"), "pending": tr("pending"), "error": tr("error")}
KIND_WORDS = {"inclusion": tr("inclusion"), "exclusion": tr("exclusion")}


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
            "'screener[report]'). No candidate id appears unless --with-ids. Results of a "
            "single-trial batch name no trial: the report finds it as the one trial whose criteria "
            "and facts fit every record of the file (name it with --trial when several could). "
            "A candidate found for the same trial in two files (the batch and the match output "
            "of the same candidates) is counted once when both say the same, and standard error "
            "says how many; when they differ the report is refused, since it cannot tell which "
            "is current. Exit status: 0 written; 2 unreadable results, unknown trial, results "
            "that fit no trial or disagree, or unusable path; 4 not written."))
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results files of batch or match")
    report.add_argument("-o", "--output", required=True, metavar="OUT", help="report file ending .html or .csv")
    report.add_argument("--trial", action="append", metavar="TRIAL_ID",
                        help="report on this trial only (repeat for several; default: every trial "
                             "the results hold); for single-trial results that several trials "
                             "could have given, the trial they come from")
    report.add_argument("--lang", metavar="LANG", default="en",
                        help="language of the report and the worklist, e.g. zh; the trial's "
                             "wording comes from its dialog file in that language (default: en)")
    report.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)
    report.add_argument("--with-ids", action="store_true",
                        help="show candidate ids: the HTML report then lists, per pending candidate, "
                             "what to collect")
    report.add_argument("--worklist", metavar="FILE.csv",
                        help="also write, per pending candidate and trial, what to collect in clinical "
                             "words (candidate_id, trial_id, to_collect): it names candidates")
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from screener.report import (CSV_COLUMNS, attribute, counted_once, flow_csv_rows, read_results,
                                 trial_report)
    from screener.rules.check import load_trial

    out_suffix = Path(args.output).suffix.lower()
    if out_suffix not in (".html", ".csv"):
        _say(f"screener report: OUT must end .html or .csv, not {args.output!r}")
        return EXIT_USAGE
    if args.worklist and not args.worklist.lower().endswith(".csv"):
        _say(f"screener report: --worklist must end .csv, not {args.worklist!r}")
        return EXIT_USAGE
    found = catalog(args.rules_dir)
    chosen = list(dict.fromkeys(args.trial or ()))
    files = [(path, read_results(path)) for path in args.results]
    named = {str(r["trial_id"]) for _, records in files for r in records if r.get("trial_id")}
    untagged = any(not r.get("trial_id") for _, records in files for r in records)
    wanted = chosen or (found.ids if untagged else sorted(named))
    loaded = {trial_id: load_trial(found.get(trial_id).rules) for trial_id in dict.fromkeys(wanted)}
    groups = attribute(files, list(loaded.values()), chosen)
    for trial_id in groups:
        if trial_id not in loaded:
            loaded[trial_id] = load_trial(found.get(trial_id).rules)
    groups, overlaps = counted_once(files, groups)
    for overlap in overlaps:
        _say(f"screener report: {overlap.candidates} candidates of {overlap.trial_id} are in both "
             f"{overlap.first} and {overlap.second} with the same results (the batch and match output "
             "of the same candidates?): each is counted once")
    dialogs = dialogs_of(args, [loaded[t] for t in groups], args.lang)
    reports = []
    for trial_id, records in groups.items():
        trial, dialog = loaded[trial_id], dialogs.get(trial_id)
        labels = {f: q.label for f, q in dialog.questions.items() if q.label} if dialog else {}
        reports.append(trial_report(
            trial, records, labels, with_ids=args.with_ids or bool(args.worklist),
            titles=dialog.titles if dialog else None, trial_title=dialog.trial_title if dialog else ""))
    if out_suffix == ".csv":
        text = csv_text(CSV_COLUMNS, flow_csv_rows(reports))
    else:
        text = _html(reports, args)
    status = write_output(args.output, text, "report")
    if status == 0 and args.worklist:
        rows = [[w.candidate_id, r.trial_id, _joined(args.lang, w.labels)] for r in reports for w in r.worklist]
        status = write_output(args.worklist, csv_text(WORKLIST_COLUMNS, rows), "report")
    if status == 0:
        counted = sum(r.screened for r in reports)
        _say(f"screener report: {counted} records of {len(reports)} trials "
             f"({', '.join(r.trial_id for r in reports)}) -> {args.output}")
    return status


def _joined(language: str, labels: Sequence[str]) -> str:
    return ("；" if language == "zh" else "; ").join(labels)


def _html(reports: list[Any], args: argparse.Namespace) -> str:
    import markupsafe

    from screener.audit.letter import environment
    from screener.i18n import translate
    from screener.report_chart import ChartUnavailable, attrition_svg

    language = args.lang
    charts: dict[str, str] = {}
    try:
        for report in reports:
            charts[report.trial_id] = attrition_svg(report, language) if report.steps else ""
    except ChartUnavailable:
        charts = {r.trial_id: "" for r in reports}
        _say("screener report: no chart: matplotlib is not installed (pip install 'screener[report]')")

    def words(message: str, **params: Any) -> markupsafe.Markup:
        text = markupsafe.escape(translate(language, message))
        return markupsafe.Markup(str(text).format(**{k: markupsafe.escape(v) for k, v in params.items()}))

    names = ", ".join(Path(p).name for p in args.results)
    template = environment().get_template("report.html.j2")
    return template.render(reports=reports, charts=charts, names=names, with_ids=args.with_ids,
                           language=language, tr=words, joined=lambda labels: _joined(language, labels),
                           categories={k: w.in_language(language) for k, w in CATEGORY_WORDS.items()},
                           kinds={k: w.in_language(language) for k, w in KIND_WORDS.items()})


def _say(text: str) -> None:
    print(safe_text(text), file=sys.stderr)
