"""Every genuine trace verifies: random conversations through the real `screen` command, for
each shipped trial alone and for all of them together, with unknowns, refused answers,
corrections (`back`, `change FACT`, also after the decision), pauses and `resume`; every trace
they write must then pass `screener verify`."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

from audit_support import hold, paused_intact, traces_in, verified
from conftest import ROOT
from screener.cli import build_parser
from screener.model import FactSpec
from screener.rules.check import load_trial

pytestmark = pytest.mark.usefixtures("compiled_once")

SHIPPED = sorted(p.stem for p in (ROOT / "rules").glob("*.yaml") if not p.stem.endswith(".cases"))
FACTS: dict[str, FactSpec] = {}
INPUTS: set[str] = set()  # facts a derivation reads: unknown more often, so the derived fact is asked
for _trial in SHIPPED:
    _loaded = load_trial(ROOT / "rules" / f"{_trial}.yaml")
    FACTS.update(_loaded.facts)
    INPUTS.update(name for derivation in _loaded.derivations for name in derivation.inputs)
QUESTION = re.compile(r"\[([a-z_0-9]+)\]\n")
FINISHED = "Press Enter to finish"
TODAY = dt.date.today()


def number(spec: FactSpec, rng: random.Random) -> str:
    low = spec.minimum if spec.minimum is not None else 0
    high = spec.maximum if spec.maximum is not None else max(low, 0) + 200
    if spec.type == "integer":
        return str(rng.randint(int(low), int(min(high, low + 200))))
    places = spec.places or rng.choice((0, 1, 2))
    return f"{rng.uniform(low, min(high, low + 500)):.{places}f}"


def value_text(spec: FactSpec, rng: random.Random) -> str:
    """A typed answer for `spec`, as a person would write it (valid most of the time)."""
    kind = spec.type
    if kind == "boolean":
        return rng.choice(("yes", "no"))
    if kind == "enum":
        return rng.choice(spec.values)
    if kind in ("integer", "decimal", "quantity"):
        return number(spec, rng)
    if kind == "date":
        special = [s.value for s in spec.special]
        if special and rng.random() < 0.2:
            return rng.choice(special)
        return (TODAY - dt.timedelta(days=rng.choice((0, 3, 20, 45, 200, 800, 4000, 22000)))).isoformat()
    if kind == "list":
        if rng.random() < 0.5:
            return "none"
        return "; ".join(", ".join(f"{field.name}={value_text(field, rng)}" for field in spec.item)
                         for _ in range(rng.randint(1, 2)))
    return rng.choice(("see notes", "n/a"))


class Person:
    """Standard input that answers what the screen just asked: it reads the questions from
    the screening's own output, like the person at the keyboard."""

    def __init__(self, out: io.StringIO, rng: random.Random, pause_at: int | None):
        self.out, self.rng, self.pause_at = out, rng, pause_at
        self.seen = 0
        self.answered: list[str] = []
        self.reads = 0
        self.tries: dict[str, int] = {}

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        text = self.out.getvalue()
        chunk, self.seen = text[self.seen:], len(text)
        self.reads += 1
        if self.reads > 600:
            return ""  # end of input: the screening pauses (and its traces must still hold)
        if self.pause_at is not None and self.reads == self.pause_at:
            self.pause_at = None
            return "quit\n"
        asked = [fact for fact in QUESTION.findall(chunk) if fact in FACTS]
        if asked:
            return self.answer(asked[-1]) + "\n"
        if FINISHED in chunk:
            if self.answered and self.rng.random() < 0.15:
                return f"change {self.rng.choice(self.answered)} rechecked\n"
            return "\n"
        if "Why reopen" in chunk:
            return "lab values came back\n"
        return self.rng.choice(("yes", "no")) + "\n"  # a confirmation ("Did you mean ...?")

    def answer(self, fact: str) -> str:
        rng = self.rng
        self.tries[fact] = self.tries.get(fact, 0) + 1
        roll = rng.random()
        if self.answered and roll < 0.04:
            return "back"
        if self.answered and roll < 0.08:
            return f"change {rng.choice(self.answered)}"
        if roll < 0.10:
            return rng.choice(("why", "how", "summary"))
        if roll < (0.5 if fact in INPUTS else 0.25) or self.tries[fact] > 3:
            return "?"
        if fact not in self.answered:
            self.answered.append(fact)
        return value_text(FACTS[fact], rng)


def screen(argv: list[str], person_rng: random.Random, pause_at: int | None,
           monkeypatch: pytest.MonkeyPatch, tmp: Path) -> int:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp / "state"))
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    return args.run(args, stdin=Person(out, person_rng, pause_at), stdout=out)


def converse(trials: list[str], seed: int, pause_at: int | None, tmp: Path,
             monkeypatch: pytest.MonkeyPatch) -> None:
    """One random screening (paused once and resumed when `pause_at` is given); every trace
    it wrote verifies."""
    rng = random.Random(seed)
    session = tmp / "s.json"
    chosen = [arg for trial in trials for arg in ("--trial", trial)]
    status = screen(["screen", *chosen, "--candidate-id", f"P-{seed}", "--session", str(session),
                     "--trace", str(tmp / "p.trace.jsonl"), "--operator", "Dr Wang"],
                    rng, pause_at, monkeypatch, tmp)
    while status == 3:  # paused: the records so far hold; go on where it stopped
        paused_intact(*traces_in(tmp))
        status = screen(["resume", str(session)], rng, None, monkeypatch, tmp)
        if status == 3:
            break  # the person ran out of answers: an intact, unfinished screening
    assert status in (0, 3)
    if status == 0 and json.loads(session.read_text())["decision"] == "undetermined":
        # pending: resumed, it asks again what is still open, into new linked traces
        status = screen(["resume", f"P-{seed}"], rng, None, monkeypatch, tmp)
        assert status in (0, 3)
    if status == 0:
        verified(*traces_in(tmp))
    else:  # the traces sealed before the person ran out of answers, and the open ones
        hold(*traces_in(tmp))


SEEDS = range(int(os.environ.get("SCREENER_DIALOG_SEEDS", 3)))  # each seed: another person


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("trial", SHIPPED)
def test_every_trace_of_a_random_single_trial_conversation_verifies(
        trial: str, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pause_at = random.Random(seed).choice((None, 5, 20))
    converse([trial], seed, pause_at, tmp_path, monkeypatch)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_trace_of_a_random_conversation_for_all_trials_verifies(
        seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pause_at = random.Random(seed).choice((None, 10, 60))
    converse(SHIPPED, seed, pause_at, tmp_path, monkeypatch)
