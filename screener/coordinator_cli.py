"""Commands for the coordinator's day: `template` and `dictionary` before a batch run,
`report` after it. Argument parsing and writing only; the content comes from
`screener.dictionary` and `screener.report`.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any, Sequence

from screener.i18n import tr
from screener.model import Trial
from screener.outfile import AtomicOutput, check_output
from screener.safe import safe_text
from screener.trials import RULES_DIR_HELP, TrialNotFound, catalog

EXIT_OK, EXIT_USAGE, EXIT_UNWRITTEN = 0, 2, 4


def add_coordinator_parsers(sub: Any) -> None:
    """`screener template`, `screener dictionary` and `screener report`."""
    template = sub.add_parser(
        "template", help="write an empty candidates CSV with a column per input fact of the trials",
        description=(
            "Write the header of a candidates CSV ready to fill: candidate_id, then one column per "
            "fact a candidate record may carry, for each chosen trial (several trials: the union, "
            "each shared fact once). `screener dictionary` describes every column. Exit status: "
            "0 written; 2 unknown trial or unusable path; 4 the file could not be written."))
    _trial_options(template)
    template.add_argument("-o", "--output", metavar="FILE", help="CSV file to write (default: standard output)")
    template.add_argument("--example", action="store_true",
                          help="add one complete example row: a value for every column, as the "
                               "batch reader takes it (lists as JSON text)")
    template.set_defaults(run=run_template)

    dictionary = sub.add_parser(
        "dictionary", help="describe every input column: label, type, units, values, example, criteria",
        description=(
            "Describe, per input column of the chosen trials: its clinical label, what it holds, "
            "its type, unit and the other units accepted, its allowed values, an example value and "
            "the criteria that read it. As text on standard output, or as CSV with -o FILE.csv. "
            "Exit status: 0 written; 2 unknown trial or unusable path; 4 not written."))
    _trial_options(dictionary)
    dictionary.add_argument("-o", "--output", metavar="FILE.csv", help="write the dictionary as CSV")
    dictionary.add_argument("--lang", metavar="LANG", default="en",
                            help="language of the description, e.g. zh: labels, criterion titles and "
                                 "value labels from the trial's dialog file in that language, the "
                                 "rules' own sentence for what a column holds (default: en)")
    dictionary.set_defaults(run=run_dictionary)

    try:
        from screener.report_cli import add_report_parser
    except ImportError:
        return
    add_report_parser(sub)


def _trial_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trial", action="append", metavar="TRIAL_ID",
                        help="a trial; repeat for several (default: every trial found)")
    parser.add_argument("--all-trials", action="store_true", help="every trial found")
    parser.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)


def _trials(args: argparse.Namespace) -> list[Trial]:
    from screener.rules.check import load_trial

    return [load_trial(t.rules) for t in catalog(args.rules_dir).select(args.trial, args.all_trials)]


def dialogs_of(args: argparse.Namespace, trials: Sequence[Trial], language: str = "en") -> dict[str, Any]:
    """Each trial's dialog file (its wording) in `language`, else its English one; a trial
    with neither is left out."""
    from screener.dialog.spec import load_dialog

    found = catalog(args.rules_dir)
    out = {}
    for trial in trials:
        for lang in dict.fromkeys((language, "en")):
            try:
                out[trial.id] = load_dialog(found.dialog_path(trial.id, lang), trial)
            except TrialNotFound:
                continue
            break
    return out


def write_output(path: str | None, text: str, command: str) -> int:
    """`text` to `path` (complete or absent, readable by its owner only) or standard output."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return EXIT_OK
    check_output(path, [])
    try:
        out = AtomicOutput(path)
    except OSError as exc:
        print(safe_text(f"screener {command}: cannot write {path}: {exc.strerror or exc}"), file=sys.stderr)
        return EXIT_UNWRITTEN
    try:
        out.stream.write(text)
        out.commit()
    except OSError as exc:
        out.discard()
        print(safe_text(f"screener {command}: cannot write {path}: {exc.strerror or exc}"), file=sys.stderr)
        return EXIT_UNWRITTEN
    return EXIT_OK


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """CSV text with a spreadsheet-safe cell for anything that would start a formula."""
    from screener.run.batch import spreadsheet_safe

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[spreadsheet_safe(cell) for cell in row] for row in rows])
    return buffer.getvalue()


def run_template(args: argparse.Namespace) -> int:
    from screener.dictionary import columns, example_row

    trials = _trials(args)
    header = columns(trials)
    rows = [list(example_row(trials).values())] if args.example else []
    return write_output(args.output, csv_text(header, rows), "template")


def run_dictionary(args: argparse.Namespace) -> int:
    from screener.dictionary import DICTIONARY_COLUMNS, as_row, describe, entries, record_sources
    from screener.errors import RulesError
    from screener.sources.mapping import load_mappings

    trials = _trials(args)
    try:
        record = record_sources(load_mappings(args.rules_dir or ()))
    except RulesError:  # `screener check` names the problems; the dictionary stands without them
        print("screener dictionary: the record mappings could not be read (screener check says why); "
              "'from the patient record' is left out", file=sys.stderr)
        record = {}
    language = args.lang
    dialogs = dialogs_of(args, trials, language)
    labels = {t: {f: q.label for f, q in d.questions.items() if q.label} for t, d in dialogs.items()}
    described = entries(trials, labels, record, language, titles={t: d.titles for t, d in dialogs.items()},
                        values={t: {f: q.values for f, q in d.questions.items() if q.values}
                                for t, d in dialogs.items() if d.language != "en"})
    if args.output:
        if not args.output.lower().endswith(".csv"):
            print(safe_text(f"screener dictionary: {args.output} must end .csv"), file=sys.stderr)
            return EXIT_USAGE
        rows = [[as_row(e)[c] for c in DICTIONARY_COLUMNS] for e in described]
        return write_output(args.output, csv_text(DICTIONARY_COLUMNS, rows), "dictionary")
    several = len(trials) > 1
    heading = ", ".join(f"{t.id} ({dialogs[t.id].trial_title if t.id in dialogs and dialogs[t.id].trial_title else t.title})"
                        for t in trials)
    lines = [tr("Input columns for {trials}: {count}", trials=heading, count=len(described)).in_language(language), ""]
    for entry in described:
        lines.extend(describe(entry, several, language))
        lines.append("")
    return write_output(None, safe_text("\n".join(lines), keep="\n") + "\n", "dictionary")
