"""How quickly the screening dialog answers back.

- next-question latency: from the moment an answer is entered to the moment the next question
  waits for input (engine evaluation, choice of the next question, rendering, and the atomic,
  fsync'ed session save), over full screenings of an eligible patient; target < 50 ms.
- time to first question: `python -m screener screen` started as a process until the first
  question is on its output (imports, rules, dialog file, ruleset); target < 1 s.
- the same for a trial with quantities (tests/data/kinds), which loads the UCUM unit system
  (pint) to check the units its rules declare; pint keeps its parsed definitions in the
  user's cache folder, so the first run after installing is slower than the rest.

Run: python benchmarks/dialog_latency.py [--runs N]
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console

from screener.dialog import store
from screener.dialog.flow import Dialog
from screener.dialog.spec import load_dialog
from screener.engine import Screener
from screener.rules.check import load_trial
from screener.trials import dialog_path, rules_path

# The answers of an eligible man, in the order the dialog asks (see tests/test_dialog_flow.py).
ANSWERS = [
    "male", "3 March 1961", "", "0", "II", "no", "yes", "metastatic", "y", "y", "2020-01-10",
    "2021/06/01", "1", "2", "yes", "no", "no", "no", "no", "no", "no", "no", "no", "I", "no",
    "none", "no", "no", "no", "1.2 mg/dL", "3.8 g/dL", "1.1", "none", "none", "no", "yes", "",
]


class TimedReader:
    """Gives the scripted answers and times the gap between giving one and being asked again."""

    def __init__(self, answers: list[str]):
        self.answers = list(answers)
        self.given_at: float | None = None
        self.gaps: list[float] = []

    def read(self, prompt: str, words: list[str], facts: list[str], check: object) -> str:
        now = time.perf_counter()
        if self.given_at is not None:
            self.gaps.append(now - self.given_at)
        if not self.answers:
            raise EOFError
        self.given_at = time.perf_counter()
        return self.answers.pop(0)


def next_question_latency(runs: int) -> list[float]:
    trial = load_trial(rules_path("NCT03862768"))  # the answers above are this trial's
    engine = Screener(trial)
    dialog = load_dialog(dialog_path(trial.id, "en"), trial)
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for run in range(runs):
            reader = TimedReader(ANSWERS)
            session = store.Session(path=Path(folder) / f"s{run}.json", trial_id=trial.id,
                                    trial_hash=trial.content_hash, language="en", candidate_id=f"B-{run}")
            console = Console(file=io.StringIO(), width=100, color_system=None)
            flow = Dialog(trial, engine, dialog, reader, console, session, save=store.save,
                          today=dt.date(2026, 11, 25))
            result = flow.run()
            assert result.decision == "eligible", result
            gaps.extend(reader.gaps[:-1])  # the last gap is the closing prompt, not a question
    return gaps


def first_question(runs: int, trial_dir: Path | None = None, question: bytes = b"[sex]") -> list[float]:
    times = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if trial_dir is not None:
        env.update(SCREENER_RULES=str(trial_dir), SCREENER_DIALOGS=str(trial_dir / "dialogs"))
    with tempfile.TemporaryDirectory() as folder:
        env["XDG_STATE_HOME"] = folder
        for _ in range(runs):
            start = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-m", "screener", "screen", "--candidate-id", "B"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=folder)
            assert child.stdout is not None and child.stdin is not None
            seen = b""
            while question not in seen:
                chunk = child.stdout.read1(4096)
                if not chunk:
                    raise SystemExit(f"no question appeared: {seen!r}")
                seen += chunk
            times.append(time.perf_counter() - start)
            child.stdin.close()
            child.wait()
    return times


def report(name: str, seconds: list[float], target_ms: float) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    verdict = "ok" if p95 < target_ms else "SLOW"
    print(f"{name:<24} n={len(ms):<5} median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   "
          f"max {ms[-1]:7.2f} ms   target < {target_ms:.0f} ms: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="screenings / process starts (default 20 / 5)")
    args = parser.parse_args()
    report("next-question latency", next_question_latency(args.runs), 50)
    report("time to first question", first_question(max(1, args.runs // 4)), 1000)
    report("... with quantities", first_question(max(1, args.runs // 4), ROOT / "tests" / "data" / "kinds",
                                                 b"[consent]"), 1000)


if __name__ == "__main__":
    main()
