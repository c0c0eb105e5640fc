"""Hostile answers files and session files: a clear refusal naming the file, never a traceback.

`screen --answers` with a 5,000-digit integer and `resume` of a session file nested 100,000
deep once ended in internal failures (int() refuses past 4,300 digits; json recursed).
"""
from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from screener.cli import build_parser
from screener.dialog.answers import InvalidAnswer, parse_answer
from screener.dialog.spec import load_dialog
from screener.trials import dialog_path

from conftest import TRIAL

HUGE = "9" * 5000


def run(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str] = ()) -> tuple[int, str]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if argv[0] == "screen":
        argv = [argv[0], "--trial", TRIAL, *argv[1:]]
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    status = args.run(args, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    return status, out.getvalue()


@pytest.mark.parametrize("name, content, message", [
    ("answers.yaml", f"ecog: {HUGE}\n", "ecog: '999999999999999999999999…' is above the highest possible value, 4."),
    ("answers.json", f'{{"ecog": {HUGE}}}', "ecog: '999999999999999999999999…' is above the highest possible value, 4."),
    ("answers.json", f'{{"ecog": "-{HUGE}"}}', "ecog: '-99999999999999999999999…' is below the lowest possible value, 0."),
    ("answers.yaml", f"bilirubin_umol_l: {HUGE} mg/dL\n",
     "bilirubin_umol_l: '999999999999999999999999…' is not a number."),
], ids=["yaml-integer", "json-integer", "negative-text", "decimal-with-unit"])
def test_a_5000_digit_answer_in_an_answers_file_is_refused_by_name(tmp_path, monkeypatch, name, content, message):
    answers = tmp_path / name
    answers.write_text(content, encoding="utf-8")
    status, text = run(["screen", "--answers", str(answers), "--candidate-id", "X"], tmp_path, monkeypatch)
    assert status == 2
    assert f"{answers}: {message}" in text
    assert "Traceback" not in text and HUGE not in text


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_5000_digit_typed_answer_is_asked_again_not_echoed_whole(trial, language):
    dialog = load_dialog(dialog_path(trial.id, language), trial)
    for fact in ("ecog", "bilirubin_umol_l"):
        with pytest.raises(InvalidAnswer) as refused:
            parse_answer(trial.facts[fact], dialog.questions[fact], dialog.vocabulary, HUGE,
                         dt.date(2026, 11, 25))
        assert refused.value.params["answer"] == HUGE[:24] + "…"


def _session(**fields: Any) -> dict[str, Any]:
    return {"format": "screener-session/1", "trial": TRIAL, "language": "en", "candidate_id": "P-1",
            "answers": {"ecog": 1},
            "history": [{"event": "answer", "fact": "ecog", "value": 1, "source": "dialog"}], **fields}


DEEP = "[" * 100_000 + "]" * 100_000

SESSIONS = [
    ("nested-file", DEEP, "cannot read the session: nested deeper than 64 levels"),
    ("nested-answers", json.dumps(_session(answers={})).replace('"answers": {}', '"answers": ' + DEEP),
     "cannot read the session: nested deeper than 64 levels"),
    ("nested-100", json.dumps(_session(note=json.loads("[" * 100 + "]" * 100))),
     "cannot read the session: nested deeper than 64 levels"),
    ("nan", json.dumps(_session()).replace('"ecog": 1}', '"ecog": NaN}'), "cannot read the session: NaN is not JSON"),
    ("answers-list", json.dumps(_session(answers=[1])), "not a screener session file: answers is not an object"),
    ("history-object", json.dumps(_session(history={})), "not a screener session file: history is not a list"),
    ("history-text", json.dumps(_session(history=["answer"])), "history entry 1 is not an event"),
    ("history-unknown-fact", json.dumps(_session(history=[{"event": "answer", "fact": "ecgo", "value": 1}])),
     "history entry 1: unknown fact 'ecgo'"),
    ("history-bad-value", json.dumps(_session(history=[{"event": "answer", "fact": "ecog", "value": "x"}])),
     "history entry 1: ecog: 'x': expected a whole number"),
    ("history-correction-without-new", json.dumps(_session(history=[{"event": "correction", "fact": "ecog",
                                                                      "old": 1}])),
     "history entry 1: new is missing"),
]


@pytest.mark.parametrize("content, reason", [case[1:] for case in SESSIONS], ids=[case[0] for case in SESSIONS])
def test_resume_of_a_malformed_session_file_is_a_clear_refusal(tmp_path, monkeypatch, content, reason):
    session = tmp_path / "s.json"
    session.write_text(content, encoding="utf-8")
    status, text = run(["resume", str(session)], tmp_path, monkeypatch)
    assert status == 2
    assert f"{session}: {reason}" in text and "Traceback" not in text


@pytest.mark.parametrize("recorded, lang, reason", [
    ("zh", None, "第 1 条历史记录：未知的事实 'ecgo'"),  # the screening's own language
    ("en", "zh", "第 1 条历史记录：未知的事实 'ecgo'"),  # or the one asked for
    ("zh", "en", "history entry 1: unknown fact 'ecgo'"),
])
def test_a_malformed_session_is_refused_in_the_screenings_language(tmp_path, monkeypatch, recorded, lang, reason):
    session = tmp_path / "s.json"
    session.write_text(json.dumps(_session(language=recorded, history=[{"event": "answer", "fact": "ecgo", "value": 1}])),
                       encoding="utf-8")
    status, text = run(["resume", str(session), *(["--lang", lang] if lang else [])], tmp_path, monkeypatch)
    assert status == 2
    assert f"{session}: {reason}" in text and "Traceback" not in text


def test_a_missing_session_is_said_in_the_language_asked_for(tmp_path, monkeypatch):
    status, text = run(["resume", "P-404", "--lang", "zh"], tmp_path, monkeypatch)
    assert status == 2 and "中没有已保存的筛选 P-404" in text


def test_sessions_skips_a_malformed_session_file_and_lists_the_rest(tmp_path, monkeypatch):
    folder = tmp_path / "state" / "screener" / "sessions"
    folder.mkdir(parents=True)
    (folder / "screening-deep.json").write_text(DEEP, encoding="utf-8")
    (folder / "screening-good.json").write_text(json.dumps(_session(created="2026-03-04T09:30:00")),
                                                encoding="utf-8")
    status, text = run(["sessions"], tmp_path, monkeypatch)
    assert status == 0
    assert "screening-good" in text and "screening-deep" not in text


def test_a_well_formed_session_still_resumes(tmp_path, monkeypatch):
    session = tmp_path / "s.json"
    session.write_text(json.dumps(_session()), encoding="utf-8")
    status, text = run(["resume", str(session)], tmp_path, monkeypatch)
    assert "Resuming the screening of P-1 (1 answers so far)." in text
