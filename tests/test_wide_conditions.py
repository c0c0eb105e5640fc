"""Conditions too wide for one durable-rules rule are split into parts, with the same meaning."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from screener.engine import Screener
from screener.rules.check import load_trial

from conftest import ROOT
from reference import reference_decide

WIDE = ROOT / "tests" / "data" / "wide" / "WIDE-1.yaml"
_trial = load_trial(WIDE)
_screener = Screener(_trial)


def test_the_wide_criteria_are_split_into_parts():
    parts = [name for ruleset in _screener._rulesets for name in ruleset.parts]
    assert {name.split(".")[0] for name in parts} == {"E1", "I1"}
    rules = [f.rule for f in _screener.evaluate({"b3": True, "n": 50}).firings]
    assert "E1.met" in rules and "I1.not_met" in rules
    assert any(rule.startswith("E1.part") for rule in rules)


fact_values = st.fixed_dictionaries(
    {}, optional={**{f"b{i}": st.sampled_from(["yes", "no", ""]) for i in range(20)},
                  "n": st.sampled_from(["5", "10", "50", ""])},
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(fact_values)
def test_split_conditions_decide_like_the_reference(fields):
    want = reference_decide(_trial, fields)
    from screener.run.batch import screen_row
    from screener.sources.readers import Row

    got = screen_row(_trial, _screener, Row(1, {"candidate_id": "w", **fields})).record
    assert got["decision"] == want["decision"]
    assert got["failed_criteria"] == want["failed_criteria"]
    assert got["missing"] == (want["missing"] or [])
