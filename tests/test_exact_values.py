"""Numbers are decided exactly as a site records them: never rounded to `places` before a
comparison, read the same way from every export spelling, and refused (naming the fact, the
value and the unit) when they cannot be held exactly.

The site trial tests/data/exact/rules/SITE-PLT.yaml is the coordinator's trap of issue 18:
platelets kept with `places: 1` in 10^9/L against a protocol limit of 100,000/mm3."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from functools import cache

import pytest

from screener.run.batch import screen_row
from screener.engine import Screener
from screener.errors import InvalidValue
from screener.sources.readers import Row
from screener.rules.check import load_trial
from screener.rules.read import load_yaml
from screener.values import coerce

from conftest import ROOT, case_fields
from reference import reference_decide

SITE = ROOT / "tests" / "data" / "exact" / "rules"
CASES = load_yaml(SITE / "SITE-PLT.cases.yaml")


@cache
def _site():
    trial = load_trial(SITE / "SITE-PLT.yaml")
    return trial, Screener(trial)


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["note"] for c in CASES["cases"]])
def test_a_site_trial_with_places_decides_each_value_as_given_engine_and_reference(case):
    trial, screener = _site()
    fields = case_fields(CASES, case)
    record = screen_row(trial, screener, Row(1, fields)).record
    want = reference_decide(trial, fields)
    assert (record["decision"], record["failed_criteria"]) == (case["want_decision"], case["want_failed"])
    assert (want["decision"], want["failed_criteria"]) == (case["want_decision"], case["want_failed"])


def test_batch_on_a_site_export_decides_99999_per_mm3_below_the_limit(tmp_path):
    export = tmp_path / "export.csv"
    export.write_text("patient,platelets,hemoglobin,inr\n"
                      "p1,99999 cells/mm3,\"12,0\",1.0\n"
                      "p2,100000 {cells}/uL,12,1.50\n"     # the edges, both included
                      "p3,\"99,999 /mm3\",12,1.0\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "screener", "batch", str(export), "-o", str(out),
                           "--rules", str(SITE / "SITE-PLT.yaml")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["patient"] if "patient" in r else r.get("candidate_id"), r["decision"]) for r in records] \
        == [("p1", "ineligible"), ("p2", "eligible"), ("p3", "error")]
    assert records[0]["failed_criteria"] == ["I1"]
    (error,) = records[2]["errors"]
    assert error.startswith("platelets: '99,999 /mm3': a comma before three digits reads two ways")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("fact, given, kept", [
    ("platelets", "74950 /mm3", "74.95"),           # kept to the last digit given
    ("platelets", "99999 cells/mm3", "99.999"),     # what is counted, as exports write it
    ("platelets", "99999 {cells}/uL", "99.999"),    # a microlitre is a cubic millimetre
    ("platelets", "8,1", "8.1"),                    # a decimal comma
    ("platelets", "99.95", "99.95"),                # finer than places
    ("inr", "1,05", "1.05"),
    ("inr", "1.505", "1.505"),
    ("hemoglobin", "89.5 g/L", "8.95"),
])
def test_a_value_is_kept_exactly_whatever_its_places(fact, given, kept):
    trial, _ = _site()
    value = coerce(trial.facts[fact], given)
    assert (Decimal(repr(value)) if isinstance(value, float) else value) == Decimal(kept)


@pytest.mark.parametrize("fact, given, says", [
    ("platelets", "99,999", "a comma before three digits reads two ways (thousands or decimals): "
                            "write 99999 or 99.999"),
    ("inr", "1.0000000000000001", "cannot be held exactly (at most 15 significant digits)"),
])
def test_a_value_that_reads_two_ways_or_cannot_be_held_exactly_is_an_error_naming_it(fact, given, says):
    trial, _ = _site()
    with pytest.raises(InvalidValue) as caught:
        coerce(trial.facts[fact], given)
    assert str(caught.value) == f"{fact}: {given!r}: {says}"


def test_whole_numbers_written_with_a_point_are_integers_and_fractions_are_not():
    trial = load_trial(ROOT / "rules" / "NCT03862768.yaml")
    assert coerce(trial.facts["ecog"], "1.0") == 1 and coerce(trial.facts["age"], "57.0") == 57
    assert coerce(trial.facts["progressive_lesion_count"], "3,0") == 3
    with pytest.raises(InvalidValue, match="expected a whole number"):
        coerce(trial.facts["ecog"], "1.5")
    for trailing_comma in ("0,", "12,"):  # a decimal comma with nothing after it is no number
        with pytest.raises(InvalidValue, match=f"^ecog: '{trailing_comma}': expected a whole number$"):
            coerce(trial.facts["ecog"], trailing_comma)


def test_a_height_in_feet_and_inches_and_a_weight_in_pounds_convert_exactly():
    trial = load_trial(ROOT / "rules" / "NCT06534411.yaml")
    assert coerce(trial.facts["height"], "5 ft 4 in") == Decimal("162.56")
    assert coerce(trial.facts["height"], "5'4\"") == Decimal("162.56")
    assert coerce(trial.facts["weight"], "187 lb") == Decimal("84.82177319")  # x 0.45359237
    with pytest.raises(InvalidValue, match="the unit .* does not convert to kg"):
        coerce(trial.facts["weight"], "5 ft 4 in")


# A measurement below zero, against limits below zero: the engine holds a value between two
# steps of its places as the step below plus a half, and below zero "below" is further from zero.
BASE_EXCESS = """\
trial:
  id: SITE-BE
  title: Site study with base excess limits
  version: "1"
  id_fact: patient
facts:
  patient:
    type: text
    required: true
    description: Who.
  base_excess:
    type: quantity
    unit: mmol/L
    places: 1
    min: -30
    max: 30
    description: Base excess of the arterial blood gas.
criteria:
  - id: I1
    kind: inclusion
    title: Base excess at least -2.5 mmol/L
    protocol: "Base excess ≥ -2.5 mmol/L."
    when: base_excess >= -2.5 'mmol/L'
  - id: E1
    kind: exclusion
    title: Base excess below -1.05 mmol/L
    protocol: "Base excess < -1.05 mmol/L."
    when: base_excess < -1.05 'mmol/L'
"""


@pytest.mark.parametrize("given, decision, failed", [
    ("-2.5", "ineligible", ["E1"]),         # at the inclusion's limit: met; below -1.05: excluded
    ("-2.55", "ineligible", ["I1", "E1"]),  # half a step below the limit
    ("-2.501", "ineligible", ["I1", "E1"]),
    ("-2.4999", "ineligible", ["E1"]),
    ("-1.051", "ineligible", ["E1"]),       # a thousandth below the exclusion's limit
    ("-1.05", "eligible", []),              # at it: not below
    ("-1.0499", "eligible", []),
    ("-1.1", "ineligible", ["E1"]),
    ("-0.01", "eligible", []),
    ("0", "eligible", []),
    ("-30", "ineligible", ["I1", "E1"]),
])
def test_a_value_below_zero_is_decided_exactly_against_limits_below_zero(tmp_path, given, decision, failed):
    rules = tmp_path / "SITE-BE.yaml"
    rules.write_text(BASE_EXCESS, encoding="utf-8")
    trial = load_trial(rules)
    fields = {"patient": "p1", "base_excess": given}
    record = screen_row(trial, Screener(trial), Row(1, fields)).record
    assert (record["decision"], record["failed_criteria"]) == (decision, failed)
    want = reference_decide(trial, fields)
    assert (want["decision"], want["failed_criteria"]) == (decision, failed)
