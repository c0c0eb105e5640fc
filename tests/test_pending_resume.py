"""An undetermined screening is pending, and its printed next step works: `screener resume`
(by session id or by the patient's id) asks the questions still open first, records them in a
new trace linked to the sealed one, and both traces verify."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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


# --- a criterion pending on evidence that does not count (`pending(...)`, NCT06534411 E4) ---

EYES = "NCT06534411"
EYE_FACTS = ["eye_exam_date", "eye_exam_method", "unstable_retinopathy"]
EYE_TRIAL = Path(__file__).parent / "data" / "eye" / "rules"  # EYE-1, with a Chinese dialog


def answer_again(term: Terminal, fact: str, hint: str, text: str) -> None:
    """Answer the question of `fact` asked again, its hint showing the earlier answer."""
    term.expect(f"[{fact}]")
    term.expect(hint)
    term.expect(">")
    term.child.send(f"{text}\r")


def _eyes_base() -> dict[str, Any]:
    """The eligible candidate of NCT06534411's hand-made cases (screening on 2025-03-03)."""
    import yaml

    from conftest import ROOT

    cases = yaml.safe_load((ROOT / "rules" / f"{EYES}.cases.yaml").read_text(encoding="utf-8"))
    return dict(cases["base"])


def _everything_but_the_exam(tmp_path: Path) -> Path:
    """An answers file with the candidate's other facts (a list as it is typed on one line):
    the dialog asks the eye examination."""
    import yaml

    given = {k: v for k, v in _eyes_base().items() if k not in EYE_FACTS}
    given["antidiabetic_medications"] = "; ".join(
        ", ".join(f"{name}={value}" for name, value in item.items())
        for item in given["antidiabetic_medications"])
    path = tmp_path / "known.yaml"
    path.write_text(yaml.safe_dump(given, allow_unicode=True), encoding="utf-8")
    return path


def test_a_pending_eye_examination_is_asked_again_on_resume_with_its_earlier_answers(tmp_path: Path) -> None:
    trace, letter = tmp_path / "e.trace.jsonl", tmp_path / "e.letter.html"
    term = Terminal(tmp_path, "screen", "--trial", EYES, "--candidate-id", "EYE-7",
                    "--answers", str(_everything_but_the_exam(tmp_path)),
                    "--trace", str(trace), "--letter", str(letter), "--operator", "Dr Wang")
    # 91 days before the screening visit: too early to count, whatever it showed
    term.answers([("eye_exam_date", "2024-12-02"), ("eye_exam_method", "dilated"),
                  ("unstable_retinopathy", "no")])
    term.expect("Decision: undetermined")
    term.expect("Screening log: pending")
    term.expect("Missing: Fundus examination date, Fundus examination method, "
                "Unstable diabetic retinopathy or maculopathy")
    assert leave(term, trace, letter) == 0

    again = Terminal(tmp_path, "resume", "EYE-7")
    again.expect("pending: the questions still open are asked first")
    again.expect("Still pending: Uncontrolled, potentially unstable diabetic retinopathy or maculopathy. "
                 "Earlier: Fundus examination date: 2 December 2024; Fundus examination method: dilated; "
                 "Unstable diabetic retinopathy or maculopathy: no")
    # a new examination, 21 days before screening
    answer_again(again, "eye_exam_date", "a date (Enter = earlier: 2 December 2024)", "2025-02-10")
    again.expect("Fundus examination date corrected: 2 December 2024 → 10 February 2025")
    answer_again(again, "eye_exam_method", "(Enter = earlier: dilated)", "")  # Enter keeps it
    again.expect("Fundus examination method: the earlier answer stands (dilated).")
    answer_again(again, "unstable_retinopathy", "(Enter = earlier: no)", "")
    again.expect("Decision: eligible")
    second, second_letter = tmp_path / "e.2.trace.jsonl", tmp_path / "e.2.letter.html"
    assert leave(again, second, second_letter) == 0

    first_report, second_report = verified(trace, second)
    assert "gives the recorded decision: undetermined" in first_report
    assert "gives the recorded decision: eligible" in second_report
    assert f"continues {trace}: its first" in second_report
    facts = final_facts(read_trace(second))
    (correction,) = facts["eye_exam_date"]["corrections"]
    assert (correction["old"], correction["new"]) == ("2024-12-02", "2025-02-10")
    assert correction["reason"] == ("collected again: Uncontrolled, potentially unstable diabetic "
                                    "retinopathy or maculopathy was pending")
    assert correction["time"] > correction["old_time"]  # the new answer's own time
    assert facts["eye_exam_method"] == {**facts["eye_exam_method"], "value": "dilated", "corrections": []}
    assert facts["unstable_retinopathy"]["value"] is False
    letter_text = second_letter.read_text(encoding="utf-8")
    assert "Decision" in letter_text and "Eligible: every inclusion criterion is met" in letter_text
    assert "collected again" in letter_text  # the letter shows the correction and why


