"""Reading a trace back: the hash-chain check, the facts as last answered, corrections.

Kept apart from `screener.audit.trace` (the writer): everything here only reads, and it is what
`verify`, `explain` and letters rely on to trust a trace.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from screener.audit.shape import DEPTH_LIMIT, TraceShapeError, record_problem
from screener.audit.trace import (
    FORMAT, GENESIS, RECORD_TYPES, TraceError, TraceIntegrityError, canonical, record_hash,
)
from screener.i18n import tr


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace read back with an intact chain. `sealed` is False when the end record is absent."""

    path: str
    records: tuple[dict[str, Any], ...]
    sealed: bool

    @property
    def start(self) -> dict[str, Any]:
        return self.records[0]

    @property
    def decision(self) -> dict[str, Any] | None:
        return next((r for r in self.records if r["type"] == "decision"), None)

    @property
    def paused(self) -> dict[str, Any] | None:
        """The pause record the trace ends with (a dialog left to `screener resume`), or None."""
        last = self.records[-1]
        return last if last["type"] == "pause" else None

    @property
    def signatures(self) -> list[dict[str, Any]]:
        return self.of_type("signature")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace and check its hash chain.

    Returns the Trace (possibly unsealed); raises TraceError when the file cannot be read and
    TraceIntegrityError naming the first bad line when any record was altered, removed,
    reordered or inserted, or when anything but signature records follows the end record
    (whether a signature is sound is `screener.audit.sign`'s to check).
    """
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TraceError(name, f"cannot read: {error.strerror}") from error
    return parse_trace(name, data)


def parse_trace(name: str, data: bytes) -> Trace:
    """Check the hash chain of a trace's bytes `data` (read from `name`); as `read_trace`."""
    if not data:
        raise TraceIntegrityError(name, 1, tr("empty trace: the start record is missing"))
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    else:
        raise TraceIntegrityError(name, len(lines), tr("last line is cut off (no newline)"))
    records: list[dict[str, Any]] = []
    digest = hashlib.sha256()
    prev = GENESIS
    ended = False
    for number, raw in enumerate(lines, start=1):
        record = _parse_line(name, number, raw)
        if ended and record.get("type") != "signature":
            raise TraceIntegrityError(name, number, tr("record after the end record (only "
                                                       "signatures may follow it)"))
        if not ended and record.get("type") == "signature":
            raise TraceIntegrityError(name, number, tr("signature before the end record"))
        if record.get("seq") != number - 1:
            raise TraceIntegrityError(
                name, number, tr("sequence number {seq}, expected {expected}",
                                 seq=repr(record.get("seq")), expected=number - 1))
        if record.get("prev") != prev:
            raise TraceIntegrityError(
                name, number, tr("previous-record hash does not match: a record before this one "
                                 "was changed, removed, inserted or moved"))
        if record.get("hash") != record_hash(record):
            raise TraceIntegrityError(name, number, tr("record hash does not match its content"))
        if record.get("type") not in RECORD_TYPES:
            raise TraceIntegrityError(name, number, tr("unknown record type {kind}",
                                                             kind=repr(record.get("type"))))
        if (number == 1) != (record["type"] == "start"):
            raise TraceIntegrityError(name, number, tr("the start record must be first and only first"))
        if record["type"] == "end":
            if record.get("trace_hash") != digest.hexdigest():
                raise TraceIntegrityError(name, number, tr("trace hash does not match the records"))
            if record.get("records") != number - 1:
                raise TraceIntegrityError(name, number, tr("record count does not match"))
        if number == 1 and record.get("format") != FORMAT:
            raise TraceIntegrityError(name, 1, tr("unknown trace format {format}",
                                                        format=repr(record.get("format"))))
        if (problem := record_problem(record)) is not None:
            raise TraceShapeError(name, number, problem)
        digest.update(raw + b"\n")
        ended = ended or record["type"] == "end"
        prev = record["hash"]
        records.append(record)
    return Trace(name, tuple(records), ended)


def _parse_line(path: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        # NaN and Infinity are not JSON, and no writer of traces writes them
        record = json.loads(text, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError):
        raise TraceIntegrityError(path, number, tr("not a valid JSON record")) from None
    except RecursionError:  # json's own guard against a line nested thousands deep
        raise TraceShapeError(path, number, tr("nested deeper than {limit} levels",
                                               limit=DEPTH_LIMIT)) from None
    if not isinstance(record, dict):
        raise TraceIntegrityError(path, number, tr("not a JSON object"))
    try:
        written = canonical(record)
    except ValueError:  # a number too large for a float (1e400) reads as infinity
        written = None
    if written != text:
        # Also catches duplicate keys, which json.loads would silently collapse.
        raise TraceIntegrityError(path, number, tr("record is not in canonical form (edited)"))
    return record


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def final_facts(trace: Trace) -> dict[str, dict[str, Any]]:
    """Each fact's latest state: {'value', 'source', 'time', 'corrections': [...]}.

    Corrections keep the history in order (old, new, reason, time, and the time and source of
    the value it replaced); a correction to None means
    the answer was withdrawn and the fact is unknown again. A fact both given and derived
    (a value answered, then also computed from other answers that agree) keeps its given value and
    source.
    """
    facts: dict[str, dict[str, Any]] = {}
    for record in trace.records:
        if record["type"] == "fact":
            entry = facts.setdefault(record["fact"], {"corrections": []})
            if (_derived(record.get("source")) and entry.get("value") is not None
                    and not _derived(entry.get("source"))):
                # A value given (an answer, a batch cell) stays what the fact is: the engine
                # reads a given value and derives it only to check it agrees, so the derived
                # record of the same fact is a check, not a replacement (and replaying the
                # trace must start from the given value, as the screening did).
                continue
            entry.update(value=record["value"], source=record["source"], time=record["time"])
        elif record["type"] == "correction":
            entry = facts.setdefault(record["fact"], {"corrections": []})
            entry["corrections"].append({
                "old": record["old"], "new": record["new"], "reason": record.get("reason"),
                "time": record["time"], "old_time": entry.get("time"),
                "old_source": entry.get("source"),
            })
            entry.update(value=record["new"], time=record["time"],
                         source=record.get("source", entry.get("source", {"kind": "correction"})))
    return facts


def _derived(source: Any) -> bool:
    return isinstance(source, dict) and source.get("kind") == "derived"


def chain_reason(language: str, error: TraceIntegrityError) -> str:
    """Why the chain check failed, in `language`."""
    return error.reason_in(language)
