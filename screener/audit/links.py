"""Links between the traces of one screening: a reopened (or re-recorded) screening's new trace
names the earlier one it takes up, and `verify` checks that the earlier one is still what it
was when the new one began.

A link (in the start record's `continues`) names the earlier trace's file and the record
count and last record hash it had then. The last hash commits to every record before it
through the chain, so the link holds as long as the earlier trace's first `records` records
are unchanged; signatures appended to it afterwards (a counter-signature) do not break it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from screener.audit.chain import Trace, read_trace
from screener.audit.trace import TraceError, TraceIntegrityError

INTACT, MISSING, ALTERED, OTHER = "intact", "missing", "altered", "other"
BEFORE = "before"  # the earlier trace was already missing or changed when the link was made


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """One link checked: the earlier trace as named, where it was found, and its state:
    `intact` (it still holds the records the link names), `missing` (not found: nothing to
    check), `altered` (its chain is broken or its records differ from the link's), `other`
    (it is the record of another screening: another trial or candidate), `before` (it was
    already missing or changed when the new trace began, as the link records: a screening
    recorded anew because its trace could not go on; not checked)."""

    named: str
    found: str | None
    state: str
    records: int
    last_hash: str
    sealed: bool
    detail: str = ""

    @property
    def holds(self) -> bool:
        """False when the earlier trace was found and does not match the link."""
        return self.state in (INTACT, MISSING, BEFORE)


def link(path: str, records: int, last_hash: str, sealed: bool) -> dict[str, Any]:
    """The `continues` entry for an earlier trace at `path` that held `records` records, the
    last with hash `last_hash`, sealed or not. When the file no longer holds those records
    now (it was removed or changed: the reason a screening is recorded anew), the entry says
    so (`when_linked`: missing or altered), so that the new trace stays verifiable."""
    entry: dict[str, Any] = {"path": os.path.abspath(path), "records": records,
                             "last_hash": last_hash, "sealed": sealed}
    state = _state(Path(path), records, last_hash)
    if state != INTACT:
        entry["when_linked"] = state
    return entry


def _state(path: Path, records: int, last_hash: str) -> str:
    """Whether the trace at `path` holds `records` records, the last with `last_hash`."""
    if not path.is_file():
        return MISSING
    try:
        earlier = read_trace(path)
    except (TraceError, TraceIntegrityError):
        return ALTERED
    if records < 1 or len(earlier.records) < records or earlier.records[records - 1]["hash"] != last_hash:
        return ALTERED
    return INTACT


def check_links(trace: Trace) -> list[LinkCheck]:
    """Each earlier trace `trace` continues, looked for where the link names it, then beside
    `trace` under the same file name, and checked against the link."""
    return [_check(trace, entry) for entry in trace.start.get("continues") or ()
            if isinstance(entry, dict)]


def _check(trace: Trace, entry: dict[str, Any]) -> LinkCheck:
    named = str(entry.get("path", ""))
    records, last_hash = entry.get("records"), str(entry.get("last_hash", ""))
    sealed = bool(entry.get("sealed"))
    count = records if isinstance(records, int) and not isinstance(records, bool) else 0
    if entry.get("when_linked") in (MISSING, ALTERED):
        return LinkCheck(named, None, BEFORE, count, last_hash, sealed, str(entry["when_linked"]))
    places = [Path(named), Path(trace.path).parent / Path(named).name]
    found = next((place for place in places if named and place.is_file()), None)
    if found is None:
        return LinkCheck(named, None, MISSING, count, last_hash, sealed)

    def made(state: str, detail: str = "") -> LinkCheck:
        return LinkCheck(named, os.fspath(found), state, count, last_hash, sealed, detail)

    try:
        earlier = read_trace(found)
    except TraceIntegrityError as error:
        return made(ALTERED, f"line {error.line}: {error.reason}")
    except TraceError as error:
        return made(MISSING, error.message)
    if count < 1 or len(earlier.records) < count or earlier.records[count - 1]["hash"] != last_hash:
        return made(ALTERED, f"its record {count} is not the one the link names")
    same = earlier.start.get("candidate_id") == trace.start.get("candidate_id") and \
        _trial_id(earlier) == _trial_id(trace)
    return made(INTACT if same else OTHER)


def _trial_id(trace: Trace) -> Any:
    trial = trace.start.get("trial")
    return trial.get("id") if isinstance(trial, dict) else None
