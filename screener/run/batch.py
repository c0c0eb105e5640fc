"""Batch screening: rows in, exactly one output record per row out, in input order.

The contract (shared/spec/batch-io.md) fixes the record: `candidate_id`, `decision`,
`failed_criteria`, `missing`, `errors`. Nothing here prints; `cli` owns the terminal.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TextIO, TypeVar

from screener.engine import Screener
from screener.errors import ConflictError, InvalidValue
from screener.i18n import site_zone
from screener.memo import PerObject
from screener.model import FactSpec, FactValue, Result, Trial
from screener.paths import PathEscape
from screener.sources.readers import Row
from screener.safe import json_text
from screener.screening_log import with_screening_log
from screener.values import (
    check_plausible, coerce, coerce_text, describe_conversion, reading, remembered_texts, text_reader,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from screener.audit.sign import Signer
    from screener.run.store import Store

COLUMNS = ("candidate_id", "decision", "failed_criteria", "missing", "errors", "warnings", "screening_log")


@dataclass
class Screened:
    """One output record, plus what the trace and letter writers need about it."""

    record: dict[str, Any]
    facts: dict[str, FactValue] = field(default_factory=dict)
    result: Result | None = None


def candidate_facts(trial: Trial, row: Row, context: Mapping[str, FactValue] | None = None,
                    shared: SharedReads | None = None) -> tuple[dict[str, FactValue], list[str]]:
    """Typed facts of a row and one error per bad value (unknown facts are absent), with the
    run's context facts. JSON and YAML rows give quantities as numbers, text or {value,
    unit} and lists natively; a CSV cell gives them as text (a list as JSON text).

    `shared`: the row's texts as read for other trials (`SharedReads`)."""
    facts: dict[str, FactValue] = {}
    errors: list[str] = []
    alike = shared.alike[trial.id] if shared is not None else ()
    fields = row.fields
    for name, spec, read_before, read_text in _facts_among(trial, tuple(fields)):
        raw = fields[name]
        if raw is None or raw == "":
            continue
        if spec.context:
            errors.append(f"{name}: a context fact is given once per run (--context "
                          f"{name}=VALUE), not in a candidate's record")
            continue
        if read_before is not None and isinstance(raw, str):
            value = read_before.get(raw, _UNREAD)  # read_value's first step
            if value is _UNREAD and name not in alike:
                try:
                    value = read_text(raw)  # and its next (no plausibility to check here)
                except InvalidValue as exc:
                    errors.append(str(exc))
                    continue
            if value is not _UNREAD:
                if value is not None:
                    facts[name] = value
                continue
        if name in alike and isinstance(raw, str):
            assert shared is not None
            value, error = shared.read(spec, raw)
        else:
            value, error = read_value(spec, raw)
        if error is not None:
            errors.append(error)
        elif value is not None:
            facts[name] = value
    facts.update(context or {})
    return facts, errors


# The fields of a row that are facts of a trial depend on the row's field names alone, which
# the rows of a file mostly share (a CSV's header): found once per trial and set of names, not
# by going through every field of every row, of which a portfolio's trials each read a third.
# Only the last names seen are kept per trial (records of other shapes, JSON ones, are looked
# through again), so that what is kept stays as small as one record, however hostile the input.
_Read = tuple[str, FactSpec, "dict[str, FactValue | None] | None", "Callable[[str], FactValue | None]"]
_last_shape: PerObject[Trial, list[Any]] = PerObject(lambda trial: [None, ()])  # [names, reads]
_UNREAD = object()


def _facts_among(trial: Trial, names: tuple[str, ...]) -> tuple[_Read, ...]:
    """The names that are facts of `trial` (its candidate id aside), in the order given, with
    their specs, the texts already read for them (`remembered_texts`; None for a fact whose
    value is checked for plausibility each time it is read) and the reader of a text not
    among them (`text_reader`)."""
    shape = _last_shape(trial)
    if shape[0] != names:
        specs = trial.facts
        shape[:] = [names, tuple(
            (name, spec, remembered_texts(spec) if spec.plausible is None else None, text_reader(spec))
            for name in names if (spec := specs.get(name)) is not None and name != trial.id_fact)]
    return shape[1]


