"""The `verify` and `explain` subcommands. Only this module knows their argv and exit codes.

Exit status of `verify`: 0 when the chain is intact, the trace is sealed, replaying its
facts through the rules file it names gives every recorded record again, every signature is
sound and every `--letter` says what the trace replays to, and, with `--trusted-keys`, the
trace is signed and every signature's key is trusted; 1 when any of that fails (each message
names the record's line and what differs; a record lacking a field its readers need, or
holding one of the wrong type, is a malformed record; a letter that cannot be read is one
that does not match); 2 when the trace or the trusted keys cannot be read; 3 when the chain holds but
the screening never finished (a paused dialog, or one stopped by a crash): "incomplete", with
how many facts it holds and when the last came; 5 with `--trusted-keys`, an intact trace
nobody signed; 6 with `--trusted-keys`, a sound signature made with a key that is not trusted.
Both commands speak the screening's language as the trace records it, or the one `--lang`
names.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console

from screener.errors import ScreenerError
from screener.safe import make_safe, safe_console
from screener.audit.explain import decision_word, explanation
from screener.audit.replay import ReplayError, find_rules, replay
from screener.audit.keys import readable_fingerprint, trusted_keys
from screener.audit.links import ALTERED, BEFORE, INTACT, LinkCheck, check_links
from screener.audit.sign import SignatureCheck, check_signatures
from screener.audit.shape import TraceShapeError, known_language
from screener.audit.trace import TraceError, TraceIntegrityError, file_sha256
from screener.audit.chain import Trace, chain_reason, read_trace
from screener.audit.words import Words
from screener.i18n import site_zone
from screener.trials import trial_dirs

EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE, EXIT_INCOMPLETE = 0, 1, 2, 3
EXIT_UNSIGNED, EXIT_UNTRUSTED = 5, 6

VERIFY_EPILOG = ("exit status: 0 verified (with --trusted-keys: and signed, every key "
                 "trusted); 1 the chain is broken, a record is malformed, the replay differs, "
                 "a signature does not verify or a letter differs from its trace (or cannot be "
                 "read); 2 the trace "
                 "or the trusted keys cannot be read; 3 incomplete: the records so far are "
                 "intact but the screening has not finished (paused for `screener resume`, or "
                 "stopped by a crash); 5 intact but unsigned (with --trusted-keys); 6 signed "
                 "with a key not in the trusted keys. Without --trusted-keys, 0 says the record "
                 "is intact and replays, not who signed it.")


def _say(console: Console, text: str) -> None:
    """Print plain text: no markup, no highlighting, no wrapping inside paths. (The consoles
    escape control characters: paths and reasons may quote the trace or the command line.)"""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def recorded_language(path: str) -> str:
    """The language a trace's start record names, read without trusting the chain (only to
    word the report on a trace that fails its check); English when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline(1 << 22).decode("utf-8"))
        language = first.get("language") if isinstance(first, dict) else None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
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
        parser.add_argument("--tz", metavar="ZONE",
                            help="time zone to show times in, e.g. Asia/Shanghai (default: the "
                                 "screening's own, as its trace records it; for a trace that "
                                 "records none, the TZ environment variable, else the system's)")


def add_rules_options(parser: argparse.ArgumentParser) -> None:
    """Add `--rules` and `--rules-dir`: which rules file a trace is replayed with."""
    parser.add_argument("--rules", metavar="PATH",
                        help="rules file to replay with (default: the one whose content hash "
                             "the trace names)")
    parser.add_argument("--rules-dir", metavar="DIR",
                        help="where to look first for the rules file the trace names by its hash "
                             "(then $SCREENER_TRIALS_PATH, then the shipped rules)")


def add_audit_parsers(subparsers: Any) -> None:
    """Add `verify` and `explain` to an argparse subparsers object; each sets `run`, called as `run(args)` and returning the exit status."""
    verify = subparsers.add_parser(
        "verify", help="check a trace's hash chain and replay its decision",
        description="Check that a decision trace is unaltered and that replaying its facts "
                    "through the rules file it names gives the recorded decision.",
        epilog=VERIFY_EPILOG)
    verify.add_argument("trace", help="trace file (JSON Lines)")
    add_rules_options(verify)
    verify.add_argument("--trusted-keys", metavar="DIR",
                        help="folder of trusted public keys (.pub): accept the trace only when "
                             "it is signed and every signature's key is one of them")
    verify.add_argument("--letter", action="append", metavar="LETTER",
                        help="a letter (.html or .md) to check against the trace: it must say "
                             "what the trace replays to, word for word; repeat for several")
    _add_wording_options(verify, times=True)
    verify.set_defaults(run=run_verify)
    explain = subparsers.add_parser(
        "explain", help="show how a trace's decision was reached",
        description="Render a decision trace for a person: criteria with their outcomes, the "
                    "facts under each with source and time, corrections marked; in the "
                    "screening's language, times in the site's zone with their UTC offset.",
        epilog="exit status: 0 shown; 1 the chain is broken or a record is malformed; 2 the "
               "trace cannot be read or an option is wrong")
    explain.add_argument("trace", help="trace file (JSON Lines)")
    _add_wording_options(explain, times=True)
    explain.set_defaults(run=run_explain)


