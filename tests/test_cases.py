"""The hand-made boundary candidates of rules/NCT03862768.cases.yaml, through batch screening."""
from __future__ import annotations


import pytest

from screener.batch import screen_row
from screener.rules.read import load_yaml
from screener.readers import Row

from conftest import ROOT, case_fields

CASES_FILE = ROOT / "rules" / "NCT03862768.cases.yaml"
_doc = load_yaml(CASES_FILE)


@pytest.mark.parametrize("case", _doc["cases"], ids=[c["note"] for c in _doc["cases"]])
def test_case(case, trial, screener):
    screened = screen_row(trial, screener, Row(1, case_fields(_doc, case)))
    record = screened.record
    assert record["decision"] == case["want_decision"], record
    if "want_failed" in case:
        assert record["failed_criteria"] == case["want_failed"]
    if "want_missing" in case:
        assert record["missing"] == case["want_missing"]
    if "want_error" in case:
        assert len(record["errors"]) == 1
        assert record["errors"][0].startswith(case["want_error"] + ":")


def test_every_criterion_is_exercised_both_ways(trial, screener):
    """Each criterion fails in at least one case and the base passes it (no dead criterion)."""
    failed = set()
    for case in _doc["cases"]:
        failed.update(screen_row(trial, screener, Row(1, case_fields(_doc, case))).record["failed_criteria"])
    askable = {c.id for c in trial.criteria if c.ask}
    assert askable <= failed
