"""Shared inputs for the audit tests: a tiny made-up trial, three candidates, a fixed clock."""
from __future__ import annotations

import argparse
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from screener.audit.artifacts import CandidateArtifacts, TraceObserver, write_candidate_artifacts
from screener.audit.cli import add_audit_parsers
from screener.engine import Screener
from screener.model import Trial
from screener.audit.trace import Source
from screener.rules.check import load_trial

HERE = Path(__file__).parent
TINY = HERE / "data" / "audit" / "tiny.yaml"
GOLDEN = HERE / "golden"
NOW = dt.datetime(2026, 3, 4, 9, 30, tzinfo=dt.timezone.utc)

CANDIDATES: dict[str, dict[str, Any]] = {
    "eligible": {"birth_date": dt.date(1990, 5, 17), "screening_date": dt.date(2026, 3, 4),
                 "ecog": 1, "pregnant": False},
    "ineligible": {"birth_date": dt.date(1990, 5, 17), "screening_date": dt.date(2026, 3, 4),
                   "ecog": 3, "pregnant": True},
    "undetermined": {"birth_date": dt.date(2008, 3, 4), "screening_date": dt.date(2026, 3, 4),
                     "ecog": 0},
}


def tiny_trial() -> Trial:
    return load_trial(TINY)


def ticking_clock(start: dt.datetime = NOW) -> Callable[[], dt.datetime]:
    """A clock that moves one second per reading, so record times are distinct but fixed."""
    moments = iter(start + dt.timedelta(seconds=n) for n in range(10_000))
    return lambda: next(moments)


def batch_candidate(directory: Path, kind: str, candidate_id: str = "P-001",
                    operator: str | None = "Dr. A. Investigator") -> CandidateArtifacts:
    """Screen one of CANDIDATES through the real engine and write its trace and letters."""
    trial = tiny_trial()
    facts = CANDIDATES[kind]
    result = Screener(trial).evaluate(facts)
    assert result.decision == kind
    sources = {name: (value, Source.batch("candidates.csv", 2, name))
               for name, value in facts.items()}
    return write_candidate_artifacts(trial, candidate_id, sources, result, directory,
                                     directory, operator, NOW)


def dialog_with_correction(trace: Path, letter: Path | None = None) -> TraceObserver:
    """A dialog that answers ecog 3, corrects it to 1 with a reason, and finishes eligible."""
    trial = tiny_trial()
    observer = TraceObserver(trace, trial, operator="nurse-7", candidate_id="D-042",
                             letter_path=letter, clock=ticking_clock())
    facts: dict[str, Any] = {}
    for name, value in (("birth_date", dt.date(1980, 1, 31)),
                        ("screening_date", dt.date(2026, 3, 4)), ("ecog", 3)):
        observer.fact(name, value, Source.dialog(name))
        facts[name] = value
    observer.correction("ecog", 3, 1, "typed 3 for 1")
    facts["ecog"] = 1
    observer.fact("pregnant", False, Source.answers_file("answers.yaml", 4))
    facts["pregnant"] = False
    observer.result(Screener(trial).evaluate(facts))
    return observer


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run `screener verify|explain ...` through argparse; returns (status, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="screener")
    add_audit_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    status = args.run(args, Console(file=out, width=100, color_system=None),
                          Console(file=err, width=100, color_system=None))
    return status, out.getvalue(), err.getvalue()


def verified(*traces: Path | str, rules_dir: Path | str | None = None) -> list[str]:
    """Run `screener verify` on every trace a screening wrote and assert that each verifies:
    exit 0, the chain intact and sealed, the replay giving every recorded record again.
    Returns the reports (standard output), one per trace. Every dialog test ends with it."""
    assert traces, "the screening wrote no trace to verify"
    reports = []
    for trace in traces:
        extra = ("--rules-dir", str(rules_dir)) if rules_dir is not None else ()
        status, out, err = run_cli("verify", str(trace), *extra)
        assert status == 0, f"{trace} does not verify (exit {status}):\n{out}{err}"
        reports.append(out)
    return reports


def paused_intact(*traces: Path | str) -> None:
    """Assert that the traces of a paused screening are intact prefixes: `verify` exits 3
    (incomplete), not 1 (tampered)."""
    for trace in traces:
        status, out, err = run_cli("verify", str(trace))
        assert status == 3, f"{trace}: expected incomplete (3), got {status}:\n{out}{err}"


def hold(*traces: Path | str) -> None:
    """Assert that every trace verifies as far as its screening went: a sealed one (exit 0),
    one left paused or unfinished as an intact prefix (exit 3)."""
    assert traces, "the screening wrote no trace to verify"
    for trace in traces:
        status, out, err = run_cli("verify", str(trace))
        assert status in (0, 3), f"{trace} does not verify (exit {status}):\n{out}{err}"


def traces_in(folder: Path) -> list[Path]:
    """Every trace file under `folder`, in name order."""
    return sorted(folder.rglob("*.trace.jsonl"))


class Answering:
    """Standard input for an in-process `screen`/`resume` (`args.run(args, stdin=..., stdout=out)`)
    that answers what the screen just asked, read from `out` as a person reads the screen:
    a question by its `[fact]` from `answers` (a list gives its items in turn, the last for
    ever after), else `unknown` (`?`); the end-of-screening prompt with the next of
    `at_end` (then Enter); the question why a finished screening is reopened with
    `reopen_reason`; any other prompt (a confirmation) with `confirm`."""

    QUESTION = re.compile(r"\[([a-z_0-9]+)\]\n")

    def __init__(self, out: io.StringIO, answers: dict[str, Any] | None = None,
                 at_end: list[str] | None = None, confirm: str = "yes", unknown: str = "?",
                 finished: str = "Press Enter to finish", limit: int = 1000,
                 reopen_reason: str = ""):
        self.out, self.answers, self.at_end = out, dict(answers or {}), list(at_end or [])
        self.confirm, self.unknown, self.finished, self.limit = confirm, unknown, finished, limit
        self.reopen_reason = reopen_reason
        self.seen = 0
        self.asked: list[str] = []

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        text = self.out.getvalue()
        chunk, self.seen = text[self.seen:], len(text)
        self.limit -= 1
        if self.limit < 0:
            return ""
        # the question is the last `[fact]` line, with only its hint line after it (a hint
        # may quote a unit code in brackets too, e.g. [lb_av])
        asked = [m.group(1) for m in self.QUESTION.finditer(chunk) if chunk.count("\n", m.end()) == 1]
        if asked:
            fact = asked[-1]
            self.asked.append(fact)
            answer = self.answers.get(fact, self.unknown)
            if isinstance(answer, list):
                answer = answer.pop(0) if len(answer) > 1 else answer[0]
            return f"{answer}\n"
        if self.finished in chunk:
            return (self.at_end.pop(0) if self.at_end else "") + "\n"
        if "Why reopen" in chunk or "为什么" in chunk:
            return f"{self.reopen_reason}\n"
        return f"{self.confirm}\n"


def run_dialog(argv: list[str], person_answers: dict[str, Any] | None = None, **person: Any
               ) -> tuple[int, str, "Answering"]:
    """Run `screener screen|resume ...` in process with an `Answering` person; returns the exit
    status, everything shown, and the person (what was asked). Set XDG_STATE_HOME first."""
    from screener.cli import build_parser

    args = build_parser().parse_args(argv)
    out = io.StringIO()
    someone = Answering(out, person_answers, **person)
    status = args.run(args, stdin=someone, stdout=out)
    return status, out.getvalue(), someone
