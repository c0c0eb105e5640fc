"""A candidate whose facts contradict what derivations compute: every contradiction is named
at once, in the trial's fact order, with values as a person reads them."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from screener.batch import screen_row
from screener.dialog import store
from screener.dialog.flow import Dialog
from screener.dialog.spec import load_dialog
from screener.dialog.terminal import LineReader
from screener.engine import Screener
from screener.errors import ConflictError, ImpossibleFacts
from screener.model import Trial
from screener.readers import Row
from screener.rules.check import load_trial
from screener.trials import dialog_path

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

CAR_T = "NCT06898385"
# Given values that disagree with two independent derivations: the RR interval with the heart
# rate, the creatinine clearance with age, weight, sex and creatinine (Cockcroft-Gault).
TWO_CONTRADICTIONS = {"candidate_id": "P-2", "heart_rate": "75", "rr_interval": "3", "age": "60",
                      "weight": "70", "sex": "male", "creatinine": "1 mg/dL", "crcl": "10"}
RR = "rr_interval: 3.000000: disagrees with 0.800000 derived from heart_rate=75.0"
CRCL = "crcl: 10.0000: disagrees with 77.7778 derived from age=60, weight=70.00, sex=male, creatinine=88.4000"


@pytest.fixture(scope="module")
def car_t() -> Trial:
    return load_trial(ROOT / "rules" / f"{CAR_T}.yaml")


@pytest.fixture(scope="module")
def car_t_screener(car_t: Trial) -> Screener:
    return Screener(car_t)


def test_a_batch_row_with_two_contradictions_is_one_record_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, list(TWO_CONTRADICTIONS))
        writer.writeheader()
        writer.writerow(TWO_CONTRADICTIONS)
    done = subprocess.run([sys.executable, "-m", "screener", "batch", str(path), "--trial", CAR_T],
                          capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1  # some candidates are errors
    records = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert len(records) == 1
    # in the data dictionary's order (crcl comes before rr_interval), whatever order rules fire in
    assert records[0]["decision"] == "error" and records[0]["errors"] == [CRCL, RR]


def test_an_impossible_date_and_a_disagreeing_value_are_both_named(car_t: Trial, car_t_screener: Screener) -> None:
    row = {"candidate_id": "P-3", "birth_date": "2030-05-01", "main_consent_date": "2025-01-02",
           "heart_rate": "75", "rr_interval": "3"}
    record = screen_row(car_t, car_t_screener, Row(1, row)).record
    assert record["decision"] == "error"
    age, rr = record["errors"]
    assert age.startswith("age: cannot be derived from birth_date=2030-05-01, main_consent_date=2025-01-02: ")
    assert rr == RR


def test_a_value_derived_from_a_derived_value_is_checked_after_an_earlier_contradiction(
        car_t: Trial, car_t_screener: Screener) -> None:
    """QTcF needs the RR interval, itself derived from the heart rate: a given QTcF that
    disagrees is named beside a creatinine clearance that disagrees, found first."""
    qtcf = "qtcf: 300.0000: disagrees with 430.8869 derived from qt_interval=400.0, rr_interval=0.800000"
    row = {"candidate_id": "P-7", "heart_rate": "75", "qt_interval": "400", "qtcf": "300"}
    assert screen_row(car_t, car_t_screener, Row(1, row)).record["errors"] == [qtcf]
    both = {**row, **{k: v for k, v in TWO_CONTRADICTIONS.items() if k not in ("candidate_id", "rr_interval")}}
    assert screen_row(car_t, car_t_screener, Row(2, both)).record["errors"] == [CRCL, qtcf]


def test_dates_numbers_and_labels_read_as_a_person_writes_them(trial: Trial, screener: Screener) -> None:
    row = {"candidate_id": "P-4", "age": "30", "birth_date": "1960-01-01", "screening_date": "2024-01-01",
           "child_pugh_class": "C", "bilirubin_umol_l": "20", "albumin_g_l": "40", "inr": "1.0",
           "ascites": "none", "encephalopathy": "none"}
    record = screen_row(trial, screener, Row(1, row)).record
    assert record["errors"] == [
        "age: 30: disagrees with 64 derived from birth_date=1960-01-01, screening_date=2024-01-01",
        "child_pugh_class: C: disagrees with A derived from bilirubin_umol_l=20, albumin_g_l=40, inr=1, "
        "ascites=none, encephalopathy=none"]


def test_the_error_keeps_the_first_contradiction_and_carries_the_others(car_t_screener: Screener) -> None:
    facts = {"heart_rate": 75.0, "rr_interval": 3.0, "birth_date": dt.date(2030, 5, 1),
             "main_consent_date": dt.date(2025, 1, 2)}
    with pytest.raises(ConflictError) as info:
        car_t_screener.evaluate(facts)
    first = info.value
    assert isinstance(first, ImpossibleFacts) and first.fact == "age"
    assert [e.fact for e in first.each] == ["age", "rr_interval"]
    assert str(first) == str(first.each[0]) and str(first).startswith("age: ")


def test_the_session_is_clean_after_a_candidate_with_several_contradictions(car_t_screener: Screener) -> None:
    """Derivations no longer stop mid-session: the session runs to its end and the next
    candidate must meet none of the contradicting candidate's facts."""
    facts = {"heart_rate": 75.0, "sex": "male", "ecog": 0}
    alone = car_t_screener.evaluate(facts)
    for _ in range(3):
        with pytest.raises(ConflictError) as info:
            car_t_screener.evaluate({**facts, "rr_interval": 3.0, "weight": 70.0, "age": 60,
                                     "creatinine": 88.4, "crcl": 10.0})
        assert [e.fact for e in info.value.each] == ["crcl", "rr_interval"]
        assert car_t_screener.evaluate(facts) == alone
    assert car_t_screener.evaluate({}).derived == {}


