"""Quantities, never/ongoing dates, lists and context facts as a coordinator gives them to
`screener batch` and a clinician types them into `screener screen`."""
from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from screener.cli import build_parser
from screener.present import number_text, unit_text
from screener.dialog.answers import InvalidAnswer, parse_answer
from screener.dialog.spec import load_dialog
from screener.model import Special
from screener.rules.check import load_trial

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

KINDS = ROOT / "tests" / "data" / "kinds"
RULES = KINDS / "KINDS-1.yaml"


def _batch(tmp_path: Path, name: str, text: str, *options: str) -> tuple[int, list[dict], str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "screener", "batch", str(path), "--rules", str(RULES),
                           *options], capture_output=True, text=True, timeout=120)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_csv_cells_carry_units_never_dates_and_json_lists(tmp_path):
    csv = ("candidate_id,consent,hemoglobin,creatinine,mi_date,bp\n"
           "c1,yes,9.5 g/dL,1.5 mg/dL,never,[]\n"            # 95 g/L; 132.6 umol/L at the limit
           "c2,yes,95,1.6 mg/dL,NEVER,[]\n"                   # 141.4 umol/L: above 1.5 mg/dL
           "c3,yes,95,100,2024-05-01,[]\n"                    # infarction 31 days before
           # 21.998193923475 kPa is 165 mm[Hg] exactly (1 mm[Hg] = 0.133322387415 kPa)
           'c4,yes,95,100,never,"[{""systolic"": ""21.998193923475 kPa""}, {""systolic"": 170}]"\n'
           "c5,yes,9 mmol/L,100,never,[]\n"                   # no factor declared for Hb
           "c6,yes,95,100,ongoing,[]\n")                      # mi_date allows never only
    status, records, _ = _batch(tmp_path, "c.csv", csv, "--context", "cohort=A")
    assert [(r["candidate_id"], r["decision"], r["failed_criteria"]) for r in records] == [
        ("c1", "eligible", []), ("c2", "ineligible", ["I4"]), ("c3", "ineligible", ["E1"]),
        ("c4", "ineligible", ["E2"]), ("c5", "error", []), ("c6", "error", [])]
    assert records[4]["errors"] == ["hemoglobin: '9 mmol/L': the unit mmol/L does not convert to g/L"]
    assert "mi_date" in records[5]["errors"][0] and "ongoing" in records[5]["errors"][0]
    assert status == 1


def test_json_input_gives_quantities_as_mappings_and_lists_natively(tmp_path):
    rows = [
        {"candidate_id": "j1", "consent": True, "hemoglobin": {"value": 9.5, "unit": "g/dL"},
         "creatinine": 80, "mi_date": "never",
         "bp": [{"date": "2024-05-01", "systolic": 165}, {"systolic": "161 mm[Hg]"}]},
        {"candidate_id": "j2", "consent": True, "hemoglobin": 95, "creatinine": 80,
         "mi_date": "never", "bp": [{"systolic": 150, "pulse": 80}]},
    ]
    status, records, _ = _batch(tmp_path, "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows),
                                "--context", "cohort=A")
    assert records[0]["decision"] == "ineligible" and records[0]["failed_criteria"] == ["E2"]
    assert records[1]["decision"] == "error"
    assert "bp" in records[1]["errors"][0] and "pulse" in records[1]["errors"][0]


def test_a_context_fact_is_given_once_per_run_and_never_by_a_candidate(tmp_path):
    csv = "candidate_id,consent,hemoglobin,creatinine,mi_date,bp\nc1,yes,95,80,never,[]\n"
    _, records, _ = _batch(tmp_path, "c.csv", csv, "--context", "cohort=A")
    assert records[0]["decision"] == "eligible"
    _, records, _ = _batch(tmp_path, "c.csv", csv, "--context", "cohort=B", "--jobs", "2")
    assert records[0]["failed_criteria"] == ["I2"]
    _, records, _ = _batch(tmp_path, "c.csv", csv)
    assert records[0]["missing"] == ["cohort"]
    status, records, _ = _batch(tmp_path, "d.csv", "candidate_id,consent,cohort\nc1,yes,A\n",
                                "--context", "cohort=A")
    assert status == 1 and records[0]["decision"] == "error"
    assert records[0]["errors"][0].startswith("cohort: a context fact is given once per run")


