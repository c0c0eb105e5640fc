"""Electronic signatures on traces, in the manner of 21 CFR 11.50 and 11.70.

A signature is a `signature` record appended after the trace's `end` record. Like every
record it is chained (`seq`, `prev`, `hash`), so signatures can be added one after another
(the screening's own, then an investigator's counter-signature days later) without touching a
byte before them, and a trace without signatures reads exactly as before.

The record carries a `statement` and an Ed25519 `signature` over it. The statement is the
manifestation a person sees (printed name, meaning, date and time, key fingerprint) plus what
is signed: the sha256 of every byte of the trace before the record, the number of those
records, a short digest of each record's content (so a verifier can name the lines that were
changed), and the trial, rules hash, candidate id, operator and decision in plain words. The
signed bytes are `screener-signature/1` and a newline, then the canonical JSON of the
statement, so a signature can neither be moved to another trace nor have its name, time or
meaning edited. The statement also holds the raw public key: a signature is checked with the
key it names, and trusted only when that key's fingerprint is in a trusted-keys folder.

Meanings (21 CFR 11.50(a)(3)): `authorship` (I produced this record: the screening's own
signature), `review` (I have reviewed it), `approval` (I approve the decision: an
investigator's counter-signature), `responsibility` (I take responsibility for it).
"""
from __future__ import annotations

import base64
import datetime as _dt
import fcntl
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from screener.audit.chain import Trace, read_trace
from screener.audit.keys import fingerprint, public_from_b64, public_raw_b64
from screener.audit.trace import GENESIS, TraceError, canonical, record_hash, write_all

if TYPE_CHECKING:  # `cryptography` is imported where a key is used (see screener.audit.keys)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIGNATURE_FORMAT = "screener-signature/1"
MEANINGS = ("authorship", "review", "approval", "responsibility")
DIGEST_LENGTH = 16  # hex digits of a record's content digest: enough to tell records apart

