"""Text that came from input, made safe to show on a terminal: seen as it is, never obeyed.

Candidate ids, operator names, answers, file names and anything a trace or a rules file holds
reach the screen in `explain`, `verify`, the dialog and the batch summary. A terminal obeys
some characters instead of showing them: ESC starts ANSI sequences (CSI clears the screen or
moves the cursor, so a fake "eligible" can be drawn; OSC sets the window title or a hidden
hyperlink), the other C0 controls and DEL move or erase, the C1 controls (U+0080-U+009F) act
as ESC sequences on some terminals, the line and paragraph separators break lines, and
bidirectional overrides reorder what a person reads. `safe_text` writes each such character
as a visible escape (`\\x1b`, `\\u202e`), so the text reads as it is and does nothing.

`safe_console` makes a rich Console that applies `safe_text` to all the text it prints and
never reads rich markup (`[bold]` from input stays text); `make_safe` gives an existing one the
same treatment for control characters. Rich's own styling is unaffected: it is kept apart
from the text until the console writes it.
"""
from __future__ import annotations

import functools
import json
import re
from typing import IO, Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderHook, RenderResult
from rich.segment import Segment

# C0 controls, DEL and C1 controls (Unicode category Cc); the Arabic letter mark and the
# directional marks, embeddings, overrides and isolates; line and paragraph separators;
# lone surrogates (a file name that is not UTF-8), which a terminal cannot even be sent.
_UNSAFE = ("\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
           "\ud800-\udfff")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


@functools.lru_cache(maxsize=8)
def _pattern(keep: str) -> re.Pattern[str]:
    kept = "".join(f"\\x{ord(ch):02x}" for ch in keep)
    return re.compile(f"(?![{kept}])[{_UNSAFE}]" if keep else f"[{_UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# What json.dumps(..., ensure_ascii=False) leaves raw that a terminal would obey: DEL, the C1
# controls, the bidirectional controls, the line and paragraph separators, lone surrogates (the
# C0 controls it escapes itself). Outside strings, JSON text is ASCII punctuation, digits and
# words, so each such character is inside a string, where a \uXXXX escape means the same.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")


# json.dumps(value, ensure_ascii=False), without making the encoder anew for every record
_dumps = json.JSONEncoder(ensure_ascii=False).encode
# ... nor even its C part, which `encode` makes for each value it is given (batch records are
# written by the hundred thousand). Made without the marks that find a value holding itself:
# shared between calls they could be left set by a value that failed, and a value that fails
# is handed to `_dumps`, which raises what it always raised. None without the C accelerator.
_encode_c = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)


def json_text(value: Any) -> str:
    """`value` as one line of JSON: other text (CJK, accents) as UTF-8, as it is, and every
    character a terminal would obey as a `\\u` escape, so the line is safe to print and
    `json.loads` gives back exactly `value`."""
    text = None
    if _encode_c is not None and not isinstance(value, str):
        try:
            text = "".join(_encode_c(value, 0))
        except Exception:  # noqa: BLE001 (`_dumps` raises it again, as it is meant to be seen)
            pass
    if text is None:
        text = _dumps(value)
    if text.isascii() and "\x7f" not in text:  # the common case, at a fraction of the cost
        return text
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def safe_text(text: str, keep: str = "") -> str:
    """`text` with every character a terminal would obey written as a visible escape.

    `keep` names characters to leave as they are where they mean something, e.g. `"\\n\\t"` for
    a multi-line message; by default a newline is escaped too, so one field stays one line.
    Returns the text unchanged when there is nothing to escape.
    """
    return _pattern(keep).sub(_escape, text)


class _Shown:
    """A renderable whose text segments have their control characters escaped."""

    def __init__(self, renderable: RenderableType):
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.renderable, options):
            if segment.control:  # cursor moves of rich itself (a live progress display)
                yield segment
            else:
                yield Segment(safe_text(segment.text, keep="\n\t"), segment.style)


class _SafeHook(RenderHook):
    def process_renderables(self, renderables: list[Any]) -> list[Any]:
        return [_Shown(renderable) for renderable in renderables]


def make_safe(console: Console) -> Console:
    """Have `console` escape control characters in everything it prints; returns it. (Doing it
    twice is harmless: escaped text holds nothing more to escape.)"""
    console.push_render_hook(_SafeHook())
    return console


def safe_console(file: IO[str] | None = None, *, stderr: bool = False, **options: Any) -> Console:
    """A Console for text that may hold input: no markup, no highlighting, controls escaped."""
    options.setdefault("highlight", False)
    return make_safe(Console(file=file, stderr=stderr, markup=False, **options))
