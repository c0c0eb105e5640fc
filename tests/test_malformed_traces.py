"""Malformed traces: `verify` and `explain` call each a broken trace naming its line, never an
internal failure (whose exit status 3 is also `verify`'s "incomplete").

Each case once ended in a traceback: an edit to NaN that json read and could not write back,
a line nested 100,000 deep, and records re-chained by hand with a field missing or of the
wrong type, which the chain check passed and the readers then tripped over.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from audit_support import TINY, batch_candidate, run_cli
from signing_support import records_of, write_rechained

Records = list[dict[str, Any]]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return batch_candidate(tmp_path_factory.mktemp("genuine"), "ineligible").trace


def _line_of(records: Records, kind: str) -> int:
    return next(n for n, r in enumerate(records, 1) if r["type"] == kind)


def _both(path: Path) -> list[tuple[int, str]]:
    """(exit status, standard error) of verify and of explain on the trace at `path`."""
    verified = run_cli("verify", str(path), "--rules", str(TINY))
    explained = run_cli("explain", str(path))
    return [(verified[0], verified[2]), (explained[0], explained[2])]


def test_the_genuine_trace_these_are_made_from_verifies(genuine):
    status, out, err = run_cli("verify", str(genuine), "--rules", str(TINY))
    assert status == 0 and "records intact and sealed" in out, err


# --- lines changed in place, the chain left as it was --------------------------------------

def _edit_line(genuine: Path, tmp_path: Path, number: int, change: Callable[[bytes], bytes]) -> Path:
    lines = genuine.read_bytes().split(b"\n")
    edited = change(lines[number - 1])
    assert edited != lines[number - 1]
    lines[number - 1] = edited
    path = tmp_path / "edited.trace.jsonl"
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.mark.parametrize("number, change, reason", [
    (4, lambda line: line.replace(b'"value":3', b'"value":NaN'), "chain broken: not a valid JSON record"),
    (4, lambda line: line.replace(b'"value":3', b'"value":-Infinity'), "chain broken: not a valid JSON record"),
    (4, lambda line: line.replace(b'"value":3', b'"value":1e400'),
     "chain broken: record is not in canonical form (edited)"),
    (4, lambda line: b"[" * 100_000 + b"]" * 100_000, "malformed record: nested deeper than 64 levels"),
    (4, lambda line: line.replace(b'"value":3', b'"value":' + b"[" * 100_000 + b"]" * 100_000),
     "malformed record: nested deeper than 64 levels"),
    # the first line is also read for the language to report in, before the chain is checked
    (1, lambda line: b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "malformed record: nested deeper than 64 levels"),
], ids=["nan", "infinity", "1e400", "nested-line", "nested-value", "nested-first-line"])
def test_an_edited_line_that_json_reads_badly_is_a_broken_trace(genuine, tmp_path, number, change, reason):
    path = _edit_line(genuine, tmp_path, number, change)
    for status, err in _both(path):
        assert status == 1
        assert err.startswith(f"{path}:{number}: {reason}"), err
        assert "Traceback" not in err


# --- records re-chained by hand: the chain holds, the record does not ---------------------

def _drop(field: str, kind: str) -> Callable[[Records], None]:
    return lambda records: next(r for r in records if r["type"] == kind).pop(field)


def _set(kind: str, value: Any, *path: str) -> Callable[[Records], None]:
    def change(records: Records) -> None:
        target = next(r for r in records if r["type"] == kind)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


MALFORMED: list[tuple[str, Callable[[Records], None], str, str]] = [
    ("start without trial", _drop("trial", "start"), "start", "trial is missing"),
    ("trial as text", _set("start", "NCT0", "trial"), "start", "trial must be an object"),
    ("trial without rules hash", lambda rs: rs[0]["trial"].pop("rules_hash"), "start",
     "trial.rules_hash is missing"),
    ("criteria as an object", _set("start", {"I1": "met"}, "trial", "criteria"), "start",
     "trial.criteria must be a list"),
    ("criteria as text", _set("start", "I1, I2", "trial", "criteria"), "start", "trial.criteria must be a list"),
    ("a criterion as text", _set("start", ["I1"], "trial", "criteria"), "start",
     "trial.criteria[0] must be an object"),
    ("a criterion's facts as text", lambda rs: rs[0]["trial"]["criteria"][1].update(facts="ecog"), "start",
     "trial.criteria[1].facts must be a list"),
    ("a criterion of a third kind", lambda rs: rs[0]["trial"]["criteria"][0].update(kind="other"), "start",
     "trial.criteria[0].kind must be one of inclusion, exclusion"),
    ("data dictionary as a list", _set("start", [], "trial", "facts"), "start", "trial.facts must be an object"),
    ("language as a number", _set("start", 5, "language"), "start",
     "language is not a language the screener can write"),
    ("language unknown", _set("start", "xx", "language"), "start",
     "language is not a language the screener can write"),
    ("wording titles as a list", _set("start", {"titles": ["a"]}, "wording"), "start",
     "wording.titles must be an object"),
    ("fact without its name", _drop("fact", "fact"), "fact", "fact is missing"),
    ("fact source as text", _set("fact", "csv", "source"), "fact", "source must be an object"),
    ("fact source inputs as text", _set("fact", {"kind": "derived", "inputs": "ecog"}, "source"), "fact",
     "source.inputs must be a list"),
    ("time as a number", _set("fact", 5, "time"), "fact", "time must be a time with its UTC offset"),
    ("time without offset", _set("fact", "2026-03-04T09:30:00", "time"), "fact",
     "time must be a time with its UTC offset"),
    ("time at the end of the calendar", _set("fact", "9999-12-31T23:59:59-12:00", "time"), "fact",
     "time must be a time with its UTC offset"),
    ("firing facts as a list", _set("firing", ["ecog"], "facts"), "firing", "facts must be an object"),
    ("decision without decision", _drop("decision", "decision"), "decision", "decision is missing"),
    ("decision of a fourth kind", _set("decision", "maybe", "decision"), "decision",
     "decision must be one of eligible, ineligible, undetermined"),
    ("outcomes as a list", _set("decision", ["met"], "outcomes"), "decision", "outcomes must be an object"),
    ("outcomes as text", _set("decision", "met", "outcomes"), "decision", "outcomes must be an object"),
    ("an outcome of a fourth kind", _set("decision", "perhaps", "outcomes", "I1"), "decision",
     "outcomes.I1 must be one of met, not_met, unknown"),
    ("failed as text", _set("decision", "I2", "failed"), "decision", "failed must be a list"),
    ("missing as a number", _set("decision", 3, "missing"), "decision", "missing must be a list"),
]


@pytest.mark.parametrize("change, kind, reason", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_a_rechained_record_of_the_wrong_shape_is_a_broken_trace(genuine, tmp_path, change, kind, reason):
    records = copy.deepcopy(records_of(genuine))
    line = _line_of(records, kind)
    change(records)
    path = tmp_path / "forged.trace.jsonl"
    write_rechained(path, records)
    verified, explained = _both(path)
    assert verified == (1, f"{path}:{line}: malformed record: {reason}\nverify: FAILED\n")
    assert explained == (1, f"{path}:{line}: malformed record: {reason}; not explaining a broken trace\n")


def test_a_malformed_record_is_reported_in_the_screenings_language(genuine, tmp_path):
    records = copy.deepcopy(records_of(genuine))
    records[0]["language"] = "zh"
    records[0]["trial"].pop("criteria")
    path = tmp_path / "forged.trace.jsonl"
    write_rechained(path, records)
    status, _, err = run_cli("verify", str(path))
    assert status == 1
    assert err == f"{path}:1：记录格式错误：缺少 trial.criteria\n核验：未通过\n"


def test_a_signature_record_with_a_statement_of_the_wrong_type_is_a_broken_trace(genuine, tmp_path):
    records = copy.deepcopy(records_of(genuine))
    records.append({"type": "signature", "time": records[-1]["time"], "statement": ["Dr. A"],
                    "signature": "AAAA"})
    path = tmp_path / "signed.trace.jsonl"
    write_rechained(path, records)
    for status, err in _both(path):
        assert status == 1 and f"{path}:{len(records)}: malformed record: statement must be an object" in err


def test_the_shape_check_leaves_fields_it_does_not_know_alone(genuine, tmp_path):
    # a later screener may add fields; this one verifies what it can read
    records = copy.deepcopy(records_of(genuine))
    records[0]["site"] = {"name": "Ward 7", "beds": [1, 2]}
    path = tmp_path / "extended.trace.jsonl"
    write_rechained(path, records)
    status, out, err = run_cli("verify", str(path), "--rules", str(TINY))
    assert status == 0, err
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["site"]["name"] == "Ward 7"


@pytest.mark.parametrize("command", ["verify", "explain"])
def test_an_unknown_report_language_is_a_usage_error_not_an_internal_failure(genuine, command):
    status, out, err = run_cli(command, str(genuine), "--rules", str(TINY), "--lang", "xx") if command == "verify" \
        else run_cli(command, str(genuine), "--lang", "xx")
    assert status == 2 and out == ""
    assert err == f"{command}: --lang xx: not a language the screener can write\n"
