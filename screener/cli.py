"""Command line: `screener batch|check|...`. The only module that knows argv and exit codes."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from screener import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from screener.model import Trial
    from screener.outfile import AtomicOutput
    from screener.run.batch import AuditOptions, Summary


def _runtime() -> None:
    """Import what defining and running the commands needs (rich, the engine, the readers,
    the other commands' modules) into this module. `screener --help`, `--version` and a
    mistyped command are answered without it (`main`), so they start as fast as Python."""
    global Console, Progress, BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn, Table, Text
    global add_sign_options, add_signing_parsers, signer_from_args, AuditOptions, Summary, Writer
    global screen_rows, screen_rows_parallel, log_failure, load_dialog, Screener, RulesError, ScreenerError
    global TZ_HELP, site_zone, AtomicOutput, check_output, inside, FORMATS, UnreadableInput, open_text
    global read_rows, ErrorDigest, unknown_fields_text, written_text, load_trial, Trial, json_text
    global safe_console, safe_text, RULES_DIR_HELP, TrialNotFound, catalog, dialogs_for, context_facts
    global ClusterLost
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from screener.audit.signing_cli import add_sign_options, add_signing_parsers, signer_from_args
    from screener.run.batch import AuditOptions, Summary, Writer, screen_rows, screen_rows_parallel
    from screener.run.cluster import ClusterLost
    from screener.crashlog import log_failure
    from screener.dialog.spec import load_dialog
    from screener.engine import Screener
    from screener.errors import RulesError, ScreenerError
    from screener.i18n import TZ_HELP, site_zone
    from screener.outfile import AtomicOutput, check_output
    from screener.paths import inside
    from screener.sources.readers import FORMATS, UnreadableInput, open_text, read_rows
    from screener.run.run_summary import ErrorDigest, unknown_fields_text, written_text
    from screener.rules.check import load_trial
    from screener.model import Trial
    from screener.safe import json_text, safe_console, safe_text
    from screener.trials import RULES_DIR_HELP, TrialNotFound, catalog, dialogs_for
    from screener.values import context_facts


EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL, EXIT_UNWRITTEN = 0, 1, 2, 3, 4
_UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})

EXIT_STATUS_HELP = (
    "Exit status: 0 every candidate screened; 1 some candidates are errors (their rows name "
    "what is wrong); 2 usage error, unreadable input, refused rules or a signing key that "
    "cannot be unlocked; 3 internal failure of "
    "the screener (one line says where details were logged); 4 results, traces or letters "
    "could not be written (disk full, no permission); 130/143 interrupted by Ctrl-C/SIGTERM "
    "(results not kept)."
)


def _err_console() -> Console:
    """Standard error for people: no markup read, control characters from input escaped."""
    return safe_console(stderr=True)


def _top_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="screener",
        description="Rule-based clinical-trial eligibility screening.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"screener {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser, sub


# Every command and its one-line help, in the order `build_parser` adds them: what
# `screener --help` lists before anything else is imported (test_cli_start checks that both
# parsers print the same help).
COMMANDS = (
    ("batch", "screen a list of candidates (CSV, JSONL, JSON, YAML)"),
    ("check", "check rules and dialog files; report every problem as file:line:col"),
    ("trials", "list every trial found: id, title, version, content hash, origin, languages"),
    ("match", "for each candidate, the trials ranked: which could this patient enter?"),
    ("screen", "screen one patient in a guided dialog"),
    ("resume", "continue a saved screening dialog"),
    ("sessions", "list the saved screenings"),
    ("verify", "check a trace's hash chain and replay its decision"),
    ("explain", "show how a trace's decision was reached"),
    ("keygen", "make an Ed25519 key pair for signing traces"),
    ("sign", "counter-sign a trace (e.g. an investigator's approval)"),
    ("changes", "list the candidates whose decision changed in the latest run with a store"),
    ("template", "write an empty candidates CSV with a column per input fact of the trials"),
    ("dictionary", "describe every input column: label, type, units, values, example, criteria"),
    ("report", "attrition per criterion, screening log and missing facts, from batch or match results"),
)


def commands_parser() -> argparse.ArgumentParser:
    """The top level of the command line alone: `--help`, `--version` and the command names,
    each command's own arguments left unread (parsed by `build_parser` once a command is
    named)."""
    parser, sub = _top_parser()
    for name, text in COMMANDS:
        sub.add_parser(name, help=text, add_help=False)
    return parser


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser. With `command`, the commands defined in other modules
    (dialog, audit, coordinator) are listed by name only unless `command` is one of them,
    so running one command does not import the others' modules."""
    _runtime()
    parser, sub = _top_parser()

    batch = sub.add_parser(
        "batch", help="screen a list of candidates (CSV, JSONL, JSON, YAML)",
        description=(
            "Screen every candidate of INPUT and write one result per candidate, in input "
            "order, as JSON Lines (default, to standard output) or CSV. Progress and the "
            "summary go to standard error. The results file appears only when the run "
            "finished; until then the previous one is kept. " + EXIT_STATUS_HELP
        ),
    )
    batch.add_argument("input", metavar="INPUT", nargs="+",
                       help="candidates file (.csv, .jsonl, .json, .yaml/.yml), or - for standard input; "
                            "or a FHIR R4 patient record: a Bundle .json, a folder of Bundles, a Bulk "
                            "Data export folder (<Type>.ndjson). Several inputs are joined by candidate id")
    batch.add_argument("-o", "--output", metavar="OUTPUT", help="results file ending .jsonl or .csv")
    _add_trial_options(batch, "screen for")
    batch.add_argument("--format", choices=sorted(set(FORMATS.values())),
                       help="input format; by default the suffix tells, and standard input is "
                            "recognised from its first characters")
    batch.add_argument("--rules", metavar="FILE", help="rules file of the one trial to screen for, instead of "
                                                        "looking the trial up")
    batch.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                       help="screen in N processes (default 1)")
    _add_cluster_option(batch)
    batch.add_argument("--traces", metavar="DIR",
                       help="write one tamper-evident trace per candidate into DIR (error records get none)")
    batch.add_argument("--letters", metavar="DIR",
                       help="write each candidate's eligibility letter (Markdown and HTML) into DIR; needs --traces")
    batch.add_argument("--operator", metavar="NAME", help="who runs the screening, recorded in traces and letters")
    batch.add_argument("--lang", metavar="LANG", default="en",
                       help="language of the letters, recorded in every trace, e.g. zh; the trial's "
                            "wording comes from its dialog file in that language (default: en)")
    batch.add_argument("--tz", metavar="ZONE", help=TZ_HELP)
    _add_store_option(batch)
    add_sign_options(batch)
    _add_record_options(batch)
    batch.add_argument("--context", action="append", metavar="NAME=VALUE",
                       help="a context fact of the trial (site, cohort), the same for every candidate "
                            "of this run; repeat for several. A candidate record may not carry one.")
    batch.set_defaults(run=run_batch)

    check = sub.add_parser("check", help="check rules and dialog files; report every problem as file:line:col",
                           description="Load and check rules files, and the dialog files of each trial "
                                       "(dialogs/<TRIAL>.<lang>.yaml); exit 0 when all are valid, 2 otherwise.")
    check.add_argument("files", nargs="*", metavar="FILE", help="rules files (default: every trial found)")
    check.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)
    check.set_defaults(run=run_check)

    trials = sub.add_parser(
        "trials", help="list every trial found: id, title, version, content hash, origin, languages",
        description="List the trials found in --rules-dir directories, $SCREENER_TRIALS_PATH and the "
                    "shipped ones, in that order of precedence; exit 2 if a rules file cannot be loaded.")
    trials.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)
    trials.add_argument("--json", action="store_true", help="one JSON object per trial instead of a table")
    trials.set_defaults(run=run_trials)

    match = sub.add_parser(
        "match", help="for each candidate, the trials ranked: which could this patient enter?",
        description=(
            "Screen every candidate of CANDIDATES for every chosen trial (default: every trial found) "
            "and write, per candidate, one record per trial ranked best prospect first by what is "
            "known: eligible; pending (undetermined, an inclusion criterion known to be met), the "
            "largest share of criteria settled first, then fewest missing answers; ineligible, "
            "fewest failed criteria first; not assessed (undetermined, no inclusion criterion "
            "known to be met); errors. Records carry candidate_id, rank, trial_id, decision, "
            "failed_criteria, missing, errors, warnings, screening_log, prospect, criteria_settled and "
            "criteria_total; standard error ends with how many candidates have an eligible or a "
            "pending trial. Exit status as for batch."
        ),
    )
    match.add_argument("input", metavar="CANDIDATES", nargs="+",
                       help="candidates file (.csv, .jsonl, .json, .yaml/.yml), or - for standard input; "
                            "or FHIR R4 records (as for batch); several are joined by candidate id")
    match.add_argument("-o", "--output", metavar="OUTPUT", help="results file ending .jsonl or .csv")
    _add_trial_options(match, "match against")
    match.add_argument("--format", choices=sorted(set(FORMATS.values())), help="input format (default: by suffix)")
    match.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="screen in N processes (default 1)")
    _add_cluster_option(match)
    _add_record_options(match)
    match.set_defaults(run=run_batch, rules=None, traces=None, letters=None, operator=None, sign_key=None,
                       match=True)
    _add_optional_commands(sub, command)
    return parser


