"""Per-candidate files: safe names inside their directory, private, never overwritten; the
dialog observer writes as it goes, leaves a paused dialog's trace unsealed and seals with the
letter."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from audit_support import NOW, batch_candidate, dialog_with_correction, tiny_trial
from screener.audit.artifacts import TraceObserver, safe_name, write_candidate_artifacts
from screener.engine import Screener
from screener.audit.trace import Source, TraceError
from screener.audit.chain import read_trace


@pytest.mark.parametrize(("candidate_id", "slug"), [
    ("P-001", "p-001"),
    ("../../x", "x"),
    ("/etc/passwd", "etc-passwd"),
    ("Zoë Ångström", "zoe-angstrom"),
    ("患者-7", "7"),
    ("患者", "candidate"),
    ("", "candidate"),
    ("CON", "con"),
    ("..", "candidate"),
    ("a" * 300, "a" * 40),
], ids=["plain", "parent-dirs", "absolute", "accents", "cjk-mixed", "cjk-only", "empty",
        "windows-device", "dot-dot", "long"])
def test_safe_name_is_a_readable_slug_plus_a_hash(candidate_id: str, slug: str):
    name = safe_name(candidate_id)
    assert name.rsplit("-", 1)[0] == slug
    assert len(name.rsplit("-", 1)[1]) == 16
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


@pytest.mark.parametrize("pair", [("P-001", "p-001"), ("a/b", "a b"), ("\u00e9", "e\u0301"),
                                  ("x", "x ")], ids=["case", "punctuation", "nfc-nfd", "space"])
def test_different_ids_never_share_a_file_even_ignoring_case(pair: tuple[str, str]):
    first, second = pair
    assert safe_name(first).lower() != safe_name(second).lower()


HOSTILE = '../../<img src=x onerror=alert(1)>/"; rm -rf ~'


def test_hostile_id_stays_inside_the_directory(tmp_path: Path):
    outside = set(tmp_path.parent.iterdir())
    directory = tmp_path / "out"
    directory.mkdir()
    written = batch_candidate(directory, "eligible", HOSTILE)
    assert set(tmp_path.parent.iterdir()) == outside
    assert sorted(p.parent for p in [written.trace, *written.letters.values()]) == [directory] * 3
    assert len(list(directory.iterdir())) == 3
    assert read_trace(written.trace).start["candidate_id"] == HOSTILE


def test_batch_files_are_private(tmp_path: Path):
    written = batch_candidate(tmp_path, "ineligible")
    for path in (written.trace, *written.letters.values()):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_batch_never_overwrites_and_writes_nothing_on_refusal(tmp_path: Path):
    batch_candidate(tmp_path, "eligible")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TraceError, match="already exists"):
        batch_candidate(tmp_path, "ineligible")
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_dialog_observer_writes_trace_and_letter(tmp_path: Path):
    observer = dialog_with_correction(tmp_path / "t.jsonl", tmp_path / "letter.html")
    trace = read_trace(tmp_path / "t.jsonl")
    assert trace.sealed
    assert trace.decision is not None and trace.decision["decision"] == "eligible"
    html = (tmp_path / "letter.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert f"sha256 <span class=\"hash\">{observer.trace_hash}</span>" in html
    assert ("corrected: was 3 (dialog answer, 4 Mar 2026, 09:30:03 UTC+00:00) changed to 1 at "
            "4 Mar 2026, 09:30:04 UTC+00:00: typed 3 for 1") in html
    assert "answers file answers.yaml line 4" in html


def test_dialog_left_without_a_result_stays_an_unsealed_prefix_of_its_chain(tmp_path: Path):
    with TraceObserver(tmp_path / "t.jsonl", tiny_trial(), operator="op") as observer:
        observer.fact("ecog", 1, "dialog")
        observer.pause("quit")
    trace = read_trace(tmp_path / "t.jsonl")
    assert not trace.sealed
    assert trace.decision is None
    assert [r["type"] for r in trace.records] == ["start", "fact", "pause"]
    assert trace.paused is not None and trace.paused["reason"] == "quit"


def test_observer_refuses_an_existing_letter_before_writing_anything(tmp_path: Path):
    (tmp_path / "letter.md").write_text("old")
    with pytest.raises(TraceError, match="already exists"):
        TraceObserver(tmp_path / "t.jsonl", tiny_trial(), letter_path=tmp_path / "letter.md")
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize(("given", "recorded"), [
    (Source.batch("in.csv", 3, "ecog"), {"kind": "batch", "file": "in.csv", "row": 3,
                                         "column": "ecog"}),
    ({"kind": "answers_file", "file": "a.yaml", "line": 2},
     {"kind": "answers_file", "file": "a.yaml", "line": 2}),
    ("dialog", {"kind": "dialog"}),
    ("answers", {"kind": "answers_file"}),
    ("default", {"kind": "dialog", "note": "default"}),
    (None, {"kind": "dialog"}),
    ({"kind": "dialog", "question": "q", "future_field": 1}, {"kind": "dialog", "question": "q"}),
], ids=["source", "mapping", "kind-only", "answers-word", "default-answer", "none",
                       "unknown-field"])
def test_observer_accepts_sources_in_plain_forms(tmp_path: Path, given, recorded):
    with TraceObserver(tmp_path / "t.jsonl", tiny_trial()) as observer:
        observer.fact("ecog", 1, given)
    assert read_trace(tmp_path / "t.jsonl").of_type("fact")[0]["source"] == recorded


def test_batch_sources_may_be_plain_text(tmp_path: Path):
    trial = tiny_trial()
    facts = {"ecog": 1, "pregnant": None}
    result = Screener(trial).evaluate({"ecog": 1})
    written = write_candidate_artifacts(
        trial, "P-9", {name: (value, f"row 3, column 2 ({name})") for name, value in facts.items()},
        result, tmp_path, None, None, NOW, input_file="in.csv")
    assert written.letters == {}
    recorded = read_trace(written.trace).of_type("fact")
    assert [(r["fact"], Source.from_json(r["source"]).describe()) for r in recorded] == [
        ("ecog", "batch in.csv row 3, column 2 (ecog)")]
