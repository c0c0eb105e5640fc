"""The screening store (`--store FILE`): re-screen only what changed since the last run.

For each candidate and trial the store keeps a keyed hash of what the screening read (the
candidate's facts after reading and conversion, the value errors, the run's context facts),
the hash of the trial's rules (with the screener's version), and the output record. A later
run reuses a record when both hashes are unchanged: the engine is deterministic, so the
record is the one a full run would write. It screens again a candidate whose facts changed,
and every candidate of a trial whose rules changed (a protocol amendment).

The store holds nothing about a candidate that the results file does not: the records
themselves, and hashes keyed with a random secret of the store (not a bare digest of the
facts, which could be matched against another store or a table of likely values). It is
created readable and writable by its owner only. A run changes it in one SQLite
transaction, committed just before the results file is kept: a run that is interrupted or
crashes leaves the store as it was.

It also remembers each record's decision before the run that last changed it, so that
`screener changes --store FILE` lists who changed decision in the latest run.
"""
from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from screener import __version__
from screener.errors import ScreenerError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (run INTEGER PRIMARY KEY, finished TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS screenings (
    candidate TEXT NOT NULL,      -- the candidate id as JSON (12 and "12" are two ids)
    trial TEXT NOT NULL,
    facts_hash TEXT NOT NULL,
    rules_hash TEXT NOT NULL,
    record TEXT NOT NULL,         -- the output record as JSON, as the results file has it
    decision TEXT NOT NULL,
    before TEXT,                  -- the decision before the run that changed it
    changed_run INTEGER,          -- that run
    PRIMARY KEY (candidate, trial)
);
"""


class StoreError(ScreenerError):
    """The store file cannot be opened or is not a screening store."""


class StoreUnwritable(OSError):
    """The store failed during a run (a full disk, an I/O error): the run is not kept."""


def _written(method: Any) -> Any:
    """`method` with SQLite's failures raised as StoreUnwritable naming the store."""
    def wrapper(self: Store, *args: Any) -> Any:
        try:
            return method(self, *args)
        except sqlite3.Error as exc:
            raise StoreUnwritable(0, f"the store {self.path}: {exc}") from None
    wrapper.__doc__ = method.__doc__
    return wrapper


def _canonical(value: Any) -> Any:
    """A JSON-able form of a fact value that tells every type apart (True from 1, a
    Decimal 1.0 from 1.00, a date from its text)."""
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, enum.Enum):
        return ["e", type(value).__name__, value.value]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, decimal.Decimal):
        return ["d", str(value)]
    if isinstance(value, dt.datetime):
        return ["t", value.isoformat()]
    if isinstance(value, dt.date):
        return ["D", value.isoformat()]
    if isinstance(value, str):
        return ["s", value]
    if value is None:
        return None
    if isinstance(value, Mapping):
        return ["m", [[str(k), _canonical(v)] for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]]
    if isinstance(value, (list, tuple)):
        return ["l", [_canonical(v) for v in value]]
    return ["?", type(value).__name__, repr(value)]


def rules_key(content_hash: str) -> str:
    """The rules part of a key: the rules file's hash and the screener's version (a new
    screener may decide differently, so nothing is trusted across versions)."""
    return f"{content_hash}:{__version__}"


@dataclass
class Counts:
    """What a run did with the store, per candidate and trial."""

    reused: int = 0
    new: int = 0  # never screened for that trial before
    facts_changed: int = 0
    rules_changed: int = 0
    unkeyed: int = 0  # rows without a usable candidate id: screened, never stored
    changed_trials: set[str] = field(default_factory=set)

    @property
    def screened(self) -> int:
        return self.new + self.facts_changed + self.rules_changed + self.unkeyed