def _add_cluster_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="screen on a Dask cluster: tcp://HOST:PORT of its scheduler, or local:N for N "
                             "worker processes on this machine; needs screener[dask] (docs/cluster.md). "
                             "Not with --jobs or --traces. Exit 3 if the scheduler goes away")


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="FILE",
                        help="screening store (created if absent, readable by its owner only): screen "
                             "again only candidates whose facts changed and trials whose rules changed, "
                             "reuse the other results from FILE; the output is the same as a full run's. "
                             "Not with --jobs or --traces")


def _add_changes_parser(sub: Any) -> None:
    changes = sub.add_parser(
        "changes", help="list the candidates whose decision changed in the latest run with a store",
        description="List, from a screening store (--store of batch or match), each candidate and "
                    "trial whose decision changed in the latest run: candidate_id, trial_id, before, "
                    "now. Exit 0; 2 when FILE is no screening store.")
    changes.add_argument("--store", metavar="FILE", required=True, help="the screening store")
    changes.add_argument("-o", "--output", metavar="OUTPUT", help="write the list to OUTPUT (.jsonl or .csv) "
                         "instead of standard output (JSON lines)")
    changes.set_defaults(run=run_changes)


def run_changes(args: argparse.Namespace) -> int:
    """The coordinator's morning list: who changed decision in the latest run."""
    from screener.run.store import StoreError, open_store

    err = _err_console()
    if not os.path.isfile(args.store):
        _say(err, f"screener changes: no screening store at {args.store}")
        return EXIT_USAGE
    if args.output and Path(args.output).suffix.lower() not in (".jsonl", ".csv"):
        _say(err, f"screener changes: OUTPUT must end .jsonl or .csv, not {args.output!r}")
        return EXIT_USAGE
    try:
        store = open_store(args.store)
    except StoreError as exc:
        _say(err, f"screener changes: {exc}")
        return EXIT_USAGE
    columns = ("candidate_id", "trial_id", "before", "now")
    try:
        result_file = AtomicOutput(args.output) if args.output else None
        out = result_file.stream if result_file else sys.stdout
        writer = Writer(out, "csv" if args.output and args.output.lower().endswith(".csv") else "jsonl", columns)
        count = 0
        for change in store.changes():
            writer.write(dict(zip(columns, change)))
            count += 1
        if result_file:
            result_file.commit()
        else:
            out.flush()
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        _say(err, f"screener changes: cannot write the list: {exc.strerror or exc}")
        return EXIT_UNWRITTEN
    finally:
        store.close()
    _say(err, f"decisions changed in the latest run: {count}")
    return EXIT_OK


