"""`screener screen --answers BUNDLE`: a dialog started from the patient's record, in a real
terminal: the record's values are shown with their resource and date, only the rest is asked,
a correction overrides the record with its reason, and the trace verifies."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dialog_e2e import Terminal
from test_dialog_flow import MAN

from screener.cli import main

from conftest import TRIAL

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

pytest.importorskip("pexpect")

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FROM_RECORD = ("sex", "birth_date", "ecog", "bilirubin_umol_l", "albumin_g_l", "inr")


def _obs(rid, code, when, **value):
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": "Patient/P-7"}, "effectiveDateTime": when, **value}


def _record(tmp_path: Path) -> Path:
    path = tmp_path / "record.json"
    resources = [
        {"resourceType": "Patient", "id": "P-7", "gender": "male", "birthDate": "1961-03-03"},
        _obs("bili", "1975-2", "2026-11-30", valueQuantity={"value": 20.52, "code": "umol/L", "system": UCUM}),
        _obs("alb", "1751-7", "2026-11-30", valueQuantity={"value": 2.9, "code": "g/dL", "system": UCUM}),
        _obs("alb-old", "1751-7", "2026-10-01", valueQuantity={"value": 41, "code": "g/L", "system": UCUM}),
        _obs("inr", "6301-6", "2026-11-29", valueQuantity={"value": 1.1, "code": "{INR}", "system": UCUM}),
        _obs("ecog", "89247-1", "2026-11-28",
             valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9622-7"}]}),
    ]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": r} for r in resources]}), encoding="utf-8")
    return path


def test_a_dialog_from_the_record_asks_only_the_rest_and_a_correction_overrides_it(tmp_path, capsys):
    trace, letter = tmp_path / "t.jsonl", tmp_path / "l.html"
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--session", str(tmp_path / "s.json"),
                    "--answers", str(_record(tmp_path)), "--as-of", "2026-12-01",
                    "--trace", str(trace), "--letter", str(letter))
    term.expect("From the patient record")
    term.expect("Serum albumin")
    term.expect("from the record, Observation/alb, 2026-11-30")  # the latest result, not the older one
    # the clinician knows better: the albumin on file was taken before a transfusion
    term.answer("screening_date", "change albumin_g_l drawn before the transfusion")
    term.answer("albumin_g_l", "3.8 g/dL")
    rest = [(fact, text) for fact, text in MAN if fact not in FROM_RECORD]
    term.answers(rest)
    assert term.finish() == 0
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert saved["candidate_id"] == "P-7" and saved["decision"] == "eligible"
    asked = [e["fact"] for e in saved["history"] if e.get("source") == "dialog"]
    assert not set(asked) & set(FROM_RECORD)  # nothing the record gave was asked
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    bili = next(r for r in records if r.get("fact") == "bilirubin_umol_l")
    assert bili["source"]["kind"] == "record" and bili["source"]["column"] == "Observation/bili"
    (correction,) = [r for r in records if r["type"] == "correction"]
    assert correction["fact"] == "albumin_g_l" and correction["old"] == 29.0 and correction["new"] == 38.0
    assert correction["reason"] == "drawn before the transfusion"
    albumin = next(r for r in records if r["type"] == "fact" and r["fact"] == "albumin_g_l")
    assert albumin["source"]["column"] == "Observation/alb"  # the record's value stays in the trace
    assert main(["verify", str(trace)]) == 0
    text = letter.read_text(encoding="utf-8")
    assert "from the record, Observation/bili, 2026-11-30" in text