Clock = Callable[[], _dt.datetime]


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signs, and with which key: the printed name, the meaning, the raw private key.

    Plain bytes rather than a key object, so a batch can hand it to its worker processes.
    """

    name: str
    meaning: str
    private_raw: bytes = field(repr=False)

    @classmethod
    def from_key(cls, name: str, meaning: str, key: Ed25519PrivateKey) -> "Signer":
        """A Signer for `key`; raises ValueError for a blank name or an unknown meaning."""
        if not name.strip():
            raise ValueError("the signer's printed name is empty")
        if meaning not in MEANINGS:
            raise ValueError(f"unknown meaning {meaning!r}; one of {', '.join(MEANINGS)}")
        from cryptography.hazmat.primitives import serialization

        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return cls(name.strip(), meaning, raw)

    def key(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.private_raw)


def content_digest(record: Mapping[str, Any]) -> str:
    """A short digest of what a record says, leaving out its chain fields (`prev`, `hash`).

    A forger who edits one record and recomputes the chain changes every later `hash`; the
    content digests of the untouched records stay the same, so the edited ones can be named.
    """
    body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def subject(trace: Trace) -> dict[str, Any]:
    """What a signature states in plain words about the trace it signs."""
    start = trace.start
    decision = trace.decision
    return {
        "trial_id": start["trial"]["id"], "rules_hash": start["trial"]["rules_hash"],
        "candidate_id": start.get("candidate_id"), "operator": start.get("operator"),
        "decision": decision["decision"] if decision else None,
    }


def signed_bytes(statement: Mapping[str, Any]) -> bytes:
    """The bytes an Ed25519 signature covers: the format line, then the canonical statement."""
    return f"{SIGNATURE_FORMAT}\n{canonical(statement)}".encode("utf-8")


def sign_trace(path: str | os.PathLike[str], signer: Signer,
               clock: Clock | None = None) -> dict[str, Any]:
    """Append a signature record to the sealed trace at `path`; returns the record.

    The file is locked while it is read and appended to, so two people signing at once each
    sign what the other appended. Raises TraceError when the file cannot be opened or the trace
    is not sealed, TraceIntegrityError when its chain is broken.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except OSError as error:
        raise TraceError(name, f"cannot open for signing: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        trace = read_trace(name)
        if not trace.sealed:
            raise TraceError(name, "is not sealed (no end record); only a finished trace is signed")
        data = Path(name).read_bytes()
        moment = (clock or (lambda: _dt.datetime.now(_dt.timezone.utc)))()
        if moment.tzinfo is None:
            raise ValueError("signature times must be timezone-aware")
        time = moment.isoformat(timespec="microseconds")
        key = signer.key()
        statement = {
            "format": SIGNATURE_FORMAT, "signer": signer.name, "meaning": signer.meaning,
            "signed_at": time, "key": fingerprint(key.public_key()),
            "public_key": public_raw_b64(key.public_key()),
            "trace_hash": hashlib.sha256(data).hexdigest(), "records": len(trace.records),
            "record_digests": [content_digest(r) for r in trace.records],
            **subject(trace),
        }
        last = trace.records[-1]
        record: dict[str, Any] = {
            "type": "signature", "seq": last["seq"] + 1, "time": time,
            "prev": last.get("hash", GENESIS), "statement": statement,
            "signature": base64.b64encode(key.sign(signed_bytes(statement))).decode("ascii"),
        }
        record["hash"] = record_hash(record)
        write_all(fd, (canonical(record) + "\n").encode("utf-8"))
        return record
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One signature record checked: its manifestation, what is wrong, and whose key it is.

    `problems` is empty when the signature is sound for this trace; `trusted_as` names the
    trusted `.pub` file holding its key, or is None.
    """

    line: int
    signer: str
    meaning: str
    signed_at: str
    fingerprint: str
    problems: tuple[str, ...]
    trusted_as: str | None

    @property
    def sound(self) -> bool:
        return not self.problems


_STATEMENT_FIELDS = ("format", "signer", "meaning", "signed_at", "key", "public_key",
                     "trace_hash", "records", "record_digests")
_RECORD_FIELDS = {"type", "seq", "time", "prev", "hash", "statement", "signature"}
_SUBJECT_WORDS = {"trial_id": "trial", "rules_hash": "rules hash", "candidate_id": "candidate id",
                  "operator": "operator", "decision": "decision"}


def check_signatures(trace: Trace, data: bytes,
                     trusted: Mapping[str, Path] | None = None) -> list[SignatureCheck]:
    """Check every signature record of `trace`, whose file bytes are `data`.

    Returns one SignatureCheck per signature, in order; each names what does not hold: the
    statement altered (the signature does not verify), records changed since signing (by
    line and type), the subject (candidate, decision, ...) differing from what was signed.
    """
    lines = data.split(b"\n")
    offsets = [0]
    for raw in lines[:-1]:
        offsets.append(offsets[-1] + len(raw) + 1)
    checks = []
    for index, record in enumerate(trace.records):
        if record["type"] == "signature":
            checks.append(_check_one(trace, index, data[:offsets[index]], record, trusted or {}))
    return checks


def _check_one(trace: Trace, index: int, before: bytes, record: Mapping[str, Any],
               trusted: Mapping[str, Path]) -> SignatureCheck:
    line = index + 1
    statement = record.get("statement")
    if not isinstance(statement, dict) or any(k not in statement for k in _STATEMENT_FIELDS) \
            or statement.get("format") != SIGNATURE_FORMAT:
        return SignatureCheck(line, "?", "?", record.get("time", "?"), "?",
                              ("not a signature statement this screener can read",), None)
    problems: list[str] = []
    extra = sorted(set(record) - _RECORD_FIELDS)
    if extra:  # the chain covers them, the signature does not: nothing unsigned may ride along
        problems.append(f"fields outside the signed statement: {', '.join(extra)}")
    print_ = str(statement["key"])
    from cryptography.exceptions import InvalidSignature

    try:
        public = public_from_b64(str(statement["public_key"]))
        signature = base64.b64decode(str(record.get("signature", "")).encode("ascii"),
                                     validate=True)
        public.verify(signature, signed_bytes(statement))
    except (ValueError, InvalidSignature):
        problems.append("the signature does not verify: its statement (name, meaning, time or "
                        "what it signs) was changed after signing")
    else:
        if fingerprint(public) != print_:
            problems.append("the key fingerprint does not match the key the signature carries")
    if statement["meaning"] not in MEANINGS:
        problems.append(f"unknown meaning {statement['meaning']!r}")
    if record.get("time") != statement["signed_at"]:
        problems.append(f"record time {record.get('time')} is not the signed time "
                        f"{statement['signed_at']}")
    if statement["trace_hash"] != hashlib.sha256(before).hexdigest() \
            or statement["records"] != index:
        problems.extend(_what_changed(trace, index, statement))
    return SignatureCheck(line, str(statement["signer"]), str(statement["meaning"]),
                          str(statement["signed_at"]), print_, tuple(problems),
                          trusted[print_].name if print_ in trusted else None)


def _what_changed(trace: Trace, index: int, statement: Mapping[str, Any]) -> list[str]:
    """Name what differs between the records a signature signed and the ones now before it."""
    out = [f"the records before it are not the ones signed (signed trace sha256 "
           f"{statement['trace_hash']}, {statement['records']} records)"]
    now = subject(Trace(trace.path, trace.records[:index], True))
    for key, word in _SUBJECT_WORDS.items():
        if key in statement and statement[key] != now[key]:
            out.append(f"{word}: signed {statement[key]!r}, the trace says {now[key]!r}")
    signed = statement["record_digests"]
    if not isinstance(signed, list):
        return out
    changed = [n for n, record in enumerate(trace.records[:index])
               if n >= len(signed) or signed[n] != content_digest(record)]
    if any(trace.records[n]["type"] != "end" for n in changed):
        # The end record holds the hash of all before it: it changes with any of them.
        changed = [n for n in changed if trace.records[n]["type"] != "end"]
    same = index - len(changed)
    if changed and same == 0:
        out.append("no record before it is one it signed: the signature was made for another "
                   "trace")
        return out
    for n in changed[:10]:
        out.append(f"line {n + 1} ({_describe(trace.records[n])}) is not the record signed")
    if len(changed) > 10:
        out.append(f"and {len(changed) - 10} more changed records")
    if len(signed) > index:
        out.append(f"{len(signed) - index} signed records are missing")
    return out


def _describe(record: Mapping[str, Any]) -> str:
    kind = str(record.get("type"))
    if kind in ("fact", "correction"):
        return f"{kind} {record.get('fact')}"
    if kind == "firing":
        return f"firing {record.get('rule')}"
    return kind