def _add_optional_commands(sub: Any, command: str | None = None) -> None:
    """Commands that live in their own modules (dialog, audit, coordinator); with `command`,
    those of the modules it is not in by name only (`build_parser`)."""
    def dialog(sub: Any) -> None:
        try:
            from screener.dialog.cli import add_screen_parsers
        except ImportError:
            return
        add_screen_parsers(sub)

    def audit(sub: Any) -> None:
        try:
            from screener.audit.cli import add_audit_parsers
        except ImportError:
            return
        add_audit_parsers(sub)

    def coordinator(sub: Any) -> None:
        from screener.coordinator_cli import add_coordinator_parsers

        add_coordinator_parsers(sub)

    helps = dict(COMMANDS)
    for names, add in ((("screen", "resume", "sessions"), dialog), (("verify", "explain"), audit),
                       (("keygen", "sign"), add_signing_parsers), (("changes",), _add_changes_parser),
                       (("template", "dictionary", "report"), coordinator)):
        if command is None or command in names:
            add(sub)
        else:
            for name in names:
                sub.add_parser(name, help=helps[name], add_help=False)


def _add_trial_options(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--trial", action="append", metavar="TRIAL_ID",
                        help=f"a trial to {verb}; repeat for several (default: every trial found)")
    parser.add_argument("--all-trials", action="store_true", help=f"{verb} every trial found")
    parser.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)


def _add_record_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-system", metavar="URI",
                        help="FHIR input: the candidate id is the value of the Patient identifier with "
                             "this system (e.g. the site's MRN system), not the Patient id")
    parser.add_argument("--as-of", metavar="DATE", type=_iso_date,
                        help="FHIR input: anchor lookback windows on DATE (YYYY-MM-DD) when the "
                             "candidate has no value for the mapping's anchor fact; without it such "
                             "facts stay unknown (the clock is never used)")


