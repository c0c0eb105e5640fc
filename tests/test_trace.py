"""Traces: written as the screening goes, 0600, never overwritten, and every edit detected."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_support import batch_candidate, dialog_with_correction, ticking_clock, tiny_trial
from screener.audit.replay import replay
from screener.audit.trace import (
    Source, TraceError, TraceIntegrityError, TraceWriter, canonical, record_hash,
)
from screener.audit.chain import final_facts, read_trace


@pytest.fixture()
def trace_path(tmp_path: Path) -> Path:
    return batch_candidate(tmp_path, "eligible").trace


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def rehash(record: dict, prev: str) -> dict:
    """What a careless forger does: fix the record's own hash after editing it."""
    record = {**record, "prev": prev}
    record["hash"] = record_hash(record)
    return record


def change_value(lines: list[str]) -> list[str]:
    record = json.loads(lines[3])
    record["value"] = 0
    return lines[:3] + [canonical(record) + "\n"] + lines[4:]


def change_value_and_rehash(lines: list[str]) -> list[str]:
    record = json.loads(lines[3])
    record["value"] = 0
    forged = rehash(record, record["prev"])
    return lines[:3] + [canonical(forged) + "\n"] + lines[4:]


def edit_final_hash(lines: list[str]) -> list[str]:
    record = json.loads(lines[-1])
    record["trace_hash"] = "f" * 64
    return lines[:-1] + [canonical(record) + "\n"]


def edit_final_record_hash(lines: list[str]) -> list[str]:
    return lines[:-1] + [lines[-1].replace('"hash":"', '"hash":"0', 1)]


def insert_fact(lines: list[str]) -> list[str]:
    extra = json.loads(lines[3])
    extra["fact"] = "pregnant"
    return lines[:4] + [canonical(extra) + "\n"] + lines[4:]


def respace(lines: list[str]) -> list[str]:
    return lines[:2] + [json.dumps(json.loads(lines[2]), sort_keys=True) + "\n"] + lines[3:]


def duplicate_key(lines: list[str]) -> list[str]:
    return lines[:3] + [lines[3].replace('{"fact"', '{"value":0,"fact"', 1)] + lines[4:]


# (id, how the file is changed, first bad line, words in the reason)
TAMPERING: list[tuple[str, Callable[[list[str]], list[str]], int, str]] = [
    ("change a value", change_value, 4, "record hash"),
    ("change a value and fix its hash", change_value_and_rehash, 5, "previous-record hash"),
    ("remove a record", lambda ls: ls[:3] + ls[4:], 4, "sequence number"),
    ("swap two records", lambda ls: ls[:3] + [ls[4], ls[3]] + ls[5:], 4, "sequence number"),
    ("insert a record", insert_fact, 5, "sequence number"),
    ("remove the start record", lambda ls: ls[1:], 1, "sequence number"),
    ("edit the final trace hash", edit_final_hash, 12, "record hash"),
    ("edit the final record's own hash", edit_final_record_hash, 12, "record hash"),
    ("append after the end", lambda ls: ls + [ls[3]], 13, "after the end"),
    ("cut the last line short", lambda ls: ls[:-1] + [ls[-1][:40]], 12, "cut off"),
    ("reformat a record", respace, 3, "canonical"),
    ("add a duplicate key", duplicate_key, 4, "canonical"),
    ("not JSON", lambda ls: ls[:2] + ["garbage\n"] + ls[3:], 3, "not a valid JSON"),
]


@pytest.mark.parametrize(("how", "line", "reason"), [t[1:] for t in TAMPERING],
                         ids=[t[0] for t in TAMPERING])
def test_tampering_is_detected_at_the_first_bad_line(trace_path: Path, how, line, reason):
    trace_path.write_text("".join(how(lines_of(trace_path))), encoding="utf-8")
    with pytest.raises(TraceIntegrityError) as caught:
        read_trace(trace_path)
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_truncating_the_end_record_leaves_an_unsealed_trace(trace_path: Path):
    trace_path.write_text("".join(lines_of(trace_path)[:-1]), encoding="utf-8")
    trace = read_trace(trace_path)
    assert not trace.sealed
    assert trace.decision is not None


def test_empty_trace_is_rejected(tmp_path: Path):
    empty = tmp_path / "t.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(TraceIntegrityError, match="start record is missing"):
        read_trace(empty)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_byte_is_detected(trace_path: Path, data: st.DataObject):
    original = trace_path.read_bytes()
    position = data.draw(st.integers(0, len(original) - 2))  # the final newline is checked above
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    forged = trace_path.with_name("forged.jsonl")
    forged.write_bytes(original[:position] + bytes([byte]) + original[position + 1:])
    with pytest.raises(TraceIntegrityError):
        read_trace(forged)


