"""Check a letter against its trace: does it say what the trace replays to, word for word?

A letter is rendered from its trace alone and byte for byte the same for the same trace,
trace hash and issue time (`screener.audit.letter`). So the check renders the letter again and
compares. The letter names the trace's sha256 at the time it was written; a trace signed
again later has grown, so the state the letter names is found among the trace's sealed states
(the end record, then after each signature). The issue time is read from the letter itself.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from screener.audit.chain import Trace
from screener.audit.letter import build_letter, format_for, render_letter

_HASH = re.compile(r"\b[0-9a-f]{64}\b")
_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC\b")
_SHOWN = 160  # characters of a differing line shown in a message


@dataclass(frozen=True, slots=True)
class LetterCheck:
    """The outcome of checking one letter: `problems` is empty when it matches its trace."""

    path: str
    trace_hash: str | None  # the trace state the letter names, when found
    problems: tuple[str, ...]

    @property
    def matches(self) -> bool:
        return not self.problems


def check_letter(letter_path: str | os.PathLike[str], trace: Trace, data: bytes) -> LetterCheck:
    """Compare the letter at `letter_path` with the one `trace` (file bytes `data`) renders.

    Returns a LetterCheck naming, when they differ, the letter's lines that are not what the
    trace gives. Never raises for a bad letter: an unreadable one is a problem like any other.
    """
    name = os.fspath(letter_path)
    try:
        text = Path(letter_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        return LetterCheck(name, None, (f"cannot read the letter: {reason}",))
    states = _sealed_states(trace, data)
    named = [h for h in dict.fromkeys(_HASH.findall(text)) if h in states]
    if not named:
        return LetterCheck(name, None, (
            "the letter names no state of this trace (no sha256 in it is the trace file's, "
            "as sealed or as signed): it belongs to another trace or its hash was edited",))
    trace_hash = named[0]
    state = Trace(trace.path, trace.records[:states[trace_hash]], True)
    if state.decision is None:
        return LetterCheck(name, trace_hash, ("the trace holds no decision: no letter can "
                                              "match it",))
    fmt = format_for(name)
    best: list[str] | None = None
    # The issue time is among the letter's times; the record part, where it is printed,
    # comes last, so the search starts from the end.
    for stamp in reversed(dict.fromkeys(_TIME.findall(text)) or ["1970-01-01 00:00:00"]):
        issued = _dt.datetime.fromisoformat(stamp).replace(tzinfo=_dt.timezone.utc)
        expected = render_letter(build_letter(state, trace_hash, issued), fmt)
        if expected == text:
            return LetterCheck(name, trace_hash, ())
        problems = _differences(text, expected)
        if best is None or len(problems) < len(best):
            best = problems
    return LetterCheck(name, trace_hash, tuple(best or ["the letter differs from its trace"]))


def _sealed_states(trace: Trace, data: bytes) -> dict[str, int]:
    """sha256 of the trace file as it was when sealed and after each signature -> records."""
    states: dict[str, int] = {}
    offset = 0
    for count, raw in enumerate(data.split(b"\n")[:len(trace.records)], start=1):
        offset += len(raw) + 1
        if trace.records[count - 1]["type"] in ("end", "signature"):
            states[hashlib.sha256(data[:offset]).hexdigest()] = count
    return states


def _differences(text: str, expected: str) -> list[str]:
    """The letter's lines that differ from what the trace renders, as `line N: ...` messages."""
    have, want = text.splitlines(), expected.splitlines()
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, have, want, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for offset in range(max(i2 - i1, j2 - j1)):
            line = i1 + offset
            says = _clip(have[line]) if line < i2 else "(nothing)"
            gives = _clip(want[j1 + offset]) if j1 + offset < j2 else "(nothing)"
            out.append(f"line {min(line, len(have) - 1) + 1}: the letter says {says}; "
                       f"the trace gives {gives}")
    if len(out) > 8:
        out = out[:8] + [f"and {len(out) - 8} more differing lines"]
    return out


def _clip(line: str) -> str:
    line = line.strip()
    return repr(line if len(line) <= _SHOWN else line[:_SHOWN] + "…")
