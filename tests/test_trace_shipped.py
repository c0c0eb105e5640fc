"""Traces and letters for the shipped trial, through the real rules and engine."""
from __future__ import annotations

from pathlib import Path

import pytest

from audit_support import NOW, run_cli
from screener.audit.artifacts import write_candidate_artifacts
from screener.engine import Screener
from screener.audit.letter import markdown_escape
from screener.audit.trace import Source
from screener.trials import rules_path
from screener.rules.check import load_trial
from screener.values import coerce

ROW = {
    "gist_confirmed": "yes", "disease_status": "metastatic", "on_standard_imatinib": "yes",
    "progressed_on_imatinib": "yes", "progressive_lesion_count": "2",
    "progressive_organ_count": "1", "mdt_resectable": "yes", "birth_date": "1970-06-01",
    "screening_date": "2026-03-04", "other_malignancy_within_5y": "no", "ecog": "1",
    "asa_class": "2", "informed_consent": "yes", "severe_cardiopulmonary_disease": "no",
    "nyha_class": "1", "pulmonary_infection": "no", "copd_severity": "none",
    "severe_diabetes": "no", "renal_insufficiency": "no", "severe_hepatitis": "no",
    "bilirubin_umol_l": "20", "albumin_g_l": "40", "inr": "1.1", "ascites": "none",
    "encephalopathy": "none", "severe_malnutrition": "no", "other_serious_comorbidity": "no", "imatinib_start_date": "2024-01-10",
    "first_progression_date": "2025-02-01", "needs_concurrent_surgery": "no",
    "tumor_bleeding": "no", "tumor_perforation": "no", "tumor_obstruction": "no",
    "sex": "female", "pregnant": "no", "breastfeeding": "no", "serious_mental_illness": "no",
    "other_clinical_study": "no", "other_tki_use": "no",
}


def screen_row(directory: Path, row: dict[str, str], candidate_id: str):
    trial = load_trial(rules_path("NCT03862768"))
    facts = {name: coerce(trial.facts[name], raw) for name, raw in row.items()}
    result = Screener(trial).evaluate(facts)
    sources = {name: (value, Source.batch("candidates.csv", 7, name))
               for name, value in facts.items()}
    return trial, result, write_candidate_artifacts(trial, candidate_id, sources, result,
                                                    directory, directory, "coordinator", NOW)


@pytest.mark.parametrize(("change", "decision"), [
    ({}, "eligible"),
    ({"ecog": "2"}, "ineligible"),
    ({"informed_consent": ""}, "undetermined"),
    ({"age": "55", "birth_date": "", "child_pugh_class": "B", "child_pugh_b_correctable": "no",
      "bilirubin_umol_l": "", "albumin_g_l": "", "inr": "", "ascites": "", "encephalopathy": ""},
     "ineligible"),
], ids=["eligible", "ecog-2", "consent-pending", "child-pugh-b-given"])
def test_shipped_trial_trace_verifies_against_the_shipped_rules(tmp_path: Path, change, decision):
    _, result, written = screen_row(tmp_path, {**ROW, **change}, "GIST-0001")
    assert result.decision == decision
    status, out, err = run_cli("verify", str(written.trace))  # rules found by hash
    assert (status, err) == (0, "")
    assert f"gives the recorded decision: {decision}" in out


def test_shipped_letter_quotes_every_criterion_verbatim(tmp_path: Path):
    trial, _, written = screen_row(tmp_path, ROW, "GIST-0001")
    markdown = written.letters["md"].read_text(encoding="utf-8")
    html = written.letters["html"].read_text(encoding="utf-8")
    for criterion in trial.criteria:
        assert f"| {markdown_escape(criterion.protocol)}" in markdown, criterion.id
        if criterion.note:  # under the protocol text, in the same cell
            assert f"<br>Interpretation: {markdown_escape(criterion.note)} |" in markdown, criterion.id
        assert f"<td>{criterion.id} ({criterion.kind}): " in html


def test_consent_pending_letter_says_what_is_missing(tmp_path: Path):
    _, _, written = screen_row(tmp_path, {**ROW, "informed_consent": ""}, "GIST-0002")
    markdown = written.letters["md"].read_text(encoding="utf-8")
    assert "Not yet determined" in markdown
    assert "## Missing information\n\n- The patient gave informed consent\n" in markdown