def _iso_date(text: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _joined_rows(args: argparse.Namespace, inputs: list[str], chosen: list[tuple[Trial, Path]],
                 stack: contextlib.ExitStack) -> Any:
    """The candidates of several inputs (tables and FHIR records) joined by candidate id.
    Raises UnreadableInput, FhirUnreadable or RulesError (a mapping file)."""
    from screener.sources.fhir import FhirSource, is_fhir
    from screener.sources.mapping import check_against, load_mappings
    from screener.sources.merge import Sources

    specs: dict[str, Any] = {}
    for trial, _ in chosen:
        for name, spec in trial.facts.items():
            specs.setdefault(name, spec)
    mappings = None
    parts: list[tuple[str, Any]] = []
    for name in inputs:
        if name != "-" and is_fhir(name):
            if mappings is None:
                mappings = load_mappings(args.rules_dir)
                problems = [p for trial, _ in chosen for p in check_against(mappings, dict(trial.facts))]
                if problems:
                    raise RulesError(problems)
            # an export's temporary patient index goes beside the results the user named
            temp_dir = os.path.dirname(os.path.abspath(args.output)) if getattr(args, "output", None) else None
            parts.append((name, FhirSource(name, args.id_system, temp_dir)))
            continue
        fmt = args.format or ("sniff" if name == "-" else FORMATS.get(Path(name).suffix.lower()))
        if fmt is None:
            raise ScreenerError(f"cannot tell the format of {name!r}: use .csv, .jsonl, .json, .yaml or .yml, "
                                "or a FHIR Bundle or export folder")
        try:
            binary = sys.stdin.buffer if name == "-" else stack.enter_context(open(name, "rb"))
        except OSError as exc:
            raise UnreadableInput(f"{name}: {exc.strerror}") from None
        if fmt == "sniff":
            fmt = sniff_format(binary)

        def table(binary: Any = binary, fmt: str = fmt) -> Iterator[Any]:
            return read_rows(stack.enter_context(open_text(binary)), fmt)
        parts.append((name, table))
    joined = Sources(parts, specs, [trial.id_fact for trial, _ in chosen], mappings, args.as_of)
    return joined.rows(), joined.report


def chosen_trials(args: argparse.Namespace) -> list[tuple[Trial, Path]]:
    """The trials named by --rules, --trial or --all-trials (default: every trial found),
    loaded and checked; raises TrialNotFound or RulesError."""
    if getattr(args, "rules", None):
        return [(load_trial(args.rules), Path(args.rules))]
    found = catalog(args.rules_dir).select(args.trial, args.all_trials)
    return [(load_trial(t.rules), t.rules) for t in found]


def _wordings(args: argparse.Namespace, trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Each trial's wording in `args.lang` from its dialog file, for traces and letters (so
    that a letter names facts by their clinical labels in English too); a trial without a
    dialog file in that language keeps its rules file's wording. Raises RulesError when such
    a dialog file is invalid."""
    found = catalog(args.rules_dir)
    wordings = {}
    for trial in trials:
        try:
            path = found.dialog_path(trial.id, args.lang)
        except TrialNotFound:
            continue
        wordings[trial.id] = load_dialog(path, trial).wording()
    return wordings


def sniff_format(binary: Any) -> str:
    """Guess the format of standard input from its first bytes: [ JSON, { JSONL, - YAML, else CSV."""
    head = binary.peek(4096)[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    if head.startswith(b"-") or head.startswith(b"%YAML"):
        return "yaml"
    return "csv"


def _input_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.input == "-":
        return "sniff"
    suffix = Path(args.input).suffix.lower()
    if suffix not in FORMATS:
        raise ScreenerError(f"cannot tell the format of {args.input!r}: use .csv, .jsonl, .json, .yaml or .yml")
    return FORMATS[suffix]


def _progress(err: Console) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("screening"), BarColumn(bar_width=None),
        TextColumn("{task.completed} candidates"), TimeElapsedColumn(),
        console=err, redirect_stdout=False, redirect_stderr=False,
        disable=not err.is_terminal, transient=True,
    )


def _records(args: argparse.Namespace, chosen: list[tuple[Trial, Path]], rows: Iterator[Any],
             summary: Summary, audit: AuditOptions | None, context: dict[str, Any], store: Any = None,
             client: Any = None) -> tuple[Iterator[dict[str, Any]], Any]:
    """The records of the run, and the per-trial tally when there are several trials
    (on the Dask cluster of `client` when there is one)."""
    from screener.run import portfolio

    trials = [trial for trial, _ in chosen]
    if len(chosen) == 1 and not getattr(args, "match", False):
        trial, path = chosen[0]
        if client is not None:
            from screener.run.cluster import screen_rows_cluster

            return screen_rows_cluster(client, trial, path, rows, summary, context, store), None
        if args.jobs > 1:
            return screen_rows_parallel(trial, str(path), rows, summary, args.jobs, audit,
                                        context=context), None
        return screen_rows(trial, rows, summary, audit, context=context, store=store), None
    tally = portfolio.Tally(trials, summary)
    match = getattr(args, "match", False)
    if client is not None:
        from screener.run.cluster import screen_portfolio_cluster

        records = screen_portfolio_cluster(client, chosen, rows, tally, match=match, store=store)
    elif args.jobs > 1:
        records = portfolio.screen_portfolio_parallel(trials, [str(p) for _, p in chosen], rows, tally,
                                                      args.jobs, audit, match=match)
    else:
        records = portfolio.screen_portfolio(trials, rows, tally, audit, store, match=match)
    if match:
        records = _ranked(portfolio.per_candidate(records, len(trials)), tally)
    return records, tally


def _ranked(groups: Iterator[list[dict[str, Any]]], tally: Any) -> Iterator[dict[str, Any]]:
    """Each candidate's records ranked, counted in the run's match summary."""
    from screener.run import portfolio
    from screener.prospects import MatchSummary

    tally.matched = MatchSummary()
    for group in groups:
        ranked = portfolio.rank(group)
        tally.matched.add(ranked)
        yield from ranked


def _columns(args: argparse.Namespace, several: bool) -> tuple[str, ...]:
    from screener.run import portfolio
    from screener.run.batch import COLUMNS

    if getattr(args, "match", False):
        return portfolio.MATCH_COLUMNS
    return portfolio.PORTFOLIO_COLUMNS if several else COLUMNS


def summary_table(summary: Summary, trial_id: str, titles: dict[str, str] | None = None) -> Table:
    """Counts per decision, then per failed criterion, named by its title when `titles` has it."""
    table = Table(title=f"{trial_id}: {summary.total} screened", title_justify="left")
    table.add_column("decision")
    table.add_column("candidates", justify="right")
    for decision in ("eligible", "ineligible", "undetermined", "error"):
        table.add_row(decision, str(summary.decisions.get(decision, 0)))
    if summary.failed:
        table.add_section()
        for criterion, count in sorted(summary.failed.items(), key=lambda kv: (-kv[1], kv[0])):
            title = (titles or {}).get(criterion)
            table.add_row(Text(f"failed {criterion}: {title}" if title else f"failed {criterion}"), str(count))
    return table


def run_batch(args: argparse.Namespace) -> int:
    err = _err_console()
    if args.jobs < 1:
        err.print("screener batch: --jobs must be at least 1")
        return EXIT_USAGE
    from screener.sources.fhir import FhirUnreadable, is_fhir

    inputs = args.input if isinstance(args.input, list) else [args.input]
    args.input = inputs[0]
    joined = len(inputs) > 1 or any(name != "-" and is_fhir(name) for name in inputs)
    if inputs.count("-") > 1:
        _say(err, "screener batch: standard input (-) can be read once")
        return EXIT_USAGE
    fmt = "joined" if joined else _input_format(args)
    if args.output and Path(args.output).suffix.lower() not in (".jsonl", ".csv"):
        _say(err, f"screener batch: OUTPUT must end .jsonl or .csv, not {args.output!r}")
        return EXIT_USAGE
    if args.letters and not args.traces:
        err.print("screener batch: --letters needs --traces (a letter is rendered from its trace)")
        return EXIT_USAGE
    if getattr(args, "sign_key", None) and not args.traces:
        err.print("screener batch: --sign-key needs --traces (a signature seals a trace)")
        return EXIT_USAGE
    if getattr(args, "store", None) and (args.jobs > 1 or args.traces):
        _say(err, "screener batch: --store goes with neither --jobs nor --traces (a trace records a "
                  "decision made in its run)")
        return EXIT_USAGE
    if getattr(args, "cluster", None) and not _cluster_usable(args, err):
        return EXIT_USAGE
    if args.output:
        check_output(args.output, inputs + ([args.store] if getattr(args, "store", None) else []))
    signer = signer_from_args(args)  # a wrong passphrase stops the run before anything is read
    chosen = chosen_trials(args)  # a refused rules file stops the run before any folder is made
    audit = None
    if args.traces:
        for directory in filter(None, (args.traces, args.letters)):
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
                if not os.access(directory, os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), directory)
            except OSError as exc:
                _say(err, f"screener batch: cannot use {directory!r} as a folder: {exc.strerror}")
                # a folder that cannot be written (no permission, read-only, full) is exit 4,
                # as for a trace that fails later; a path that is no folder is a usage error
                return EXIT_UNWRITTEN if exc.errno in _UNWRITABLE else EXIT_USAGE
        _remove_abandoned_parts(err, [args.traces, args.letters], [trial.id for trial, _ in chosen])
    if args.traces:
        try:
            site_zone(args.tz)
        except ValueError as exc:
            _say(err, f"screener batch: --tz: {exc}")
            return EXIT_USAGE
        audit = AuditOptions(args.traces, args.letters, args.operator, args.input, args.lang,
                             _wordings(args, [trial for trial, _ in chosen]), args.tz, signer)
    if getattr(args, "context", None) and len(chosen) > 1:
        _say(err, "screener batch: --context goes with one trial (--trial TRIAL)")
        return EXIT_USAGE
    try:
        context = context_facts(chosen[0][0].facts, getattr(args, "context", None))
    except ValueError as exc:
        _say(err, f"screener batch: {exc}")
        return EXIT_USAGE
    store = None
    if getattr(args, "store", None):
        from screener.run.store import StoreError, open_store

        try:
            store = open_store(args.store)
            store.begin()  # another run on the same store is waited for, then refused
        except StoreError as exc:
            _say(err, f"screener batch: {exc}")
            return EXIT_USAGE
    binary = None
    try:
        if not joined:
            binary = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    except OSError as exc:
        _say(err, f"screener batch: cannot read {args.input}: {exc.strerror}")
        if store is not None:
            store.close()
        return EXIT_USAGE
    if fmt == "sniff":
        fmt = sniff_format(binary)
    out_fmt = "csv" if args.output and args.output.lower().endswith(".csv") else "jsonl"
    try:
        result_file = AtomicOutput(args.output) if args.output else None
    except OSError as exc:
        _say(err, f"screener batch: cannot write the results to {args.output}: {exc.strerror or exc}")
        if store is not None:
            store.close()
        return EXIT_UNWRITTEN
    if result_file and result_file.removed:
        _say(err, f"screener batch: removed {result_file.removed} unfinished results file(s) beside "
                  f"{args.output}, left by a run that was killed")
    out = result_file.stream if result_file else sys.stdout
    summary = Summary()
    written = 0
    where = args.output or "standard output"
    try:
        with _terminate_as_interrupt(), contextlib.ExitStack() as stack:
            if joined:
                rows, joined_report = _joined_rows(args, inputs, chosen, stack)
            else:
                rows = read_rows(stack.enter_context(open_text(binary)), fmt)
            client = None
            if getattr(args, "cluster", None):
                from screener.run.cluster import connect

                client = stack.enter_context(connect(args.cluster))
            records, tally = _records(args, chosen, rows, summary, audit, context, store, client)
            columns = _columns(args, tally is not None)
            writer = Writer(out, out_fmt, columns + ("sources",) if joined else columns)
            per_row = len(chosen) if tally is not None else 1
            digest = ErrorDigest([t.id for t, _ in chosen], (f for t, _ in chosen for f in t.facts))
            from screener.run.workers import collect_for_a_long_run

            collect_for_a_long_run()
            with _progress(err) as progress:
                task = progress.add_task("screening", total=None)
                shown = not progress.disable  # off a terminal, nothing is drawn: nothing to count
                for record in records:
                    writer.write(record)
                    if record["decision"] == "error":
                        digest.add(written // per_row + 1, record)
                    written += 1
                    if shown:
                        progress.advance(task)
            if store is not None:
                # before the results are kept: a store that cannot be written leaves them unchanged
                # (a stored record is a right decision whether or not this run's file is kept)
                store.commit()
            if result_file:
                result_file.commit()
            else:
                out.flush()
    except (UnreadableInput, FhirUnreadable) as exc:
        _discard(result_file)
        _say(err, f"screener batch: cannot read {args.input}: {exc}" if not joined
             else f"screener batch: cannot read the input: {exc}")
        if result_file:
            _say(err, f"screener batch: no results written; {args.output} is unchanged")
        return EXIT_USAGE
    except ClusterLost as exc:
        _discard(result_file)
        kept = f"; {args.output} is unchanged" if result_file else ""
        _say(err, f"screener batch: {exc}: the run stopped after {written} candidates were written to "
                  f"{where}{', which are not kept' if result_file else ''}{kept}")
        return EXIT_INTERNAL
    except _Interrupted as exc:
        _discard(result_file)
        kept = f"; {args.output} is unchanged" if result_file else ""
        _say(err, f"screener batch: interrupted after {written} candidates were written to {where}"
                  f"{', but not kept' if result_file else ''}{kept}")
        return 128 + exc.signum
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        _discard(result_file)
        kept = f"; {args.output} is unchanged" if result_file else ""
        _say(err, f"screener batch: cannot write the results to {where} after {written} candidates: "
                  f"{exc.strerror or exc}{kept}")
        return EXIT_UNWRITTEN
    except BaseException:
        _discard(result_file)
        raise
    finally:
        if store is not None:
            store.close()  # rolls back a run that did not finish
    if store is not None:
        _report_store(err, store.counts)
    if joined:
        _report_joined(err, joined_report)
    for warning in summary.warnings[:20]:
        _say(err, f"warning: {warning}")
    if len(summary.warnings) > 20:
        err.print(f"warning: {len(summary.warnings) - 20} more rows without a trace")
    names = ", ".join(trial.id for trial, _ in chosen)
    if summary.unknown_fields:
        facts = {f for trial, _ in chosen for f in trial.facts}
        _say(err, f"warning: fields that are not facts of {names} were ignored: "
                  f"{unknown_fields_text(summary.unknown_fields, facts)}")
    for line in digest.lines():
        _say(err, line)
    titles = {trial.id: {c.id: c.title for c in trial.criteria} for trial, _ in chosen}
    for trial_id, table_summary in (tally.per_trial.items() if tally else [(names, summary)]):
        err.print(summary_table(table_summary, trial_id, titles.get(trial_id, titles[chosen[0][0].id])))
    if getattr(tally, "matched", None) is not None:
        _say(err, tally.matched.text())
    _say(err, written_text(written, where, [t.id for t, _ in chosen], tally is not None))
    if summary.unwritten:
        _say(err, f"screener batch: {summary.unwritten} requested traces or letters could not be written")
        return EXIT_UNWRITTEN
    return EXIT_ERRORS if summary.decisions.get("error") else EXIT_OK


def _cluster_usable(args: argparse.Namespace, err: Console) -> bool:
    """Whether --cluster goes with the run's other options and names a cluster; says why not."""
    from screener.run.cluster import ClusterError, parse_address, require_dask

    if args.jobs > 1:
        _say(err, "screener batch: --cluster goes without --jobs (the cluster's workers are the processes)")
        return False
    if args.traces:
        _say(err, "screener batch: --cluster goes without --traces (the workers share no folder with "
                  "this machine); write traces with --jobs")
        return False
    try:
        parse_address(args.cluster)
        require_dask()
    except ClusterError as exc:
        _say(err, f"screener batch: {exc}")
        return False
    return True


def _report_store(err: Console, counts: Any) -> None:
    """How many screenings the store spared, and why the others were made."""
    why = []
    if counts.facts_changed:
        why.append(f"{counts.facts_changed} with changed facts")
    if counts.rules_changed:
        why.append(f"{counts.rules_changed} for the changed rules of {', '.join(sorted(counts.changed_trials))}")
    if counts.new:
        why.append(f"{counts.new} not in the store before")
    if counts.unkeyed:
        why.append(f"{counts.unkeyed} without a candidate id")
    _say(err, f"store: {counts.reused} results reused, {counts.screened} screened"
              + (f" ({'; '.join(why)})" if why else ""))


def _remove_abandoned_parts(err: Console, folders: list[str | None], trial_ids: list[str]) -> None:
    """Remove the half-written traces and letters a killed run left in the audit folders
    (and their per-trial folders), and say how many."""
    from screener.audit.artifacts import remove_abandoned_parts

    removed = 0
    for folder in filter(None, folders):
        removed += remove_abandoned_parts(folder)
        for trial_id in trial_ids:
            if os.path.isdir(sub := inside(folder, trial_id)):
                removed += remove_abandoned_parts(sub)
    if removed:
        _say(err, f"screener batch: removed {removed} unfinished trace or letter file(s) left by a run "
                  "that was killed")
def _report_joined(err: Console, report: Any) -> None:
    """What the record held that belongs to no candidate, and facts left unread."""
    for problem in report.problems[:20]:
        _say(err, f"warning: {problem}")
    if len(report.problems) > 20:
        _say(err, f"warning: {len(report.problems) - 20} more resources were not read")
    for fact, count in sorted(report.unread.items()):
        _say(err, f"warning: {fact}: not read from the record for {count} candidates: its lookback "
                  "window needs its anchor date (give it, or --as-of DATE)")


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while screening."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `_Interrupted`, so the run can say what it left behind."""
    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        raise _Interrupted(signal.SIGINT) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _say(err: Console, text: str) -> None:
    """One plain line on standard error: no markup, no wrapping (messages may quote input)."""
    err.print(printable(text), markup=False, soft_wrap=True)


def _discard(result_file: AtomicOutput | None) -> None:
    if result_file is not None:
        result_file.discard()


def printable(text: str) -> str:
    """`text` with its control characters shown escaped, for the terminal (they may come from
    the input): `screener.safe.safe_text`."""
    return safe_text(text)


def run_check(args: argparse.Namespace) -> int:
    err = _err_console()
    files = [Path(f) for f in args.files] or [t.rules for t in catalog(args.rules_dir).trials]
    if not files:
        raise TrialNotFound(f"no trial found in {catalog(args.rules_dir).where()}")
    status = EXIT_OK
    loaded = []
    for file in files:
        try:
            trial = load_trial(file)
            Screener(trial)  # the engine must take every compiled rule too
        except RulesError as exc:
            print(safe_text(str(exc), keep="\n"), file=sys.stderr)
            status = EXIT_USAGE
        else:
            loaded.append(trial)
            err.print(f"{file}: ok: {trial.id}, {len(trial.criteria)} criteria, {len(trial.facts)} facts")
            if not _check_dialogs(trial, file, err):
                status = EXIT_USAGE
    return status if _check_mappings(args, loaded, err) else EXIT_USAGE


def _check_mappings(args: argparse.Namespace, trials: list[Trial], err: Console) -> bool:
    """Check the FHIR mapping files found, and each mapping against the facts of `trials`."""
    from screener.sources.mapping import check_against, load_mappings

    # `check FILE...` checks the mappings of those files' folders (site/rules/X.yaml ->
    # site/mappings/); `check` alone, every mapping found, the shipped ones too
    files = getattr(args, "files", []) or []
    places = [*args.rules_dir, *dict.fromkeys(str(Path(f).parent) for f in files)]
    try:
        mappings = load_mappings(places, shipped=not files)
    except RulesError as exc:
        print(safe_text(str(exc), keep="\n"), file=sys.stderr)
        return False
    problems = sorted({p for trial in trials for p in check_against(mappings, dict(trial.facts))},
                      key=lambda p: (p.path, p.line, p.column, p.message))
    for problem in problems:
        print(safe_text(str(problem)), file=sys.stderr)
    for path in mappings.files:
        mapped = [m for m in mappings.facts.values() if m.span.path == path]
        err.print(f"{path}: ok: {len(mapped)} facts mapped from FHIR")
    return not problems


def _check_dialogs(trial: Any, rules_file: Path, err: Console) -> bool:
    """Check every dialog file of `trial`; print problems; True when all are valid."""
    from screener.dialog.spec import load_dialog

    valid = True
    if not dialogs_for(rules_file):
        from screener.dialog.default import default_dialog

        default_dialog(trial)  # made from the rules: raises RulesError if it cannot be
        err.print(f"{rules_file}: warning: {trial.id} has no dialog file; `screener screen` asks "
                  "its facts by their descriptions (a dialog file gives labels, help and other "
                  "languages: docs/dialogs.md)")
    for _, path in dialogs_for(rules_file):
        try:
            load_dialog(path, trial)
        except RulesError as exc:
            print(safe_text(str(exc), keep="\n"), file=sys.stderr)
            valid = False
        else:
            err.print(f"{path}: ok")
    return valid


def run_trials(args: argparse.Namespace) -> int:
    """List every trial found; a rules file that cannot be loaded is reported, exit 2."""
    found = catalog(args.rules_dir)
    status = EXIT_OK
    rows = []
    for entry in found.trials:
        try:
            trial = load_trial(entry.rules)
        except RulesError as exc:
            print(safe_text(str(exc), keep="\n"), file=sys.stderr)
            status = EXIT_USAGE
            continue
        rows.append({"trial_id": trial.id, "title": trial.title, "version": trial.version,
                     "content_hash": trial.content_hash, "origin": entry.origin,
                     "rules": str(entry.rules), "languages": list(entry.languages)})
    if args.json:
        for row in rows:
            print(json_text(row))
    else:
        out = safe_console(soft_wrap=True)
        for row in rows:
            shown = {k: printable(", ".join(v) if isinstance(v, list) else str(v)) for k, v in row.items()}
            out.print(Text(f"{shown['trial_id']}  version {shown['version']}  sha256 {shown['content_hash']}  "
                           f"languages: {shown['languages'] or 'none'}\n  {shown['title']}\n"
                           f"  from {shown['origin']}: {shown['rules']}"))
    for entry in found.shadowed:
        print(printable(f"warning: {entry.rules} is not used: trial {entry.id} is found first in "
                         f"{found.get(entry.id).rules}"), file=sys.stderr)
    if not found.trials:
        print(printable(f"no trial found in {found.where()}"), file=sys.stderr)
        status = EXIT_USAGE
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # `screener`, `--help`, `--version` and an unknown command end here, before the engine
    # and the other commands' modules are imported
    named, _ = commands_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    parser = build_parser(named.command)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except RulesError as exc:
        # one `file:line:col: code: message` line per problem
        print(safe_text(str(exc), keep="\n"), file=sys.stderr)
        return EXIT_USAGE
    except (TrialNotFound, ScreenerError) as exc:
        print(f"screener {args.command}: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`screener batch ... | head`): stop quietly, as the signal docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as exc:  # a bug of ours: one line for the user, the stack in the log
        logged = log_failure(args.command, exc)
        where = f"details in {logged}" if logged else "no log could be written"
        print(f"screener {args.command}: internal failure ({type(exc).__name__}); {where}", file=sys.stderr)
        return EXIT_INTERNAL
