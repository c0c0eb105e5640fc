"""A clinician answers with what the record says, a month for a date and a censored result for
a laboratory value, in a real pseudo-terminal: the answer is taken, echoed as the letter will
show it, decides what every value of it decides, and the trace verifies."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dialog_e2e import Terminal
from test_dialog_flow import MAN

from conftest import TRIAL

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

pytest.importorskip("pexpect")


def _answer(term: Terminal, answers: dict[str, str], echoes: dict[str, str]) -> None:
    """The eligible man's answers with `answers` in place; after each fact of `echoes`, its echo."""
    for fact, text in MAN:
        term.answer(fact, answers.get(fact, text))
        if fact in echoes:
            term.expect(echoes[fact])


def _screen(tmp_path: Path, *extra: str) -> Terminal:
    return Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-1",
                    "--session", str(tmp_path / "s.json"), "--trace", str(tmp_path / "t.jsonl"),
                    "--letter", str(tmp_path / "l.md"), *extra)


def _recorded(trace: Path, fact: str) -> object:
    values = [record["value"] for record in map(json.loads, trace.read_text(encoding="utf-8").splitlines())
              if record.get("type") == "fact" and record.get("fact") == fact]
    return values[-1]


def test_a_month_and_a_censored_result_decide_in_english(tmp_path: Path) -> None:
    term = _screen(tmp_path)
    _answer(term, {"birth_date": "March 1961", "bilirubin_umol_l": "<20"},
            {"birth_date": "read as March 1961", "bilirubin_umol_l": "read as < 20 µmol/L"})
    # aged 65 whatever the day in March 1961; Child-Pugh bilirubin points are 1 below 34.2
    term.expect("Decision: eligible")
    assert term.finish() == 0
    trace = tmp_path / "t.jsonl"
    assert _recorded(trace, "birth_date") == "1961-03"  # as given, read back by verify
    assert _recorded(trace, "bilirubin_umol_l") == "<20"
    letter = (tmp_path / "l.md").read_text(encoding="utf-8")
    assert "March 1961" in letter and "< 20 µmol/L" in letter
    assert "Interval(" not in letter and "Decimal(" not in letter


def test_a_chinese_month_and_a_censored_result_in_chinese(tmp_path: Path) -> None:
    term = _screen(tmp_path, "--lang", "zh")
    term.expect("患者性别？")
    _answer(term, {"sex": "男", "birth_date": "1961年3月", "bilirubin_umol_l": "< 20"},
            {"birth_date": "识别为 1961年3月", "bilirubin_umol_l": "识别为 < 20 µmol/L"})
    term.expect("结论：符合入组条件")
    assert term.finish("回车结束") == 0
    letter = (tmp_path / "l.md").read_text(encoding="utf-8")
    assert "1961年3月" in letter and "< 20 µmol/L" in letter

