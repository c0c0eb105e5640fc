"""Decision traces: one append-only, hash-chained JSON Lines file per screening.

A trace is the versioned decision record of one screening. Each line is one record, written
in canonical JSON (sorted keys, no spaces) and flushed to disk before the screening goes on.
Every record carries `seq`, `time`, `prev` (the hash of the record before it; zeros for the
first) and `hash` (sha256 of the record's canonical JSON without `hash`). The `end` record,
last but for signatures, also carries `trace_hash`: the sha256 of every byte before it.
Changing, removing, reordering or inserting a record, or cutting the file short, breaks the
chain; only signature records may follow `end`.

Record types, in the order a screening writes them:
  start       trial identity and rules hash, screener version, operator (and the investigator,
              when named apart), criteria and facts, the screening's language and, from a
              dialog file, its wording of the trial
  fact        a fact's value and where it came from (`Source`)
  correction  a fact changed: old value, new value, reason
  firing      a rule the engine fired: rule id, criterion, outcome, facts read, facts derived
  decision    decision, outcomes, failed criteria, missing facts, derived facts
  pause       the dialog stopped before its decision: `reason` is quit, interrupt or eof
  resume      the same dialog went on (`screener resume`), with the operator who continued
              and, for a reopened screening, the reason given
  end         record count and hash of everything before it
  signature   after `end` only, any number: a person's signature over everything before it
              (`screener.audit.sign`), so counter-signatures can be added later

A paused dialog leaves its trace without an end record, a valid prefix of the chain; `screener
resume` appends to the same file (after checking that it still ends where the session left it)
and seals it when the screening finishes.

Reading a trace back and checking its chain is `screener.audit.chain`; replaying it through
the rules is `screener.audit.replay`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from screener import __version__
from screener.errors import ScreenerError
from screener.i18n import Message
from screener.model import Result, Trial
from screener.values import to_json

FORMAT = "screener-trace/1"
GENESIS = "0" * 64
RECORD_TYPES = ("start", "fact", "correction", "firing", "decision", "pause", "resume", "end",
                "signature")
PAUSE_REASONS = ("quit", "interrupt", "eof")

Clock = Callable[[], _dt.datetime]


class TraceError(ScreenerError):
    """A trace cannot be written or read (exists already, unreadable, wrong format)."""

    code = "trace"

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class TraceIntegrityError(ScreenerError):
    """The hash chain is broken: `line` is the first bad record (1-based), `reason` says how."""

    code = "trace-tampered"

    def __init__(self, path: str, line: int, reason: str | Message):
        self.path = path
        self.line = line
        self.reason = str(reason)  # English
        self.message = reason if isinstance(reason, Message) else None
        super().__init__(f"{path}:{line}: {reason}")

    def reason_in(self, language: str) -> str:
        """The reason in `language` (English when it was not given as a message)."""
        return self.message.in_language(language) if self.message else self.reason


SOURCE_KINDS = ("dialog", "batch", "answers_file", "derived", "context", "record")
_KIND_ALIASES = {"answers": "answers_file"}  # the dialog's word for an answers file
_SOURCE_FIELDS = ("file", "row", "column", "line", "question", "rule", "note", "given")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a fact's value came from.

    `kind` is one of SOURCE_KINDS; the other fields say where exactly (batch: file, row and
    column; answers file: file and line; dialog: the question; derived: the rule and the
    facts it read); `note` holds a free-text location when nothing finer is known; `given`
    holds the value as the source wrote it when it was converted (a quantity in another
    unit: "1.5 mg/dL", recorded beside the value in the fact's own unit).
    """

    kind: str
    file: str = ""
    row: int | None = None
    column: str = ""
    line: int | None = None
    question: str = ""
    rule: str = ""
    inputs: tuple[str, ...] = ()
    note: str = ""
    given: str = ""

    @classmethod
    def dialog(cls, question: str = "") -> "Source":
        return cls("dialog", question=question)

    @classmethod
    def batch(cls, file: str, row: int, column: str) -> "Source":
        return cls("batch", file=file, row=row, column=column)

    @classmethod
    def answers_file(cls, file: str, line: int | None = None) -> "Source":
        return cls("answers_file", file=file, line=line)

    @classmethod
    def context(cls, fact: str) -> "Source":
        """A context fact of the run (`--context NAME=VALUE`), the same for every candidate."""
        return cls("context", note=f"--context {fact}")

    @classmethod
    def derived(cls, rule: str, inputs: Iterable[str]) -> "Source":
        return cls("derived", rule=rule, inputs=tuple(inputs))

    @classmethod
    def coerce(cls, source: "Source | Mapping[str, Any] | str | None",
               default_kind: str = "unspecified") -> "Source":
        """Return `source` as a Source.

        A string naming a kind (`"dialog"`, or `"answers"`) is that kind; any other string is the
        `note` of a `default_kind` source (e.g. `"row 3, column 5"` from a batch reader).
        A mapping is read field by field; unknown fields are ignored.
        """
        if isinstance(source, Source):
            return source
        if source is None or source == "":
            return cls(default_kind)
        if isinstance(source, str):
            kind = _KIND_ALIASES.get(source, source)
            return cls(kind) if kind in SOURCE_KINDS else cls(default_kind, note=source)
        data = {k: source[k] for k in _SOURCE_FIELDS if k in source}
        return cls(str(source.get("kind", default_kind)),
                   inputs=tuple(source.get("inputs", ())), **data)

    def to_json(self) -> dict[str, Any]:
        """The source as a JSON object, leaving out empty fields."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in _SOURCE_FIELDS:
            value = getattr(self, name)
            if value not in ("", None):
                out[name] = value
        if self.inputs:
            out["inputs"] = list(self.inputs)
        return out

    def describe(self) -> str:
        """A short human-readable description, e.g. `batch input.csv row 3, column weight`."""
        if self.kind == "batch":
            where = ", ".join(part for part in (
                f"row {self.row}" if self.row is not None else "",
                f"column {self.column}" if self.column else "", self.note) if part)
            return " ".join(part for part in ("batch", self.file, where) if part)
        if self.kind == "record":  # a patient record (FHIR): the resource, where it was read, its date
            where = f" ({self.file})" if self.file else ""
            return " ".join(part for part in (f"from the record {self.column}{where}".rstrip(), self.note) if part)
        if self.kind == "answers_file":
            where = f" line {self.line}" if self.line is not None else ""
            text = f"answers file {self.file}{where}"
        elif self.kind == "dialog":
            text = f"dialog answer ({self.question})" if self.question else "dialog answer"
        elif self.kind == "derived":
            text = f"derived by {self.rule} from {', '.join(self.inputs) or 'no facts'}"
        else:
            text = self.kind
        return f"{text} ({self.note})" if self.note else text

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Source":
        """The Source a `to_json` object describes."""
        return cls.coerce(data)


def to_json_value(value: Any) -> Any:
    """A fact value as JSON: dates become ISO strings; containers are converted deeply."""
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return to_json(value)


def canonical(record: Mapping[str, Any]) -> str:
    """The canonical JSON text of a record: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 (hex) of the record's canonical JSON without its `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a file's bytes; what `sha256sum` prints."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _time_text(moment: _dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("trace times must be timezone-aware")
    return moment.isoformat(timespec="microseconds")


