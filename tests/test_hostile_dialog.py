"""Regression tests in a real pseudo-terminal: hostile or unusual answers in `screener screen`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_dialog_e2e import Terminal, start

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

pexpect = pytest.importorskip("pexpect")


def test_quit_was_refused_at_a_plausibility_confirmation(tmp_path: Path) -> None:
    trace = tmp_path / "p1.trace.jsonl"
    term = start(tmp_path, "--trace", str(trace))
    term.answer("sex", "male")
    term.answer("birth_date", "2090-01-01")
    term.expect("is in the future. Is that right?")
    term.child.send("quit\r")
    term.expect("Screening saved to")
    term.child.expect(pexpect.EOF)
    term.child.close()
    assert term.child.exitstatus == 3
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert saved["status"] == "in_progress" and "birth_date" not in saved["answers"]

    # resumed, the date is asked again; written in full-width digits it is refused and asked again
    again = Terminal(tmp_path, "resume", str(tmp_path / "s.json"))
    again.expect("1 answers so far")
    again.answer("birth_date", "１９４０-01-01")
    again.expect("written with digits other than 0-9 (Arabic-Indic, full-width...); write it with 0-9")
    again.child.send("\x15" + "1940-01-01\r")
    again.answer("screening_date", "")
    again.expect("Decision: ineligible")
    assert again.finish() == 0
    verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)], capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert [r["reason"] for r in records if r["type"] == "pause"] == ["quit"]
