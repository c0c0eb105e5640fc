"""A screening left with quit, Ctrl-C or Ctrl-D and taken up with `screener resume` goes on in
the same trace: one chain that `screener verify` accepts, earlier answers with their own times,
the pause and the resumption on record; a trace changed meanwhile is not continued."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_dialog_e2e import Terminal
from test_dialog_flow import MAN

from audit_support import verified
from conftest import ROOT, TRIAL
from screener.dialog.interrupt import HOLD_MARK, HOLD_VARIABLE

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

pexpect = pytest.importorskip("pexpect")

STOP_AT = 9  # answers given before the screening is left


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "screener", "verify", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def leave(term: Terminal, how: str) -> None:
    """Stop at the next question: typing quit, or Ctrl-C, or Ctrl-D."""
    term.expect(f"[{MAN[STOP_AT][0]}]")
    term.expect(">")
    if how == "quit":
        term.child.send("quit\r")
    else:
        term.child.sendcontrol({"interrupt": "c", "eof": "d"}[how])
    term.expect("Screening saved to")
    term.child.expect(pexpect.EOF)
    term.child.close()
    assert term.child.exitstatus == 3


@pytest.mark.parametrize("how", ["quit", "interrupt", "eof"])
def test_a_screening_left_and_resumed_leaves_one_trace_that_verifies(tmp_path: Path, how: str) -> None:
    trace, letter = tmp_path / "p1.trace.jsonl", tmp_path / "p1.letter.html"
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-1", "--trace", str(trace),
                    "--letter", str(letter), "--operator", "Dr Wang")
    term.answers(MAN[:STOP_AT])
    leave(term, how)
    paused = verify(trace)
    assert paused.returncode == 3, paused.stderr
    assert f"incomplete, {STOP_AT} facts recorded" in paused.stderr
    said = {"quit": "left with quit", "interrupt": "interrupted with Ctrl-C",
            "eof": "input ended with Ctrl-D"}[how]
    assert f"paused ({said}) at" in paused.stderr
    before = {r["fact"]: r["time"] for r in records(trace) if r["type"] == "fact"}
    assert not letter.exists()

    again = Terminal(tmp_path, "resume", "--operator", "Dr Li")  # the latest screening
    again.expect(f"{STOP_AT} answers so far")
    again.expect(f"The trace goes on in {trace}")
    again.answers(MAN[STOP_AT:])
    again.expect("Decision: eligible")
    assert again.finish() == 0

    done = verify(trace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gives the recorded decision: eligible" in done.stdout
    kept = records(trace)
    types = [r["type"] for r in kept]
    assert types.count("start") == 1 and types.count("pause") == 1 and types.count("resume") == 1
    pause, resume = kept[types.index("pause")], kept[types.index("resume")]
    assert types.index("resume") == types.index("pause") + 1
    assert (pause["reason"], resume["operator"]) == (how, "Dr Li")
    facts = [r for r in kept if r["type"] == "fact" and r["source"]["kind"] != "derived"]
    assert [r["fact"] for r in facts] == [fact for fact, _ in MAN]  # each answer once, in order
    assert {r["fact"]: r["time"] for r in facts[:STOP_AT]} == before  # earlier answers keep their times
    assert all(r["time"] < pause["time"] < resume["time"] for r in facts[:STOP_AT])
    assert all(r["time"] > resume["time"] for r in facts[STOP_AT:])
    html = letter.read_text(encoding="utf-8")
    assert "P-1" in html and "eligible" in html


def _screen_and_quit(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    lines = "".join(f"{answer}\n" for _, answer in MAN[:STOP_AT]) + "quit\n"
    return _run(tmp_path, lines, "screen", "--trial", TRIAL, "--candidate-id", "P-2", "--session",
                str(tmp_path / "s.json"), *extra)


def _run(tmp_path: Path, lines: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "screener", *argv], input=lines, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
                               "XDG_STATE_HOME": str(tmp_path / "state")})


def _edit_line(path: Path, number: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new)
    path.write_text("".join(lines))


def _rest() -> str:
    return "".join(f"{answer}\n" for _, answer in MAN[STOP_AT:]) + "\n"


@pytest.mark.parametrize(("edit", "says"), [
    (lambda path: _edit_line(path, 2, '"male"', '"female"'),
     "was changed after the screening stopped (line 2: record hash does not match its content)"),
    (lambda path: path.write_text("".join(path.read_text().splitlines(keepends=True)[:-2])),
     "was changed after the screening stopped (it holds 9 records"),
    (lambda path: path.unlink(), "of this screening is gone"),
], ids=["value-edited", "records-removed", "file-removed"])
@pytest.mark.tampered
def test_a_resume_after_the_trace_was_changed_is_refused(tmp_path: Path, edit, says: str) -> None:
    trace = tmp_path / "t.jsonl"
    assert _screen_and_quit(tmp_path, "--trace", str(trace)).returncode == 3
    edit(trace)
    after = trace.read_bytes() if trace.exists() else None
    session = (tmp_path / "s.json").read_bytes()
    refused = _run(tmp_path, _rest(), "resume", "s.json")
    assert refused.returncode == 2
    assert says in refused.stderr
    assert "The screening was not continued; its answers stay saved." in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert (trace.read_bytes() if trace.exists() else None) == after  # nothing appended
    assert (tmp_path / "s.json").read_bytes() == session


def test_after_a_refusal_a_new_trace_can_take_the_screening_on(tmp_path: Path) -> None:
    trace, fresh = tmp_path / "t.jsonl", tmp_path / "new.jsonl"
    assert _screen_and_quit(tmp_path, "--trace", str(trace)).returncode == 3
    trace.unlink()
    done = _run(tmp_path, _rest(), "resume", "s.json", "--trace", str(fresh))
    assert done.returncode == 0, done.stderr
    assert verify(fresh).returncode == 0
    assert json.loads((tmp_path / "s.json").read_text())["traces"][0]["path"] == str(fresh)


def test_reopening_a_traced_screening_asks_for_a_new_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    lines = "".join(f"{answer}\n" for _, answer in MAN) + "\n"
    assert _run(tmp_path, lines, "screen", "--trial", TRIAL, "--candidate-id", "P-3", "--session",
                str(tmp_path / "s.json"), "--trace", str(trace)).returncode == 0
    sealed = trace.read_bytes()
    refused = _run(tmp_path, "second opinion\n\n", "resume", "s.json")
    assert refused.returncode == 2
    assert "is sealed with its decision. To reopen the screening, record it in a new trace" in refused.stderr
    assert trace.read_bytes() == sealed
    reopened = _run(tmp_path, "second opinion\n\n", "resume", "s.json", "--trace", str(tmp_path / "r.jsonl"))
    assert reopened.returncode == 0, reopened.stderr
    assert verify(tmp_path / "r.jsonl").returncode == 0 and verify(trace).returncode == 0


def test_a_resumed_screening_is_signed_in_the_trace_it_goes_on_in(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    (tmp_path / "pass").write_text("s3cret\n")
    assert _run(tmp_path, "", "keygen", "nurse.key", "--passphrase-file", "pass").returncode == 0
    assert _screen_and_quit(tmp_path, "--trace", str(trace), "--operator", "Nurse Li").returncode == 3
    done = _run(tmp_path, _rest(), "resume", "s.json", "--sign-key", "nurse.key",
                "--passphrase-file", "pass")
    assert done.returncode == 0, done.stderr
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "nurse.pub").write_bytes((tmp_path / "nurse.key.pub").read_bytes())
    checked = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace), "--trusted-keys",
                              str(tmp_path / "trusted")], capture_output=True, text=True, timeout=60,
                             cwd=ROOT)
    assert checked.returncode == 0, checked.stderr
    assert "  signed by Nurse Li for authorship at " in checked.stdout
    assert [r["type"] for r in records(trace)].count("signature") == 1


def _paused_by_ctrl_c(trace: Path, answered: int) -> None:
    """The trace of a screening stopped by Ctrl-C: an intact prefix with `answered` answers
    and the pause on record."""
    paused = verify(trace)
    assert paused.returncode == 3, paused.stdout + paused.stderr
    assert f"incomplete, {answered} facts recorded" in paused.stderr
    assert "paused (interrupted with Ctrl-C) at" in paused.stderr
    assert [r["type"] for r in records(trace)].count("pause") == 1


def _resume_to_the_end(tmp_path: Path, trace: Path, answered: int) -> None:
    again = Terminal(tmp_path, "resume")
    again.expect(f"{answered} answers so far")
    again.expect(f"The trace goes on in {trace}")
    again.answers(MAN[answered:])
    again.expect("Decision: eligible")
    assert again.finish() == 0
    verified(trace)
    facts = [r["fact"] for r in records(trace) if r["type"] == "fact" and r["source"]["kind"] != "derived"]
    assert facts == [fact for fact, _ in MAN]  # each answer once, in order: nothing lost


@pytest.mark.parametrize("how", ["ctrl-c", "sigint"])
def test_ctrl_c_while_the_dialog_works_is_a_pause_as_at_the_prompt(tmp_path: Path, how: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the answers are evaluated (held there by the test-only knob, after the
    last answer was typed) finishes that work, then stops at the next question: the answer
    kept, the pause recorded, the session saved with its message, exit 3; no traceback."""
    trace = tmp_path / "p1.trace.jsonl"
    monkeypatch.setenv(HOLD_VARIABLE, str(STOP_AT))  # the evaluation that takes answer STOP_AT
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-1", "--trace", str(trace))
    monkeypatch.delenv(HOLD_VARIABLE)
    term.answers(MAN[:STOP_AT])
    term.expect(HOLD_MARK)
    if how == "ctrl-c":
        term.child.sendcontrol("c")  # the terminal is not in the prompt's raw mode: a SIGINT
    else:
        term.child.kill(signal.SIGINT)
    term.expect(f"[{MAN[STOP_AT][0]}]")  # the work finished: the next question, then the pause
    term.expect("Screening saved to")
    term.expect("Trace so far:")
    term.child.expect(pexpect.EOF)
    shown = term.child.before
    term.child.close()
    assert term.child.exitstatus == 3
    assert "Traceback" not in shown and "interrupted" not in shown
    _paused_by_ctrl_c(trace, STOP_AT)
    _resume_to_the_end(tmp_path, trace, STOP_AT)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.1])
