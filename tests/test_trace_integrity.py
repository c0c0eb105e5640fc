"""Genuine traces verify: regressions of screenings whose own traces once failed `verify`."""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from audit_support import Answering, ticking_clock, verified
from conftest import ROOT
from screener.audit.artifacts import TraceObserver
from screener.audit.chain import final_facts, read_trace
from screener.audit.trace import Source
from screener.cli import build_parser
from screener.engine import Screener
from screener.rules.check import load_trial
from screener.values import coerce


pytestmark = pytest.mark.usefixtures("compiled_once", "traces_verified")


def dialog_trace(path: Path, trial_id: str, answers: dict) -> Path:
    """A dialog's trace of `answers` (each a typed dialog answer), decided by the engine."""
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    with TraceObserver(path, trial, operator="Dr Wang", candidate_id="P-61",
                       clock=ticking_clock()) as observer:
        for name, value in answers.items():
            observer.fact(name, value, Source.dialog(name))
        observer.result(Screener(trial).evaluate(answers))
    return path


BORN = {"sex": "female", "birth_date": dt.date(1965, 6, 12)}


def test_an_age_answered_that_the_dates_also_give_replays_as_answered(tmp_path: Path) -> None:
    # With several trials, one trial's consent date was unknown and so age was asked (61),
    # while this trial computes it from the dates: the trace holds both the answer and the
    # agreeing derivation. Verify once replayed the derived record instead of the answer
    # ("derived.age: recorded None, replayed 61").
    trace = dialog_trace(tmp_path / "c.trace.jsonl", "NCT03862768",
                         {**BORN, "screening_date": dt.date(2026, 12, 7), "age": 61})
    verified(trace)
    age = final_facts(read_trace(trace))["age"]
    assert (age["value"], age["source"]["kind"]) == (61, "dialog")  # what the person said


def test_derived_facts_after_a_given_age_replay_in_the_order_recorded(tmp_path: Path) -> None:
    # NCT06898385 derives age from the consent date and the creatinine clearance from age:
    # with age given, the clearance is derived with the first snapshot, before the hidden
    # terms of the liver tests; replayed from the derived age it came a snapshot later
    # ("derived fact x_t1_lo: fact: recorded 'crcl', replayed 'x_t1_lo'").
    trial = load_trial(ROOT / "rules" / "NCT06898385.yaml")
    labs = {"weight": "60", "creatinine": "80", "alt": "30", "alt_uln": "40", "ast": "30",
            "ast_uln": "40", "bilirubin": "10", "bilirubin_uln": "20", "liver_metastases": "no"}
    answers = {**BORN, "main_consent_date": dt.date(2026, 12, 1), "age": 61,
               **{name: coerce(trial.facts[name], text) for name, text in labs.items()}}
    derived = [f.rule for f in Screener(trial).evaluate(answers).firings if f.derived]
    assert derived.index("derive.D-crcl") < min(i for i, r in enumerate(derived) if r.startswith("term."))
    verified(dialog_trace(tmp_path / "c.trace.jsonl", "NCT06898385", answers))


def test_a_correction_that_drops_nothing_records_the_decision_of_the_answers_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checking which answers a correction made irrelevant evaluates the answers without each
    # one in turn; with several trials, when the correction (here after the decision, to the
    # same birth date) took nothing out, the last of those runs, without an answer, was what
    # the traces recorded as the decision.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    args = build_parser().parse_args([
        "screen", "--all-trials", "--candidate-id", "P-7", "--session", str(tmp_path / "s.json"),
        "--trace", str(tmp_path / "p.trace.jsonl")])
    out = io.StringIO()
    person = Answering(out, {"sex": "male", "birth_date": "1960-01-01", "ecog": "1"},
                       at_end=["change birth_date rechecked"])
    assert args.run(args, stdin=person, stdout=out) == 0
    assert person.asked.count("birth_date") == 2
    verified(*sorted(tmp_path.glob("p.*.trace.jsonl")))


def test_explain_shows_times_in_the_screenings_own_zone_unless_told_otherwise(tmp_path: Path) -> None:
    # screened with --tz Asia/Shanghai (as the letter shows it), explained on a machine in UTC
    from zoneinfo import ZoneInfo

    from audit_support import run_cli

    trial = load_trial(ROOT / "rules" / "NCT03862768.yaml")
    trace = tmp_path / "sh.trace.jsonl"
    with TraceObserver(trace, trial, operator="Dr Wang", candidate_id="P-8", clock=ticking_clock(),
                       zone=ZoneInfo("Asia/Shanghai")) as observer:
        observer.fact("sex", "male", Source.dialog("sex"))
        observer.result(Screener(trial).evaluate({"sex": "male"}))
    assert read_trace(trace).start["zone"] == "Asia/Shanghai"
    status, out, _ = run_cli("explain", str(trace))
    assert status == 0 and "17:30:00 UTC+08:00" in out and "UTC+00:00" not in out
    status, out, _ = run_cli("explain", str(trace), "--tz", "Europe/Paris")
    assert status == 0 and "10:30:00 UTC+01:00" in out and "UTC+08:00" not in out
