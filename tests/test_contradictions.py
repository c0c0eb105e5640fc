"""A candidate whose facts contradict what derivations compute: every contradiction is named
at once, in the trial's fact order, with values as a person reads them."""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
from decimal import Decimal
import io
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Iterator

import pytest
from rich.console import Console

from screener.run.batch import candidate_facts, screen_row
from screener.dialog import store
from screener.dialog.flow import Dialog
from screener.dialog.spec import load_dialog
from screener.dialog.terminal import LineReader
from screener.engine import Screener
from screener.errors import ConflictError, ImpossibleFacts
from screener.model import Trial
from screener.sources.readers import Row
from screener.rules.check import load_trial
from screener.trials import dialog_path

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

CAR_T = "NCT06898385"
GIST = "NCT03862768"
# Given values that disagree with two independent derivations: the age with the birth and
# screening dates, the Child-Pugh class with its five parts. (Reported measurements such as
# a laboratory's eGFR or an ECG machine's QTcF never contradict: tests/test_reported.py.)
TWO_CONTRADICTIONS = {"candidate_id": "P-2", "age": "30", "birth_date": "1960-01-01",
                      "screening_date": "2024-01-01", "child_pugh_class": "C", "bilirubin_umol_l": "20",
                      "albumin_g_l": "40", "inr": "1.0", "ascites": "none", "encephalopathy": "none"}