class SharedReads:
    """One row's texts as read for several trials, so that a fact two of them declare alike
    (the same name, type, unit, range, choices: `screener.values.reading`) is read once per
    row, its value or its error. A fact declared otherwise in another trial is read for
    itself, and a list fact always is (its items are mutable: each trial gets its own)."""

    def __init__(self, trials: Iterable[Trial]):
        trials = list(trials)
        declared = Counter(reading(spec) for t in trials for spec in t.facts.values())
        self.alike = {t.id: frozenset(name for name, spec in t.facts.items()
                                      if declared[reading(spec)] > 1 and spec.type != "list")
                      for t in trials}
        self._read: dict[tuple[str, str], tuple[FactValue | None, str | None]] = {}

    def next_row(self) -> SharedReads:
        """Forget the last row's texts: one row's are kept, however long the run."""
        self._read.clear()
        return self

    def read(self, spec: FactSpec, text: str) -> tuple[FactValue | None, str | None]:
        """The value of `text` for `spec`, or the error naming the fact and the value."""
        key = (reading(spec), text)
        known = self._read.get(key)
        if known is None:
            known = self._read[key] = read_value(spec, text)
        return known


def read_value(spec: FactSpec, raw: Any) -> tuple[FactValue | None, str | None]:
    """The value of one cell or field of a record for `spec`, checked for plausibility, or
    the error naming the fact and the value."""
    try:
        # a text (every CSV cell) is read once per fact and run, then remembered
        value = coerce_text(spec, raw) if isinstance(raw, str) else coerce(spec, raw)
        if spec.plausible is not None:
            check_plausible(spec, raw, value)
    except InvalidValue as exc:
        return None, str(exc)
    return value, None


@dataclass(frozen=True)
class AuditOptions:
    """Where `--traces` / `--letters` go, and what every trace and letter records."""

    traces_dir: str
    letters_dir: str | None
    operator: str | None
    input_name: str  # the input file as the operator named it ("-" for standard input)
    language: str = "en"  # of the letters, recorded in every trace
    # trial id -> that trial's wording in `language` (its dialog file's), when there is one
    wordings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    zone: str | None = None  # the time zone letters show times in (None: TZ, else the system's)
    signer: Signer | None = None  # --sign-key: each trace is signed as it is sealed


def write_audit(trial: Trial, row: Row, screened: Screened, options: AuditOptions) -> str | None:
    """Write the candidate's trace (and letters). Returns a warning, or None when written.

    Error records get no trace: they have no decision to audit. Warnings name the row, never
    the candidate's data.
    """
    from screener.audit.artifacts import write_candidate_artifacts
    from screener.audit.trace import Source, TraceError

    if screened.result is None:
        return f"row {row.number}: no trace for an error record"
    sources: dict[str, tuple[Any, Any]] = {}
    for name, value in screened.facts.items():
        column = row.columns.get(name)
        source = Source.batch(options.input_name, row.number, f"{column} ({name})" if column else name)
        provenance = getattr(row, "sources", {}).get(name)
        if trial.facts[name].context:
            source = Source.context(name)
        elif provenance is not None:
            from screener.sources.merge import trace_source

            source = trace_source(provenance, source)
        elif (converted := describe_conversion(trial.facts[name], row.fields.get(name))) is not None:
            source = dataclasses.replace(source, given=converted.given_text)
        sources[name] = (value, source)
    try:
        write_candidate_artifacts(
            trial, str(screened.record["candidate_id"]), sources, screened.result,
            options.traces_dir, options.letters_dir, options.operator,
            dt.datetime.now(dt.timezone.utc), input_file=options.input_name,
            language=options.language, wording=options.wordings.get(trial.id),
            zone=site_zone(options.zone), signer=options.signer,
        )
    except (TraceError, PathEscape, OSError) as exc:
        return f"row {row.number}: trace not written: {type(exc).__name__}: " + (
            "a file for this candidate id exists already" if isinstance(exc, TraceError)
            else "its file name would lead out of the folder" if isinstance(exc, PathEscape)
            else str(exc.strerror))
    return None


