"""Coverage-guided fuzzing of the batch readers and writer with atheris (`make fuzz`).

Each input's first byte picks the format (csv, jsonl, json, yaml); the rest is the file. The
invariants are the batch contract's: the input is refused as a whole (UnreadableInput) or
every record read becomes exactly one output record, numbered in order, writable as UTF-8;
nothing else may be raised. Run: `python fuzz/fuzz_batch.py -max_total_time=600 fuzz/corpus`.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from screener.run.batch import Writer, screen_row
    from screener.sources.csvrows import records
    from screener.sources.readers import UnreadableInput, open_text, read_rows
    from screener.rules.read import load_yaml_text

from screener.engine import Screener
from screener.errors import RulesError
from screener.rules.check import load_trial

FORMATS = ("csv", "jsonl", "json", "yaml")
TRIAL = load_trial(Path(__file__).resolve().parent.parent / "rules" / "NCT03862768.yaml")
SCREENER = Screener(TRIAL)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fmt, body = FORMATS[data[0] % len(FORMATS)], data[1:]
    if data[0] >= 252:  # a few inputs go to the rules-file YAML loader instead
        try:
            load_yaml_text(body.decode("utf-8", "replace"), "fuzz.yaml")
        except RulesError:
            pass
        return
    try:
        rows = list(read_rows(open_text(io.BytesIO(body)), fmt))
    except UnreadableInput:
        return
    assert [row.number for row in rows] == list(range(1, len(rows) + 1))
    out = io.StringIO()
    writer = Writer(out, "jsonl")
    for row in rows:
        writer.write(screen_row(TRIAL, SCREENER, row).record)
    lines = out.getvalue().split("\n")[:-1]
    assert len(lines) == len(rows)
    for line in lines:
        json.loads(line)
    out.getvalue().encode("utf-8")
    if fmt == "csv":
        list(records(io.StringIO(body.decode("utf-8", "surrogateescape"))))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
