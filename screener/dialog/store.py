"""A screening in progress, kept as a JSON session file that is rewritten after every answer.

The file is private (mode 0600, in a 0700 directory) and replaced atomically, so a crash or a
closed terminal loses at most the answer being typed. Corrections are appended to the history
next to the answer they correct; nothing is overwritten.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from screener.errors import InvalidValue, ScreenerError
from screener.i18n import Message, tr
from screener.model import FactValue, Trial
from screener.paths import PathEscape, inside, is_regular, read_regular, regular_files
from screener.values import coerce, shortened, to_json

FORMAT = "screener-session/1"


class SessionError(ScreenerError):
    """A session file cannot be read or does not fit the trial."""

    code = "session"

    def __init__(self, path: str, reason: str | Message):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def in_language(self, language: str) -> str:
        """The message in `language`: the file, then why it cannot be used."""
        reason = self.reason.in_language(language) if isinstance(self.reason, Message) else self.reason
        return f"{self.path}: {reason}"


def state_dir(environ: dict[str, str] | None = None) -> Path:
    """Where sessions live: $XDG_STATE_HOME/screener/sessions or ~/.local/state/screener/sessions."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "screener" / "sessions"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class KeptTrace:
    """The audit trace a screening writes (one per trial of a conversation), as the session
    remembers it, so `screener resume` goes on with the same file: where it and the letter
    are, and how far the chain had come when the session was last saved."""

    trial: str
    path: str
    letter: str | None
    records: int
    last_hash: str
    sealed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.trial, "path": self.path, "letter": self.letter,
                "records": self.records, "last_hash": self.last_hash, "sealed": self.sealed}

    @classmethod
    def from_json(cls, data: Any) -> "KeptTrace":
        """Read one entry of a session file; raises ValueError when it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("a kept trace must be a mapping")
        letter = data.get("letter")
        return cls(str(data["trial"]), str(data["path"]), None if letter is None else str(letter),
                   int(data["records"]), str(data["last_hash"]), bool(data.get("sealed", False)))


@dataclass
class Session:
    """One patient's screening: answers so far, their history, and how it was started."""

    path: Path
    trial_id: str
    trial_hash: str
    language: str
    candidate_id: str
    complete: bool = False
    status: str = "in_progress"  # in_progress | finished
    decision: str | None = None
    category: str | None = None  # screening-log category: eligible, screen_failure, declined, pending
    created: str = field(default_factory=now)
    answers: dict[str, FactValue | None] = field(default_factory=dict)  # None = unknown
    sources: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    operator: str | None = None
    investigator: str | None = None  # who signs the letters (None: the operator)
    traces: tuple[KeptTrace, ...] = ()  # the audit traces it writes, empty when none
    rules_dirs: tuple[str, ...] = ()  # the --rules-dir it started with (absolute), for resume

    def answer(self, fact: str, value: FactValue | None, source: str, raw: str | None = None) -> None:
        self.answers[fact] = value
        self.sources[fact] = source
        self.history.append({"event": "answer", "fact": fact, "value": to_json(value),
                             "raw": raw, "source": source, "time": now()})

    def correct(self, fact: str, new: FactValue | None, reason: str, raw: str | None = None) -> FactValue | None:
        """Record a correction of `fact`; returns the value it replaces."""
        old = self.answers.get(fact)
        self.answers[fact] = new
        self.sources[fact] = "correction"
        self.history.append({"event": "correction", "fact": fact, "old": to_json(old),
                             "new": to_json(new), "raw": raw, "reason": reason, "time": now()})
        return old

    def supersede(self, fact: str, reason: str) -> FactValue | None:
        """Take back an answer a correction made irrelevant; returns the value it had.

        The fact is open again (asked if it becomes relevant later); the history keeps it.
        """
        old = self.answers.pop(fact, None)
        self.sources.pop(fact, None)
        self.history.append({"event": "superseded", "fact": fact, "old": to_json(old),
                             "reason": reason, "time": now()})
        return old

    def reopen(self, reason: str) -> None:
        """Open a finished screening again for changes; the reason goes into the history."""
        self.history.append({"event": "reopened", "decision": self.decision, "reason": reason,
                             "time": now()})
        self.status = "in_progress"

    @property
    def pending(self) -> bool:
        """A finished screening that is undetermined: it waits for the answers still missing."""
        return self.status == "finished" and self.decision == "undetermined"

    def ask_unknowns_again(self) -> list[str]:
        """Open again every fact answered "unknown", so that the dialog asks those that still
        matter (the history keeps the unknown answers); returns them."""
        unknown = [fact for fact, value in self.answers.items() if value is None]
        for fact in unknown:
            del self.answers[fact]
            self.sources.pop(fact, None)
        return unknown

    def last_answered(self) -> str | None:
        """The fact answered or corrected most recently in this dialog (not pre-filled)."""
        for event in reversed(self.history):
            if event["event"] == "correction" or event.get("source") == "dialog":
                if event["fact"] in self.answers:
                    return str(event["fact"])
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "trial": self.trial_id, "trial_hash": self.trial_hash,
            "language": self.language, "candidate_id": self.candidate_id,
            "complete": self.complete, "status": self.status, "decision": self.decision,
            "category": self.category, "created": self.created, "updated": now(),
            "answers": {fact: to_json(value) for fact, value in self.answers.items()},
            "sources": dict(self.sources), "history": self.history,
            "operator": self.operator, "investigator": self.investigator,
            "traces": [kept.to_json() for kept in self.traces],
            "rules_dirs": list(self.rules_dirs),
        }


