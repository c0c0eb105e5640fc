"""Stream candidate records out of CSV, JSON Lines, JSON and YAML, one at a time.

Each reader yields `Row`s in input order. A record that cannot be read (a CSV row with the
wrong number of cells or an unclosed quote, a JSONL line that is not an object, bytes that are
not UTF-8, a record over RECORD_LIMIT characters or nested deeper than DEPTH_LIMIT, a key
given twice, a YAML alias) is still yielded, carrying its problem, so that every input
candidate gets exactly one output record. Only a file that cannot be read at all raises
`UnreadableInput`.
"""
from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

import yaml

from screener.sources.csvrows import RECORD_LIMIT, records
from screener.errors import ScreenerError
from screener.rules.read import DEPTH_LIMIT, BoundedLoader, NodeRefused, is_merge_key, scalar
from screener.values import MAX_NUMBER_CHARS, shortened

_SURROGATE = re.compile("[\ud800-\udfff]")

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


class UnreadableInput(ScreenerError):
    """The input as a whole cannot be read (wrong format, bad encoding, not a list...)."""

    code = "unreadable-input"


@dataclass
class Row:
    """One candidate as read: its position, its fields, or why it could not be read."""

    number: int  # 1-based record number (CSV: data row, JSONL: line)
    fields: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    columns: dict[str, int] = field(default_factory=dict)  # CSV: field -> 1-based column


def read_rows(stream: TextIO, fmt: str) -> Iterator[Row]:
    """Yield the candidates of `stream` in `fmt` (csv, jsonl, json, yaml)."""
    return {"csv": _csv, "jsonl": _jsonl, "json": _json, "yaml": _yaml}[fmt](stream)


def _csv(stream: TextIO) -> Iterator[Row]:
    found = records(stream)
    first = next(found, None)
    if first is None:
        return
    if first.problem:
        raise UnreadableInput(f"cannot read the CSV header: {first.problem}")
    header = [name.strip() for name in first.cells]
    if len(set(header)) != len(header):
        duplicated = sorted({n for n in header if header.count(n) > 1})
        raise UnreadableInput(f"the CSV header repeats {', '.join(map(repr, duplicated))}")
    columns = {name: i + 1 for i, name in enumerate(header)}
    for number, record in enumerate(found, 1):
        cells = record.cells
        fields = dict(zip(header, cells))
        if record.problem:
            yield Row(number, fields, f"row {number}: {record.problem}", columns)
        elif len(cells) != len(header):
            yield Row(number, fields, f"row {number} has {len(cells)} cells, the header has {len(header)}",
                      columns)
        else:
            yield Row(number, fields, None, columns)


def _lines(stream: TextIO) -> Iterator[str | None]:
    """Lines ending at `\n` only (None for one over RECORD_LIMIT, which is skipped whole)."""
    while True:
        line = stream.readline(RECORD_LIMIT + 1)
        if not line:
            return
        while not line.endswith("\n") and len(line) <= RECORD_LIMIT:
            more = stream.readline(RECORD_LIMIT + 1 - len(line))  # a lone \r ends no JSON line
            if not more:
                break
            line += more
        if len(line) > RECORD_LIMIT:
            while not line.endswith("\n"):
                line = stream.readline(1 << 16)
                if not line:
                    break
            yield None
            continue
        yield line


def _jsonl(stream: TextIO) -> Iterator[Row]:
    number = 0
    for line in _lines(stream):
        if line is not None and not line.strip():
            continue
        number += 1
        if line is None:
            yield Row(number, problem=f"line {number}: longer than the limit of {RECORD_LIMIT >> 20} MiB")
        else:
            yield _decoded(number, line, "line")


def _decoded(number: int, text: str, what: str) -> Row:
    """The row of one JSON text: its object, or why it cannot be one."""
    if not text.isascii() and (bad := _SURROGATE.search(text)):
        return Row(number, problem=f"{what} {number}: not UTF-8 ({_describe(bad.group())})")
    try:
        value = json.loads(text, **_JSON_HOOKS)
    except RecursionError:
        return Row(number, problem=f"{what} {number}: nested deeper than {DEPTH_LIMIT} levels")
    except ValueError as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "a value cannot be read"
        return Row(number, problem=f"{what} {number} is not JSON: {message}")
    return _object_row(number, value, what)


def _object_row(number: int, value: Any, what: str = "record") -> Row:
    if not isinstance(value, dict):
        return Row(number, problem=f"{what} {number} is not an object")
    problem = _value_problem(value)
    if problem is None:
        return Row(number, dict(value))
    return Row(number, _readable_fields(value), f"{what} {number}: {problem}")


class _Keyed(dict):  # type: ignore[type-arg]
    """A JSON object or YAML mapping as read; `repeated` names keys given more than once."""

    repeated: list[str]
    merged = False  # YAML: it has a merge key (<<)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = _Keyed(pairs)
    mapping.repeated = [] if len(mapping) == len(pairs) else \
        sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return mapping