def test_a_trial_over_several_rulesets_names_each_contradiction_once(tmp_path: Path) -> None:
    lines = ["trial: {id: MANY, title: Many, version: '1'}", "facts:",
             "  candidate_id: {type: text, required: true, description: Id.}",
             "  x: {type: integer, min: 0, max: 100, description: X.}",
             "  y: {type: integer, min: 0, max: 200, derived: true, description: Y.}",
             "  z: {type: integer, min: 0, max: 300, derived: true, description: Z.}"]
    lines += [f"  b{i}: {{type: boolean, description: B{i}.}}" for i in range(10)]
    lines += ["derivations:", "  - {id: D-y, fact: y, formula: x + 1, description: Y.}",
              "  - {id: D-z, fact: z, formula: x * 2, description: Z.}", "criteria:",
              '  - {id: IY, kind: inclusion, title: T, protocol: P., when: "y > 0 and z > 0"}']
    # 600 criteria are more than one durable-rules ruleset takes: each ruleset derives y and z
    lines += [f'  - {{id: I{n}, kind: inclusion, title: T, protocol: P., when: "b{n % 10} or not b{(n + 1) % 10}"}}'
              for n in range(600)]
    path = tmp_path / "MANY.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trial = load_trial(path)
    screener = Screener(trial)
    assert len(screener.ruleset_names) > 1
    record = screen_row(trial, screener, Row(1, {"candidate_id": "P-5", "x": "3", "y": "9", "z": "1"})).record
    assert record["errors"] == ["y: 9: disagrees with 4 derived from x=3", "z: 1: disagrees with 6 derived from x=3"]
    assert screener.evaluate({"x": 3}).derived == {"y": 4, "z": 6}


@pytest.mark.parametrize("language, want", [
    # by clinical labels, with units, the computed values at a clinical precision
    ("en", ["That contradicts other answers: Creatinine clearance given as 10 mL/min, but the other answers give "
            "77.8 mL/min.",
            "That contradicts other answers: RR interval given as 3 s, but the other answers give 0.8 s."]),
    ("zh", ["与其他回答矛盾：肌酐清除率 填写为 10 mL/min，但根据其他回答计算为 77.8 mL/min。",
            "与其他回答矛盾：RR 间期 填写为 3 s，但根据其他回答计算为 0.8 s。"]),
])
def test_an_answers_file_with_two_contradictions_names_both_in_the_dialogs_language(
        car_t: Trial, car_t_screener: Screener, tmp_path: Path, language: str, want: list[str]) -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None, soft_wrap=True)
    session = store.Session(path=tmp_path / "s.json", trial_id=car_t.id, trial_hash=car_t.content_hash,
                            language=language, candidate_id="P-6")
    dialog = Dialog(car_t, car_t_screener, load_dialog(dialog_path(car_t.id, language), car_t),
                    LineReader(io.StringIO(""), console), console, session, save=store.save,
                    today=dt.date(2026, 11, 25))
    given = {k: v for k, v in TWO_CONTRADICTIONS.items() if k != "candidate_id"}
    assert dialog.prefill(given) == want
    assert session.answers == {}  # nothing is recorded unless every answer fits


def test_the_terminal_dialog_shows_every_contradiction(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    answers = tmp_path / "known.yaml"
    answers.write_text("".join(f"{k}: '{v}'\n" for k, v in TWO_CONTRADICTIONS.items()), encoding="utf-8")
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1", PYTHONPATH=str(ROOT),
               XDG_STATE_HOME=str(tmp_path / "state"), COLUMNS="250")
    child = pexpect.spawn(sys.executable, ["-m", "screener", "screen", "--trial", CAR_T, "--answers",
                                           str(answers), "--session", str(tmp_path / "s.json")],
                          env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30, dimensions=(50, 250))
    child.expect(pexpect.EOF)
    child.close()
    shown = child.before.replace("\r\n", "\n")
    assert child.exitstatus == 2
    assert (f"{answers}: That contradicts other answers: Creatinine clearance given as 10 mL/min, but the other "
            "answers give 77.8 mL/min.") in shown
    assert (f"{answers}: That contradicts other answers: RR interval given as 3 s, but the other answers "
            "give 0.8 s.") in shown
