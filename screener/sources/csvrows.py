"""CSV records with their row numbers, where a broken row stays one row.

The standard `csv` module cannot say where a broken record ends: after "field larger than
field limit" it resumes in the middle of the field (one pasted note becomes thousands of rows),
and an unclosed quote takes every following line into one cell. This scanner reads RFC 4180
(comma, double quote, quotes doubled inside quoted cells) and decides record boundaries itself:

- a quoted cell may span lines only if the record it opens is well formed to its end: a
  closing quote is followed by a comma or the end of the line, and the quote closes before the
  end of the input. Otherwise the row where it started is reported broken and reading goes on
  from the next line, so the following rows are neither swallowed nor merged;
- an undecodable byte is not CSV syntax: right after a closing quote it joins the cell (the
  row is reported for the byte) instead of breaking the record where it stands;
- a record longer than `RECORD_LIMIT` characters is one broken row, however long; memory
  stays bounded (the lines of an open record are spilled to a temporary file).
"""
from __future__ import annotations

import csv
import re
import tempfile
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator, TextIO

RECORD_LIMIT = 1 << 20  # characters in one record (a row or a JSON/YAML item)
_CHUNK = 1 << 16
_SPILL = 1 << 22

_START, _UNQUOTED, _QUOTED, _QUOTE = range(4)
_UNQUOTED_STOP = re.compile(r"[,\r\n]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A record on one line whose quoted cells close where they should: the usual row that quotes
# a cell (a list given as JSON). Cells as `_feed` reads them: a quoted cell doubles its
# quotes and is followed by a comma or the line's end; an unquoted one runs to a comma or
# the line's end, quotes included. Any other line (a stray quote, a cell spanning lines, text
# after a closing quote, a bare carriage return) is left to `_feed`.
_CELL = r'(?:"(?:[^"]|"")*+"|[^,"\r\n][^,\r\n]*+|)'
_ONE_LINE = re.compile(rf"{_CELL}(?:,{_CELL})*+\r?\n\Z")
_CELLS = re.compile(r'(?:"((?:[^"]|"")*+)"|([^,"\r\n][^,\r\n]*+|))(?:,|\r?\n\Z)')


@dataclass
class Record:
    """One CSV record: its cells, or the cells read before the problem that broke it."""

    cells: list[str]
    problem: str | None = None


@dataclass
class _Scan:
    state: int = _START
    cells: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    size: int = 0
    over: bool = False
    read_whole: int = 0  # cells complete before the record went over the limit
    bad: str | None = None
    ended: bool = False
    line: int = 0  # lines of the record fed so far
    opened_line: int = 0  # the line where the last quoted cell opened


def _feed(scan: _Scan, piece: str) -> None:
    """Advance the scan over `piece` (a whole line or a part of one)."""
    current = scan.line
    # lines are counted at "\n": a bare "\r" within a quoted cell is the cell's text, and a
    # broken record re-read from its second line must not start inside that cell
    if piece.endswith("\n"):
        scan.line += 1
    scan.size += len(piece)
    if scan.size > RECORD_LIMIT and not scan.over:
        scan.over = True
        scan.read_whole = len(scan.cells)
        scan.parts.clear()
    keep = not scan.over
    i, n = 0, len(piece)
    while i < n:
        state = scan.state
        if state == _START:
            c = piece[i]
            if c == '"':
                scan.state = _QUOTED
                scan.opened_line = current
                i += 1
                continue
            if c == "\r" or c == "\n":
                if scan.cells:
                    scan.cells.append("")
                scan.ended = True
                return
            scan.state = state = _UNQUOTED
        if state == _UNQUOTED:
            match = _UNQUOTED_STOP.search(piece, i)
            j = match.start() if match else n
            if keep:
                scan.parts.append(piece[i:j])
            if match is None:
                return
            _end_cell(scan)
            if piece[j] != ",":
                scan.ended = True
                return
            scan.state = _START
            i = j + 1
        elif state == _QUOTED:
            j = piece.find('"', i)
            if j < 0:
                if keep:
                    scan.parts.append(piece[i:])
                return
            if keep:
                scan.parts.append(piece[i:j])
            scan.state = _QUOTE
            i = j + 1
        else:  # _QUOTE: just after a quote inside a quoted cell
            c = piece[i]
            if c == '"':
                if keep:
                    scan.parts.append('"')
                scan.state = _QUOTED
                i += 1
            elif c == ",":
                _end_cell(scan)
                scan.state = _START
                i += 1
            elif c == "\r" or c == "\n":
                _end_cell(scan)
                scan.ended = True
                return
            elif _SURROGATE.match(c):
                # an undecodable byte is no CSV syntax: it stays in the cell, which `_checked`
                # reports, and does not move where the record ends
                scan.state = _UNQUOTED
            else:
                scan.bad = f"text after the closing quote of column {len(scan.cells) + 1}"
                return


def _end_cell(scan: _Scan) -> None:
    scan.cells.append("".join(scan.parts))
    scan.parts.clear()


class _Lines:
    """Pieces of lines (at most _CHUNK characters each) from a stream, with lines pushed back."""

    def __init__(self, stream: TextIO):
        self.sources: list[Iterator[str]] = [iter(lambda: stream.readline(_CHUNK), "")]

    def next(self) -> str | None:
        while self.sources:
            piece = next(self.sources[-1], None)
            if piece is not None:
                return piece
            self.sources.pop()
        return None

    def push(self, pieces: Iterable[str]) -> None:
        self.sources.append(iter(pieces))


class _Pending:
    """The pieces of a record that spans lines, kept in case its first line must be re-read."""

    def __init__(self, first: str):
        self.pieces = [first]
        self.size = len(first)
        self.spill: IO[str] | None = None

    def add(self, piece: str) -> None:
        if self.spill is None and self.size + len(piece) > _SPILL:
            self.spill = tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogateescape",
                                                newline="")
        if self.spill is not None:
            self.spill.write(piece)
        else:
            self.pieces.append(piece)
            self.size += len(piece)

    def after_lines(self, count: int) -> Iterator[str]:
        """Every piece after the first `count` lines, in order; closes the spill file when done."""
        def stored() -> Iterator[str]:
            yield from self.pieces
            if self.spill is not None:
                spill, self.spill = self.spill, None
                with spill:
                    spill.seek(0)
                    yield from iter(lambda: spill.readline(_CHUNK), "")

        for piece in stored():
            if count <= 0:
                yield piece
            elif piece.endswith("\n"):
                count -= 1

    def first_line(self) -> str:
        line = []
        for piece in self.pieces:
            line.append(piece)
            if piece.endswith("\n"):
                break
        return "".join(line)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


