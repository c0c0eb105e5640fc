"""An undetermined screening is pending, and its printed next step works: `screener resume`
(by session id or by the patient's id) asks the questions still open first, records them in a
new trace linked to the sealed one, and both traces verify."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_dialog_e2e import Terminal
from test_dialog_flow import CONSENT, MAN

from audit_support import run_cli, run_dialog, verified
from conftest import TRIAL
from screener.audit.chain import final_facts, read_trace

pytestmark = pytest.mark.usefixtures("compiled_once", "traces_verified")

pexpect = pytest.importorskip("pexpect")


def leave(term: Terminal, trace: Path, letter: Path) -> int:
    """Finish the screening; at exit it names the trace and the letter it wrote."""
    term.expect("Press Enter to finish")
    term.child.send("\r")
    term.expect(f"Trace written: {trace} (check it with: screener verify {trace})")
    term.expect(f"Letter written: {letter}")
    term.child.expect(pexpect.EOF)
    term.child.close()
    return int(term.child.exitstatus)


def test_undetermined_then_resumed_by_patient_id_answers_what_was_missing(tmp_path: Path) -> None:
    trace, letter = tmp_path / "p1.trace.jsonl", tmp_path / "p1.letter.html"
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "GIST-17",
                    "--trace", str(trace), "--letter", str(letter), "--operator", "Dr Wang")
    term.answers(MAN[:CONSENT] + [("informed_consent", "?")])  # consent not yet given
    term.expect("Decision: undetermined")
    term.expect("screener resume screening-")  # the next step it prints...
    assert leave(term, trace, letter) == 0

    again = Terminal(tmp_path, "resume", "GIST-17")  # ...and the patient's id finds it too
    again.expect("pending: the questions still open are asked first")
    again.expect(f"new trace, linked to the earlier one: {tmp_path / 'p1.2.trace.jsonl'}")
    again.answer("informed_consent", "yes")  # the first question: what was missing
    again.expect("Decision: eligible")
    assert leave(again, tmp_path / "p1.2.trace.jsonl", tmp_path / "p1.2.letter.html") == 0

    first, second = verified(trace, tmp_path / "p1.2.trace.jsonl")
    assert "gives the recorded decision: undetermined" in first
    assert "gives the recorded decision: eligible" in second
    assert f"continues {trace}: its first" in second
    later = read_trace(tmp_path / "p1.2.trace.jsonl")
    assert later.start["operator"] == "Dr Wang"
    assert final_facts(later)["informed_consent"]["value"] is True
    assert "eligible" in (tmp_path / "p1.2.letter.html").read_text(encoding="utf-8")


def test_only_unknown_answers_that_still_matter_are_asked_again(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    known = dict(MAN[:CONSENT])
    known.update(tumor_bleeding="?", informed_consent="?")
    status, text, person = run_dialog(["screen", "--trial", TRIAL, "--candidate-id", "P-5",
                                       "--trace", str(tmp_path / "t.trace.jsonl")], known)
    assert status == 0 and "Decision: undetermined" in text
    status, text, person = run_dialog(["resume", "P-5"], {"tumor_bleeding": "no",
                                                          "informed_consent": "no"})
    assert status == 0
    assert person.asked == ["tumor_bleeding", "informed_consent"]  # nothing else
    assert "Decision: ineligible" in text  # consent refused
    verified(tmp_path / "t.trace.jsonl", tmp_path / "t.2.trace.jsonl")


def test_a_pending_screening_for_several_trials_goes_on_in_a_new_trace_per_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    status, _, _ = run_dialog(["screen", "--all-trials", "--candidate-id", "P-9",
                               "--trace", str(tmp_path / "p.trace.jsonl")], {"sex": "male"})
    assert status == 0
    firsts = sorted(tmp_path.glob("p.NCT*.trace.jsonl"))
    assert len(firsts) == 3
    status, text, person = run_dialog(["resume", "P-9"], {"birth_date": "1961-03-03"})
    assert status == 0 and person.asked[0] != "sex"
    seconds = sorted(tmp_path.glob("p.2.NCT*.trace.jsonl"))
    assert len(seconds) == 3
    reports = verified(*firsts, *seconds)
    for earlier, report in zip(firsts, reports[3:]):
        assert f"continues {earlier}" in report


def test_resume_by_an_unknown_patient_id_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    status, text, _ = run_dialog(["resume", "NOBODY-1"])
    assert status == 2


def test_a_pending_screening_left_again_goes_on_in_its_new_trace(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    known = dict(MAN[:CONSENT])
    status, _, _ = run_dialog(["screen", "--trial", TRIAL, "--candidate-id", "P-6",
                               "--trace", str(tmp_path / "t.trace.jsonl")], known)
    assert status == 0
    status, text, _ = run_dialog(["resume", "P-6"], {"informed_consent": "quit"})
    assert status == 3 and f"Trace so far: {tmp_path / 't.2.trace.jsonl'}" in text
    status, text, person = run_dialog(["resume", "P-6"], {"informed_consent": "yes"})
    assert status == 0 and person.asked == ["informed_consent"]
    assert f"The trace goes on in {tmp_path / 't.2.trace.jsonl'}" in text
    assert "Decision: eligible" in text
    verified(tmp_path / "t.trace.jsonl", tmp_path / "t.2.trace.jsonl")
    assert not (tmp_path / "t.3.trace.jsonl").exists()
