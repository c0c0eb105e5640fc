"""How quickly the screening dialog answers back.

- next-question latency: from the moment an answer is entered to the moment the next question
  waits for input (engine evaluation, choice of the next question, rendering, and the atomic,
  fsync'ed session save), over full screenings of an eligible patient; target < 50 ms.
- time to first question: `python -m screener screen --trial NCT03862768` started as a process
  until the first question is on its output (imports, rules, dialog file, ruleset); target
  < 1 s; and the same for every shipped trial in one conversation (`--all-trials`).
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
import re
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

# The answers of an eligible man, by the fact each question asks (as tests/test_dialog_flow.py
# gives them), so the script holds whatever order the dialog file asks in.
ANSWERS = {
    "sex": "male", "birth_date": "3 March 1961", "screening_date": "", "gist_confirmed": "yes",
    "disease_status": "metastatic", "on_standard_imatinib": "y", "progressed_on_imatinib": "y",
    "imatinib_start_date": "2020-01-10", "first_progression_date": "2021/06/01",
    "progressive_organ_count": "1", "progressive_lesion_count": "2", "mdt_resectable": "yes",
    "tumor_bleeding": "no", "tumor_perforation": "no", "tumor_obstruction": "no",
    "other_malignancy_within_5y": "no", "other_tki_use": "no", "other_clinical_study": "no",
    "ecog": "0", "asa_class": "II", "bilirubin_umol_l": "1.2 mg/dL", "albumin_g_l": "3.8 g/dL",
    "inr": "1.1", "ascites": "none", "encephalopathy": "none", "renal_insufficiency": "no",
    "severe_hepatitis": "no", "severe_cardiopulmonary_disease": "no", "nyha_class": "I",
    "pulmonary_infection": "no", "copd_severity": "none", "severe_diabetes": "no",
    "severe_malnutrition": "no", "other_serious_comorbidity": "no", "serious_mental_illness": "no",
    "needs_concurrent_surgery": "no", "informed_consent": "yes",
}


class TimedReader:
    """Answers each question by the fact it shows (`[ecog]`, read from the dialog's output) and
    times the gap between giving an answer and being asked again; a prompt that shows no fact
    (the closing review) is answered with Enter."""

    def __init__(self, answers: dict[str, str], output: io.StringIO):
        self.answers = answers
        self.output = output
        self.seen = 0
        self.given_at: float | None = None
        self.gaps: list[float] = []

    def read(self, prompt: str, words: list[str], facts: list[str], check: object) -> str:
        now = time.perf_counter()
        if self.given_at is not None:
            self.gaps.append(now - self.given_at)
        shown = self.output.getvalue()[self.seen:]
        self.seen += len(shown)
        asked = re.findall(r"\[([a-z][a-z0-9_]*)\]", shown)
        if asked and asked[-1] not in self.answers:
            raise SystemExit(f"the dialog asks [{asked[-1]}], which the script does not answer")
        self.given_at = time.perf_counter()
        return self.answers[asked[-1]] if asked else ""


def next_question_latency(runs: int) -> list[float]:
    trial = load_trial(rules_path("NCT03862768"))  # the answers above are this trial's
    engine = Screener(trial)
    dialog = load_dialog(dialog_path(trial.id, "en"), trial)
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for run in range(runs):
            output = io.StringIO()
            reader = TimedReader(ANSWERS, output)
            session = store.Session(path=Path(folder) / f"s{run}.json", trial_id=trial.id,
                                    trial_hash=trial.content_hash, language="en", candidate_id=f"B-{run}")
            console = Console(file=output, width=100, color_system=None)
            flow = Dialog(trial, engine, dialog, reader, console, session, save=store.save,
                          today=dt.date(2026, 11, 25))
            result = flow.run()
            assert result.decision == "eligible", result
            gaps.extend(reader.gaps[:-1])  # the last gap is the closing prompt, not a question
    return gaps


def first_question(runs: int, trial_dir: Path | None = None, question: bytes = b"[sex]",
                   trials: tuple[str, ...] = ("--trial", "NCT03862768")) -> list[float]:
    times = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if trial_dir is not None:
        env.update(SCREENER_RULES=str(trial_dir), SCREENER_DIALOGS=str(trial_dir / "dialogs"))
    with tempfile.TemporaryDirectory() as folder:
        env["XDG_STATE_HOME"] = folder
        for _ in range(runs):
            start = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-m", "screener", "screen", *trials, "--candidate-id", "B"],
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
    starts = max(1, args.runs // 4)
    report("time to first question", first_question(starts), 1000)
    report("... every shipped trial", first_question(starts, trials=("--all-trials",)), 1000)
    report("... with quantities", first_question(starts, ROOT / "tests" / "data" / "kinds",
                                                 b"[consent]", trials=()), 1000)


if __name__ == "__main__":
    main()
