"""Command line: `screener batch|check|...`. The only module that knows argv and exit codes."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from screener import __version__
from screener.batch import AuditOptions, Summary, Writer, screen_rows, screen_rows_parallel
from screener.crashlog import log_failure
from screener.engine import Screener
from screener.errors import RulesError, ScreenerError
from screener.outfile import AtomicOutput, check_output
from screener.readers import FORMATS, UnreadableInput, open_text, read_rows
from screener.rules.check import load_trial
from screener.trials import TrialNotFound, rules_path
from screener.values import context_facts

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL, EXIT_UNWRITTEN = 0, 1, 2, 3, 4

EXIT_STATUS_HELP = (
    "Exit status: 0 every candidate screened; 1 some candidates are errors (their rows name "
    "what is wrong); 2 usage error, unreadable input or refused rules; 3 internal failure of "
    "the screener (one line says where details were logged); 4 results, traces or letters "
    "could not be written (disk full, no permission); 130/143 interrupted by Ctrl-C/SIGTERM "
    "(results not kept)."
)


def _err_console() -> Console:
    return Console(stderr=True, highlight=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="screener",
        description="Rule-based clinical-trial eligibility screening.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"screener {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    batch = sub.add_parser(
        "batch", help="screen a list of candidates (CSV, JSONL, JSON, YAML)",
        description=(
            "Screen every candidate of INPUT and write one result per candidate, in input "
            "order, as JSON Lines (default, to standard output) or CSV. Progress and the "
            "summary go to standard error. The results file appears only when the run "
            "finished; until then the previous one is kept. " + EXIT_STATUS_HELP
        ),
    )
    batch.add_argument("input", metavar="INPUT",
                       help="candidates file (.csv, .jsonl, .json, .yaml/.yml), or - for standard input")
    batch.add_argument("-o", "--output", metavar="OUTPUT", help="results file ending .jsonl or .csv")
    batch.add_argument("--trial", metavar="TRIAL_ID", help="trial to screen for (default: the only one shipped)")
    batch.add_argument("--format", choices=sorted(set(FORMATS.values())),
                       help="input format; by default the suffix tells, and standard input is "
                            "recognised from its first characters")
    batch.add_argument("--rules", metavar="FILE", help="rules file to use instead of the shipped one")
    batch.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                       help="screen in N processes (default 1)")
    batch.add_argument("--traces", metavar="DIR",
                       help="write one tamper-evident trace per candidate into DIR (error records get none)")
    batch.add_argument("--letters", metavar="DIR",
                       help="write each candidate's eligibility letter (Markdown and HTML) into DIR; needs --traces")
    batch.add_argument("--operator", metavar="NAME", help="who runs the screening, recorded in traces and letters")
    batch.add_argument("--context", action="append", metavar="NAME=VALUE",
                       help="a context fact of the trial (site, cohort), the same for every candidate "
                            "of this run; repeat for several. A candidate record may not carry one.")
    batch.set_defaults(run=run_batch)

    check = sub.add_parser("check", help="check rules and dialog files; report every problem as file:line:col",
                           description="Load and check rules files, and the dialog files of each trial "
                                       "(dialogs/<TRIAL>.<lang>.yaml); exit 0 when all are valid, 2 otherwise.")
    check.add_argument("files", nargs="*", metavar="FILE", help="rules files (default: the shipped trials)")
    check.set_defaults(run=run_check)
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Commands that live in their own modules (dialog, audit)."""
    try:
        from screener.dialog.cli import add_screen_parsers
    except ImportError:
        pass
    else:
        add_screen_parsers(sub)
    try:
        from screener.audit.cli import add_audit_parsers
    except ImportError:
        pass
    else:
        add_audit_parsers(sub)


def _rules_file(args: argparse.Namespace) -> Path:
    if getattr(args, "rules", None):
        return Path(args.rules)
    return rules_path(args.trial)


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