AGE = "age: 30: disagrees with 64 derived from birth_date=1960-01-01, screening_date=2024-01-01"
CHILD_PUGH = ("child_pugh_class: C: disagrees with A derived from bilirubin_umol_l=20, albumin_g_l=40, inr=1, "
              "ascites=none, encephalopathy=none")


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
    done = subprocess.run([sys.executable, "-m", "screener", "batch", str(path), "--trial", GIST],
                          capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1  # some candidates are errors
    records = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert len(records) == 1
    # in the data dictionary's order (age comes before child_pugh_class), whatever order rules fire in
    assert records[0]["decision"] == "error" and records[0]["errors"] == [AGE, CHILD_PUGH]


def test_an_impossible_date_and_a_disagreeing_value_are_both_named(trial: Trial, screener: Screener) -> None:
    row = {**TWO_CONTRADICTIONS, "candidate_id": "P-3", "birth_date": "2030-05-01"}
    del row["age"]
    record = screen_row(trial, screener, Row(1, row)).record
    assert record["decision"] == "error"
    age, child_pugh = record["errors"]
    assert age.startswith("age: cannot be derived from birth_date=2030-05-01, screening_date=2024-01-01: ")
    assert child_pugh == CHILD_PUGH


def test_a_reported_value_far_from_its_computation_is_not_a_contradiction(
        car_t: Trial, car_t_screener: Screener) -> None:
    """QTcF needs the RR interval, itself derived from the heart rate: an ECG machine's QTcF
    far from the Fridericia value decides, beside a warning; an age the dates contradict is
    still an error."""
    row = {"candidate_id": "P-7", "heart_rate": "75", "qt_interval": "400", "qtcf": "300"}
    record = screen_row(car_t, car_t_screener, Row(1, row)).record
    assert record["decision"] == "undetermined" and record["errors"] == []
    (warning,) = record["warnings"]
    assert warning.startswith("qtcf: 300") and "reported value used; 430.88" in warning
    assert "computed from qt_interval=400" in warning and warning.endswith("differs by more than 10")
    wrong_age = {**row, "age": "30", "birth_date": "1960-01-01", "main_consent_date": "2024-01-01"}
    assert screen_row(car_t, car_t_screener, Row(2, wrong_age)).record["errors"] == [
        "age: 30: disagrees with 64 derived from birth_date=1960-01-01, main_consent_date=2024-01-01"]


class _Facts(dict):  # a dict that can be watched with a weak reference
    pass


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    """Only reference counting frees objects: what a cycle holds stays."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def test_the_engines_contradiction_holds_no_cycle_with_the_candidates_facts(trial: Trial, screener: Screener) -> None:
    # a dialog or explanation that catches it frees the candidate's facts at once too
    facts = _Facts(candidate_facts(trial, Row(1, dict(TWO_CONTRADICTIONS)))[0])
    kept = weakref.ref(facts)
    with _collector_off():
        with pytest.raises(ConflictError) as caught:
            screener.evaluate(facts)
        assert len(caught.value.each) == 2
        del caught, facts
        assert kept() is None


def test_a_contradictory_row_is_freed_with_its_record(trial: Trial, screener: Screener) -> None:
    # a large file holds thousands of such rows: each goes when its record is done, not at the
    # cyclic collector's next pass, which would walk all of them first
    row = Row(1, dict(TWO_CONTRADICTIONS))
    kept = weakref.ref(row)
    with _collector_off():
        screened = screen_row(trial, screener, row)
        assert screened.record["decision"] == "error"
        del screened, row
        assert kept() is None


def test_dates_numbers_and_labels_read_as_a_person_writes_them(trial: Trial, screener: Screener) -> None:
    row = {"candidate_id": "P-4", "age": "30", "birth_date": "1960-01-01", "screening_date": "2024-01-01",
           "child_pugh_class": "C", "bilirubin_umol_l": "20", "albumin_g_l": "40", "inr": "1.0",
           "ascites": "none", "encephalopathy": "none"}
    record = screen_row(trial, screener, Row(1, row)).record
    assert record["errors"] == [
        "age: 30: disagrees with 64 derived from birth_date=1960-01-01, screening_date=2024-01-01",
        "child_pugh_class: C: disagrees with A derived from bilirubin_umol_l=20, albumin_g_l=40, inr=1, "
        "ascites=none, encephalopathy=none"]


def test_the_error_keeps_the_first_contradiction_and_carries_the_others(screener: Screener) -> None:
    facts = {"birth_date": dt.date(2030, 5, 1), "screening_date": dt.date(2025, 1, 2), "child_pugh_class": "C",
             "bilirubin_umol_l": Decimal(20), "albumin_g_l": Decimal(40), "inr": Decimal("1.0"),
             "ascites": "none", "encephalopathy": "none"}
    with pytest.raises(ConflictError) as info:
        screener.evaluate(facts)
    first = info.value
    assert isinstance(first, ImpossibleFacts) and first.fact == "age"
    assert [e.fact for e in first.each] == ["age", "child_pugh_class"]
    assert str(first) == str(first.each[0]) and str(first).startswith("age: ")


def test_the_session_is_clean_after_a_candidate_with_several_contradictions(screener: Screener) -> None:
    """Derivations no longer stop mid-session: the session runs to its end and the next
    candidate must meet none of the contradicting candidate's facts."""
    facts = {"bilirubin_umol_l": Decimal(20), "albumin_g_l": Decimal(40), "ecog": 0}
    alone = screener.evaluate(facts)
    for _ in range(3):
        with pytest.raises(ConflictError) as info:
            screener.evaluate({**facts, "age": 30, "birth_date": dt.date(1960, 1, 1),
                               "screening_date": dt.date(2024, 1, 1), "child_pugh_class": "C",
                               "inr": Decimal("1.0"), "ascites": "none", "encephalopathy": "none"})
        assert [e.fact for e in info.value.each] == ["age", "child_pugh_class"]
        assert screener.evaluate(facts) == alone
    assert screener.evaluate({}).derived == {}


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
    ("en", ["That contradicts other answers: Age given as 30 years, but the other answers give 64 years.",
            "That contradicts other answers: Child-Pugh class given as class C, but the other answers give class A."]),
    ("zh", ["与其他回答矛盾：年龄 填写为 30 岁，但根据其他回答计算为 64 岁。",
            "与其他回答矛盾：Child-Pugh 分级 填写为 C 级，但根据其他回答计算为 A 级。"]),
])
def test_an_answers_file_with_two_contradictions_names_both_in_the_dialogs_language(
        trial: Trial, screener: Screener, tmp_path: Path, language: str, want: list[str]) -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None, soft_wrap=True)
    session = store.Session(path=tmp_path / "s.json", trial_id=trial.id, trial_hash=trial.content_hash,
                            language=language, candidate_id="P-6")
    dialog = Dialog(trial, screener, load_dialog(dialog_path(trial.id, language), trial),
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
    child = pexpect.spawn(sys.executable, ["-m", "screener", "screen", "--trial", GIST, "--answers",
                                           str(answers), "--session", str(tmp_path / "s.json")],
                          env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30, dimensions=(50, 250))
    child.expect(pexpect.EOF)
    child.close()
    shown = child.before.replace("\r\n", "\n")
    assert child.exitstatus == 2
    assert f"{answers}: That contradicts other answers: Age given as 30 years, but the other answers give 64 years." in shown
    assert (f"{answers}: That contradicts other answers: Child-Pugh class given as class C, but the other answers "
            "give class A.") in shown
