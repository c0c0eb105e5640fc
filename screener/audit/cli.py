"""The `verify` and `explain` subcommands. Only this module knows their argv and exit codes.

Exit status of `verify`: 0 when the chain is intact, the trace is sealed and replaying its
facts through the rules file it names gives the recorded decision; 1 when any of that fails
(the message names the first bad line); 2 when the trace cannot be read at all. Both speak
the screening's language as the trace records it, or the one `--lang` names.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from screener.errors import ScreenerError
from screener.audit.explain import decision_word, explanation
from screener.audit.replay import ReplayError, find_rules, replay
from screener.audit.trace import TraceError, TraceIntegrityError, file_sha256
from screener.audit.chain import Trace, chain_reason, read_trace
from screener.audit.words import Words
from screener.i18n import TZ_HELP, site_zone
from screener.trials import rules_dir

VERIFY_EPILOG = ("exit status: 0 verified; 1 the chain is broken, the trace is unfinished or "
                 "the replay differs; 2 the trace cannot be read")


def _say(console: Console, text: str) -> None:
    """Print plain text: no markup, no highlighting, no wrapping inside paths."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _recorded_language(path: str) -> str:
    """The language a trace's start record names, read without trusting the chain (only to
    word the report on a trace that fails its check); English when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline(1 << 22).decode("utf-8"))
        language = first.get("language") if isinstance(first, dict) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return "en"
    return language if isinstance(language, str) and language.isalpha() else "en"


def _in(language: str) -> Words:
    """Words of `language` alone, for reports made before (or without) a trusted trace."""
    return Words(language)


def _add_wording_options(parser: argparse.ArgumentParser, times: bool) -> None:
    parser.add_argument("--lang", metavar="LANG",
                        help="language to report in, e.g. en or zh (default: the screening's, "
                             "as its trace records it)")
    if times:
        parser.add_argument("--tz", metavar="ZONE", help=TZ_HELP)


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
    _add_wording_options(verify, times=False)
    verify.set_defaults(run=run_verify)
    explain = subparsers.add_parser(
        "explain", help="show how a trace's decision was reached",
        description="Render a decision trace for a person: criteria with their outcomes, the "
                    "facts under each with source and time, corrections marked; in the "
                    "screening's language, times in the site's zone with their UTC offset.",
        epilog="exit status: 0 shown; 1 the chain is broken; 2 the trace cannot be read or "
               "an option is wrong")
    explain.add_argument("trace", help="trace file (JSON Lines)")
    _add_wording_options(explain, times=True)
    explain.set_defaults(run=run_explain)


def _words(args: argparse.Namespace, trace: Trace) -> Words:
    """The wording asked for on the command line (raises ValueError for an unknown zone)."""
    return Words.of(trace, getattr(args, "lang", None), site_zone(getattr(args, "tz", None)))


def run_verify(args: argparse.Namespace, out: Console | None = None,
               err: Console | None = None) -> int:
    """Verify `args.trace`; report on `out` (success) or `err` (failure), in the screening's
    language (or `args.lang`). Returns exit status."""
    out = out or Console()
    err = err or Console(stderr=True)
    language = getattr(args, "lang", None) or _recorded_language(args.trace)
    tr = _in(language).tr
    try:
        trace = read_trace(args.trace)
    except TraceIntegrityError as error:
        _say(err, tr("{path}:{line}: chain broken: {reason}", path=error.path, line=error.line,
                     reason=chain_reason(language, error)))
        _say(err, tr("verify: FAILED"))
        return 1
    except TraceError as error:
        _say(err, f"verify: {error}")
        return 2
    words = Words.of(trace, getattr(args, "lang", None))
    last = len(trace.records)
    if not trace.sealed:
        _say(err, tr("{path}:{line}: trace ends without its end record: cut short, or the "
                     "screening did not finish", path=trace.path, line=last))
        _say(err, tr("verify: FAILED"))
        return 1
    try:
        rules = args.rules or find_rules(trace.start["trial"]["rules_hash"],
                                         args.rules_dir or rules_dir())
        outcome = replay(trace, rules)
    except ScreenerError as error:
        reason = error.in_language(language) if isinstance(error, ReplayError) else error
        _say(err, tr("{path}: cannot replay: {error}", path=trace.path, error=reason))
        _say(err, tr("verify: FAILED"))
        return 1
    if not outcome.matches:
        _say(err, tr("{path}:{line}: replaying with {rules} gives a different result:",
                     path=trace.path, line=outcome.decision_line, rules=outcome.rules_path))
        for difference in outcome.differences:
            _say(err, "  " + tr("{field}: recorded {recorded}, replayed {replayed}",
                                field=difference.field, recorded=repr(difference.recorded),
                                replayed=repr(difference.replayed)))
        _say(err, tr("verify: FAILED"))
        return 1
    _say(out, tr("{path}: verified", path=trace.path))
    _say(out, "  " + tr("chain: {count} records intact and sealed; file sha256 {hash}",
                        count=last, hash=file_sha256(trace.path)))
    _say(out, "  " + tr("replay: {rules} gives the recorded decision: {decision}",
                        rules=outcome.rules_path,
                        decision=decision_word(words, outcome.result.decision)))
    return 0


def run_explain(args: argparse.Namespace, out: Console | None = None,
                err: Console | None = None) -> int:
    """Render `args.trace` on `out`. Returns 0, or 1 when the chain is broken (nothing shown:
    an altered record would mislead), or 2 when the trace cannot be read."""
    out = out or Console()
    err = err or Console(stderr=True)
    language = getattr(args, "lang", None) or _recorded_language(args.trace)
    try:
        trace = read_trace(args.trace)
    except TraceIntegrityError as error:
        _say(err, _in(language).tr("{path}:{line}: chain broken: {reason}; not explaining an "
                                   "altered trace", path=error.path, line=error.line,
                                   reason=chain_reason(language, error)))
        return 1
    except TraceError as error:
        _say(err, f"explain: {error}")
        return 2
    try:
        words = _words(args, trace)
    except ValueError as error:
        _say(err, f"explain: {error}")
        return 2
    out.print(explanation(trace, words))
    return 0
