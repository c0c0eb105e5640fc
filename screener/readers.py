"""Stream candidate records out of CSV, JSON Lines, JSON and YAML, one at a time.

Each reader yields `Row`s in input order. A record that cannot be read (a CSV row with the
wrong number of cells, a JSONL line that is not an object) is still yielded, carrying its
problem, so that every input candidate gets exactly one output record. Only a file that
cannot be read at all raises `UnreadableInput`.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

import yaml

from screener.errors import ScreenerError
from screener.rules.read import scalar

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
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"cannot read the CSV header: {exc}") from exc
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        duplicated = sorted({n for n in header if header.count(n) > 1})
        raise UnreadableInput(f"the CSV header repeats {', '.join(duplicated)}")
    columns = {name: i + 1 for i, name in enumerate(header)}
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise UnreadableInput(f"not UTF-8 after data row {number}: {exc}") from exc
        except csv.Error as exc:
            number += 1
            yield Row(number, problem=f"row {number}: {exc}")
            continue
        number += 1
        if not cells:
            number -= 1  # a blank line is no candidate
            continue
        fields = dict(zip(header, cells))
        if len(cells) != len(header):
            yield Row(number, fields, f"row {number} has {len(cells)} cells, the header has {len(header)}",
                      columns)
            continue
        yield Row(number, fields, None, columns)


def _jsonl(stream: TextIO) -> Iterator[Row]:
    number = 0
    for line in stream:
        if not line.strip():
            continue
        number += 1
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Row(number, problem=f"line {number} is not JSON: {exc.msg}")
            continue
        yield _object_row(number, value)


def _object_row(number: int, value: Any) -> Row:
    if not isinstance(value, dict):
        return Row(number, problem=f"record {number} is not an object")
    return Row(number, value)


def _json(stream: TextIO, chunk_size: int = 1 << 16) -> Iterator[Row]:
    """A JSON array read object by object, so a large file never sits in memory whole."""
    decoder = json.JSONDecoder()
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

    if skip_space() != "[":
        if eof and not buffer.strip():
            raise UnreadableInput("the JSON input is empty; expected a list of objects")
        raise UnreadableInput("the JSON input must be a list of objects")
    position += 1
    number = 0
    if skip_space() == "]":
        return
    while True:
        skip_space()
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as exc:
                if not fill():
                    raise UnreadableInput(f"JSON ends inside record {number + 1}: {exc.msg}") from exc
        position = end
        number += 1
        yield _object_row(number, value)
        separator = skip_space()
        if separator == ",":
            position += 1
            continue
        if separator == "]":
            return
        raise UnreadableInput(f"expected ',' or ']' after record {number}")


def _plain(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return scalar(node.value, node.style is None)
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    assert isinstance(node, yaml.MappingNode)
    return {str(_plain(k)): _plain(v) for k, v in node.value}


def _yaml(stream: TextIO) -> Iterator[Row]:
    """A YAML list read item by item (safe composer, YAML 1.2 scalars: `no` stays text)."""
    loader = yaml.SafeLoader(stream)
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
            node = loader.compose_node(None, None)  # type: ignore[arg-type]
            number += 1
            yield _object_row(number, _plain(node))
    except yaml.YAMLError as exc:
        raise UnreadableInput(f"YAML: {exc}") from exc
    finally:
        loader.dispose()


def open_text(binary: Any) -> TextIO:
    """UTF-8 text over a binary stream, dropping a byte-order mark; strict decoding."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")
