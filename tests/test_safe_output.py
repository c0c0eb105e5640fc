"""What came from input reaches a person's terminal as inert text: escape sequences, control
characters and bidirectional overrides in ids, operator names, answers and file names are shown
escaped, and rich markup in them is not read, in explain, verify, the dialog and batch."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table
from rich.text import Text

from audit_support import batch_candidate
from conftest import ROOT, TRIAL
from screener.safe import safe_console, safe_text

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

# clears the screen, sets the window title, asks for bold, then reverses the rest of the line
HOSTILE = "P\x1b[2J\x1b]0;owned\x07[bold]X\u202eZ"
SHOWN = "P\\x1b[2J\\x1b]0;owned"  # how the start of it reads on screen
OBEYED = ("\x1b[2J", "\x1b]0;", "\u202e")  # what a terminal would act on


@pytest.mark.parametrize(("given", "shown"), [
    ("\x1b[2J", "\\x1b[2J"),
    ("\x1b]8;;http://evil.example\x07link\x1b]8;;\x07", "\\x1b]8;;http://evil.example\\x07link\\x1b]8;;\\x07"),
    ("\x9b31m", "\\x9b31m"),
    ("a\x00b\x08c\x7fd", "a\\x00b\\x08c\\x7fd"),
    ("line\nbreak\r", "line\\nbreak\\r"),
    ("tab\there", "tab\\there"),
    ("abc\u202eevil\u2066x\u2069\u200f", "abc\\u202eevil\\u2066x\\u2069\\u200f"),
    ("one\u2028two", "one\\u2028two"),
    ("bad\udcffname", "bad\\udcffname"),
    ("[bold]Dr Li[/bold]", "[bold]Dr Li[/bold]"),
    ("患者\u3000王 👩\u200d⚕️", "患者\u3000王 👩\u200d⚕️"),
], ids=["csi", "osc-hyperlink", "c1-csi", "c0-and-del", "newline-cr", "tab", "bidi", "line-separator",
        "lone-surrogate", "markup-is-text", "cjk-space-emoji"])
def test_safe_text_escapes_what_a_terminal_would_obey(given: str, shown: str) -> None:
    assert safe_text(given) == shown


def test_safe_text_keeps_newlines_and_tabs_where_they_mean_something() -> None:
    assert safe_text("a\nb\tc\x1b[1m", keep="\n\t") == "a\nb\tc\\x1b[1m"


def test_a_safe_console_keeps_its_own_styles_and_shows_input_as_text() -> None:
    out = io.StringIO()
    console = safe_console(out, force_terminal=True, color_system="standard", width=80)
    table = Table(title=f"trial {HOSTILE}")
    table.add_column("decision")
    table.add_row(HOSTILE)
    console.print(table)
    console.print(Text("eligible", style="bold green"), HOSTILE)
    text = out.getvalue()
    assert not any(code in text for code in OBEYED)
    assert text.count(SHOWN) == 3 and text.count("[bold]X\\u202eZ") == 3  # markup not read
    assert "\x1b[1;32meligible" in text  # the console's own styling still works


def _run(*argv: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "screener", *argv], input=stdin, capture_output=True,
                          text=True, timeout=120, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(ROOT),
                               "XDG_STATE_HOME": str(cwd / "state")})


def _inert(text: str) -> None:
    assert not any(code in text for code in OBEYED), text
    assert "Traceback" not in text


def test_explain_and_verify_show_ids_operators_and_file_names_as_text(tmp_path: Path) -> None:
    written = batch_candidate(tmp_path, "ineligible", candidate_id=HOSTILE, operator=HOSTILE)
    trace = written.trace.rename(tmp_path / f"{HOSTILE}.trace.jsonl")
    explained = _run("explain", str(trace), cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    _inert(explained.stdout + explained.stderr)
    assert f"Candidate: {SHOWN}" in explained.stdout and f"Operator: {SHOWN}" in explained.stdout
    assert "[bold]X\\u202eZ" in explained.stdout
    verified = _run("verify", str(trace), "--rules", str(ROOT / "tests" / "data" / "audit" / "tiny.yaml"),
                    cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    _inert(verified.stdout)
    assert f"{tmp_path}/{SHOWN}" in verified.stdout
    cut = trace.with_name(f"cut {HOSTILE}.jsonl")
    cut.write_text("".join(trace.read_text().splitlines(keepends=True)[:-1]))
    incomplete = _run("verify", str(cut), cwd=tmp_path)
    assert incomplete.returncode == 3
    _inert(incomplete.stderr)
    assert f"cut {SHOWN}" in incomplete.stderr


def test_the_dialog_shows_ids_answers_and_file_names_as_text(tmp_path: Path) -> None:
    trace = tmp_path / f"{HOSTILE}.trace.jsonl"
    first = _run("screen", "--trial", TRIAL, "--session", "s.json", "--trace", str(trace),
                 "--operator", HOSTILE, cwd=tmp_path, stdin=f"{HOSTILE}\nmale\n{HOSTILE}\nsummary\nquit\n")
    assert first.returncode == 3, first.stderr
    _inert(first.stdout + first.stderr)
    assert f"> {SHOWN}" in first.stdout  # the echoed candidate id and answer
    assert f"'{SHOWN.lower()}" in first.stdout  # the refused answer quoted in its reason
    again = _run("resume", "s.json", cwd=tmp_path, stdin="quit\n")
    assert again.returncode == 3, again.stderr
    _inert(again.stdout + again.stderr)
    assert f"Resuming the screening of {SHOWN}" in again.stdout
    assert f"The trace goes on in {tmp_path}/{SHOWN}" in again.stdout
    listed = _run("sessions", cwd=tmp_path)
    _inert(listed.stdout)


def test_the_batch_summary_shows_field_names_and_file_names_as_text(tmp_path: Path) -> None:
    source = tmp_path / f"in {HOSTILE}.csv"
    source.write_text(f"candidate_id,ecog,{HOSTILE}\n{HOSTILE},1,x\n", encoding="utf-8")
    done = _run("batch", str(source), "--trial", TRIAL, "-o", str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _inert(done.stderr)
    assert f"were ignored: {SHOWN}\\x07[bold]X\\u202eZ" in done.stderr
    assert f"{TRIAL}: 1 screened" in done.stderr
    missing = _run("batch", str(tmp_path / f"gone {HOSTILE}.csv"), "--trial", TRIAL, cwd=tmp_path)
    assert missing.returncode == 2
    _inert(missing.stderr)
    assert f"gone {SHOWN}" in missing.stderr


def test_in_a_real_terminal_the_id_is_shown_not_obeyed(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    from test_dialog_e2e import Terminal

    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", HOSTILE, "--session",
                    str(tmp_path / "s.json"), "--operator", HOSTILE)
    term.answer("sex", "quit")
    term.child.expect(pexpect.EOF)
    again = Terminal(tmp_path, "resume", str(tmp_path / "s.json"))
    again.child.logfile_read = screen = io.StringIO()  # all the terminal received
    again.expect(f"Resuming the screening of {SHOWN}")
    again.answer("sex", "quit")
    again.child.expect(pexpect.EOF)
    _inert(screen.getvalue())