def _number(text: str) -> Any:
    """A JSON integer; one too long for any value stays text, for `coerce` to refuse."""
    return int(text) if len(text) <= MAX_NUMBER_CHARS else text


_JSON_HOOKS: dict[str, Any] = {
    "object_pairs_hook": _pairs, "parse_int": _number, "parse_constant": lambda name: name,
}


def _value_problem(value: Any) -> str | None:
    """What makes a decoded record unusable: nesting, repeated keys, lone surrogates."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH_LIMIT:
            return f"nested deeper than {DEPTH_LIMIT} levels"
        if isinstance(item, str):
            if not item.isascii() and (bad := _SURROGATE.search(item)):
                return f"text that is not UTF-8 ({_describe(bad.group())})"
        elif isinstance(item, dict):
            if getattr(item, "merged", False):
                return "merge keys (<<) are not allowed; write the keys out"
            repeated = getattr(item, "repeated", None)
            if repeated:
                return f"the key {shortened(repeated[0])!r} is given more than once"
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def _readable_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The top-level fields of a broken record that can still be shown (its id, mostly)."""
    repeated = set(getattr(record, "repeated", ()))
    return {k: v for k, v in record.items()
            if k not in repeated and _value_problem(k) is None
            and (isinstance(v, (int, float, bool)) or v is None
                 or (isinstance(v, str) and _value_problem(v) is None))}


def _describe(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"byte 0x{code - 0xDC00:02x}"
    return f"a lone surrogate U+{code:04X}"


def _json(stream: TextIO, chunk_size: int = 1 << 16) -> Iterator[Row]:
    """A JSON array read object by object, so a large file never sits in memory whole.

    A broken object is one error row: its end is found by bracket matching, so the next
    object is read as usual. Only a file whose structure is lost (an unclosed string or
    bracket) is unreadable.
    """
    decoder = json.JSONDecoder(**_JSON_HOOKS)
    buffer = ""
    position = 0
    eof = False

    def fill() -> bool:
        nonlocal buffer, position, eof
        more = stream.read(chunk_size)
        if not more:
            eof = True
            return False
        buffer = buffer[position:] + more
        position = 0
        return True

    def skip_space() -> str:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer):
                return buffer[position]
            if not fill():
                return ""

    def skip_value() -> bool:
        """Move past the value at `position` without keeping it; False at the end of input."""
        nonlocal position, buffer
        skipper = _Skipper()
        while True:
            end = skipper.scan(buffer, position)
            if end is not None:
                position = end
                return True
            position = len(buffer)
            if not fill():
                return False

    if skip_space() != "[":
        if eof and not buffer.strip():
            return  # no candidates, as an empty CSV, JSONL or YAML file has none
        raise UnreadableInput("the JSON input must be a list of objects")
    position += 1
    number = 0
    if skip_space() == "]":
        position += 1
        return _json_tail(skip_space())
    while True:
        skip_space()
        number += 1
        row: Row | None = None
        while row is None:
            problem: str | None = None
            try:
                value, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as exc:
                if not eof and len(buffer) - position <= RECORD_LIMIT and fill():
                    continue
                problem = (f"longer than the limit of {RECORD_LIMIT >> 20} MiB"
                           if len(buffer) - position > RECORD_LIMIT else f"not JSON: {exc.msg}")
            except RecursionError:
                problem = f"nested deeper than {DEPTH_LIMIT} levels"
            except ValueError:
                problem = "a value cannot be read"
            if problem is not None:
                if not skip_value():
                    raise UnreadableInput(f"the JSON input ends inside record {number}")
                row = Row(number, problem=f"record {number}: {problem}")
            elif end - position > RECORD_LIMIT:
                position = end
                row = Row(number, problem=f"record {number}: longer than the limit of {RECORD_LIMIT >> 20} MiB")
            else:
                text = buffer[position:end]
                position = end
                bad = _SURROGATE.search(text) if not text.isascii() else None
                row = Row(number, problem=f"record {number}: not UTF-8 ({_describe(bad.group())})") \
                    if bad else _object_row(number, value)
        yield row
        separator = skip_space()
        if separator == ",":
            position += 1
            if skip_space() == "]":  # a trailing comma ends the list; it is no candidate
                position += 1
                return _json_tail(skip_space())
            continue
        if separator == "]":
            position += 1
            return _json_tail(skip_space())
        raise UnreadableInput(f"expected ',' or ']' after record {number}")


def _json_tail(rest: str) -> None:
    if rest:
        raise UnreadableInput("text follows the JSON list; the input must be one list of objects")


