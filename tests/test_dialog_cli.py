"""`screener screen` / `resume` from argv, with injected streams and prompt-toolkit pipes."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from screener.cli import build_parser
from screener.dialog.terminal import DialogCompleter, PromptReader

from conftest import TRIAL

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies


def run(argv: list[str], lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if argv[0] == "screen":
        argv = [argv[0], "--trial", TRIAL, *argv[1:]]
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    status = args.run(args, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    return status, out.getvalue()


def test_answers_file_prefills_and_only_the_rest_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = tmp_path / "answers.yaml"
    # YAML 1.1 would read 1961-03-03 as a date object and `no` as false; the dialog reads them
    # as it reads typed answers.
    answers.write_text(
        "candidate_id: P-7\nsex: male\nbirth_date: 1961-03-03\nscreening_date: 3 March 2026\n"
        "ecog: 0\nasa_class: II\nother_malignancy_within_5y: no\nbilirubin_umol_l: 1.2 mg/dL\n"
        "inr:\n", encoding="utf-8")
    status, text = run(["screen", "--answers", str(answers), "--session", str(tmp_path / "s.json")],
                       ["quit"], tmp_path, monkeypatch)
    assert status == 3
    assert "7 answers taken from the answers file." in text
    assert "[gist_confirmed]" in text and "[sex]" not in text and "Patient or candidate id?" not in text
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["candidate_id"] == "P-7"
    assert saved["answers"]["birth_date"] == "1961-03-03"
    assert saved["answers"]["bilirubin_umol_l"] == "20.52"  # a quantity, kept as its exact text
    assert "inr" not in saved["answers"]  # empty means not known yet: it will be asked


def test_bad_answers_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text('{"ecog": 7, "sexe": "male"}', encoding="utf-8")
    status, text = run(["screen", "--answers", str(answers), "--candidate-id", "X"], [], tmp_path, monkeypatch)
    assert status == 2
    assert f"{answers}: ecog: '7' is above the highest possible value, 4." in text
    assert "'sexe' is not a question of this screening (did you mean sex?)." in text


def test_plain_lines_when_input_is_not_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, text = run(["screen", "--session", str(tmp_path / "s.json")], ["P-9", "male", "1940-01-01", "", ""],
                       tmp_path, monkeypatch)
    assert status == 0
    assert "Decision: ineligible\nScreening log: screen failure\nFailed criteria: I3\n  I3 Aged 18 to 75 — Age: 86" in text


def test_an_existing_session_is_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.json").write_text("{}")
    status, text = run(["screen", "--session", str(tmp_path / "s.json")], [], tmp_path, monkeypatch)
    assert status == 2 and "screener resume" in text


def test_resume_without_a_path_takes_the_latest_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, _ = run(["screen", "--candidate-id", "P-3"], ["male", "quit"], tmp_path, monkeypatch)
    assert status == 3
    status, text = run(["resume"], ["1961-03-03", "", "no"], tmp_path, monkeypatch)
    assert "Resuming the screening of P-3 (1 answers so far)." in text
    assert status == 0 and "Decision: ineligible" in text


def test_resume_reports_an_unreadable_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.json").write_text("not json")
    status, text = run(["resume", str(tmp_path / "bad.json")], [], tmp_path, monkeypatch)
    assert status == 2 and "bad.json" in text


def test_prompt_toolkit_reader_hands_back_every_line_and_keeps_history() -> None:
    # A refused answer is not held in the input line with a message on the terminal's bottom
    # line: the flow prints the reason right under the answer and asks again.
    reader = PromptReader()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("abc\r")
        refused = reader.read("> ", ["yes", "no"], [], lambda text: None if text in ("yes", "no") else "yes or no")
        pipe.send_text("yes\r")
        got = reader.read("> ", ["yes", "no"], [], lambda text: None)
        pipe.send_text("\x10\r")  # Ctrl-P: the previous answer from history
        again = reader.read("> ", [], [], lambda text: None)
    assert (refused, got, again) == ("abc", "yes", "yes")


def test_prompt_toolkit_reader_ctrl_d_ends_input() -> None:
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("\x04")
        with pytest.raises(EOFError):
            PromptReader().read("> ", [], [], lambda text: None)


@pytest.mark.parametrize(("typed", "want"), [
    ("ye", ["yes"]), ("change ec", ["ecog"]), ("修改 as", ["asa_class"]), ("x", []),
])
def test_completion(typed: str, want: list[str]) -> None:
    completer = DialogCompleter(["yes", "no", "why"], ["asa_class", "ecog"], ["change", "修改"])
    got: list[Any] = [c.text for c in completer.get_completions(Document(typed), CompleteEvent())]
    assert got == want


def test_sessions_are_listed_and_resumed_by_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, _ = run(["screen", "--candidate-id", "P-4"], ["male", "quit"], tmp_path, monkeypatch)
    assert status == 3
    status, text = run(["sessions"], [], tmp_path, monkeypatch)
    assert status == 0
    row = next(line for line in text.splitlines() if "P-4" in line)
    session_id = row.split()[0]
    assert session_id.startswith("screening-") and "NCT03862768" in row and "in_progress" in row
    status, text = run(["resume", session_id], ["1961-03-03", "", "no"], tmp_path, monkeypatch)
    assert "Resuming the screening of P-4 (1 answers so far)." in text and status == 0
    status, text = run(["sessions"], [], tmp_path, monkeypatch)
    assert "screen failure" in text and "finished" in text


def test_reopening_a_finished_screening_asks_why_and_keeps_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = tmp_path / "s.json"
    status, _ = run(["screen", "--candidate-id", "P-5", "--session", str(session)],
                    ["male", "1961-03-03", "", "no", ""], tmp_path, monkeypatch)
    assert status == 0
    status, text = run(["resume", str(session)], [""], tmp_path, monkeypatch)
    assert "This screening is finished (ineligible). Why reopen it?" in text
    assert "Not reopened: the screening stays finished." in text and status == 3
    assert json.loads(session.read_text())["status"] == "finished"
    status, text = run(["resume", str(session)], ["pathology report arrived", "change gist_confirmed", "yes",
                                                  "quit"], tmp_path, monkeypatch)
    history = json.loads(session.read_text())["history"]
    reopened = [e for e in history if e["event"] == "reopened"]
    assert [(e["decision"], e["reason"]) for e in reopened] == [("ineligible", "pathology report arrived")]
    assert history[-1]["event"] == "correction" and history[-1]["fact"] == "gist_confirmed"


@pytest.mark.parametrize("options, problem", [
    (["--letter", "l.html"], "--letter needs --trace"),
    (["--trace", "exists.jsonl"], "exists.jsonl: already exists"),
    (["--trace", "t.jsonl", "--letter", "exists.jsonl"], "exists.jsonl: already exists"),
    (["--trace", "no/such/dir/t.jsonl"], "cannot write in no/such/dir"),
    (["--tz", "Mars/Olympus"], "--tz 'Mars/Olympus': unknown time zone"),
    (["--lang", "zh", "--letter", "l.html"], "--letter 需要同时使用 --trace"),
])
def test_option_problems_are_reported_before_the_first_question(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], problem: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists.jsonl").write_text("", encoding="utf-8")
    status, text = run(["screen", *options], ["P-1", "male"], tmp_path, monkeypatch)
    assert status == 2 and problem in text
    assert "Patient or candidate id?" not in text and "患者或受试者编号？" not in text


def test_sessions_are_listed_in_chinese_with_columns_aligned_for_wide_characters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.cells import cell_len

    for candidate in ("张三-01", "P-2"):
        status, _ = run(["screen", "--candidate-id", candidate], ["male", "quit"], tmp_path, monkeypatch)
        assert status == 3
    status, text = run(["sessions", "--lang", "zh"], [], tmp_path, monkeypatch)
    assert status == 0
    lines = text.splitlines()
    assert lines[0].split() == ["编号", "试验", "受试者", "开始时间", "状态", "已答", "结论"]
    assert all("进行中" in line for line in lines[1:]) and "in_progress" not in text
    # the status column starts at the same terminal cell on every line
    starts = {cell_len(line[:line.index(word)]) for line, word in zip(lines, ["状态", "进行中", "进行中"])}
    assert len(starts) == 1, lines
