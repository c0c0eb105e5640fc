"""Where traces and letters come from: the dialog's observer and the batch's per-candidate call.

Both write the trace first, seal it, read it back through the chain check, and render the
letter from that trace alone, so a letter never says more than its trace can prove.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from screener.audit.letter import FORMATS, build_letter, format_for, render_letter
from screener.audit.words import Words
from screener.i18n import zone_name
from screener.model import Result, Trial
from screener.paths import inside
from screener.audit.trace import (
    Source, TraceError, TraceIntegrityError, TraceWriter, create_exclusive, file_sha256, write_all,
)
from screener.audit.chain import parse_trace, read_trace
from screener.audit.sign import Signer, sign_trace

_SLUG_LENGTH = 40
_HASH_LENGTH = 16


def safe_name(candidate_id: str) -> str:
    """A file-name stem for a candidate id: a readable ASCII slug plus a hash of the exact id.

    The slug is lower-case letters, digits and single hyphens (so never `.`, `/` or a reserved
    device name on its own); the hash (lower-case hex of the sha256 of the id's UTF-8 bytes)
    keeps ids apart that differ only in case, accents or punctuation, on case-insensitive file
    systems too. Returns e.g. `p-001-3f2a9c0d1e2b4a5c`.
    """
    folded = unicodedata.normalize("NFKD", candidate_id).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:_SLUG_LENGTH].strip("-")
    digest = hashlib.sha256(candidate_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{slug or 'candidate'}-{digest[:_HASH_LENGTH]}"


def write_new_file(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to a new file, mode 0600, fsync'd; raises TraceError if it exists."""
    fd = create_exclusive(path)
    try:
        write_all(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def write_letters(trace_path: str | os.PathLike[str],
                  letter_paths: Mapping[str, str | os.PathLike[str]], issued: _dt.datetime,
                  zone: _dt.tzinfo | None = None) -> str:
    """Render the letters for a sealed trace into new files, one per format (`md`, `html`), in
    the trace's language, times in `zone` (None: the system's zone).

    Returns the trace file's sha256, which every letter names. Raises TraceError /
    TraceIntegrityError when the trace cannot be read or fails its check, ValueError when it
    has no decision.
    """
    trace = read_trace(trace_path)
    trace_hash = file_sha256(trace_path)
    if letter_paths:
        letter = build_letter(trace, trace_hash, issued, Words.of(trace, zone=zone))
        for fmt, path in letter_paths.items():
            write_new_file(path, render_letter(letter, fmt))
    return trace_hash


@dataclass(frozen=True, slots=True)
class CandidateArtifacts:
    """The files written for one candidate."""

    trace: Path
    letters: dict[str, Path]  # format -> path
    trace_hash: str  # sha256 of the trace file


def artifact_paths(candidate_id: str, traces_dir: str | os.PathLike[str],
                   letters_dir: str | os.PathLike[str] | None) -> tuple[Path, dict[str, Path]]:
    """The trace path and letter paths (by format) for a candidate, all inside their dirs;
    raises PathEscape when one would not be (a link of that name pointing elsewhere)."""
    stem = safe_name(candidate_id)
    trace = inside(traces_dir, f"{stem}.trace.jsonl")
    letters = {fmt: inside(letters_dir, f"{stem}.letter.{fmt}") for fmt in FORMATS} \
        if letters_dir is not None else {}
    return trace, letters


def write_candidate_artifacts(
    trial: Trial, candidate_id: str,
    facts_with_sources: Mapping[str, tuple[Any, Source | str]], result: Result,
    traces_dir: str | os.PathLike[str], letters_dir: str | os.PathLike[str] | None,
    operator: str | None, now: _dt.datetime, input_file: str = "", language: str = "en",
    wording: Mapping[str, Any] | None = None, zone: _dt.tzinfo | None = None,
    signer: Signer | None = None,
) -> CandidateArtifacts:
    """Write one batch candidate's trace and, if `letters_dir` is given, its letters (md, html).

    `facts_with_sources` maps each input fact to (typed value, source); a blank (None) value
    is skipped. The source is a Source, e.g. `Source.batch("in.csv", 3, "weight")`, or a
    string such as `"row 3, column 5 (weight)"`, recorded as a batch source in `input_file`.
    `now` (timezone-aware) stamps every record and the letters. `language` and `wording` (a
    dialog file's `DialogSpec.wording()`) are recorded in the trace, and the letters are
    written in that language, times in `zone`. Directories must exist.
    With a `signer`, the sealed trace gets its signature before the letters are rendered,
    so they show it.
    Returns the paths written; raises TraceError when any of the files exists already
    (nothing is written then).

    Every file is written under a hidden temporary name and linked to its own name only once
    the trace is sealed and the letters rendered, so a candidate interrupted half-way (disk
    full, Ctrl-C, a crash) leaves no trace file that would make a later run refuse its id.
    """
    trace_path, letter_paths = artifact_paths(candidate_id, traces_dir, letters_dir)
    for path in (trace_path, *letter_paths.values()):
        if os.path.lexists(path):
            raise TraceError(os.fspath(path), "already exists; audit files are never overwritten")
    trace_part = _part_name(trace_path)
    letter_parts = {fmt: _part_name(path) for fmt, path in letter_paths.items()}
    try:
        writer = TraceWriter.create(trace_part, trial, operator=operator, candidate_id=candidate_id,
                                    mode="batch", clock=lambda: now, sync_each=False,
                                    language=language, wording=wording, zone=zone_name(zone))
        try:
            for name, (value, source) in facts_with_sources.items():
                if value is not None:
                    if isinstance(source, str):
                        source = Source("batch", file=input_file, note=source)
                    writer.fact(name, value, source)
            writer.result(result)
            writer.seal()
        finally:
            writer.close()
        if signer is not None:
            sign_trace(trace_part, signer, clock=lambda: now)
        trace_hash = write_letters(trace_part, letter_parts, now, zone)
        _publish(trace_part, trace_path)
        for fmt, part in letter_parts.items():
            _publish(part, letter_paths[fmt])
    finally:
        for part in (trace_part, *letter_parts.values()):
            try:
                os.unlink(part)
            except FileNotFoundError:
                pass
    return CandidateArtifacts(trace_path, letter_paths, trace_hash)


def _lock(fd: int) -> bool:
    """Take the advisory lock on a dialog's open trace, held until the file is closed, so two
    `screener resume` of one screening cannot both append to it. False when another holds it."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this system
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_all(fd: int) -> bytes:
    """Every byte of the open file `fd`, from its start."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _part_name(path: Path) -> Path:
    """A hidden, unique name next to `path` for the file while it is being written."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


_PART = re.compile(r"\..+\.(?:trace\.jsonl|letter\.[a-z]+)\.([0-9]+)-[0-9a-f]{8}\.part\Z")


def remove_abandoned_parts(folder: str | os.PathLike[str], older_than: float = 10.0) -> int:
    """Remove the half-written trace and letter files (`_part_name`) in `folder` whose process
    is gone: a batch killed outright (SIGKILL) leaves them, full of a candidate's data. A file
    whose process still runs (another batch writing into the same folder), or younger than
    `older_than` seconds, is left. Only regular files are removed. Returns how many were."""
    import time

    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    now = time.time()
    for entry in entries:
        match = _PART.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or _alive(int(match.group(1))) or \
                    now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                continue
            os.unlink(entry.path)
            removed += 1
        except (OSError, ValueError):
            continue
    return removed


def _alive(pid: int) -> bool:
    """True when a process `pid` exists (ours or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _publish(part: Path, path: Path) -> None:
    """Give the finished file `part` its name `path`, never replacing an existing file."""
    try:
        os.link(part, path)
    except FileExistsError:
        raise TraceError(os.fspath(path), "already exists; audit files are never overwritten") from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise TraceError(os.fspath(path), "already exists; audit files are never overwritten") from None
        os.rename(part, path)


class ContinuationRefused(TraceError):
    """A paused dialog's trace cannot be continued. `problem` says why: `missing` (the file is
    gone), `unreadable`, `busy` (another screening still has it open), `altered` (its chain is
    broken, or it no longer ends where the session left it), `sealed` (it was finished),
    `rules` (the rules changed since it started) or `letter` (the letter file exists
    already)."""

    code = "trace-continuation"

    def __init__(self, path: str, problem: str, message: str):
        self.problem = problem
        super().__init__(path, message)


class TraceObserver:
    """Records a dialog as it goes: the dialog calls `fact`, `correction` and `result`.

    Every call appends one fsync'd record, so a crash loses nothing already answered. `result`
    records the firings and decision, seals the trace and, when a letter path was given,
    writes the letter. When the dialog stops before its decision, `pause(reason)` records why
    and `close()` leaves the trace unsealed, a valid prefix of its chain; `continuing` opens it
    again for `screener resume`, which records a `resume` and goes on in the same chain.
    """

    def __init__(self, trace_path: str | os.PathLike[str], trial: Trial, *,
                 operator: str | None = None, candidate_id: str | None = None,
                 letter_path: str | os.PathLike[str] | None = None, investigator: str | None = None,
                 clock: Callable[[], _dt.datetime] | None = None, language: str = "en",
                 wording: Mapping[str, Any] | None = None, zone: _dt.tzinfo | None = None,
                 signer: Signer | None = None, continues: tuple[Mapping[str, Any], ...] = ()):
        """Create the trace file (0600, never overwriting); raises TraceError if it exists.
        `continues` links the earlier traces of the screening this one takes up
        (`TraceWriter.create`).
        `language` and `wording` (the dialog file's) are recorded in its start; the letter is
        written in that language, times in `zone` (None: the system's zone). With a `signer`,
        a trace sealed with a decision is signed before its letter is written."""
        if letter_path is not None and os.path.lexists(letter_path):
            raise TraceError(os.fspath(letter_path), "already exists; letters are never overwritten")
        self.writer = TraceWriter.create(trace_path, trial, operator=operator, investigator=investigator,
                                         candidate_id=candidate_id, mode="dialog", clock=clock,
                                         language=language, wording=wording, continues=continues,
                                         zone=zone_name(zone))
        _lock(self.writer.fd)  # a new file: nobody else can hold it yet
        self.zone = zone
        self.trace_path = Path(trace_path)
        self.letter_path = Path(letter_path) if letter_path is not None else None
        self.trace_hash: str | None = None
        self.signer = signer

    @classmethod
    def continuing(cls, trace_path: str | os.PathLike[str], trial: Trial, *, records: int,
                   last_hash: str, letter_path: str | os.PathLike[str] | None = None,
                   clock: Callable[[], _dt.datetime] | None = None,
                   signer: Signer | None = None,
                   zone: _dt.tzinfo | None = None) -> "TraceObserver":
        """Open the unsealed trace of a paused dialog to go on with it.

        The file must still be the chain the session remembers: intact, `records` records long,
        the last with hash `last_hash`, unsealed, and started with `trial`'s rules. Nothing is
        written yet (`resume` records the resumption). Raises ContinuationRefused otherwise.
        """
        name = os.fspath(trace_path)
        if letter_path is not None and os.path.lexists(letter_path):
            raise ContinuationRefused(os.fspath(letter_path), "letter",
                                      "already exists; letters are never overwritten")
        try:
            fd = os.open(name, os.O_RDWR | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise ContinuationRefused(name, "missing", "the trace file is gone") from None
        except OSError as error:
            raise ContinuationRefused(name, "unreadable", f"cannot open: {error.strerror}") from None
        try:
            if not _lock(fd):
                raise ContinuationRefused(name, "busy", "another screening is still writing it")
            written = _read_all(fd)
            try:
                trace = parse_trace(name, written)
            except TraceIntegrityError as error:
                raise ContinuationRefused(name, "altered", f"line {error.line}: {error.reason}") from None
            if trace.sealed:
                raise ContinuationRefused(name, "sealed", "the trace is sealed: that screening finished")
            if len(trace.records) != records or trace.records[-1]["hash"] != last_hash:
                raise ContinuationRefused(
                    name, "altered", f"it holds {len(trace.records)} records ending in "
                    f"{trace.records[-1]['hash'][:12]}, the screening left {records} ending in "
                    f"{last_hash[:12]}")
            if trace.start["trial"].get("rules_hash") != trial.content_hash:
                raise ContinuationRefused(name, "rules", "the rules of its trial changed since it "
                                                         "started")
        except BaseException:
            os.close(fd)
            raise
        observer = cls.__new__(cls)
        observer.writer = TraceWriter.continuing(name, fd, written, records=records,
                                                 last_hash=last_hash, clock=clock)
        observer.trace_path = Path(trace_path)
        observer.letter_path = Path(letter_path) if letter_path is not None else None
        observer.trace_hash = None
        observer.signer = signer
        observer.zone = zone
        return observer

    def resume(self, operator: str | None = None, reason: str | None = None) -> None:
        """Record that the paused (or, with the `reason` given, reopened) dialog goes on, and
        who continues it."""
        payload: dict[str, Any] = {"operator": operator}
        if reason:
            payload["reason"] = reason
        self.writer.append("resume", payload)

    def pause(self, reason: str) -> None:
        """Record that the dialog stopped before its decision: quit, interrupt or eof."""
        if not self.writer.sealed and self.writer.fd >= 0:
            self.writer.pause(reason)

    def fact(self, name: str, value: Any, source: Source | Mapping[str, Any] | str | None,
             at: _dt.datetime | None = None) -> None:
        """Record an answered (or imported) fact and where it came from; a source word the
        dialog uses (`"dialog"`, `"answers"`, `"default"`) is kept, as a dialog source note
        when it names no kind. `at`: when it was answered, if not now."""
        self.writer.fact(name, value, Source.coerce(source, default_kind="dialog"), at)

    def correction(self, name: str, old: Any, new: Any, reason: str | None = None,
                   at: _dt.datetime | None = None) -> None:
        """Record a changed answer; the earlier value stays in the trace. The new value came
        from the dialog, so a corrected pre-filled value is no longer credited to its file."""
        self.writer.correction(name, old, new, reason or None, Source.dialog(name), at)

    def result(self, result: Result) -> None:
        """Record the decision, seal the trace, and write the letter if one was asked for."""
        self.writer.result(result)
        self.writer.seal()
        if self.signer is not None:
            sign_trace(self.trace_path, self.signer, clock=self.writer.clock)
        letters = {} if self.letter_path is None else \
            {format_for(os.fspath(self.letter_path)): self.letter_path}
        self.trace_hash = write_letters(self.trace_path, letters, self.writer.clock(), self.zone)

    def close(self) -> None:
        """Close the file; without a result the trace stays unsealed, to be continued or
        reported by `verify` as incomplete. Safe to call twice."""
        self.writer.close()

    def __enter__(self) -> "TraceObserver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