def _id_of(trial: Trial, row: Row) -> Any:
    value = row.fields.get(trial.id_fact)
    return "" if value is None else value


def screen_row(trial: Trial, screener: Screener, row: Row,
               context: Mapping[str, FactValue] | None = None, store: Store | None = None,
               shared: SharedReads | None = None) -> Screened:
    """Screen one row. Never raises for bad data: that becomes an `error` record. The record
    ends with its screening-log category (`screener.screening_log`).

    With a `store`, a candidate whose facts and trial's rules are unchanged since the store
    last saw them gets the stored record (no decision is made again, so no result either).
    `shared`: the row's texts as read for other trials (`candidate_facts`)."""
    if store is None:
        return _logged(trial, _screen_row(trial, screener, row, _id_of(trial, row),
                                          candidate_facts(trial, row, context, shared)))
    key, read = store_key(trial, row, context, store, shared)
    if key is None:
        return _logged(trial, _screen_row(trial, screener, row, _id_of(trial, row), read))
    if (record := store.lookup(*key)) is not None:
        return Screened(record, read[0])
    screened = _logged(trial, _screen_row(trial, screener, row, key[0], read))
    store.remember(*key, screened.record)
    return screened


def store_key(trial: Trial, row: Row, context: Mapping[str, FactValue] | None, store: Store,
              shared: SharedReads | None = None,
              ) -> tuple[tuple[Any, str, str, str] | None, tuple[dict[str, FactValue], Any]]:
    """The key of the row's screening for `trial` in `store` (candidate id, trial, a keyed hash
    of what was read, the rules' key), and what was read (`candidate_facts`). The key is None,
    and counted, for a row without a usable candidate id: such a row is never stored."""
    from screener.run.store import rules_key

    read = candidate_facts(trial, row, context, shared)
    candidate_id = _id_of(trial, row)
    if (not isinstance(candidate_id, (str, int)) or isinstance(candidate_id, bool)
            or (isinstance(candidate_id, str) and not candidate_id.strip())):  # no id: nothing to key
        store.counts.unkeyed += 1
        return None, read
    facts, value_errors = read
    seen = [row.problem, facts, value_errors, getattr(row, "sources", None)]
    return (candidate_id, trial.id, store.facts_hash(candidate_id, seen), rules_key(trial.content_hash)), read


def _logged(trial: Trial, screened: Screened) -> Screened:
    with_screening_log(trial, screened.record)
    return screened


def _screen_row(trial: Trial, screener: Screener, row: Row, candidate_id: Any,
                read: tuple[dict[str, FactValue], list[str]]) -> Screened:
    errors: list[str] = []
    if row.problem:
        errors.append(row.problem)  # it says why the id may be unreadable too
    elif candidate_id == "" or (isinstance(candidate_id, str) and not candidate_id.strip()):
        errors.append(f"{trial.id_fact}: missing: every candidate needs an id")
    elif not isinstance(candidate_id, (str, int)) or isinstance(candidate_id, bool):
        errors.append(f"{trial.id_fact}: {candidate_id!r}: expected text")
    facts, value_errors = read  # the typed facts and the value errors, read once
    errors.extend(value_errors)
    sources = getattr(row, "sources", None)  # joined inputs: where each fact came from
    if errors:
        return Screened(_sourced(_record(candidate_id, "error", errors=errors), sources), facts)
    try:
        result = screener.evaluate(facts)
    except ConflictError as exc:  # one message per contradiction, in the trial's fact order
        return Screened(_sourced(_record(candidate_id, "error", errors=[str(e) for e in exc.each]), sources),
                        facts)
    missing = list(result.missing) if result.decision == "undetermined" else []
    record = _record(candidate_id, result.decision, list(result.failed), missing,
                     warnings=list(result.warnings))
    return Screened(_sourced(record, sources), facts, result=result)


def _sourced(record: dict[str, Any], sources: Any) -> dict[str, Any]:
    """The record with a `sources` field (fact -> provenance) when the row has one."""
    if isinstance(sources, dict):
        record["sources"] = sources
    return record