def records(stream: TextIO) -> Iterator[Record]:
    """Yield the non-blank records of a CSV text stream in order; broken ones carry a problem.

    The first record is the header; a later record that spans lines must have as many cells
    as the header, or its first line is taken for a row with a stray quote.
    """
    lines = _Lines(stream)
    width: int | None = None
    while True:
        piece = lines.next()
        if piece is None:
            return
        if piece in ("\n", "\r\n", "\r"):
            continue  # a blank line is no record
        if piece.endswith("\n") and len(piece) < _CHUNK and (cells := _one_line(piece)) is not None:
            width = len(cells) if width is None else width
            yield Record(cells) if piece.isascii() else _checked(cells)  # (ASCII: nothing to check)
            continue
        scan = _Scan()
        _feed(scan, piece)
        pending: _Pending | None = None
        while not scan.ended and scan.bad is None:
            more = lines.next()
            if more is None:
                break
            if pending is None:
                pending = _Pending(piece)
            pending.add(more)
            _feed(scan, more)
        if scan.bad is None and not scan.ended:
            if scan.state == _QUOTED:
                scan.bad = f"the quote that opens column {len(scan.cells) + 1} is never closed"
            else:
                _end_cell(scan)  # the input ends without a line break
        if scan.bad is not None:
            first = pending.first_line() if pending is not None else piece
            if pending is not None:
                lines.push(pending.after_lines(scan.opened_line + 1))
            yield Record(_checked(_lenient_cells(first)).cells, scan.bad)
            continue
        if pending is not None and not scan.over and width is not None and len(scan.cells) != width:
            lines.push(pending.after_lines(scan.opened_line + 1))
            yield Record(_checked(_lenient_cells(pending.first_line())).cells,
                         f"a quote in column {_quoted_column(pending.first_line())} spans lines "
                         "into rows that do not fit the header")
            continue
        if pending is not None:
            pending.close()
        if width is None:
            width = len(scan.cells)
        if scan.over:
            kept = _checked(scan.cells[:scan.read_whole]).cells
            yield Record(kept, f"longer than the limit of {RECORD_LIMIT // (1 << 20)} MiB")
            continue
        yield _checked(scan.cells)


def _one_line(line: str) -> list[str] | None:
    """The cells of `line` (one whole line, with its line break) when it is a record on its
    own; None when it is not (a quoted cell left open: the character scanner reads it)."""
    if '"' not in line:
        return line.rstrip("\r\n").split(",")  # the common case, kept fast
    cells = _quoted_line(line)
    if cells is None and _ONE_LINE.match(line):
        cells = [quoted.replace('""', '"') if quoted else plain for quoted, plain in _CELLS.findall(line)]
    return cells


def _quoted_line(line: str) -> list[str] | None:
    """The cells of `line` (one line, with its line break) when it is a record whose quoted
    cells close where they should and which holds no carriage return but the one that may end
    it: read by the csv module, which splits such a line exactly as `_ONE_LINE` and `_CELLS`
    do, several times faster. None for any other line (the csv module is more lenient with
    carriage returns, and strict mode refuses what `_feed` reports)."""
    body = line[:-2] if line.endswith("\r\n") else line[:-1]
    if not body or "\r" in body:
        return None
    try:
        return next(csv.reader((line,), strict=True))
    except csv.Error:
        return None


def _quoted_column(line: str) -> int:
    """The column of the last cell of `line` read leniently: the one whose quote stays open."""
    return len(_lenient_cells(line)) + 1


def _lenient_cells(line: str) -> list[str]:
    """The cells of a broken line read before its broken cell (which is left out)."""
    if len(line) > RECORD_LIMIT:
        return []
    try:
        cells = next(csv.reader([line]), [])
    except csv.Error:
        return []
    return cells[:-1]


def _checked(cells: list[str]) -> Record:
    """Cells with undecodable bytes (read as lone surrogates) left out and reported."""
    bad = [i for i, cell in enumerate(cells) if not cell.isascii() and _SURROGATE.search(cell)]
    if not bad:
        return Record(cells)
    first = _SURROGATE.search(cells[bad[0]])
    assert first is not None
    byte = ord(first.group()) - 0xDC00
    shown = f"byte 0x{byte:02x}" if 0x80 <= byte <= 0xFF else "a lone surrogate"
    columns = ", ".join(str(i + 1) for i in bad)
    kept = [("" if i in bad else cell) for i, cell in enumerate(cells)]
    return Record(kept, f"not UTF-8 in column {columns} ({shown})")
