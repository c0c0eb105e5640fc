"""Check a letter against its trace: does it say what the trace replays to, word for word?

A letter is rendered from its trace alone and byte for byte the same for the same trace,
trace hash and issue time (`screener.audit.letter`). So the check renders the letter again and
compares. The letter names the trace's sha256 at the time it was written; a trace signed
again later has grown, so the state the letter names is found among the trace's sealed states
(the end record, then after each signature). The issue time and the time zone its times are
shown in are read from the stamp the letter carries (`Letter.stamp`); a zh letter is checked
in Chinese, as the trace records the screening's language.
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
from screener.audit.words import Words
from screener.i18n import named_zone

_HASH = re.compile(r"\b[0-9a-f]{64}\b")
# The letter's own record of how it was rendered (`Letter.stamp`): an HTML meta element, or
# a Markdown comment on the last line.
_STAMP = re.compile(r"screener-letter(?:\" content=\"| )issued=(\S+) zone=([^\s\"]+)")
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
    stamp = _STAMP.search(text)
    if stamp is None:
        return LetterCheck(name, trace_hash, (
            "the letter carries no screener-letter stamp (its issue time and time zone): it "
            "was not written by screener, or the stamp was removed",))
    try:
        issued = _dt.datetime.fromisoformat(stamp.group(1))
        zone = named_zone(stamp.group(2))
    except ValueError:
        return LetterCheck(name, trace_hash, (f"the letter's stamp {stamp.group(0)!r} does not "
                                              "read as an issue time and a time zone",))
    if issued.tzinfo is None:
        return LetterCheck(name, trace_hash, ("the letter's issue time has no UTC offset",))
    words = Words.of(state, zone=zone)
    expected = render_letter(build_letter(state, trace_hash, issued, words), fmt)
    if expected == text:
        return LetterCheck(name, trace_hash, ())
    return LetterCheck(name, trace_hash,
                       tuple(_differences(text, expected) or ["the letter differs from its trace"]))


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