def new_path(directory: Path | None = None) -> Path:
    """A fresh session file name: the time it started and a random suffix (no patient data)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return (directory or state_dir()) / f"screening-{stamp}-{secrets.token_hex(3)}.json"


def save(session: Session) -> None:
    """Write the session atomically with mode 0600; raises OSError when it cannot."""
    directory = session.path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(session.to_json(), ensure_ascii=False, indent=1).encode("utf-8")
    fd, temporary = tempfile.mkstemp(prefix=".session-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, session.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


DEPTH_LIMIT = 64  # levels of nesting in a session file; a genuine one has fewer than ten
# the parts of a session file that hold containers, with the container each must be
_CONTAINERS = {"answers": dict, "sources": dict, "history": list, "traces": list}
_EVENT_FIELDS = {"answer": ("value",), "correction": ("old", "new"), "superseded": ("old",)}


def read_data(path: Path) -> dict[str, Any]:
    """The JSON object of a session file, its containers of the right kind and no deeper than
    DEPTH_LIMIT; raises SessionError otherwise (never a parser's own failure)."""
    try:
        data = json.loads(read_regular(path).decode("utf-8"), parse_constant=_not_json)
    except RecursionError:  # json's guard against a file nested thousands deep
        raise SessionError(str(path), tr("cannot read the session: nested deeper than {limit} levels",
                                         limit=DEPTH_LIMIT)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SessionError(str(path), tr("cannot read the session: {reason}", reason=_why(exc))) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionError(str(path), tr("not a screener session file"))
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH_LIMIT:
            raise SessionError(str(path), tr("cannot read the session: nested deeper than {limit} levels",
                                             limit=DEPTH_LIMIT))
        if isinstance(item, dict):
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
    for name, kind in _CONTAINERS.items():
        if data.get(name) is not None and not isinstance(data[name], kind):
            raise SessionError(str(path), tr("not a screener session file: {part} is not an object", part=name)
                               if kind is dict else
                               tr("not a screener session file: {part} is not a list", part=name))
    return data


def _why(exc: BaseException) -> str:
    """What went wrong reading: an OS error's own words (the path is said before), else the parser's."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _quoted(value: Any) -> str:
    """A name read from the file, quoted and cut: a broken file may hold anything there."""
    return "'" + shortened(str(value)) + "'"


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_history(path: Path, trial: Trial, history: list[Any]) -> None:
    """Each event of a session's history names a fact of `trial` and holds values that fit
    it, so that going on with the session (and replaying it into a new trace) can use it."""
    for number, event in enumerate(history, start=1):
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise SessionError(str(path), tr("history entry {number} is not an event", number=number))
        if "fact" not in event:  # e.g. a reopening
            continue
        fact = event["fact"]
        spec = trial.facts.get(fact) if isinstance(fact, str) else None
        if spec is None:
            raise SessionError(str(path), tr("history entry {number}: unknown fact {fact}", number=number,
                                             fact=_quoted(fact)))
        for name in _EVENT_FIELDS.get(event["event"], ("old", "new")):
            if name not in event:
                raise SessionError(str(path), tr("history entry {number}: {part} is missing",
                                                 number=number, part=name))
            try:
                coerce(spec, event[name])
            except InvalidValue as exc:
                raise SessionError(str(path), tr("history entry {number}: {reason}", number=number,
                                                 reason=exc)) from exc


def load(path: Path, trial: Trial) -> Session:
    """Read a session file for `trial`; raises SessionError when it is unreadable or foreign."""
    data = read_data(path)
    if data.get("trial") != trial.id:
        raise SessionError(str(path), tr("the session is for {other}, not {trial}",
                                         other=_quoted(data.get("trial")), trial=trial.id))
    answers: dict[str, FactValue | None] = {}
    for fact, raw in dict(data.get("answers") or {}).items():
        spec = trial.facts.get(fact)
        if spec is None:
            raise SessionError(str(path), tr("unknown fact {fact}", fact=_quoted(fact)))
        try:
            answers[fact] = coerce(spec, raw)
        except InvalidValue as exc:
            raise SessionError(str(path), str(exc)) from exc
    _check_history(path, trial, data.get("history") or [])
    try:
        traces = tuple(KeptTrace.from_json(entry) for entry in data.get("traces") or ())
    except (KeyError, TypeError, ValueError) as exc:
        raise SessionError(str(path), tr("the traces it remembers are unreadable: {reason}",
                                         reason=_why(exc))) from exc
    operator = data.get("operator")
    investigator = data.get("investigator")
    return Session(
        path=path, trial_id=trial.id, trial_hash=str(data.get("trial_hash", "")),
        language=str(data.get("language", "en")), candidate_id=str(data.get("candidate_id", "")),
        complete=bool(data.get("complete", False)), status=str(data.get("status", "in_progress")),
        decision=data.get("decision"), category=data.get("category"), created=str(data.get("created", now())), answers=answers,
        sources={k: str(v) for k, v in dict(data.get("sources") or {}).items()},
        history=list(data.get("history") or []),
        operator=None if operator is None else str(operator),
        investigator=None if investigator is None else str(investigator), traces=traces,
        rules_dirs=remembered_rules_dirs(data),
    )


def remembered_rules_dirs(data: Any) -> tuple[str, ...]:
    """The --rules-dir directories a session file says its screening started with."""
    dirs = data.get("rules_dirs") if isinstance(data, dict) else None
    return tuple(str(d) for d in dirs if isinstance(d, str)) if isinstance(dirs, list) else ()


def latest(directory: Path | None = None) -> Path | None:
    """The most recently written session file in `directory`, or None."""
    folder = directory or state_dir()
    files = sorted(regular_files(folder.glob("screening-*.json")), key=lambda p: p.stat().st_mtime) \
        if folder.is_dir() else []
    return files[-1] if files else None


def find(name: Path, directory: Path | None = None) -> Path | None:
    """The session file `name` names: a path to a file, a session id from `listing`, or a
    patient's candidate id (their latest screening that is not done: in progress or pending,
    else their latest)."""
    if name.is_file():
        return name
    folder = directory or state_dir()
    stem = name.name[:-5] if name.name.endswith(".json") else name.name
    if name.parent == Path("."):
        try:
            candidate = inside(folder, f"{stem}.json")  # an id is a name in the folder, nothing more
        except PathEscape:
            candidate = None
        if candidate is not None and is_regular(candidate):
            return candidate
    theirs = [row for row in listing(folder) if row.candidate == str(name)]  # newest first
    open_ones = [row for row in theirs
                 if row.status == "in_progress" or row.decision in ("pending", "undetermined")]
    chosen = (open_ones or theirs)[:1]
    return folder / f"{chosen[0].id}.json" if chosen else None


@dataclass(frozen=True, slots=True)
class Listed:
    """One saved screening as `screener sessions` shows it."""

    id: str
    trial: str
    candidate: str
    started: str
    status: str
    answers: int
    decision: str | None


def listing(directory: Path | None = None) -> list[Listed]:
    """The saved screenings in `directory`, newest first; unreadable files are skipped."""
    folder = directory or state_dir()
    files = sorted(regular_files(folder.glob("screening-*.json")), key=lambda p: p.stat().st_mtime,
                   reverse=True) if folder.is_dir() else []
    rows = []
    for path in files:
        try:
            data = read_data(path)
        except SessionError:
            continue
        decision = data.get("category") or data.get("decision")
        rows.append(Listed(path.stem, str(data.get("trial", "")), str(data.get("candidate_id", "")),
                           str(data.get("created", ""))[:16].replace("T", " "),
                           str(data.get("status", "")), len(data.get("answers") or {}),
                           str(decision).replace("_", " ") if decision else None))
    return rows
