"""The hand-made boundary candidates of every rules/<trial>.cases.yaml, through batch screening."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from screener.run.batch import screen_row
from screener.engine import Screener
from screener.model import Trial
from screener.rules.check import load_trial
from screener.rules.read import load_yaml
from screener.sources.readers import Row

from conftest import ROOT, case_fields

CASE_FILES = sorted((ROOT / "rules").glob("*.cases.yaml"))
_docs = {path: load_yaml(path) for path in CASE_FILES}
_cases = [(path, case) for path in CASE_FILES for case in _docs[path]["cases"]]


@cache
def _trial(cases_file: Path) -> tuple[Trial, Screener]:
    trial = load_trial(cases_file.with_name(cases_file.name.replace(".cases.yaml", ".yaml")))
    return trial, Screener(trial)


@pytest.mark.parametrize("cases_file, case", _cases,
                         ids=[f"{p.name.split('.')[0]}: {c['note']}" for p, c in _cases])
def test_case(cases_file, case):
    trial, screener = _trial(cases_file)
    screened = screen_row(trial, screener, Row(1, case_fields(_docs[cases_file], case)))
    record = screened.record
    assert record["decision"] == case["want_decision"], record
    if "want_failed" in case:
        assert record["failed_criteria"] == case["want_failed"]
    if "want_missing" in case:
        assert record["missing"] == case["want_missing"]
    # a reported value far from its computation is named in `warnings`, never an error
    assert [w.split(":", 1)[0] for w in record["warnings"]] == case.get("want_warnings", [])
    if "want_error" in case:
        assert len(record["errors"]) == 1
        assert record["errors"][0].startswith(case["want_error"] + ":")


@pytest.mark.parametrize("cases_file", CASE_FILES, ids=[p.name.split(".")[0] for p in CASE_FILES])
def test_every_criterion_is_exercised_both_ways(cases_file):
    """Each criterion fails in at least one case and the base passes it (no dead criterion)."""
    trial, screener = _trial(cases_file)
    doc = _docs[cases_file]
    failed = set()
    for case in doc["cases"]:
        failed.update(screen_row(trial, screener, Row(1, case_fields(doc, case))).record["failed_criteria"])
    askable = {c.id for c in trial.criteria if c.ask}
    assert askable <= failed


def test_every_shipped_trial_has_a_case_table():
    rules = {p.name for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".cases.yaml")}
    assert {p.name.replace(".cases.yaml", ".yaml") for p in CASE_FILES} == rules