def _record(candidate_id: Any, decision: str, failed: list[str] | None = None,
            missing: list[str] | None = None, errors: list[str] | None = None,
            warnings: list[str] | None = None) -> dict[str, Any]:
    return {
        "candidate_id": candidate_id,
        "decision": decision,
        "failed_criteria": failed or [],
        "missing": missing or [],
        "errors": errors or [],
        "warnings": warnings or [],
    }


def unknown_fields(trial: Trial, row: Row) -> list[str]:
    """The row's field names that are not facts of the trial, in the row's order."""
    return unknown_to_all((trial,), row)


# The unknown fields of the last row seen, with its trials and names (as `_last_shape` keeps them).
_unknown_of_shape: list[tuple[tuple[Trial, ...], tuple[str, ...], tuple[str, ...]]] = []


def unknown_to_all(trials: Iterable[Trial], row: Row) -> list[str]:
    """Field names of the row that are facts of none of the trials, in the row's order."""
    trials = tuple(trials)
    names = tuple(row.fields)
    for known_trials, known_names, unknown_names in _unknown_of_shape:
        if known_names == names and (known_trials is trials or len(known_trials) == len(trials)
                                     and all(a is b for a, b in zip(known_trials, trials))):
            return list(unknown_names)
    unknown: Any = row.fields.keys()
    for trial in trials:  # set differences in C: a row of a portfolio has a hundred fields or more
        unknown = unknown - trial.facts.keys()
    found = tuple(name for name in names if name in unknown)
    _unknown_of_shape[:] = [(trials, names, found)]
    return list(found)


class Summary:
    """Counts per decision and per failed criterion; field names seen that are not facts."""

    def __init__(self) -> None:
        self.decisions: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.unknown_fields: set[str] = set()
        self.warnings: list[str] = []
        self.unwritten = 0  # screened candidates whose requested trace or letter is missing

    def add(self, record: dict[str, Any]) -> None:
        self.decisions[record["decision"]] += 1
        counts = self.failed
        for criterion in record["failed_criteria"]:  # (Counter.update's checks cost more, per record)
            counts[criterion] += 1

    @property
    def total(self) -> int:
        return sum(self.decisions.values())


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """`cell` with a leading `'` when a spreadsheet would read it as a formula (OWASP)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


_CSV_SPECIAL = re.compile(r'[,"\r\n]')


def _csv_cell(cell: str) -> str:
    """A CSV cell, quoted when it holds a comma, a quote or any line break (a bare carriage
    return too, which `csv.writer` leaves unquoted when lines end with a line feed)."""
    return '"' + cell.replace('"', '""') + '"' if _CSV_SPECIAL.search(cell) else cell


class Writer:
    """Writes records as JSONL or CSV (lists joined with ';')."""

    def __init__(self, stream: TextIO, fmt: str, columns: tuple[str, ...] = COLUMNS):
        self.stream = stream
        self.fmt = fmt
        self.columns = columns
        if fmt == "csv":
            stream.write(",".join(columns) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.stream.write(",".join(
                _csv_cell(spreadsheet_safe(";".join(map(str, v)) if isinstance(v, list) else
                                           json_text(v) if isinstance(v, dict) else str(v)))
                for v in (record.get(c, "") for c in self.columns)
            ) + "\n")
        else:
            self.stream.write(json_text(record) + "\n")  # controls from input as \\u escapes


def open_private(path: str) -> TextIO:
    """Create or truncate `path` readable and writable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    return io.open(fd, "w", encoding="utf-8", newline="")


def screen_rows(trial: Trial, rows: Iterable[Row], summary: Summary,
                audit: AuditOptions | None = None,
                context: Mapping[str, FactValue] | None = None,
                store: Store | None = None) -> Iterator[dict[str, Any]]:
    """Screen rows in this process; yields output records in input order (reusing the
    `store`'s records of unchanged candidates when there is one)."""
    screener = Screener(trial, firings=audit is not None)  # firings are a trace's material
    for row in rows:
        summary.unknown_fields.update(unknown_fields(trial, row))
        screened = screen_row(trial, screener, row, context, store)
        if audit is not None and (warning := write_audit(trial, row, screened, audit)):
            summary.warnings.append(warning)
            summary.unwritten += screened.result is not None
        summary.add(screened.record)
        yield screened.record


