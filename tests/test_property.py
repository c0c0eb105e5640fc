"""For every shipped trial, the durable-rules engine, through the batch path, agrees with the
plain reference evaluator.

Candidates come from benchmarks/candidates.py, generated from the trial's own rules file and
driven by Hypothesis: every fact independently absent, valid (crowding every threshold,
window edge and unit, by value and by dates) or invalid. Decision, failed criteria and
missing facts must be equal; an invalid value must make the candidate an error that names
the fact. The reference also decides every hand-made case of every trial as the case says.
"""
from __future__ import annotations

import sys
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from screener.run.batch import screen_row
from screener.engine import Screener
from screener.sources.readers import Row
from screener.rules.check import load_trial
from screener.rules.read import load_yaml

from conftest import ROOT, case_fields
from reference import reference_decide

sys.path.insert(0, str(ROOT / "benchmarks"))
from candidates import ADVERSARIAL, DrawChooser, Profile, generator_for  # noqa: E402

TRIALS = sorted(p.stem for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".cases.yaml"))
# nearly complete candidates that pass most criteria, so the derived facts and computed
# terms at their edges decide the outcome
NEAR_THRESHOLDS = Profile(absent=(0.0, 0.03), passing=(0.95, 0.99), invalid=0.0, native=True,
                          consistent=False)

# the same, with quantities and dates given as ranges at those edges: censored results
# (`<20`, `>= 2000`, "below detection limit (20)") and months or years (`2021-03`, `2021`)
RANGED = Profile(absent=(0.0, 0.03), passing=(0.95, 0.99), invalid=0.0, native=True,
                 consistent=False, ranged=0.3)


def _cases() -> list[tuple[str, dict, dict]]:
    out = []
    for trial_id in TRIALS:
        path = ROOT / "rules" / f"{trial_id}.cases.yaml"
        if path.exists():
            table = load_yaml(path)
            out.extend((trial_id, table, case) for case in table["cases"])
    return out


@lru_cache(maxsize=None)
def _loaded(trial_id: str):
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    return trial, Screener(trial)


@pytest.mark.parametrize("trial_id,table,case", _cases(),
                         ids=[f"{t}:{c['note']}" for t, _, c in _cases()])
def test_reference_decides_every_hand_made_case(trial_id, table, case):
    trial, _ = _loaded(trial_id)
    got = reference_decide(trial, case_fields(table, case), case.get("context") or table.get("context"))
    assert got["decision"] == case["want_decision"], got
    if "want_failed" in case:
        assert got["failed_criteria"] == case["want_failed"]
    if "want_missing" in case:
        assert got["missing"] == case["want_missing"]
    if "want_error" in case:
        assert [e.split(":", 1)[0] for e in got["errors"]] == [case["want_error"]]
    assert got["warnings"] == case.get("want_warnings", [])


def _named(errors: list[str]) -> set[str]:
    return {error.split(":", 1)[0] for error in errors}


def _check_against_reference(trial_id: str, cand) -> None:
    trial, screener = _loaded(trial_id)
    record = screen_row(trial, screener, Row(1, dict(cand.fields))).record
    want = reference_decide(trial, cand.fields)
    event(f"decision: {record['decision']}")
    if cand.invalid:
        assert record["decision"] == "error", record
        assert cand.invalid <= _named(record["errors"]), record
    assert record["decision"] == want["decision"], (record, want)
    if want["decision"] == "error":
        assert _named(record["errors"]) == _named(want["errors"]), (record, want)
    else:
        assert record["failed_criteria"] == want["failed_criteria"], (record, want)
        assert record["missing"] == (want["missing"] or []), (record, want)
        # always something to collect (docs/batch-io.md, "Lists to complete")
        assert record["decision"] != "undetermined" or record["missing"], record
        assert _named(record["warnings"]) == set(want["warnings"]), (record, want)


_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("trial_id", TRIALS)
@_SETTINGS
@given(data=st.data())
def test_engine_agrees_with_reference(trial_id, data):
    """Any mix of absent, valid and invalid facts."""
    cand = generator_for(ROOT / "rules" / f"{trial_id}.yaml").candidate(DrawChooser(data.draw), ADVERSARIAL)
    _check_against_reference(trial_id, cand)


@pytest.mark.parametrize("trial_id", TRIALS)
@_SETTINGS
@given(data=st.data())
def test_engine_agrees_with_reference_near_thresholds(trial_id, data):
    """Nearly complete candidates, decided by values at the edges."""
    cand = generator_for(ROOT / "rules" / f"{trial_id}.yaml").candidate(DrawChooser(data.draw), NEAR_THRESHOLDS)
    _check_against_reference(trial_id, cand)


@pytest.mark.parametrize("trial_id", TRIALS)
@_SETTINGS
@given(data=st.data())
def test_engine_agrees_with_reference_on_ranges(trial_id, data):
    """Nearly complete candidates with censored results and month-year dates at the edges:
    a criterion is decided when every value of the ranges decides it the same way."""
    cand = generator_for(ROOT / "rules" / f"{trial_id}.yaml").candidate(DrawChooser(data.draw), RANGED)
    _check_against_reference(trial_id, cand)