class Store:
    """One open store; `lookup` and `remember` during a run, then `commit` or `rollback`."""

    def __init__(self, path: str):
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
            os.close(fd)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use {path} as a screening store: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
            row = self._db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        self._secret = bytes.fromhex(row[0])
        self.counts = Counts()
        self._run: int | None = None

    # --- during a run ------------------------------------------------------------------

    def begin(self) -> None:
        """Start the run's transaction (nothing is visible to others until `commit`).
        Raises StoreError when another run holds the store."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path} is in use by another run ({exc})") from None
        last = self._db.execute("SELECT max(run) FROM runs").fetchone()[0]
        self._run = (last or 0) + 1

    def facts_hash(self, candidate_id: Any, read: Any) -> str:
        """The keyed hash of what a screening of this candidate reads."""
        text = json.dumps([_canonical(candidate_id), _canonical(read)], separators=(",", ":"))
        return hashlib.blake2b(text.encode("utf-8"), key=self._secret, digest_size=32).hexdigest()

    @_written
    def lookup(self, candidate_id: Any, trial_id: str, facts_hash: str, rules_hash: str
               ) -> dict[str, Any] | None:
        """The stored record when facts and rules are unchanged; else None (and counted)."""
        row = self._db.execute(
            "SELECT facts_hash, rules_hash, record FROM screenings WHERE candidate = ? AND trial = ?",
            (_key(candidate_id), trial_id)).fetchone()
        if row is not None and row[0] == facts_hash and row[1] == rules_hash:
            self.counts.reused += 1
            return dict(json.loads(row[2]))
        if row is None:
            self.counts.new += 1
        elif row[1] != rules_hash:
            self.counts.rules_changed += 1
            self.counts.changed_trials.add(trial_id)
        else:
            self.counts.facts_changed += 1
        return None

    @_written
    def remember(self, candidate_id: Any, trial_id: str, facts_hash: str, rules_hash: str,
                 record: Mapping[str, Any]) -> None:
        """Keep a fresh record; a changed decision is noted for `changes`."""
        key = _key(candidate_id)
        decision = str(record["decision"])
        old = self._db.execute("SELECT decision, before, changed_run FROM screenings "
                               "WHERE candidate = ? AND trial = ?", (key, trial_id)).fetchone()
        before, changed_run = (None, None) if old is None else (old[1], old[2])
        if old is not None and old[0] != decision:
            before, changed_run = old[0], self._run
        self._db.execute(
            "INSERT OR REPLACE INTO screenings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, trial_id, facts_hash, rules_hash, json.dumps(record),
             decision, before, changed_run))

    @_written
    def commit(self) -> None:
        """Keep the run: its records and its number, in one transaction."""
        self._db.execute("INSERT INTO runs VALUES (?, ?)",
                         (self._run, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        """Forget the run: the store stays as it was before it."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self.rollback()
        self._db.close()

    # --- after a run -------------------------------------------------------------------

    def changes(self) -> Iterator[tuple[Any, str, str, str]]:
        """(candidate id, trial id, decision before, decision now) for each record whose
        decision changed in the latest run, in candidate then trial order."""
        last = self._db.execute("SELECT max(run) FROM runs").fetchone()[0]
        if last is None:
            return
        for candidate, trial, before, now in self._db.execute(
                "SELECT candidate, trial, before, decision FROM screenings WHERE changed_run = ? "
                "ORDER BY candidate, trial", (last,)):
            yield json.loads(candidate), trial, before, now

    def runs(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM runs").fetchone()[0])


def _key(candidate_id: Any) -> str:
    return json.dumps(candidate_id)  # ASCII: a lone surrogate from input is kept as an escape


def open_store(path: str) -> Store:
    """Open (or create) the store at `path`; raises StoreError when it is no store."""
    store = Store(path)
    try:
        store._db.execute("SELECT count(*) FROM screenings").fetchone()
    except sqlite3.Error as exc:  # pragma: no cover - schema created above
        store._db.close()
        raise StoreError(f"{path} is not a screening store: {exc}") from None
    return store
