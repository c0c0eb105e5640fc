"""A finished screening reopened into a new trace (`screener resume ID --trace NEW`): the new
trace keeps the operator and the original answer times, records the reason, and links the
sealed first trace by hash; `verify` checks the link and `explain` shows it."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from audit_support import run_cli, run_dialog, verified
from conftest import TRIAL
from screener.audit.chain import read_trace

pytestmark = pytest.mark.usefixtures("compiled_once", "traces_verified")

MAN = {"sex": "male", "birth_date": "1960-01-01", "ecog": "2"}


@pytest.fixture
def reopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """An ineligible screening (ECOG 2) by Dr Wang, reopened by Nurse Li because the ECOG was
    re-assessed as 1, in a new trace; the rest answered unknown."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first, second = tmp_path / "first.trace.jsonl", tmp_path / "second.trace.jsonl"
    status, text, _ = run_dialog(["screen", "--trial", TRIAL, "--candidate-id", "P-3",
                                  "--session", str(tmp_path / "s.json"), "--trace", str(first),
                                  "--operator", "Dr Wang"], MAN)
    assert status == 0 and "ineligible" in text
    status, text, person = run_dialog(
        ["resume", str(tmp_path / "s.json"), "--trace", str(second), "--operator", "Nurse Li"],
        {"ecog": "1"}, at_end=["change ecog re-assessed", ""],
        reopen_reason="ECOG re-assessed by the oncologist")
    assert status == 0 and "ecog" in person.asked
    return first, second, text


def test_the_new_trace_keeps_the_operator_the_answer_times_and_the_reason(reopened) -> None:
    first, second, _ = reopened
    verified(first, second)
    old, new = read_trace(first), read_trace(second)
    assert new.start["operator"] == "Dr Wang"  # who screened; not null
    answered = {r["fact"]: r["time"] for r in old.of_type("fact") if r["source"]["kind"] != "derived"}
    carried = {r["fact"]: r["time"] for r in new.of_type("fact") if r["fact"] in answered}
    # the same moments (the session keeps them to the second), not the reopening's
    for fact, time in answered.items():
        assert dt.datetime.fromisoformat(carried[fact]) == \
            dt.datetime.fromisoformat(time).replace(microsecond=0)
    resumed = new.of_type("resume")
    assert [(r["operator"], r["reason"]) for r in resumed] == [
        ("Nurse Li", "ECOG re-assessed by the oncologist")]
    assert min(carried.values()) < resumed[0]["time"]


def test_the_new_trace_links_the_sealed_first_one_and_verify_checks_the_link(reopened) -> None:
    first, second, _ = reopened
    old, new = read_trace(first), read_trace(second)
    [link] = new.start["continues"]
    assert link == {"path": str(first), "records": len(old.records),
                    "last_hash": old.records[-1]["hash"], "sealed": True}
    [report] = verified(second)
    assert f"continues {first}: its first {len(old.records)} records" in report
    assert "are intact" in report


def test_verify_fails_when_the_first_trace_was_changed_after_the_reopening(reopened) -> None:
    first, second, _ = reopened
    records = [json.loads(line) for line in first.read_text().splitlines()]
    records[-1]["records"] += 1  # any edit: the chain of the first trace no longer holds
    first.write_text("".join(json.dumps(r) + "\n" for r in records))
    status, out, err = run_cli("verify", str(second))
    assert status == 1
    assert f"the earlier trace it continues, {first}, no longer holds the records it named" in err
    first.unlink()  # an auditor with the new trace alone: the link is reported, not checked
    status, out, _ = run_cli("verify", str(second))
    assert status == 0 and "not found, not checked" in out


def test_explain_shows_the_link_and_the_reason(reopened) -> None:
    first, second, _ = reopened
    status, out, _ = run_cli("explain", str(second))
    assert status == 0
    # (the text is laid out 80 columns wide: a long path goes to a line of its own, folded)
    assert f"Continues:{first}" in "".join(out.split())
    assert "Reopened: " in out and "by Nurse Li, because: ECOG re-assessed by the oncologist" in out
    assert "Operator: Dr Wang" in out


@pytest.mark.tampered
def test_a_screening_recorded_anew_after_its_trace_was_changed_still_verifies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The refusal's way out (`resume ID --trace NEW` after the paused trace was edited): the
    # new trace is genuine and verifies; it says the earlier one was already changed.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first, second = tmp_path / "first.trace.jsonl", tmp_path / "second.trace.jsonl"
    status, _, _ = run_dialog(["screen", "--trial", TRIAL, "--candidate-id", "P-4", "--session",
                               str(tmp_path / "s.json"), "--trace", str(first)],
                              {"sex": "male", "birth_date": "quit"})
    assert status == 3
    first.write_text(first.read_text().replace('"male"', '"female"'))
    status, text, _ = run_dialog(["resume", str(tmp_path / "s.json")])
    assert status == 2 and "was changed after the screening stopped" in text
    status, _, _ = run_dialog(["resume", str(tmp_path / "s.json"), "--trace", str(second)], MAN)
    assert status == 0
    [report] = verified(second)
    assert f"continues {first} (its first" in report and "had already been changed" in report