def test_a_sigint_right_after_an_answer_never_loses_it_nor_breaks_the_trace(tmp_path: Path, delay: float) -> None:
    """SIGINT at several moments after an answer was typed (read, evaluated, recorded, saved,
    the next question shown, or the prompt): a pause every time, with the answers that were
    taken kept in the session and the trace alike."""
    trace = tmp_path / "p1.trace.jsonl"
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-1", "--trace", str(trace))
    term.answers(MAN[:STOP_AT - 1])
    term.answer(*MAN[STOP_AT - 1])
    time.sleep(delay)
    term.child.kill(signal.SIGINT)
    term.expect("Screening saved to")
    term.child.expect(pexpect.EOF)
    shown = term.child.before
    term.child.close()
    assert term.child.exitstatus == 3
    assert "Traceback" not in shown
    answered = len(json.loads(_only_session(tmp_path).read_text())["answers"])
    assert answered in (STOP_AT - 1, STOP_AT)  # stopped at the prompt before the answer was read, or after
    _paused_by_ctrl_c(trace, answered)
    _resume_to_the_end(tmp_path, trace, answered)


def _only_session(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "state" / "screener" / "sessions").glob("*.json")
    return found


def test_ctrl_c_while_a_piped_screening_works_is_a_pause(tmp_path: Path) -> None:
    """Answers read from a pipe: a SIGINT while an answer is evaluated is a pause too, the
    answer kept, and `resume` with the rest finishes in the same trace."""
    trace = tmp_path / "t.jsonl"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "XDG_STATE_HOME": str(tmp_path / "state"), HOLD_VARIABLE: str(STOP_AT)}
    screening = subprocess.Popen(
        [sys.executable, "-m", "screener", "screen", "--trial", TRIAL, "--candidate-id", "P-4",
         "--session", str(tmp_path / "s.json"), "--trace", str(trace)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    watchdog = threading.Timer(60, screening.kill)  # never a hanging test
    watchdog.start()
    try:
        assert screening.stdin is not None and screening.stderr is not None
        screening.stdin.write("".join(f"{answer}\n" for _, answer in MAN[:STOP_AT]))
        screening.stdin.flush()  # the pipe stays open: the dialog would wait for the next answer
        assert screening.stderr.readline().strip() == HOLD_MARK
        screening.send_signal(signal.SIGINT)
        out, err = screening.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if screening.poll() is None:
            screening.kill()
    assert screening.returncode == 3, err
    assert "Screening saved to" in out and "Traceback" not in out + err
    _paused_by_ctrl_c(trace, STOP_AT)
    done = _run(tmp_path, _rest(), "resume", "s.json")
    assert done.returncode == 0, done.stderr
    verified(trace)