class _Skipper:
    """Finds where a JSON value ends by matching brackets and strings, at any depth."""

    _OUTSIDE = re.compile(r'["\[\]{},]')
    _INSIDE = re.compile(r'["\\]')

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def scan(self, text: str, start: int) -> int | None:
        """The index of the `,` or `]` that ends the value, or None if `text` ends first."""
        i = start
        while i < len(text):
            if self.escaped:
                self.escaped = False
                i += 1
                continue
            if self.in_string:
                match = self._INSIDE.search(text, i)
                if match is None:
                    return None
                i = match.end()
                if match.group() == "\\":
                    self.escaped = True
                else:
                    self.in_string = False
                continue
            match = self._OUTSIDE.search(text, i)
            if match is None:
                return None
            char, i = match.group(), match.end()
            if char == '"':
                self.in_string = True
            elif char in "[{":
                self.depth += 1
            elif self.depth == 0:
                return i - 1  # a `,` or the list's own `]`
            elif char in "]}":
                self.depth -= 1
        return None


def _plain(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return scalar(node.value, node.style is None)
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    assert isinstance(node, yaml.MappingNode)
    mapping = _Keyed()
    mapping.repeated = []
    for key_node, value_node in node.value:
        if is_merge_key(key_node):
            mapping.merged = True
            continue
        key = str(_plain(key_node))
        if key in mapping:
            mapping.repeated.append(key)
        mapping[key] = _plain(value_node)
    return mapping


def _yaml(stream: TextIO) -> Iterator[Row]:
    """A YAML list read item by item (safe composer, YAML 1.2 scalars: `no` stays text).

    An item with an anchor, an alias, a merge key, a repeated key or nesting past the limit
    is an error row and the next item is read as usual. A second document, or text that is
    not YAML, is refused before the first row is given: the whole input is read and its
    structure checked first, so a refusal never follows records already written.
    """
    text = stream.read()
    _check_yaml_structure(text)
    try:
        loader = BoundedLoader(text)  # reads the first characters already
    except yaml.YAMLError as exc:
        raise UnreadableInput(f"YAML: {exc}") from exc
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return
        loader.get_event()  # document start
        if not loader.check_event(yaml.SequenceStartEvent):
            raise UnreadableInput("the YAML input must be a list of mappings")
        loader.get_event()
        number = 0
        while not loader.check_event(yaml.SequenceEndEvent):
            number += 1
            line = loader.peek_event().start_mark.line + 1
            try:
                node = loader.compose_node(None, None)  # type: ignore[arg-type]
            except NodeRefused as exc:
                loader.get_event()  # the refused event itself
                while loader.open_collections > 1:
                    loader.get_event()
                yield Row(number, problem=f"record {number} (line {line}): {exc.problem}")
                continue
            finally:
                loader.anchors = {}
            if node.end_mark.index - node.start_mark.index > RECORD_LIMIT:
                yield Row(number, problem=f"record {number} (line {line}): longer than the limit of "
                                          f"{RECORD_LIMIT >> 20} MiB")
                continue
            row = _object_row(number, _plain(node))
            if row.problem:
                row.problem = row.problem.replace(f"record {number}:", f"record {number} (line {line}):", 1)
            yield row
        loader.get_event()  # sequence end
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            mark = loader.peek_event().start_mark
            raise UnreadableInput(f"a second YAML document starts at line {mark.line + 1}; "
                                  "the input must be one list")
    except yaml.YAMLError as exc:
        raise _yaml_refusal(exc) from exc
    finally:
        loader.dispose()


def _check_yaml_structure(text: str) -> None:
    """Raise UnreadableInput when `text` is not one YAML document or not YAML at all. Only
    events are parsed (no node is built, no alias expanded), so the work is linear in the
    text and the depth of nesting costs no recursion. libyaml's parser does it when it is
    installed (some fifty times faster); when it finds a problem, or cannot take the text,
    the reader's own parser decides, so the refusal is the one the reader would give."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            _count_documents(text, fast)
            return
        except (yaml.YAMLError, ValueError):  # ValueError: lone surrogates it cannot encode
            pass
    try:
        _count_documents(text, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_refusal(exc) from exc


def _count_documents(text: str, loader: Any) -> None:
    """Parse the events of `text`; raise UnreadableInput at a second document (and YAMLError
    for text that is not YAML)."""
    documents = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents == 2:
                raise UnreadableInput(f"a second YAML document starts at line "
                                      f"{event.start_mark.line + 1}; the input must be one list")


def _yaml_refusal(exc: yaml.YAMLError) -> UnreadableInput:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return UnreadableInput(f"YAML: {where}{exc.problem or exc}")
    return UnreadableInput(f"YAML: {exc}")


def open_text(binary: Any) -> TextIO:
    """UTF-8 text over a binary stream, dropping a byte-order mark.

    Undecodable bytes are kept as lone surrogates (U+DC80..U+DCFF), so the readers can name
    the record that holds them and go on with the next one.
    """
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
