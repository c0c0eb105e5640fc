"""`screener screen --trace --letter`: the dialog leaves a verifiable trace and a letter."""
from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, TRIAL

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

ANSWERS = {
    "candidate_id": "ZS-77", "sex": "male", "disease_status": "metastatic", "gist_confirmed": "yes",
    "on_standard_imatinib": "yes", "progressed_on_imatinib": "yes", "progressive_lesion_count": 2,
    "progressive_organ_count": 1, "mdt_resectable": "yes", "birth_date": "1960-06-15",
    "screening_date": "2024-03-01", "other_malignancy_within_5y": "no", "ecog": 1, "asa_class": 2,
    "severe_cardiopulmonary_disease": "no", "nyha_class": 1, "pulmonary_infection": "no",
    "copd_severity": "none", "severe_diabetes": "no", "renal_insufficiency": "no",
    "severe_hepatitis": "no", "child_pugh_class": "A", "severe_malnutrition": "no", "other_serious_comorbidity": "no",
    "imatinib_start_date": "2020-01-10", "first_progression_date": "2023-06-01",
    "needs_concurrent_surgery": "no", "tumor_bleeding": "no", "tumor_perforation": "no",
    "tumor_obstruction": "no", "serious_mental_illness": "no", "other_clinical_study": "no",
    "other_tki_use": "no",
}


def _screen(tmp_path, lines: str, *extra: str) -> subprocess.CompletedProcess:
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump(ANSWERS), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "screener", "screen", "--trial", TRIAL, "--answers", str(answers),
         "--session", str(tmp_path / "session.json"), *extra],
        input=lines, capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path)},
    )


def test_dialog_trace_verifies_and_letter_is_written(tmp_path):
    trace, letter = tmp_path / "s.trace.jsonl", tmp_path / "s.letter.html"
    done = _screen(tmp_path, "yes\n\n", "--trace", str(trace), "--letter", str(letter), "--operator", "Dr Wang")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Decision: eligible" in done.stdout
    assert stat.S_IMODE(trace.stat().st_mode) == 0o600
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    consent = [r for r in records if r.get("fact") == "informed_consent"]
    assert consent and consent[0]["value"] is True
    verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    html = letter.read_text(encoding="utf-8")
    assert "ZS-77" in html and "Dr Wang" in html and "eligible" in html


def test_a_correction_in_the_dialog_is_in_the_trace_with_the_old_value(tmp_path):
    trace = tmp_path / "c.trace.jsonl"
    done = _screen(tmp_path, "yes\nchange ecog\n3\n\n", "--trace", str(trace))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Decision: ineligible" in done.stdout.split("change ecog")[-1]
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    corrections = [r for r in records if r.get("type") == "correction" or r.get("kind") == "correction"]
    assert len(corrections) == 1
    assert json.dumps(corrections[0]).count("ecog") >= 1
    verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ineligible" in verified.stdout


def test_letter_without_trace_is_a_usage_error(tmp_path):
    done = _screen(tmp_path, "", "--letter", str(tmp_path / "l.md"))
    assert done.returncode == 2
    assert "--letter needs --trace" in done.stderr
