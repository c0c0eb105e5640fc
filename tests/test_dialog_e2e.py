"""`screener screen` in a real pseudo-terminal, as a clinician uses it."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from test_dialog_flow import BILIRUBIN, CONSENT, DIAGNOSED, ECOG, MAN  # the same eligible man, answered in a real terminal

from audit_support import verified
from conftest import TRIAL

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parent.parent


class Terminal:
    def __init__(self, tmp_path: Path, *args: str):
        env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1",
                   PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"), COLUMNS="200")
        self.child = pexpect.spawn(sys.executable, ["-m", "screener", *args], env=env, cwd=str(tmp_path),
                                   encoding="utf-8", timeout=15, dimensions=(50, 200))
        self.child.delaybeforesend = None

    def answer(self, fact: str, text: str) -> None:
        self.child.expect_exact(f"[{fact}]")
        self.child.expect_exact(">")
        self.child.send(f"{text}\r")

    def answers(self, pairs: list[tuple[str, str]]) -> None:
        for fact, text in pairs:
            self.answer(fact, text)

    def expect(self, text: str) -> None:
        self.child.expect_exact(text)

    def finish(self, prompt: str = "Press Enter to finish") -> int:
        self.child.expect_exact(prompt)
        self.child.send("\r")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)


def converse(term: Terminal, answers: dict[str, str], stop: str) -> tuple[list[str], list[int]]:
    """Answer every question from `answers` (else `?`) until `stop` shows; the facts asked and
    the "at most N left" counts shown, in order."""
    asked: list[str] = []
    counts: list[int] = []
    while True:
        index = term.child.expect([r"at most (\d+) left", re.escape(stop)])
        if index == 1:
            return asked, counts
        counts.append(int(term.child.match.group(1)))
        term.child.expect(r"\[([a-z_0-9]+)\]")  # the question's fact, the first bracket after the count
        fact = term.child.match.group(1)
        asked.append(fact)
        term.child.expect_exact(">")
        term.child.send(answers.get(fact, "?") + "\r")


def start(tmp_path: Path, *extra: str) -> Terminal:
    return Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-1", "--session", str(tmp_path / "s.json"), *extra)


def test_eligible_man(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answers(MAN)
    term.expect("Decision: eligible")
    assert term.finish() == 0
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["decision"] == "eligible" and "pregnant" not in saved["answers"]


def test_eligible_woman_in_chinese(tmp_path: Path) -> None:
    term = start(tmp_path, "--lang", "zh")
    term.expect("患者性别？")
    term.answers([("sex", "女")] + MAN[1:DIAGNOSED] + [("pregnant", "否"), ("breastfeeding", "否")] + MAN[DIAGNOSED:])
    term.expect("结论：符合入组条件")
    assert term.finish("回车结束") == 0


def test_ineligible_found_early(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answers([("sex", "male"), ("birth_date", "1940-01-01"), ("screening_date", "")])
    term.expect("Decision: ineligible")
    term.expect("Failed criteria: I3")
    term.expect(" — Age: 86")
    assert term.finish() == 0


def test_correction_flips_the_decision(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answers(MAN[:ECOG] + [("ecog", "2")])
    term.expect("Decision: ineligible")
    term.expect("Press Enter to finish")
    term.child.send("change ecog typed 2 for 1\r")
    term.answer("ecog", "1")
    term.expect("ECOG performance status corrected: 2 → 1")
    term.answers(MAN[ECOG + 1:])
    term.expect("Decision: eligible")
    assert term.finish() == 0
    history = json.loads((tmp_path / "s.json").read_text())["history"]
    assert [(e["old"], e["new"], e["reason"]) for e in history if e["event"] == "correction"] == [
        (2, 1, "typed 2 for 1")]


def test_why_and_how(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answers(MAN[:ECOG])
    term.answer("ecog", "why")
    term.expect("[ecog] decides:")
    term.expect("Eastern Cooperative Oncology Group (ECOG) physical status score <2 points;")
    term.answer("ecog", "how")
    term.expect("How the conclusion (undetermined) was reached")
    term.expect("Age = ")
    term.answer("ecog", "quit")
    term.expect("Screening saved to")
    term.child.expect(pexpect.EOF)


def test_invalid_answer_gets_a_reason_and_the_same_question(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answer("sex", "male")
    term.answer("birth_date", "31 February 1961")
    term.expect("is not a date I can read")
    term.child.send("\x15" + "1961-03-03\r")  # Ctrl-U clears the refused text
    term.expect("read as 1961-03-03")
    term.answer("screening_date", "")
    term.answer("gist_confirmed", "quit")
    term.child.expect(pexpect.EOF)
    assert json.loads((tmp_path / "s.json").read_text())["answers"]["birth_date"] == "1961-03-03"


def test_quit_then_resume(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answers(MAN[:9])
    term.expect("[progressive_organ_count]")
    term.child.sendcontrol("c")
    term.expect("Screening saved to")
    term.child.expect(pexpect.EOF)
    term.child.close()
    assert term.child.exitstatus == 3
    assert oct((tmp_path / "s.json").stat().st_mode & 0o777) == "0o600"
    again = Terminal(tmp_path, "resume", str(tmp_path / "s.json"))
    again.expect("9 answers so far")
    again.answers(MAN[9:])
    again.expect("Decision: eligible")
    assert again.finish() == 0


def test_a_correction_to_male_leaves_no_pregnancy_in_the_letter(tmp_path: Path) -> None:
    term = start(tmp_path, "--trace", str(tmp_path / "t.jsonl"), "--letter", str(tmp_path / "l.html"))
    term.answers([("sex", "female")] + MAN[1:DIAGNOSED] + [("pregnant", "yes")])
    term.expect("Decision: ineligible")
    term.expect("Press Enter to finish")
    term.child.send("change sex entered wrongly\r")
    term.answer("sex", "male")
    term.expect("Pregnant (yes) no longer applies once Sex is male: removed from the record.")
    term.answers(MAN[DIAGNOSED:])
    term.expect("Decision: eligible")
    assert term.finish() == 0
    letter = (tmp_path / "l.html").read_text(encoding="utf-8")
    e6 = letter.split("<tbody>")[1].split("E6 (exclusion)")[1].split("</tr>")[0]
    assert "Sex = male" in e6  # the evidence names facts by their clinical labels
    assert "Pregnant = " not in letter and "pregnant" not in e6.split("Pregnant or lactating women;")[1].lower()
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    kept = [(r["old"], r["new"], r["reason"]) for r in records if r["type"] == "correction" and r["fact"] == "pregnant"]
    assert kept == [(True, None, "no longer applies once Sex is male")]  # the trace keeps it, superseded


def test_zh_correction_to_male_takes_pregnancy_out(tmp_path: Path) -> None:
    term = start(tmp_path, "--lang", "zh")
    term.answers([("sex", "女")] + MAN[1:DIAGNOSED] + [("pregnant", "是")])
    term.expect("回车结束")
    term.child.send("修改 sex\r")
    term.answer("sex", "男")
    term.expect("性别为男后，妊娠（是）不再适用，已从记录中移除。")
    term.answers(MAN[DIAGNOSED:CONSENT] + [("informed_consent", "是")])
    assert term.finish("回车结束") == 0
    saved = json.loads((tmp_path / "s.json").read_text())
    assert "pregnant" not in saved["answers"] and saved["decision"] == "eligible"


@pytest.mark.parametrize("lang, question, unit_check", [
    ("en", "Question 23, at most", "Did you mean 3.8 g/dL = 38 g/L?"),
    ("zh", "第 23 题，最多还剩", "您是指 3.8 g/dL = 38 g/L 吗？"),
])
def test_albumin_trap_and_progress_line(tmp_path: Path, lang: str, question: str, unit_check: str) -> None:
    term = start(tmp_path, "--lang", lang)
    term.answers(MAN[:BILIRUBIN + 1])
    term.expect(question)
    term.answer("albumin_g_l", "3.8")
    term.expect(unit_check)
    term.child.send("y\r")
    term.answers(MAN[BILIRUBIN + 2:])
    assert term.finish("Press Enter to finish" if lang == "en" else "回车结束") == 0
    assert json.loads((tmp_path / "s.json").read_text())["answers"]["albumin_g_l"] == "38"  # exact text


@pytest.mark.parametrize("lang, future, long_ago", [
    ("en", "is in the future. Is that right?", "is more than 1 years before today"),
    ("zh", "是将来的日期。确定无误吗？", "比今天早 1 年以上"),
])
def test_wrong_date_traps(tmp_path: Path, lang: str, future: str, long_ago: str) -> None:
    term = start(tmp_path, "--lang", lang)
    term.answer("sex", "male")
    term.answer("birth_date", "2090-01-01")
    term.expect(future)
    term.child.send("n\r")
    term.answer("birth_date", "1961-03-03")
    term.answer("screening_date", "1986-03-13")
    term.expect(long_ago)
    term.child.send("n\r")
    term.answer("screening_date", "")
    term.answer("gist_confirmed", "quit")
    term.child.expect(pexpect.EOF)
    saved = json.loads((tmp_path / "s.json").read_text())["answers"]
    assert saved["birth_date"] == "1961-03-03" and saved["screening_date"] != "1986-03-13"


@pytest.mark.parametrize("lang, no, decision, declined, value, finish", [
    ("en", "no", "Decision: ineligible", "Screening log: declined", " — Informed consent: no",
     "Press Enter to finish"),
    ("zh", "否", "结论：不符合入组条件", "筛选登记：拒绝参加", " — 知情同意: 否", "回车结束"),
])
def test_refused_consent_is_declined_on_the_decision_screen(tmp_path: Path, lang: str, no: str,
                                                            decision: str, declined: str, value: str,
                                                            finish: str) -> None:
    term = start(tmp_path, "--lang", lang)
    term.answers(MAN[:CONSENT] + [("informed_consent", no)])
    term.expect(decision)
    term.expect(declined)
    term.expect(value)
    assert term.finish(finish) == 0
    assert json.loads((tmp_path / "s.json").read_text())["category"] == "declined"


def test_a_refused_answer_gets_its_reason_right_under_it(tmp_path: Path) -> None:
    term = start(tmp_path)
    term.answer("sex", "male")
    term.answer("birth_date", "31/02/1961")
    term.child.expect_exact("31/02/1961")
    term.child.expect(r"\r\n(?:\x1b\[[0-9;?]*[a-zA-Z])*'31/02/1961' is not a date I can read")
    term.answer("birth_date", "13/03/1970")  # one reading only: 13 March 1970
    term.expect("read as 1970-03-13")
    term.answer("screening_date", "quit")
    term.child.expect(pexpect.EOF)


@pytest.mark.parametrize("lang, prompt, reason", [
    ("en", "Why reopen it?", "second opinion"), ("zh", "为什么要重新打开？", "病理复核"),
])
def test_sessions_then_reopen_a_finished_screening_by_id(tmp_path: Path, lang: str, prompt: str,
                                                         reason: str) -> None:
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-2", "--lang", lang)
    term.answers([("sex", "male"), ("birth_date", "1940-01-01"), ("screening_date", "")])
    assert term.finish("Press Enter to finish" if lang == "en" else "回车结束") == 0
    listing = Terminal(tmp_path, "sessions")
    listing.child.expect(r"(screening-\S+)\s+NCT03862768\s+P-2")
    session_id = listing.child.match.group(1)
    listing.child.expect(pexpect.EOF)
    again = Terminal(tmp_path, "resume", session_id)
    again.expect(prompt)
    again.child.send(f"{reason}\r")
    again.expect("Press Enter to finish" if lang == "en" else "回车结束")
    again.child.send("\r")
    again.child.expect(pexpect.EOF)
    saved = json.loads(next((tmp_path / "state" / "screener" / "sessions").glob("*.json")).read_text())
    assert [e["reason"] for e in saved["history"] if e["event"] == "reopened"] == [reason]


def test_zh_how_speaks_chinese_with_clinical_labels(tmp_path: Path) -> None:
    term = start(tmp_path, "--lang", "zh")
    term.answers([("sex", "男")] + MAN[1:ECOG])
    term.answer("ecog", "怎么")
    term.expect("结论（尚无法确定）的推导过程")
    term.expect("年龄 = 65 岁，由 出生日期 = 1961年3月3日, 筛选日期 = ")
    term.expect("规则 I1：病理确诊 GIST = 是, 疾病状态 = 转移")
    term.answer("ecog", "退出")
    term.child.expect(pexpect.EOF)


def test_a_prefilled_value_corrected_in_the_dialog_is_credited_to_the_dialog(tmp_path: Path) -> None:
    answers = tmp_path / "known.yaml"
    answers.write_text("sex: female\n", encoding="utf-8")
    term = start(tmp_path, "--answers", str(answers), "--trace", str(tmp_path / "t.jsonl"),
                 "--letter", str(tmp_path / "l.html"))
    term.answer("birth_date", "change sex wrong field in the referral")
    term.answer("sex", "male")
    term.answers(MAN[1:])
    assert term.finish() == 0
    letter = (tmp_path / "l.html").read_text(encoding="utf-8")
    sex = next(line for line in letter.splitlines() if "<li>Sex = male" in line)
    source = int(re.search(r"<li>Sex = male <span class=\"ref\">\[(\d+)\]</span>", sex).group(1))
    sources = re.findall(r"<li>(.*?)</li>", letter.split('<ol class="sources">')[1].split("</ol>")[0])
    assert sources[source - 1].startswith("dialog answer, ")  # the appendix names each source once
    assert "was female (answers file " in sex


def test_a_correction_that_brings_questions_back_says_why_the_count_goes_up(tmp_path: Path) -> None:
    trace = tmp_path / "c.trace.jsonl"
    term = start(tmp_path, "--trace", str(trace))
    term.answer("sex", "male")
    term.child.expect(r"at most (\d+) left")
    for_a_man = int(term.child.match.group(1))
    term.answer("birth_date", "back")
    term.answer("sex", "female")  # the pregnancy and breastfeeding questions apply again
    term.expect("Sex corrected: male → female")
    term.child.expect(r"The correction of Sex brings back questions that no longer applied: at most (\d+) left now\.")
    for_a_woman = int(term.child.match.group(1))
    assert for_a_woman > for_a_man
    asked, counts = converse(term, {"birth_date": "1965-01-10", "screening_date": "", "gist_confirmed": "no"},
                             "Decision: ineligible")
    assert counts[0] == for_a_woman and asked[0] == "birth_date"
    assert all(later < earlier for earlier, later in zip(counts, counts[1:])), counts
    assert term.finish() == 0
    verified(trace)


@pytest.mark.parametrize(("lang", "answers", "named", "name_line", "explained"), [
    ("en", [("sex", "male"), ("birth_date", "1940-01-01"), ("screening_date", "")],
     "- **Investigator:** Dr Wang Li", "Name: Dr Wang Li", "Investigator: Dr Wang Li"),
    ("zh", [("sex", "男"), ("birth_date", "1940-01-01"), ("screening_date", "")],
     "- **研究者：** Dr Wang Li", "姓名： Dr Wang Li", "研究者：Dr Wang Li"),
])
def test_the_investigator_named_apart_from_the_operator_is_on_the_letters_first_page(
        tmp_path: Path, lang: str, answers: list[tuple[str, str]], named: str, name_line: str, explained: str) -> None:
    trace, letter = tmp_path / "i.trace.jsonl", tmp_path / "i.letter.md"
    term = start(tmp_path, "--lang", lang, "--trace", str(trace), "--letter", str(letter),
                 "--operator", "Nurse Chen", "--investigator", "Dr Wang Li")
    term.answers(answers)
    assert term.finish("回车结束" if lang == "zh" else "Press Enter to finish") == 0
    first_page = letter.read_text(encoding="utf-8").split("\n## ")[0]
    assert named in first_page and "Nurse Chen" in first_page  # who screened stays apart
    body = letter.read_text(encoding="utf-8")
    assert name_line in body
    start_record = json.loads(trace.read_text(encoding="utf-8").splitlines()[0])
    assert start_record["investigator"] == "Dr Wang Li" and start_record["operator"] == "Nurse Chen"
    assert json.loads((tmp_path / "s.json").read_text())["investigator"] == "Dr Wang Li"  # for resume's traces
    verified(trace)
    from audit_support import run_cli
    status, out, _ = run_cli("explain", str(trace), "--lang", lang)
    assert status == 0 and explained in out