@pytest.mark.parametrize("option, says", [
    ("cohort=C", "--context cohort: 'C': expected one of A, B"),
    ("site=3", "--context 'site' is not a context fact (context facts: cohort)"),
    ("consent=yes", "--context 'consent' is not a context fact"),
    ("cohort", "--context takes NAME=VALUE"),
])
def test_a_bad_context_option_is_a_usage_error(tmp_path, option, says):
    status, records, stderr = _batch(tmp_path, "c.csv", "candidate_id,consent\nc1,yes\n",
                                     "--context", option)
    assert status == 2 and records == []
    assert says in stderr


# --- the dialog ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dialog():
    trial = load_trial(RULES)
    return trial, load_dialog(KINDS / "dialogs" / "KINDS-1.en.yaml", trial)


def _answer(dialog, fact: str, text: str):
    trial, spec = dialog
    return parse_answer(trial.facts[fact], spec.questions[fact], spec.vocabulary, text,
                        dt.date(2024, 6, 1))


@pytest.mark.parametrize("fact, typed, value, echo", [
    ("hemoglobin", "3.8 g/dL", "38", "3.8 g/dL"),
    ("hemoglobin", "38", "38", None),
    ("creatinine", "1,5 mg/dL", "132.6", "1.5 mg/dL"),   # a decimal comma, as many write it
    ("creatinine", "97 µmol/L", "97.0", None),           # the micro sign for UCUM's u
    ("platelets", "180000 /mm3", "180", "180000 /mm3"),
    ("hba1c", "53 mmol/mol", "7.00044", "53 mmol/mol"),  # exactly, never rounded
])
def test_a_clinician_types_a_lab_value_with_its_unit_and_sees_it_converted(dialog, fact, typed, value, echo):
    answer = _answer(dialog, fact, typed)
    assert answer.value == Decimal(value)
    if echo is None:
        assert answer.echo is None
    else:
        # echoed as clinicians write it: µmol/L, ×10⁹/L, no trailing zeros
        assert answer.echo == ("unit_echo", {"given": echo, "value": number_text(Decimal(value)),
                                             "unit": unit_text(dialog[0].facts[fact].unit)})


def test_a_unit_that_does_not_convert_is_refused_naming_the_units_that_do(dialog):
    with pytest.raises(InvalidAnswer) as caught:
        _answer(dialog, "creatinine", "1.5 mmol")
    assert caught.value.key == "bad_unit" and caught.value.params["units"] == "umol/L / mg/dL"


@pytest.mark.parametrize("fact, typed, value", [
    ("mi_date", "Never", Special.NEVER), ("mi_date", "从未", Special.NEVER),
    ("drug_stop", "ongoing", Special.ONGOING), ("drug_stop", "仍在进行", Special.ONGOING),
    ("drug_stop", "NEVER", Special.NEVER), ("drug_stop", "2024-03-01", dt.date(2024, 3, 1)),
])
def test_never_and_ongoing_are_answers_in_words_or_the_dialogs_synonyms(dialog, fact, typed, value):
    assert _answer(dialog, fact, typed).value == value


def test_ongoing_is_refused_for_a_date_that_cannot_be_ongoing(dialog):
    with pytest.raises(InvalidAnswer):
        _answer(dialog, "mi_date", "ongoing")