def summary_table(summary: Summary, trial_id: str) -> Table:
    table = Table(title=f"{trial_id}: {summary.total} screened", title_justify="left")
    table.add_column("decision")
    table.add_column("candidates", justify="right")
    for decision in ("eligible", "ineligible", "undetermined", "error"):
        table.add_row(decision, str(summary.decisions.get(decision, 0)))
    if summary.failed:
        table.add_section()
        for criterion, count in sorted(summary.failed.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(f"failed {criterion}", str(count))
    return table


def run_batch(args: argparse.Namespace) -> int:
    err = _err_console()
    if args.jobs < 1:
        err.print("screener batch: --jobs must be at least 1")
        return EXIT_USAGE
    fmt = _input_format(args)
    if args.output and Path(args.output).suffix.lower() not in (".jsonl", ".csv"):
        _say(err, f"screener batch: OUTPUT must end .jsonl or .csv, not {args.output!r}")
        return EXIT_USAGE
    if args.letters and not args.traces:
        err.print("screener batch: --letters needs --traces (a letter is rendered from its trace)")
        return EXIT_USAGE
    if args.output:
        check_output(args.output, [args.input])
    audit = None
    if args.traces:
        for directory in filter(None, (args.traces, args.letters)):
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            except OSError as exc:
                _say(err, f"screener batch: cannot use {directory!r} as a folder: {exc.strerror}")
                return EXIT_USAGE
        audit = AuditOptions(args.traces, args.letters, args.operator, args.input)
    path = _rules_file(args)
    trial = load_trial(path)
    try:
        context = context_facts(trial.facts, args.context)
    except ValueError as exc:
        _say(err, f"screener batch: {exc}")
        return EXIT_USAGE
    try:
        binary = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    except OSError as exc:
        _say(err, f"screener batch: cannot read {args.input}: {exc.strerror}")
        return EXIT_USAGE
    if fmt == "sniff":
        fmt = sniff_format(binary)
    out_fmt = "csv" if args.output and args.output.lower().endswith(".csv") else "jsonl"
    try:
        result_file = AtomicOutput(args.output) if args.output else None
    except OSError as exc:
        _say(err, f"screener batch: cannot write the results to {args.output}: {exc.strerror or exc}")
        return EXIT_UNWRITTEN
    out = result_file.stream if result_file else sys.stdout
    summary = Summary()
    written = 0
    where = args.output or "standard output"
    try:
        with _terminate_as_interrupt(), open_text(binary) as text:
            rows = read_rows(text, fmt)
            records: Iterator[dict[str, Any]]
            if args.jobs > 1:
                records = screen_rows_parallel(trial, str(path), rows, summary, args.jobs, audit,
                                               context=context)
            else:
                records = screen_rows(trial, rows, summary, audit, context=context)
            writer = Writer(out, out_fmt)
            with _progress(err) as progress:
                task = progress.add_task("screening", total=None)
                for record in records:
                    writer.write(record)
                    written += 1
                    progress.advance(task)
            if result_file:
                result_file.commit()
            else:
                out.flush()
    except UnreadableInput as exc:
        _discard(result_file)
        _say(err, f"screener batch: cannot read {args.input}: {exc}")
        if result_file:
            _say(err, f"screener batch: no results written; {args.output} is unchanged")
        return EXIT_USAGE
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
    for warning in summary.warnings[:20]:
        _say(err, f"warning: {warning}")
    if len(summary.warnings) > 20:
        err.print(f"warning: {len(summary.warnings) - 20} more rows without a trace")
    if summary.unknown_fields:
        _say(err, f"warning: fields that are not facts of {trial.id} were ignored: "
                  f"{', '.join(sorted(summary.unknown_fields))}")
    err.print(summary_table(summary, trial.id))
    if summary.unwritten:
        _say(err, f"screener batch: {summary.unwritten} requested traces or letters could not be written")
        return EXIT_UNWRITTEN
    return EXIT_ERRORS if summary.decisions.get("error") else EXIT_OK


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
    """`text` without control characters, for the terminal (they may come from the input)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def run_check(args: argparse.Namespace) -> int:
    err = _err_console()
    files = [Path(f) for f in args.files] or [rules_path(t) for t in _shipped()]
    status = EXIT_OK
    for file in files:
        try:
            trial = load_trial(file)
            Screener(trial)  # the engine must take every compiled rule too
        except RulesError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_USAGE
        else:
            err.print(f"{file}: ok: {trial.id}, {len(trial.criteria)} criteria, {len(trial.facts)} facts")
            if not _check_dialogs(trial, err):
                status = EXIT_USAGE
    return status


def _check_dialogs(trial: Any, err: Console) -> bool:
    """Check every dialog file of `trial`; print problems; True when all are valid."""
    from screener.dialog.spec import load_dialog
    from screener.trials import dialogs_dir

    valid = True
    for path in sorted(dialogs_dir().glob(f"{trial.id}.*.yaml")):
        try:
            load_dialog(path, trial)
        except RulesError as exc:
            print(exc, file=sys.stderr)
            valid = False
        else:
            err.print(f"{path}: ok")
    return valid


def _shipped() -> list[str]:
    from screener.trials import shipped_trials

    return shipped_trials()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except RulesError as exc:
        print(exc, file=sys.stderr)  # one `file:line:col: code: message` line per problem
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