def _words(args: argparse.Namespace, trace: Trace) -> Words:
    """The wording asked for on the command line (raises ValueError for an unknown zone or
    language)."""
    language = getattr(args, "lang", None)
    if language is not None and not known_language(language):
        raise ValueError(f"--lang {language}: not a language the screener can write")
    return Words.of(trace, language, site_zone(getattr(args, "tz", None)))


def run_verify(args: argparse.Namespace, out: Console | None = None,
               err: Console | None = None) -> int:
    """Verify `args.trace`; report on `out` (success) or `err` (failure), in the screening's
    language (or `args.lang`). Returns exit status."""
    out = safe_console() if out is None else make_safe(out)
    err = safe_console(stderr=True) if err is None else make_safe(err)
    language = getattr(args, "lang", None) or recorded_language(args.trace)
    tr = _in(language).tr
    try:
        trace = read_trace(args.trace)
    except TraceShapeError as error:
        _say(err, tr("{path}:{line}: malformed record: {reason}", path=error.path,
                     line=error.line, reason=chain_reason(language, error)))
        _say(err, tr("verify: FAILED"))
        return EXIT_FAILED
    except TraceIntegrityError as error:
        _say(err, tr("{path}:{line}: chain broken: {reason}", path=error.path, line=error.line,
                     reason=chain_reason(language, error)))
        _say(err, tr("verify: FAILED"))
        return EXIT_FAILED
    except TraceError as error:
        _say(err, f"verify: {error}")
        return EXIT_UNREADABLE
    try:
        words = _words(args, trace)
    except ValueError as error:
        _say(err, f"verify: {error}")
        return EXIT_UNREADABLE
    last = len(trace.records)
    if not trace.sealed:
        _incomplete(err, trace, words)
        return EXIT_INCOMPLETE
    try:
        trusted = trusted_keys(args.trusted_keys) if getattr(args, "trusted_keys", None) else None
        data = Path(trace.path).read_bytes()
    except (ScreenerError, OSError) as error:
        _say(err, f"verify: {error}")
        return EXIT_UNREADABLE
    signatures = check_signatures(trace, data, trusted)
    failed = False
    for check in signatures:
        for problem in check.problems:
            _say(err, tr("{path}:{line}: signature of {signer} ({meaning}): {problem}",
                         path=trace.path, line=check.line, signer=check.signer,
                         meaning=check.meaning, problem=problem))
            failed = True
    try:
        rules = args.rules or find_rules(trace.start["trial"]["rules_hash"],
                                         trial_dirs(args.rules_dir))
        outcome = replay(trace, rules)
    except ScreenerError as error:
        reason = error.in_language(language) if isinstance(error, ReplayError) else error
        _say(err, tr("{path}: cannot replay: {error}", path=trace.path, error=reason))
        _say(err, tr("verify: FAILED"))
        return EXIT_FAILED
    if not outcome.matches:
        first = next((d.line for d in outcome.differences if d.line), outcome.decision_line)
        _say(err, tr("{path}:{line}: replaying with {rules} gives a different result:",
                     path=trace.path, line=first, rules=outcome.rules_path))
        for difference in outcome.differences:
            text = tr("{field}: recorded {recorded}, replayed {replayed}", field=difference.field,
                      recorded=repr(difference.recorded), replayed=repr(difference.replayed))
            where = tr("line {line}: ", line=difference.line) if difference.line else ""
            _say(err, f"  {where}{text}")
        failed = True
    links = check_links(trace)
    for checked in links:
        if not checked.holds:
            _say(err, _link_problem(tr, trace.path, checked))
            failed = True
    if getattr(args, "letter", None):
        from screener.audit.letter_check import check_letter  # letters need jinja2: only when asked
    for letter in getattr(args, "letter", None) or ():
        checked = check_letter(letter, trace, data)
        for problem in checked.problems:
            _say(err, f"{checked.path}: {problem}")
            failed = True
    if failed:
        _say(err, tr("verify: FAILED"))
        return EXIT_FAILED
    status = _trust_status(signatures, trusted)
    if status == EXIT_OK and signatures:
        _say(out, tr("{path}: verified", path=trace.path))
    elif status == EXIT_OK:  # the verdict comes first: an intact chain proves no authorship
        _say(out, tr("{path}: intact but unsigned: its records hold together and replay to the "
                     "recorded decision, but anyone could have written them", path=trace.path))
    _say(out, "  " + tr("chain: {count} records intact and sealed; file sha256 {hash}",
                        count=last, hash=file_sha256(trace.path)))
    _say(out, "  " + tr("replay: {rules} gives the recorded decision: {decision}",
                        rules=outcome.rules_path,
                        decision=decision_word(words, outcome.result.decision)))
    _say(out, "  " + tr("records: every derived fact, firing and criterion text agrees with the "
                        "rules"))
    for check in signatures:
        trust = (tr("key trusted: {name}", name=check.trusted_as) if check.trusted_as else
                 tr("key NOT in the trusted keys") if trusted is not None else
                 tr("key not checked (no --trusted-keys)"))
        _say(out, "  " + tr("signed by {signer} for {meaning} at {time}; key {fingerprint}; "
                            "{trust}", signer=check.signer, meaning=words.meaning(check.meaning),
                            time=words.time(check.signed_at),
                            fingerprint=readable_fingerprint(check.fingerprint), trust=trust))
    if not signatures:
        _say(out, "  " + tr("signatures: none"))
    for checked in links:
        _say(out, "  " + _link_report(tr, checked))
    for letter in getattr(args, "letter", None) or ():
        _say(out, "  " + tr("letter: {letter} says what the trace replays to", letter=letter))
    if status == EXIT_UNSIGNED:
        _say(err, tr("{path}: NOT verified: intact, but nobody signed it", path=trace.path))
    elif status == EXIT_UNTRUSTED:
        _say(err, tr("{path}: NOT verified: signed with a key that is not in {keys}",
                     path=trace.path, keys=args.trusted_keys))
    return status


