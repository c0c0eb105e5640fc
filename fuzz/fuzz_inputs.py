"""Coverage-guided fuzzing of one reader with atheris: `python fuzz/fuzz_inputs.py TARGET
[libFuzzer options] [corpus folders]`, TARGET one of fuzz/targets.py's TARGETS (csv, jsonl,
json, yaml, rules, unit, answer, key, trace, trace-rechained, session). `make fuzz-each` runs
every target in turn from its seeds in fuzz/seeds/<target>/.
"""
from __future__ import annotations

import sys

import atheris

import targets

with atheris.instrument_imports():
    targets.load_readers()  # the readers are imported, and so instrumented, here


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: {sys.argv[0]} TARGET [libFuzzer options] [corpus...]; "
                 f"TARGET is one of {', '.join(targets.TARGETS)}")
    target = targets.TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
