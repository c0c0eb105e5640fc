"""The `keygen` and `sign` commands, and the `--sign-key` options of `screen`, `resume`, `batch`.

Exit status of `keygen`: 0 the key pair was written; 2 a file exists, cannot be written, or
the passphrases typed differ. Exit status of `sign`: 0 signed; 1 refused, because the trace
does not verify (broken chain, unfinished, replay differs, a signature unsound); 2 the trace or
the key cannot be read, or the passphrase is wrong.

A key's passphrase comes from `--passphrase-file FILE` (its first line), else from
$SCREENER_KEY_PASSPHRASE, else it is asked on the terminal when there is one.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.console import Console

from screener.audit.chain import read_trace
from screener.audit.cli import add_rules_options, recorded_language
from screener.audit.words import Words
from screener.audit.keys import (
    PASSPHRASE_ENV, SigningKeyError, generate, load_private, read_passphrase,
    readable_fingerprint,
)
from screener.audit.replay import find_rules, replay
from screener.audit.sign import MEANINGS, Signer, check_signatures, sign_trace
from screener.audit.trace import TraceError, TraceIntegrityError
from screener.errors import ScreenerError
from screener.trials import trial_dirs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

KEYGEN_EPILOG = "exit status: 0 written; 2 a file exists or cannot be written"
SIGN_EPILOG = ("exit status: 0 signed; 1 not signed: the trace does not verify; 2 the trace "
               "or the key cannot be read, or the passphrase is wrong")
MEANING_HELP = ("what the signature means (21 CFR 11.50): authorship (I made this record), "
                "review (I reviewed it), approval (I approve the decision), responsibility "
                "(I take responsibility for it)")
PASSPHRASE_HELP = (f"file whose first line is the key's passphrase (default: ${PASSPHRASE_ENV}, "
                   "else asked on the terminal)")

Ask = Callable[[str], str]


def add_sign_options(parser: argparse.ArgumentParser, meaning: str = "authorship") -> None:
    """Add `--sign-key`, `--signer`, `--meaning` and `--passphrase-file` to `parser`."""
    parser.add_argument("--sign-key", metavar="PATH",
                        help="seal each trace with an electronic signature made with this private "
                             "key (from `screener keygen`)")
    parser.add_argument("--signer", metavar="NAME",
                        help="the signer's printed name, shown with the signature (default: "
                             "--operator)")
    parser.add_argument("--meaning", choices=MEANINGS, default=meaning,
                        help=f"{MEANING_HELP} (default: {meaning})")
    parser.add_argument("--passphrase-file", metavar="FILE", help=PASSPHRASE_HELP)


def signer_from_args(args: argparse.Namespace, ask: Ask | None = None,
                     operator: str | None = None) -> Signer | None:
    """The Signer `--sign-key` asks for, or None without it. The printed name is --signer,
    else --investigator (who answers for a screening's decision), else --operator, else
    `operator` (who started a screening that is now resumed).

    Raises SigningKeyError when the key cannot be read or unlocked, ScreenerError when no
    printed name is given.
    """
    path = getattr(args, "sign_key", None)
    if not path:
        return None
    name = (getattr(args, "signer", None) or getattr(args, "investigator", None)
            or getattr(args, "operator", None) or operator)
    if not name or not str(name).strip():
        raise ScreenerError("--sign-key needs the signer's printed name: --signer NAME "
                            "(or --operator NAME)")
    key = unlock(path, getattr(args, "passphrase_file", None), ask)
    return Signer.from_key(str(name), args.meaning, key)


def unlock(path: str | os.PathLike[str], passphrase_file: str | None,
           ask: Ask | None = None) -> Ed25519PrivateKey:
    """The private key at `path`, asking for its passphrase on the terminal when it has one
    and neither --passphrase-file nor $SCREENER_KEY_PASSPHRASE gave it."""
    passphrase = read_passphrase(passphrase_file)
    try:
        return load_private(path, passphrase)
    except SigningKeyError as error:
        if passphrase is not None or "protected by a passphrase" not in error.message:
            raise
        ask = ask or _terminal_ask()
        if ask is None:
            raise
        typed = ask(f"passphrase for {os.fspath(path)}: ")
        return load_private(path, typed.encode("utf-8") or None)


def _terminal_ask() -> Ask | None:
    return getpass.getpass if sys.stdin.isatty() else None


def add_signing_parsers(subparsers: Any) -> None:
    """Add `keygen` and `sign`; each sets `run`, called as `run(args)` and returning the status."""
    keygen = subparsers.add_parser(
        "keygen", help="make an Ed25519 key pair for signing traces",
        description="Make an Ed25519 key pair: the private key at PATH (readable by you only, "
                    "protected by a passphrase when one is given), the public key at PATH.pub "
                    "(give it to auditors: a folder of .pub files is what verify "
                    "--trusted-keys trusts). Prints the key's fingerprint.",
        epilog=KEYGEN_EPILOG)
    keygen.add_argument("path", metavar="PATH", help="where to write the private key (a new file)")
    keygen.add_argument("--passphrase-file", metavar="FILE",
                        help=f"file whose first line is the passphrase (default: ${PASSPHRASE_ENV}, "
                             "else asked twice on the terminal; none without a terminal)")
    keygen.add_argument("--lang", default="en", help="language of the messages (en, zh)")
    keygen.set_defaults(run=run_keygen)

    sign = subparsers.add_parser(
        "sign", help="counter-sign a trace (e.g. an investigator's approval)",
        description="Append an electronic signature to a finished trace: printed name, meaning, "
                    "date and time and key fingerprint, signed together with everything in the "
                    "trace before it. The trace is verified first (chain, replay, earlier "
                    "signatures); one that does not verify is not signed.",
        epilog=SIGN_EPILOG)
    sign.add_argument("trace", help="trace file (JSON Lines)")
    sign.add_argument("--key", required=True, metavar="PATH", help="your private key")
    sign.add_argument("--name", "--signer", dest="signer", required=True, metavar="NAME",
                      help="your printed name, shown with the signature")
    sign.add_argument("--meaning", choices=MEANINGS, default="approval",
                      help=f"{MEANING_HELP} (default: approval)")
    sign.add_argument("--passphrase-file", metavar="FILE", help=PASSPHRASE_HELP)
    add_rules_options(sign)
    sign.add_argument("--lang", metavar="LANG",
                      help="language of the messages, e.g. en or zh (default: the screening's, "
                           "as its trace records it)")
    sign.set_defaults(run=run_sign)


def _say(console: Console, text: str) -> None:
    console.print("".join(ch if ch.isprintable() else "?" for ch in text),
                  markup=False, highlight=False, soft_wrap=True)


def run_keygen(args: argparse.Namespace, out: Console | None = None, err: Console | None = None,
               ask: Ask | None = None) -> int:
    """Write a key pair at `args.path` and `args.path.pub`; returns the exit status."""
    out, err = out or Console(), err or Console(stderr=True)
    words = Words(args.lang)
    try:
        passphrase = read_passphrase(args.passphrase_file)
    except SigningKeyError as error:
        _say(err, f"screener keygen: {error}")
        return EXIT_USAGE
    ask = ask or _terminal_ask()
    if passphrase is None and ask is not None:
        first = ask(words.tr("Passphrase for the new key (Enter for none): "))
        if first and ask(words.tr("The same passphrase again: ")) != first:
            _say(err, "screener keygen: " + words.tr("the passphrases differ; no key written"))
            return EXIT_USAGE
        passphrase = first.encode("utf-8") or None
    try:
        pair = generate(args.path, passphrase)
    except SigningKeyError as error:
        _say(err, f"screener keygen: {error}")
        return EXIT_USAGE
    _say(out, words.tr("private key: {path} (readable by you only)", path=pair.private_path))
    _say(out, words.tr("public key:  {path} (give this one to auditors)", path=pair.public_path))
    _say(out, words.tr("fingerprint: {fingerprint}",
                       fingerprint=readable_fingerprint(pair.fingerprint)))
    if passphrase is None:
        _say(err, words.tr("note: the private key is not protected by a passphrase"))
    return EXIT_OK


def run_sign(args: argparse.Namespace, out: Console | None = None, err: Console | None = None,
             ask: Ask | None = None) -> int:
    """Counter-sign `args.trace` after verifying it; returns the exit status."""
    out, err = out or Console(), err or Console(stderr=True)
    words = Words(args.lang or recorded_language(args.trace))
    try:
        signer = Signer.from_key(args.signer, args.meaning,
                                 unlock(args.key, args.passphrase_file, ask))
    except (SigningKeyError, ValueError) as error:
        _say(err, f"screener sign: {error}")
        return EXIT_USAGE
    try:
        trace = read_trace(args.trace)
        data = Path(args.trace).read_bytes()
    except TraceIntegrityError as error:
        return _refuse(err, words, f"{error.path}:{error.line}: {error.reason}")
    except (TraceError, OSError) as error:
        _say(err, f"screener sign: {error}")
        return EXIT_USAGE
    if not trace.sealed:
        return _refuse(err, words, words.tr("{path}: the trace is not finished (no end record)",
                                            path=trace.path))
    for check in check_signatures(trace, data):
        if check.problems:
            return _refuse(err, words, f"{trace.path}:{check.line}: {check.problems[0]}")
    try:
        rules = args.rules or find_rules(trace.start["trial"]["rules_hash"],
                                         trial_dirs(args.rules_dir))
        outcome = replay(trace, rules)
    except ScreenerError as error:
        return _refuse(err, words, f"{trace.path}: {error}")
    if not outcome.matches:
        return _refuse(err, words, f"{trace.path}: {outcome.differences[0]}")
    try:
        record = sign_trace(args.trace, signer)
    except TraceIntegrityError as error:  # changed between the check and the lock
        return _refuse(err, words, f"{error.path}:{error.line}: {error.reason}")
    except TraceError as error:
        _say(err, f"screener sign: {error}")
        return EXIT_USAGE
    statement = record["statement"]
    _say(out, words.tr("{path}: signed by {name} for {meaning} at {time}; key {fingerprint}",
                       path=trace.path, name=statement["signer"],
                       meaning=words.meaning(statement["meaning"]),
                       time=words.time(statement["signed_at"]),
                       fingerprint=readable_fingerprint(statement["key"])))
    return EXIT_OK


def _refuse(err: Console, words: Words, reason: str) -> int:
    _say(err, reason)
    _say(err, "screener sign: " + words.tr("not signed: the trace does not verify"))
    return EXIT_REFUSED