def _link_report(tr: Any, checked: LinkCheck) -> str:
    """One line on an earlier trace this one continues, for a trace whose links hold."""
    where = dict(path=checked.named, count=checked.records, hash=checked.last_hash[:16])
    if checked.state == INTACT:
        return tr("continues {path}: its first {count} records (last hash {hash}...) are "
                  "intact", **where)
    if checked.state == BEFORE and checked.detail == ALTERED:
        return tr("continues {path} (its first {count} records, last hash {hash}...), which "
                  "had already been changed when this trace began: not checked", **where)
    if checked.state == BEFORE:
        return tr("continues {path} (its first {count} records, last hash {hash}...), which "
                  "was already gone when this trace began: not checked", **where)
    return tr("continues {path} (its first {count} records, last hash {hash}...): not found, "
              "not checked", **where)


def _link_problem(tr: Any, path: str, checked: LinkCheck) -> str:
    """Why the earlier trace this one names as continued does not match the link."""
    if checked.state == ALTERED:
        return tr("{path}: the earlier trace it continues, {earlier}, no longer holds the "
                  "records it named ({detail})", path=path, earlier=checked.found,
                  detail=checked.detail)
    return tr("{path}: the earlier trace it continues, {earlier}, is the record of another "
              "trial or candidate", path=path, earlier=checked.found)


def _trust_status(signatures: list[SignatureCheck],
                  trusted: Mapping[str, Path] | None) -> int:
    """0 when trust was not asked for or every signature's key is trusted; else 5 or 6."""
    if trusted is None:
        return EXIT_OK
    if not signatures:
        return EXIT_UNSIGNED
    if any(check.trusted_as is None for check in signatures):
        return EXIT_UNTRUSTED
    return EXIT_OK


def _incomplete(err: Console, trace: Trace, words: Words) -> None:
    """Report an unsealed trace with an intact chain: what it holds, and whether it was paused."""
    facts = trace.of_type("fact")
    last = facts[-1] if facts else trace.start
    _say(err, words.tr("{path}: incomplete, {facts} facts recorded, last at {time}",
                       path=trace.path, facts=len(facts), time=words.time(last["time"])))
    _say(err, "  " + words.tr("the {records} records written so far are intact; the screening "
                              "has not finished", records=len(trace.records)))
    if trace.paused is not None:
        _say(err, "  " + words.tr("paused ({reason}) at {time}: screener resume continues it",
                                  reason=words.pause_reason(trace.paused.get("reason")),
                                  time=words.time(trace.paused["time"])))
    _say(err, words.tr("verify: INCOMPLETE"))


def run_explain(args: argparse.Namespace, out: Console | None = None,
                err: Console | None = None) -> int:
    """Render `args.trace` on `out`. Returns 0, or 1 when the chain is broken (nothing shown:
    an altered record would mislead), or 2 when the trace cannot be read."""
    out = safe_console() if out is None else make_safe(out)
    err = safe_console(stderr=True) if err is None else make_safe(err)
    language = getattr(args, "lang", None) or recorded_language(args.trace)
    try:
        trace = read_trace(args.trace)
    except TraceShapeError as error:
        _say(err, _in(language).tr("{path}:{line}: malformed record: {reason}; not explaining a "
                                   "broken trace", path=error.path, line=error.line,
                                   reason=chain_reason(language, error)))
        return 1
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
