"""The `verify` and `explain` subcommands. Only this module knows their argv and exit codes.

Exit status of `verify`: 0 when the chain is intact, the trace is sealed and replaying its
facts through the rules file it names gives the recorded decision; 1 when the chain is broken
or the replay differs (the message names the first bad line); 2 when the trace cannot be read
at all; 3 when the chain holds but the screening never finished (a paused dialog, or one
stopped by a crash): "incomplete", with how many facts it holds and when the last came.
"""
from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from screener.errors import ScreenerError
from screener.safe import make_safe, safe_console
from screener.audit.explain import explanation, tr
from screener.audit.replay import find_rules, replay
from screener.audit.trace import TraceError, TraceIntegrityError, file_sha256, human_time
from screener.audit.chain import Trace, read_trace
from screener.trials import rules_dir

EXIT_VERIFIED, EXIT_FAILED, EXIT_UNREADABLE, EXIT_INCOMPLETE = 0, 1, 2, 3

VERIFY_EPILOG = ("exit status: 0 verified; 1 the chain is broken or the replay differs; 2 the "
                 "trace cannot be read; 3 incomplete: the records so far are intact but the "
                 "screening has not finished (paused for `screener resume`, or stopped by a crash)")


def _say(console: Console, text: str) -> None:
    """Print plain text: no markup, no highlighting, no wrapping inside paths. (The consoles
    escape control characters: paths and reasons may quote the trace or the command line.)"""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def add_audit_parsers(subparsers: Any) -> None:
    """Add `verify` and `explain` to an argparse subparsers object; each sets `run`, called as `run(args)` and returning the exit status."""
    verify = subparsers.add_parser(
        "verify", help="check a trace's hash chain and replay its decision",
        description="Check that a decision trace is unaltered and that replaying its facts "
                    "through the rules file it names gives the recorded decision.",
        epilog=VERIFY_EPILOG)
    verify.add_argument("trace", help="trace file (JSON Lines)")
    verify.add_argument("--rules", metavar="PATH",
                        help="rules file to replay with (default: the one in the rules "
                             "directory whose content hash the trace names)")
    verify.add_argument("--rules-dir", metavar="DIR",
                        help="where to look for the rules file (default: the shipped rules)")
    verify.set_defaults(run=run_verify)
    explain = subparsers.add_parser(
        "explain", help="show how a trace's decision was reached",
        description="Render a decision trace for a person: criteria with their outcomes, the "
                    "facts under each with source and time, corrections marked.")
    explain.add_argument("trace", help="trace file (JSON Lines)")
    explain.set_defaults(run=run_explain)


def run_verify(args: argparse.Namespace, out: Console | None = None,
               err: Console | None = None) -> int:
    """Verify `args.trace`; report on `out` (success) or `err` (failure). Returns exit status."""
    out = safe_console() if out is None else make_safe(out)
    err = safe_console(stderr=True) if err is None else make_safe(err)
    try:
        trace = read_trace(args.trace)
    except TraceIntegrityError as error:
        _say(err, f"{error.path}:{error.line}: chain broken: {error.reason}")
        _say(err, "verify: FAILED")
        return EXIT_FAILED
    except TraceError as error:
        _say(err, f"verify: {error}")
        return EXIT_UNREADABLE
    last = len(trace.records)
    if not trace.sealed:
        _incomplete(err, trace)
        return EXIT_INCOMPLETE
    try:
        rules = args.rules or find_rules(trace.start["trial"]["rules_hash"],
                                         args.rules_dir or rules_dir())
        outcome = replay(trace, rules)
    except ScreenerError as error:
        _say(err, f"{trace.path}: cannot replay: {error}")
        _say(err, "verify: FAILED")
        return EXIT_FAILED
    if not outcome.matches:
        _say(err, f"{trace.path}:{outcome.decision_line}: replaying with {outcome.rules_path} "
                  "gives a different result:")
        for difference in outcome.differences:
            _say(err, f"  {difference}")
        _say(err, "verify: FAILED")
        return EXIT_FAILED
    _say(out, f"{trace.path}: verified")
    _say(out, f"  chain: {last} records intact and sealed; file sha256 "
              f"{file_sha256(trace.path)}")
    _say(out, f"  replay: {outcome.rules_path} gives the recorded decision: "
              f"{outcome.result.decision}")
    return EXIT_VERIFIED


def _incomplete(err: Console, trace: Trace) -> None:
    """Report an unsealed trace with an intact chain: what it holds, and whether it was paused."""
    facts = trace.of_type("fact")
    last = facts[-1] if facts else trace.start
    _say(err, tr("{path}: incomplete, {facts} facts recorded, last at {time}", path=trace.path,
                 facts=len(facts), time=human_time(last["time"])))
    _say(err, "  " + tr("the {records} records written so far are intact; the screening has not "
                        "finished", records=len(trace.records)))
    if trace.paused is not None:
        _say(err, "  " + tr("paused ({reason}) at {time}: screener resume continues it",
                            reason=trace.paused.get("reason"), time=human_time(trace.paused["time"])))
    _say(err, tr("verify: INCOMPLETE"))


def run_explain(args: argparse.Namespace, out: Console | None = None,
                err: Console | None = None) -> int:
    """Render `args.trace` on `out`. Returns 0, or 1 when the chain is broken (nothing shown:
    an altered record would mislead), or 2 when the trace cannot be read."""
    out = safe_console() if out is None else make_safe(out)
    err = safe_console(stderr=True) if err is None else make_safe(err)
    try:
        trace = read_trace(args.trace)
    except TraceIntegrityError as error:
        _say(err, f"{error.path}:{error.line}: chain broken: {error.reason}; not explaining an "
                  "altered trace")
        return 1
    except TraceError as error:
        _say(err, f"explain: {error}")
        return 2
    out.print(explanation(trace))
    return 0