def test_a_list_is_typed_on_one_line_items_by_semicolon_fields_by_name(dialog):
    answer = _answer(dialog, "bp", "date=2024-03-01, systolic=150, arm=left; systolic=15.9986864898 kPa")
    assert answer.value == (
        {"date": dt.date(2024, 3, 1), "systolic": Decimal(150), "arm": "left"},
        {"date": None, "systolic": Decimal(120), "arm": None},
    )
    assert _answer(dialog, "bp", "none").value == ()
    assert _answer(dialog, "bp", "no").value == ()
    assert _answer(dialog, "bp", '[{"systolic": 120}]').value[0]["systolic"] == 120
    for typed in ("systolic 150", "colour=red", "systolic=150, systolic=151", "arm=leg"):
        with pytest.raises(InvalidAnswer):
            _answer(dialog, "bp", typed)


def test_screen_takes_context_facts_and_never_asks_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("SCREENER_RULES", str(KINDS))
    monkeypatch.setenv("SCREENER_DIALOGS", str(KINDS / "dialogs"))
    args = build_parser().parse_args(["screen", "--context", "cohort=A", "--session",
                                      str(tmp_path / "s.json"), "--candidate-id", "P1"])
    out = io.StringIO()
    lines = ["yes", "9.5 g/dL", "1.1 mg/dL", "never", "none", ""]
    status = args.run(args, stdin=io.StringIO("".join(f"{x}\n" for x in lines)), stdout=out)
    text = out.getvalue()
    assert status == 0, text
    assert "read as 95 g/L (from 9.5 g/dL)" in text
    assert "[cohort]" not in text and "Decision: eligible" in text
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["answers"]["cohort"] == "A" and saved["answers"]["hemoglobin"] == "95"
    args = build_parser().parse_args(["screen", "--context", "cohort=Z", "--candidate-id", "P2"])
    assert args.run(args, stdin=io.StringIO(""), stdout=io.StringIO()) == 2


# --- traces ---------------------------------------------------------------------------------


def _explain(trace: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "screener", "explain", str(trace)],
                          capture_output=True, text=True, timeout=120, env={
                              "SCREENER_RULES": str(KINDS), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    return done.stdout + done.stderr


def test_explain_shows_a_converted_lab_value_as_given_and_as_kept(tmp_path):
    csv = ("candidate_id,consent,hemoglobin,creatinine,mi_date,bp\n"
           'c1,yes,9.5 g/dL,1.5 mg/dL,never,"[{""systolic"": ""21.998193923475 kPa""}]"\n')
    traces = tmp_path / "traces"
    status, records, _ = _batch(tmp_path, "c.csv", csv, "--context", "cohort=A", "--traces", str(traces))
    assert records[0]["decision"] == "eligible"
    (trace,) = traces.iterdir()
    text = _explain(trace)
    assert "Serum creatinine = 1.5 mg/dL = 132.6 µmol/L" in text  # labels and units as clinicians write them
    assert "Haemoglobin = 9.5 g/dL = 95 g/L" in text
    assert "Cohort of the run = A  context (--context cohort)" in text
    assert "Last myocardial infarction = never" in text and "Blood pressure readings at screening = systolic: 165" in text
    done = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)], capture_output=True,
                          text=True, timeout=120, env={"SCREENER_RULES": str(KINDS), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "gives the recorded decision: eligible" in done.stdout


def test_a_dialog_trace_keeps_the_unit_the_clinician_typed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("SCREENER_RULES", str(KINDS))
    monkeypatch.setenv("SCREENER_DIALOGS", str(KINDS / "dialogs"))
    trace = tmp_path / "p1.trace.jsonl"
    args = build_parser().parse_args(["screen", "--context", "cohort=A", "--candidate-id", "P1",
                                      "--session", str(tmp_path / "s.json"), "--trace", str(trace)])
    lines = ["yes", "9.5 g/dL", "1,1 mg/dL", "never", "none", ""]
    status = args.run(args, stdin=io.StringIO("".join(f"{x}\n" for x in lines)), stdout=io.StringIO())
    assert status == 0
    text = _explain(trace)
    assert "Haemoglobin = 9.5 g/dL = 95 g/L" in text
    assert "Serum creatinine = 1.1 mg/dL = 97.2 µmol/L" in text  # 97.24, half-even to one place