def create_exclusive(path: str | os.PathLike[str]) -> int:
    """Create `path` for writing, mode 0600, refusing to reuse or follow an existing path.

    Returns the open file descriptor; raises TraceError when the path exists.
    """
    try:
        return os.open(os.fspath(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise TraceError(os.fspath(path), "already exists; audit files are never overwritten")
    except OSError as error:
        raise TraceError(os.fspath(path), f"cannot create: {error.strerror}") from error


def write_all(fd: int, data: bytes, sync: bool = True) -> None:
    """Write every byte to `fd`, then fsync it unless `sync` is False."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    if sync:
        os.fsync(fd)


def trial_header(trial: Trial) -> dict[str, Any]:
    """What the start record says about the trial, enough to render letters from the trace."""
    return {
        "id": trial.id,
        "title": trial.title,
        "version": trial.version,
        "rules_file": Path(trial.path).name,
        "rules_hash": trial.content_hash,
        "id_fact": trial.id_fact,
        "criteria": [
            {
                "id": c.id, "kind": c.kind, "title": c.title, "protocol": c.protocol,
                "note": c.note, "condition": c.condition_text,
                "facts": list(trial.expanded_facts(c)),
            }
            for c in trial.criteria
        ],
        "facts": {
            name: {"type": spec.type, "description": spec.description, "unit": spec.unit}
            for name, spec in sorted(trial.facts.items())
        },
    }


@dataclass
class TraceWriter:
    """Appends hash-chained records to a new trace file, one fsync'd line per record.

    With `sync_each=False` (batch, whose input file still holds every answer) each record is
    written at once but fsync'd only at the seal: a crash then leaves an unsealed trace that
    is not verified, and one fsync per candidate instead of one per record.

    Create with `TraceWriter.create(path, trial, ...)`; it writes the start record at once.
    `TraceWriter.continuing(...)` goes on with a paused one. Call `seal()` at the end; a trace
    never sealed is reported by verification as incomplete.
    """

    path: str
    fd: int
    clock: Clock = _utc_now
    seq: int = 0
    prev: str = GENESIS
    _digest: Any = field(default_factory=hashlib.sha256)
    sealed: bool = False
    sync_each: bool = True

    @classmethod
    def create(cls, path: str | os.PathLike[str], trial: Trial, *, operator: str | None = None,
               investigator: str | None = None, candidate_id: str | None = None, mode: str = "dialog",
               clock: Clock | None = None, sync_each: bool = True, language: str = "en",
               wording: Mapping[str, Any] | None = None,
               continues: Iterable[Mapping[str, Any]] = (), zone: str | None = None) -> "TraceWriter":
        """Create the file (0600, never overwriting) and write the start record.

        `language` is the screening's language; `wording` the trial's wording in it (criterion
        titles, protocol translations, notes, clinical labels: `DialogSpec.wording()`), so that
        letters and explanations rendered from the trace alone speak that language.
        `continues` links the earlier traces of the same screening that this one takes up
        (`screener resume ID --trace NEW`): each names the file and the record count and last
        record hash it had, which commit to every record in it (`screener.audit.links`).
        `zone` names the time zone the screening shows times in (`screener.i18n.zone_name`),
        which `explain` and `verify` use unless told otherwise. `investigator` (when given) is
        who answers for the decision and signs its letter, if not the operator.
        Returns the writer; raises TraceError when the file exists or cannot be created.
        """
        fd = create_exclusive(path)
        writer = cls(os.fspath(path), fd, clock or _utc_now, sync_each=sync_each)
        start: dict[str, Any] = {
            "format": FORMAT, "screener_version": __version__, "mode": mode,
            "operator": operator, "candidate_id": candidate_id, "trial": trial_header(trial),
            "language": language,
        }
        if investigator:
            start["investigator"] = investigator
        if wording:
            start["wording"] = dict(wording)
        if zone:
            start["zone"] = zone
        links = [dict(link) for link in continues]
        if links:
            start["continues"] = links
        writer.append("start", start)
        return writer

    @classmethod
    def continuing(cls, path: str | os.PathLike[str], fd: int, written: bytes, *, records: int,
                   last_hash: str, clock: Clock | None = None) -> "TraceWriter":
        """A writer that goes on with an unsealed trace open for appending on `fd`.

        `written` is every byte of the file so far and `records`/`last_hash` its record count
        and last record hash; the caller has checked them against the chain
        (`screener.audit.chain`). The next record follows them in the same chain.
        """
        return cls(os.fspath(path), fd, clock or _utc_now, seq=records, prev=last_hash,
                   _digest=hashlib.sha256(written))

    def append(self, kind: str, payload: Mapping[str, Any],
               at: _dt.datetime | None = None) -> dict[str, Any]:
        """Write one record of type `kind` and return it (with its hash). Its time is now, or
        `at`: when an earlier answer is recorded again into a new trace, its own time."""
        if self.sealed:
            raise TraceError(self.path, "is sealed; nothing may be added")
        if kind not in RECORD_TYPES:
            raise ValueError(f"unknown record type {kind!r}")
        record: dict[str, Any] = {
            **to_json_value(dict(payload)), "type": kind, "seq": self.seq,
            "time": _time_text(at or self.clock()), "prev": self.prev,
        }
        record["hash"] = record_hash(record)
        line = (canonical(record) + "\n").encode("utf-8")
        write_all(self.fd, line, sync=self.sync_each or kind == "end")
        self._digest.update(line)
        self.seq += 1
        self.prev = record["hash"]
        return record

    def fact(self, name: str, value: Any, source: Source,
             at: _dt.datetime | None = None) -> dict[str, Any]:
        """Record a fact's value and source (given at `at`, else now)."""
        return self.append("fact", {"fact": name, "value": value, "source": source.to_json()}, at)

    def correction(self, name: str, old: Any, new: Any, reason: str | None = None,
                   source: Source | None = None, at: _dt.datetime | None = None) -> dict[str, Any]:
        """Record that a fact changed from `old` to `new`; the earlier record stays."""
        payload: dict[str, Any] = {"fact": name, "old": old, "new": new, "reason": reason}
        if source is not None:
            payload["source"] = source.to_json()
        return self.append("correction", payload, at)

    def result(self, result: Result) -> None:
        """Record derived facts, every rule firing, and the decision."""
        for firing in result.firings:
            for name, value in firing.derived.items():
                self.fact(name, value, Source.derived(firing.rule, firing.facts))
        for firing in result.firings:
            self.append("firing", {
                "rule": firing.rule, "criterion": firing.criterion, "outcome": firing.outcome,
                "facts": firing.facts, "derived": firing.derived,
            })
        decision: dict[str, Any] = {
            "decision": result.decision, "outcomes": result.outcomes,
            "failed": list(result.failed), "missing": list(result.missing),
            "derived": result.derived,
        }
        if result.computed:
            # reported measurements: the value computed beside each, and the differences
            # past their tolerance (docs/rules-language.md, "Reported measurements")
            decision["computed"] = result.computed
        if result.warnings:
            decision["warnings"] = list(result.warnings)
        self.append("decision", decision)

    def pause(self, reason: str) -> dict[str, Any]:
        """Record that the dialog stopped before its decision (`reason`: one of PAUSE_REASONS)."""
        if reason not in PAUSE_REASONS:
            raise ValueError(f"unknown pause reason {reason!r}")
        return self.append("pause", {"reason": reason})

    def seal(self) -> str:
        """Write the end record and close the file. Returns the end record's `trace_hash`."""
        trace_hash = self._digest.hexdigest()
        self.append("end", {"records": self.seq, "trace_hash": trace_hash})
        self.sealed = True
        self.close()
        return trace_hash

    def close(self) -> None:
        """Close the file without sealing (a crash leaves the same state)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