def test_trace_is_private_and_never_overwritten(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter.create(path, tiny_trial(), clock=ticking_clock())
    writer.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(TraceError, match="already exists"):
        TraceWriter.create(path, tiny_trial())


def test_a_symlink_is_not_followed(tmp_path: Path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "t.jsonl").symlink_to(target)
    with pytest.raises(TraceError, match="already exists"):
        TraceWriter.create(tmp_path / "t.jsonl", tiny_trial())
    assert target.read_text() == "keep me"


def test_each_answer_is_on_disk_before_the_next_question(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter.create(path, tiny_trial(), operator="op", clock=ticking_clock())
    writer.fact("ecog", 2, Source.dialog("ecog"))
    # No close, no seal: what a crash leaves behind.
    trace = read_trace(path)
    assert [r["type"] for r in trace.records] == ["start", "fact"]
    assert not trace.sealed
    assert final_facts(trace)["ecog"]["value"] == 2
    writer.close()


def test_sealed_trace_takes_no_more_records(tmp_path: Path):
    writer = TraceWriter.create(tmp_path / "t.jsonl", tiny_trial(), clock=ticking_clock())
    writer.seal()
    with pytest.raises(TraceError, match="sealed"):
        writer.fact("ecog", 1, Source.dialog())


def test_corrections_keep_the_earlier_value(tmp_path: Path):
    dialog_with_correction(tmp_path / "t.jsonl")
    trace = read_trace(tmp_path / "t.jsonl")
    ecog = final_facts(trace)["ecog"]
    assert ecog["value"] == 1
    assert ecog["corrections"] == [{"old": 3, "new": 1, "reason": "typed 3 for 1",
                                    "time": "2026-03-04T09:30:04.000000+00:00",
                                    "old_time": "2026-03-04T09:30:03.000000+00:00",
                                    "old_source": {"kind": "dialog", "question": "ecog"}}]
    assert [r["value"] for r in trace.of_type("fact") if r["fact"] == "ecog"] == [3]


def test_start_record_names_trial_rules_hash_version_and_operator(tmp_path: Path):
    start = read_trace(dialog_with_correction(tmp_path / "t.jsonl").trace_path).start
    trial = tiny_trial()
    assert start["trial"]["id"] == trial.id
    assert start["trial"]["rules_hash"] == trial.content_hash
    assert start["operator"] == "nurse-7"
    assert start["screener_version"]


def test_derived_facts_name_their_rule_and_inputs(trace_path: Path):
    derived = [r for r in read_trace(trace_path).of_type("fact")
               if r["source"]["kind"] == "derived"]
    assert [(r["fact"], r["source"]["rule"], r["source"]["inputs"]) for r in derived] == [
        ("age", "derive.D1", ["birth_date", "screening_date"])]


@pytest.mark.parametrize("kind", ["eligible", "ineligible", "undetermined"])
def test_verified_trace_replays_to_the_same_decision(tmp_path: Path, kind: str):
    trace = read_trace(batch_candidate(tmp_path, kind).trace)
    outcome = replay(trace, tiny_trial().path)
    assert outcome.matches, outcome.differences
    assert outcome.result.decision == kind


def test_replay_applies_corrections(tmp_path: Path):
    outcome = replay(read_trace(dialog_with_correction(tmp_path / "t.jsonl").trace_path),
                     tiny_trial().path)
    assert outcome.matches
    assert outcome.result.decision == "eligible"


def test_a_rewritten_chain_is_caught_by_replay(trace_path: Path):
    """A forger who recomputes every hash after changing a fact still leaves the recorded
    firing and decision disagreeing with what the rules say about the changed facts."""
    lines = lines_of(trace_path)
    records = [json.loads(line) for line in lines]
    ecog = next(i for i, r in enumerate(records) if r.get("fact") == "ecog")
    records[ecog]["value"] = 4
    prev = "0" * 64
    forged = []
    for record in records[:-1]:
        record = rehash(record, prev)
        prev = record["hash"]
        forged.append(canonical(record) + "\n")
    trace_path.write_text("".join(forged), encoding="utf-8")
    trace = read_trace(trace_path)  # chain intact but unsealed (end record left out)
    differences = replay(trace, tiny_trial().path).differences
    assert [(d.line, d.field) for d in differences] == [
        (9, "firing I2.met: rule"), (9, "firing I2.met: outcome"), (9, "firing I2.met: facts"),
        (11, "decision"), (11, "outcomes.I2"), (11, "failed")]
