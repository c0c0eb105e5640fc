"""Censored results and month-year dates: what each written form becomes, what it decides,
and every form that cannot be read an error naming the fact and the value."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from screener.errors import InvalidValue, RulesError
from screener.model import Interval
from screener.present import plain_value
from screener.rules.check import load_trial
from screener.values import coerce, to_json

from conftest import ROOT


@pytest.fixture(scope="module")
def facts():
    return load_trial(ROOT / "rules" / "NCT06898385.yaml").facts


D = Decimal


@pytest.mark.parametrize("fact, given, low, high, low_open, high_open", [
    ("hbv_dna", "<20", D(0), D(20), False, True),             # from the fact's min: 0
    ("hbv_dna", "< 20 IU/mL", D(0), D(20), False, True),
    ("hbv_dna", "≤20", D(0), D(20), False, False),
    ("hbv_dna", "=<20", D(0), D(20), False, False),
    ("hbv_dna", ">2000", D(2000), D(10**12), True, False),     # to the fact's max
    ("hbv_dna", "≥ 2000 [IU]/mL", D(2000), D(10**12), False, False),
    ("hbv_dna", "below detection limit (20)", D(0), D(20), False, True),
    ("hbv_dna", "below the limit of detection (20 IU/mL)", D(0), D(20), False, True),
    ("hbv_dna", "低于检测下限", D(0), D(500), False, True),     # the rules' detection_limit
    ("hbv_dna", "Undetectable", D(0), D(500), False, True),
    ("hbv_dna", {"value": 20, "comparator": "<", "unit": "IU/mL"}, D(0), D(20), False, True),
    ("creatinine", "<0.8 mg/dL", D(10), D("70.72"), False, True),  # converted exactly; min 10
    ("last_dvt_date", "March 2021", dt.date(2021, 3, 1), dt.date(2021, 3, 31), False, False),
    ("last_dvt_date", "Mar 2021", dt.date(2021, 3, 1), dt.date(2021, 3, 31), False, False),
    ("last_dvt_date", "2021-03", dt.date(2021, 3, 1), dt.date(2021, 3, 31), False, False),
    ("last_dvt_date", "03/2021", dt.date(2021, 3, 1), dt.date(2021, 3, 31), False, False),
    ("last_dvt_date", "2021年3月", dt.date(2021, 3, 1), dt.date(2021, 3, 31), False, False),
    ("last_dvt_date", "2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29), False, False),
    ("last_dvt_date", "2021", dt.date(2021, 1, 1), dt.date(2021, 12, 31), False, False),
])
def test_a_written_range_is_read_exactly(facts, fact, given, low, high, low_open, high_open):
    value = coerce(facts[fact], given)
    assert isinstance(value, Interval)
    assert (value.low, value.high, value.low_open, value.high_open) == (low, high, low_open, high_open)
    # what a trace records reads back to the same value (`verify` replays it)
    assert coerce(facts[fact], to_json(value)) == value


@pytest.mark.parametrize("fact, given, message", [
    ("hbv_dna", "<0", "leaves no value"),
    ("hbv_dna", "<20 mmHg", "does not convert"),
    ("hbv_dna", "< abc", "expected a number"),
    ("creatinine", "not detected", "below the detection limit of which assay"),
    ("last_dvt_date", "2021-13", "no such month"),
    ("last_dvt_date", "Smarch 2021", "expected a date"),
])
def test_a_range_that_cannot_be_read_names_the_fact_and_the_value(facts, fact, given, message):
    with pytest.raises(InvalidValue, match=message) as caught:
        coerce(facts[fact], given)
    assert caught.value.fact == fact and str(caught.value.value)


def test_a_yes_no_fact_takes_no_censored_words(facts):
    with pytest.raises(InvalidValue):
        coerce(facts["hbsag_positive"], "not detected")


@pytest.mark.parametrize("given, language, shown", [
    ("<20", "en", "< 20 IU/mL"),
    ("≥2000", "en", "≥ 2000 IU/mL"),
    ("below detection limit (20)", "en", "below the detection limit (< 20 IU/mL)"),
    ("未检出", "en", "below the detection limit"),
    ("未检出", "zh", "低于检测下限"),
    ("below detection limit (20)", "zh", "低于检测下限（< 20 IU/mL）"),
])
def test_a_censored_result_reads_as_a_person_writes_it(facts, given, language, shown):
    value = coerce(facts["hbv_dna"], given)
    assert plain_value(value, language, unit="[IU]/mL") == shown
    assert plain_value(to_json(value), language, unit="[IU]/mL") == shown  # from a trace


@pytest.mark.parametrize("given, language, shown", [
    ("2021-03", "en", "March 2021"), ("2021-03", "zh", "2021年3月"), ("2021", "zh", "2021年"),
])
def test_a_month_reads_as_a_person_writes_it(facts, given, language, shown):
    assert plain_value(coerce(facts["last_dvt_date"], given), language) == shown


@pytest.mark.parametrize("limit", ["0", "-5", "'a lot'"])
def test_check_refuses_a_detection_limit_that_leaves_no_room(tmp_path, limit):
    text = (ROOT / "rules" / "NCT06898385.yaml").read_text(encoding="utf-8")
    assert "detection_limit: 500" in text
    path = tmp_path / "T.yaml"
    path.write_text(text.replace("detection_limit: 500", f"detection_limit: {limit}"), encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_trial(path)
    assert "detection_limit" in str(caught.value)


def test_a_detection_limit_is_only_for_quantities(tmp_path):
    text = (ROOT / "rules" / "NCT06898385.yaml").read_text(encoding="utf-8")
    path = tmp_path / "T.yaml"
    path.write_text(text.replace("  hbsag_positive:\n    type: boolean\n",
                                 "  hbsag_positive:\n    type: boolean\n    detection_limit: 5\n"),
                    encoding="utf-8")
    with pytest.raises(RulesError, match="only quantity facts have 'detection_limit'"):
        load_trial(path)
