"""Fuzz targets: one per reader of outside input, each a function of bytes.

Each target feeds its bytes to one reader and checks the promise that reader makes: the input
is used, or refused with the reader's own error (RulesError, UnitError, TraceIntegrityError,
SessionError, InvalidAnswer, SigningKeyError...); any other exception, or a broken promise
(a record lost or invented, an explanation that cannot be shown), is a bug. Nothing here
imports atheris: `fuzz/fuzz_inputs.py TARGET` runs a target coverage-guided (`make
fuzz-each`), and tests/test_fuzz_targets.py runs every target a few dozen times in CI.

Targets: csv, jsonl, json, yaml (candidate files, through screening and the results writer),
rules (a rules file), unit (a UCUM code), answer (a typed dialog answer), key (a trusted
.pub key), trace (a trace file as bytes), trace-rechained (records re-chained as a forger
would, so the shape checks and the readers behind the chain are reached), session (a saved
session file).
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
TRIAL_ID = "NCT03862768"
TRIAL_RULES = ROOT / "rules" / f"{TRIAL_ID}.yaml"
TINY_RULES = ROOT / "tests" / "data" / "audit" / "tiny.yaml"
SEEDS = Path(__file__).resolve().parent / "seeds"


@functools.lru_cache(maxsize=None)
def _trial(path: Path = TRIAL_RULES) -> Any:
    from screener.rules.check import load_trial

    return load_trial(path)


@functools.lru_cache(maxsize=None)
def _screener() -> Any:
    from screener.engine import Screener

    return Screener(_trial())


@functools.lru_cache(maxsize=None)
def _dialog() -> Any:
    from screener.dialog.spec import load_dialog
    from screener.trials import dialog_path

    return load_dialog(dialog_path(TRIAL_ID, "en"), _trial())


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# --- candidate files ----------------------------------------------------------------------

def _candidates(fmt: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from screener.run.batch import Writer, screen_row
        from screener.sources.readers import UnreadableInput, open_text, read_rows

        try:
            rows = list(read_rows(open_text(io.BytesIO(data)), fmt))
        except UnreadableInput:
            return
        assert [row.number for row in rows] == list(range(1, len(rows) + 1))
        out = io.StringIO()
        writer = Writer(out, "jsonl")
        for row in rows:
            writer.write(screen_row(_trial(), _screener(), row).record)
        lines = out.getvalue().split("\n")[:-1]
        assert len(lines) == len(rows)  # one result per record read, none invented
        for line in lines:
            assert json.loads(line)["decision"] in ("eligible", "ineligible", "undetermined", "error")
        out.getvalue().encode("utf-8")
        if fmt == "csv":  # the CSV record scanner on its own, from text that kept its bad bytes
            from screener.sources.csvrows import records

            list(records(io.StringIO(data.decode("utf-8", "surrogateescape"))))
    return target


# --- the trial's side: rules files, units, typed answers, keys ---------------------------

def rules(data: bytes) -> None:
    from screener.errors import RulesError
    from screener.rules.check import build_trial
    from screener.rules.read import load_yaml_text

    problems: list[Any] = []
    try:
        document = load_yaml_text(_text(data), "fuzz.yaml", problems)
        trial = build_trial(document, "fuzz.yaml", hashlib.sha256(data).hexdigest(), problems)
    except RulesError as error:
        assert error.problems  # a refusal always says why, at a line
        return
    assert trial.id and trial.criteria


def unit(data: bytes) -> None:
    from screener.rules.units import UnitError, conversion, dimension

    code = _text(data)
    try:
        dimension(code)
        conversion(code, "10*9/L")
    except UnitError:
        return


def answer(data: bytes) -> None:
    from screener.dialog.answers import InvalidAnswer, parse_answer

    if not data:
        return
    trial, dialog = _trial(), _dialog()
    facts = sorted(dialog.questions)
    fact = facts[data[0] % len(facts)]
    try:
        parse_answer(trial.facts[fact], dialog.questions[fact], dialog.vocabulary, _text(data[1:]),
                     dt.date(2026, 3, 4))
    except InvalidAnswer as refused:
        text = refused.params.get("answer")
        assert not isinstance(text, str) or len(text) <= 25  # named, never echoed whole


def key(data: bytes) -> None:
    from screener.audit.keys import SigningKeyError, load_public

    with _scratch("key.pub") as path:
        path.write_bytes(data)
        try:
            load_public(path)
        except SigningKeyError:
            return


# --- traces and sessions ------------------------------------------------------------------

def trace(data: bytes) -> None:
    from screener.audit.chain import parse_trace
    from screener.audit.trace import TraceError, TraceIntegrityError

    try:
        parsed = parse_trace("fuzz.trace.jsonl", data)
    except (TraceError, TraceIntegrityError):
        return
    _read_back(parsed)


def rechain(records: list[Any]) -> bytes:
    """`records` written as a forger without the key would: seq, prev, hash and the end
    record's count and trace hash recomputed. Items that are not objects are written as they
    are (a line the chain check then refuses)."""
    from screener.audit.trace import GENESIS, canonical, record_hash

    out, prev = b"", GENESIS
    for seq, record in enumerate(records):
        if not isinstance(record, dict):
            out += json.dumps(record).encode("utf-8") + b"\n"
            continue
        record = {k: v for k, v in record.items() if k != "hash"}
        record.update(seq=seq, prev=prev)
        if record.get("type") == "end":
            record.update(records=seq, trace_hash=hashlib.sha256(out).hexdigest())
        try:
            record["hash"] = record_hash(record)
            line = canonical(record)
        except (ValueError, TypeError, RecursionError):
            line = json.dumps(record, default=str)
        prev = record.get("hash", prev)
        out += line.encode("utf-8", "surrogatepass") + b"\n"
    return out


def trace_rechained(data: bytes) -> None:
    records: list[Any] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError):
            records.append(_text(line))
    trace(rechain(records))


def _read_back(parsed: Any) -> None:
    """What verify, explain and letters do with a trace whose chain holds."""
    from rich.console import Console

    from screener.audit.chain import final_facts
    from screener.audit.explain import explanation
    from screener.audit.replay import replay
    from screener.audit.words import Words
    from screener.errors import ScreenerError

    final_facts(parsed)
    Console(file=io.StringIO(), width=100).print(explanation(parsed, Words.of(parsed)))
    if parsed.sealed:
        try:
            replay(parsed, TINY_RULES)
        except ScreenerError:
            pass


def session(data: bytes) -> None:
    from screener.dialog import store

    with _scratch("session.json") as path:
        path.write_bytes(data)
        try:
            loaded = store.load(path, _trial())
        except store.SessionError:
            return
        json.dumps(loaded.to_json())  # what saving it again writes


class _scratch:
    """A file path in a private folder, removed afterwards."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> Path:
        self.folder = tempfile.TemporaryDirectory(prefix="screener-fuzz-")
        return Path(self.folder.name) / self.name

    def __exit__(self, *exc: Any) -> None:
        self.folder.cleanup()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "csv": _candidates("csv"), "jsonl": _candidates("jsonl"), "json": _candidates("json"),
    "yaml": _candidates("yaml"), "rules": rules, "unit": unit, "answer": answer, "key": key,
    "trace": trace, "trace-rechained": trace_rechained, "session": session,
}


def load_readers() -> None:
    """Import every reader the targets use (a coverage-guided run instruments them as they
    are imported) and build the trial, screener and dialog the targets share."""
    import screener.audit.chain  # noqa: F401
    import screener.audit.explain  # noqa: F401
    import screener.audit.keys  # noqa: F401
    import screener.audit.replay  # noqa: F401
    import screener.audit.shape  # noqa: F401
    import screener.run.batch  # noqa: F401
    import screener.sources.csvrows  # noqa: F401
    import screener.dialog.answers  # noqa: F401
    import screener.dialog.store  # noqa: F401
    import screener.sources.readers  # noqa: F401
    import screener.rules.check  # noqa: F401
    import screener.rules.read  # noqa: F401
    import screener.rules.units  # noqa: F401
    import screener.values  # noqa: F401

    _screener(), _dialog()


def seeds(target: str) -> list[bytes]:
    """The seed inputs kept for `target` (fuzz/seeds/<target>/)."""
    folder = SEEDS / target
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


if __name__ == "__main__":  # run every seed through its target: a quick self-check
    for name, function in TARGETS.items():
        for seed in seeds(name):
            function(seed)
        print(name, len(seeds(name)), "seeds ok", flush=True)
