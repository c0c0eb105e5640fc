"""Coverage-guided fuzzing of the batch readers and writer with atheris (`make fuzz`).

Each input's first byte picks the format (csv, jsonl, json, yaml); the rest is the file, fed
to that format's target in fuzz/targets.py. The invariants are the batch contract's: the
input is refused as a whole (UnreadableInput) or every record read becomes exactly one output
record, numbered in order, writable as UTF-8; nothing else may be raised. A few inputs go to
the rules-file YAML loader instead. Run: `python fuzz/fuzz_batch.py -max_total_time=600 fuzz/corpus`.
"""
from __future__ import annotations

import sys

import atheris

import targets

with atheris.instrument_imports():
    targets.load_readers()  # the readers are imported, and so instrumented, here

FORMATS = ("csv", "jsonl", "json", "yaml")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fmt, body = FORMATS[data[0] % len(FORMATS)], data[1:]
    if data[0] >= 252:  # a few inputs go to the rules-file YAML loader instead
        from screener.errors import RulesError
        from screener.rules.read import load_yaml_text

        try:
            load_yaml_text(body.decode("utf-8", "replace"), "fuzz.yaml")
        except RulesError:
            pass
        return
    targets.TARGETS[fmt](body)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