def test_the_same_in_chinese(tmp_path: Path) -> None:
    trace = tmp_path / "z.trace.jsonl"
    term = Terminal(tmp_path, "screen", "--rules-dir", str(EYE_TRIAL), "--trial", "EYE-1",
                    "--lang", "zh", "--candidate-id", "Z-1", "--trace", str(trace))
    term.answers([("screening_date", "2025-03-03"), ("eye_exam_date", "2025-02-10"),
                  ("eye_exam_method", "未散瞳"), ("unstable_retinopathy", "否"),  # undilated: does not count
                  ("informed_consent", "是")])
    term.expect("筛选登记：待定")
    assert term.finish("回车结束") == 0

    again = Terminal(tmp_path, "resume", "Z-1")
    again.expect("此筛选尚待定")
    again.expect("仍待定：不稳定的糖尿病视网膜病变。原回答：眼底检查日期：2025年2月10日；"
                 "眼底检查方式：未散瞳；不稳定的糖尿病视网膜病变：否")
    answer_again(again, "eye_exam_date", "（回车 = 原回答：2025年2月10日）", "")  # the same day, now dilated
    again.expect("眼底检查日期：保留原回答（2025年2月10日）。")
    answer_again(again, "eye_exam_method", "（回车 = 原回答：未散瞳）", "散瞳")
    again.expect("眼底检查方式 已修改：未散瞳 → 散瞳")
    again.answer("unstable_retinopathy", "是")
    again.expect("不符合入组条件")
    assert again.finish("回车结束") == 0

    second = tmp_path / "z.2.trace.jsonl"
    verified(trace, second, rules_dir=EYE_TRIAL)
    facts = final_facts(read_trace(second))
    assert [c["reason"] for c in facts["eye_exam_method"]["corrections"]] == \
        ["重新采集：不稳定的糖尿病视网膜病变此前待定"]
    assert facts["unstable_retinopathy"]["corrections"][0]["new"] is True


def test_a_screening_left_while_the_exam_is_asked_again_asks_the_rest_when_resumed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    exam = {"eye_exam_date": "2024-12-02", "eye_exam_method": "dilated", "unstable_retinopathy": "no"}
    status, text, _ = run_dialog(["screen", "--trial", EYES, "--candidate-id", "EYE-8",
                                  "--answers", str(_everything_but_the_exam(tmp_path)),
                                  "--trace", str(tmp_path / "t.trace.jsonl")], exam)
    assert status == 0 and "Decision: undetermined" in text
    status, text, person = run_dialog(["resume", "EYE-8"], {"eye_exam_date": "2025-02-10",
                                                             "eye_exam_method": "quit"})
    assert status == 3 and person.asked == ["eye_exam_date", "eye_exam_method"]
    status, text, person = run_dialog(["resume", "EYE-8"], {"eye_exam_method": "",
                                                             "unstable_retinopathy": "no"})
    assert status == 0
    # the date is not asked a third time; the rest of that examination is
    assert person.asked == ["eye_exam_method", "unstable_retinopathy"]
    assert "Decision: eligible" in text
    verified(tmp_path / "t.trace.jsonl", tmp_path / "t.2.trace.jsonl")


def test_a_session_file_whose_questions_to_ask_again_are_not_facts_still_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from screener.dialog import store

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    exam = {"eye_exam_date": "2024-12-02", "eye_exam_method": "dilated", "unstable_retinopathy": "no"}
    run_dialog(["screen", "--trial", EYES, "--candidate-id", "EYE-10", "--answers",
                str(_everything_but_the_exam(tmp_path))], exam)
    status, _, _ = run_dialog(["resume", "EYE-10"], {"eye_exam_date": "quit"})
    assert status == 3
    (path,) = store.state_dir().glob("screening-*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["ask_again"] == EYE_FACTS  # what is still to be asked again is saved
    data["ask_again"] = [42, {"fact": "eye_exam_date"}, "no_such_fact", "eye_exam_method"]
    path.write_text(json.dumps(data), encoding="utf-8")
    status, text, person = run_dialog(["resume", "EYE-10"], {"eye_exam_method": "",
                                                              "unstable_retinopathy": ""})
    assert status == 0 and person.asked == ["eye_exam_method"]
    assert "Decision: undetermined" in text


def test_keeping_every_earlier_answer_leaves_the_screening_pending_and_corrects_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    exam = {"eye_exam_date": "2024-12-02", "eye_exam_method": "dilated", "unstable_retinopathy": "no"}
    run_dialog(["screen", "--trial", EYES, "--candidate-id", "EYE-9", "--answers",
                str(_everything_but_the_exam(tmp_path)), "--trace", str(tmp_path / "t.trace.jsonl")], exam)
    # Enter, or the same answer typed again, keeps each
    status, text, person = run_dialog(["resume", "EYE-9"], {"eye_exam_date": "2 December 2024",
                                                             "eye_exam_method": "", "unstable_retinopathy": ""})
    assert status == 0 and person.asked == EYE_FACTS
    assert "Decision: undetermined" in text and "corrected" not in text
    verified(tmp_path / "t.trace.jsonl", tmp_path / "t.2.trace.jsonl")
    assert read_trace(tmp_path / "t.2.trace.jsonl").of_type("correction") == []


def test_a_batch_record_of_such_a_candidate_is_pending_and_names_the_examination(tmp_path: Path) -> None:
    import json

    from screener.cli import main

    early = {**_eyes_base(), "candidate_id": "early", "eye_exam_date": "2024-12-02"}
    undilated = {**_eyes_base(), "candidate_id": "undilated", "eye_exam_method": "undilated",
                 "unstable_retinopathy": True}
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(row, default=str) + "\n" for row in (early, undilated)),
                      encoding="utf-8")
    assert main(["batch", str(source), "-o", str(out), "--trial", EYES]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["candidate_id"], r["decision"], r["screening_log"], r["missing"]) for r in records] == [
        ("early", "undetermined", "pending", EYE_FACTS),
        ("undilated", "undetermined", "pending", EYE_FACTS)]