# --- several processes -------------------------------------------------------------------

_worker: tuple[Trial, Screener, AuditOptions | None, Mapping[str, FactValue]] | None = None


def _init_worker(rules_path: str, audit: AuditOptions | None,
                 context: Mapping[str, FactValue] | None = None) -> None:
    global _worker
    import signal

    from screener.rules.check import load_trial

    # Ctrl-C reaches the whole process group: the parent alone reports it and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    trial = load_trial(rules_path)
    _worker = (trial, Screener(trial, firings=audit is not None), audit, context or {})


def _screen_chunk(rows: list[Row]) -> list[tuple[dict[str, Any], list[str], str | None]]:
    assert _worker is not None
    trial, screener, audit, context = _worker
    out = []
    for row in rows:
        screened = screen_row(trial, screener, row, context)
        warning = write_audit(trial, row, screened, audit) if audit is not None else None
        out.append((screened.record, unknown_fields(trial, row), warning))
    return out


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter), taken as they come."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def screen_rows_parallel(trial: Trial, rules_path: str, rows: Iterable[Row], summary: Summary,
                         jobs: int, audit: AuditOptions | None = None,
                         chunk_size: int = 256,
                         context: Mapping[str, FactValue] | None = None) -> Iterator[dict[str, Any]]:
    """Screen rows in `jobs` worker processes; yields records in input order.

    Each worker loads the rules itself and keeps one durable-rules session live at a time.
    At most a few chunks per worker are in flight, so memory stays flat.
    """
    for chunk in chunk_results(rows, jobs, chunk_size, _init_worker, (rules_path, audit, context),
                               _screen_chunk):
        for record, unknown, warning in chunk:
            summary.unknown_fields.update(unknown)
            if warning:
                summary.warnings.append(warning)
                summary.unwritten += record["decision"] != "error"
            summary.add(record)
            yield record


def chunk_results(rows: Iterable[Row], jobs: int, chunk_size: int, initializer: Any,
                  initargs: tuple[Any, ...], work: Any) -> Iterator[Any]:
    """`work(chunk)` for each chunk of `rows`, in `jobs` spawned worker processes set up by
    `initializer(*initargs)`; yields the results in input order, with at most a few chunks
    per worker in flight, so memory stays flat whatever the input's size.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    from screener.run.workers import start_worker

    spawn = multiprocessing.get_context("spawn")
    # An executor, not a Pool: when a worker dies (killed, out of memory) its chunk raises
    # BrokenProcessPool instead of waiting for ever. And when this process dies, the workers
    # end too (start_worker), instead of holding the caller's output open for ever.
    pool = ProcessPoolExecutor(jobs, mp_context=spawn, initializer=start_worker,
                               initargs=(os.getpid(), initializer, initargs))
    finished = False
    stderr, sys.stderr = sys.stderr, _WithoutPoolNoise(sys.stderr)
    try:
        in_flight: deque[Any] = deque()
        for chunk in chunks(rows, chunk_size):
            in_flight.append(pool.submit(work, chunk))
            if len(in_flight) >= 3 * jobs:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
        finished = True
    finally:
        # Waited for even when the pool broke, so that its threads are done before standard
        # error is handed back.
        pool.shutdown(wait=True, cancel_futures=not finished)
        sys.stderr = stderr


class _WithoutPoolNoise:
    """Standard error while a worker pool runs, without what the pool's own threads print.

    When a worker dies, the thread that feeds the pool's queue can fail on the pipe the pool
    is closing, and the standard library prints that traceback to standard error from that
    thread: no traceback may reach a user (the failure itself is reported, and logged, by the
    command). Everything else written, from any other thread, goes through unchanged.
    """

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        thread = threading.current_thread()
        if thread.name == "QueueFeederThread" or type(thread).__name__ == "_ExecutorManagerThread":
            return len(text)
        return int(self._stream.write(text))

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
