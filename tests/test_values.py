"""What a candidate's value becomes: quantities converted into the fact's unit, never/ongoing
dates, lists of items; and every bad value an error naming the fact, the value and why."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from screener.errors import InvalidValue
from screener.model import Special
from screener.rules.check import load_trial
from screener.values import coerce, describe_conversion, quantity, show, to_json

from conftest import ROOT


@pytest.fixture(scope="module")
def facts():
    return load_trial(ROOT / "tests" / "data" / "kinds" / "KINDS-1.yaml").facts


@pytest.mark.parametrize("fact, given, kept", [
    ("creatinine", "1.5 mg/dL", "132.6"),          # analyte factor declared in the rules
    ("creatinine", "1.5mg/dL", "132.6"),
    ("creatinine", {"value": 1.5, "unit": "mg/dL"}, "132.6"),
    ("creatinine", {"value": "1.5 mg/dL"}, "132.6"),
    ("creatinine", "15 mg/L", "132.6"),             # through the declared mg/dL
    ("creatinine", 132.6, "132.6"),                 # a plain number is in the declared unit
    ("creatinine", "132.65", "132.65"),             # finer than places: kept exactly
    ("creatinine", "132.75", "132.75"),
    ("hemoglobin", "3.8 g/dL", "38"),
    ("platelets", "180000 /mm3", "180"),
    ("platelets", "180 10*9/L", "180"),
    ("hba1c", "53 mmol/mol", "7.00044"),            # IFCC to NGSP, with the offset, exactly
    ("hba1c", "48 mmol/mol", "6.54304"),
    ("hba1c", "6.5 %", "6.5"),
])
def test_a_lab_value_in_any_convertible_unit_is_kept_in_the_facts_unit(facts, fact, given, kept):
    assert coerce(facts[fact], given) == Decimal(kept)
    assert str(coerce(facts[fact], given)) == kept


def test_the_given_value_and_unit_stay_available_for_the_trace(facts):
    value, converted = quantity(facts["creatinine"], "1.5 mg/dL")
    assert str(converted) == "1.5 mg/dL = 132.6 umol/L"
    assert converted.to_json() == {"value": "1.5", "unit": "mg/dL"}
    assert describe_conversion(facts["creatinine"], "132.6") is None
    assert describe_conversion(facts["consent"], "yes") is None


@pytest.mark.parametrize("fact, given, says", [
    ("creatinine", "1.5 g", "the unit g does not convert to umol/L"),
    ("creatinine", "1.5 furlongs", "the unit furlongs does not convert"),
    ("hemoglobin", "9 mmol/L", "the unit mmol/L does not convert to g/L"),  # no factor declared
    ("hba1c", "7 mmol/L", "does not convert to %"),
    ("hba1c", "0.07 1", "does not convert to %"),  # a fraction is not an NGSP percentage
    ("creatinine", "0.01 mg/dL", "below the minimum 5 umol/L"),    # range after conversion
    ("creatinine", "40 mg/dL", "above the maximum 3000 umol/L"),
    ("creatinine", "1" * 5000, "more than 30 digits"),
    ("creatinine", int("9" * 400), "more than 30 digits"),
    ("creatinine", "1e999999", "more than 30 digits"),
    ("creatinine", "NaN", "expected a number"),
    ("creatinine", True, "expected a number"),
    ("creatinine", {"value": 1, "unit": "mg/dL", "by": "lab"}, "expected {value"),
    ("creatinine", {"value": "1 mg/dL", "unit": "mg/dL"}, "give the unit once"),
])
def test_a_quantity_that_cannot_be_read_is_an_error_naming_fact_value_and_unit(facts, fact, given, says):
    with pytest.raises(InvalidValue) as caught:
        coerce(facts[fact], given)
    assert caught.value.fact == fact
    assert says in str(caught.value)
    assert len(str(caught.value)) < 300  # a 5,000-digit value is named, not copied


def test_never_and_ongoing_are_dates_only_where_the_rules_allow_them(facts):
    assert coerce(facts["mi_date"], "never") is Special.NEVER
    assert coerce(facts["mi_date"], "NEVER") is Special.NEVER
    assert coerce(facts["drug_stop"], "Ongoing") is Special.ONGOING
    assert coerce(facts["mi_date"], "2024-02-29") == dt.date(2024, 2, 29)
    with pytest.raises(InvalidValue, match="'ongoing' is not a value of this date"):
        coerce(facts["mi_date"], "ongoing")
    with pytest.raises(InvalidValue, match="YYYY-MM-DD.* or never"):
        coerce(facts["mi_date"], "last year")


def test_a_list_is_read_from_a_list_or_from_json_text_item_fields_typed(facts):
    text = ('[{"date": "2024-03-01", "systolic": "120", "arm": "left"},'
            ' {"systolic": "15.9986864898 kPa"}]')
    readings = coerce(facts["bp"], text)
    assert readings == (
        {"date": dt.date(2024, 3, 1), "systolic": Decimal(120), "arm": "left"},
        {"date": None, "systolic": Decimal(120), "arm": None},  # 15.9986864898 kPa = 120 mm[Hg]
    )
    # 16 kPa is 120.00985... mm[Hg] without end: refused, never rounded
    with pytest.raises(InvalidValue, match=r"bp: '16 kPa': item 1, systolic: is 120\.00985.* "
                                           r"cannot be held exactly; give it in mm\[Hg\]"):
        coerce(facts["bp"], [{"systolic": "16 kPa"}])
    assert coerce(facts["bp"], [{"date": "2024-03-01", "systolic": 120}])[0]["systolic"] == 120
    assert coerce(facts["bp"], "[]") == () and coerce(facts["bp"], []) == ()
    assert coerce(facts["bp"], "") is None  # absent is unknown, not empty


@pytest.mark.parametrize("given, says", [
    ('[{"date": "2024-03-01", "date": "2024-03-02"}]', "'date' is given twice"),
    ('[{"colour": "red"}]', "not a field of its items"),
    ('[{"systolic": "high"}]', "item 1, systolic: expected a number"),
    ('[{"arm": "leg"}]', "item 1, arm: expected one of left, right"),
    ("[1, 2]", "item 1 must be a mapping"),
    ("120/80", "expected a JSON list"),
    ("[" * 5000, "not a JSON list"),
    ([{}] * 1001, "at most 1000 items"),
])
def test_a_bad_list_is_an_error_naming_the_fact(facts, given, says):
    with pytest.raises(InvalidValue) as caught:
        coerce(facts["bp"], given)
    assert caught.value.fact == "bp"
    assert says in str(caught.value)


@pytest.mark.parametrize("fact, given", [
    ("creatinine", "1.5 mg/dL"), ("hba1c", "53 mmol/mol"), ("platelets", "75"),
    ("mi_date", "never"), ("drug_stop", "ongoing"), ("drug_stop", "2024-01-31"),
    ("bp", '[{"date": "2024-03-01", "systolic": "121.5 mm[Hg]", "arm": "right"}, {}]'),
    ("bp", "[]"),
])
def test_a_traced_value_reads_back_as_the_same_value(facts, fact, given):
    import json

    value = coerce(facts[fact], given)
    assert coerce(facts[fact], json.loads(json.dumps(to_json(value)))) == value


def test_values_read_plainly_for_a_person(facts):
    assert show(coerce(facts["hemoglobin"], "3.8 g/dL")) == "38"
    assert show(Decimal("1E+2")) == "100"
    assert show(Special.NEVER) == "never"
    readings = coerce(facts["bp"], '[{"date": "2024-03-01", "systolic": 120}, {"arm": "left"}]')
    assert show(readings) == "date=2024-03-01, systolic=120; arm=left"
    assert show(()) == "none"


def test_a_remembered_text_answers_only_for_its_own_fact(trial):
    """Cell texts are read once per fact and remembered: the same text under a fact of the
    same name with another range is read afresh, and an error is never remembered."""
    import dataclasses

    from screener.values import coerce_text

    ecog = trial.facts["ecog"]
    narrow = dataclasses.replace(ecog, maximum=1)
    assert coerce_text(ecog, "3") == coerce_text(ecog, "3") == 3
    with pytest.raises(InvalidValue, match="above the maximum"):
        coerce_text(narrow, "3")
    for _ in range(2):
        with pytest.raises(InvalidValue, match="whole number"):
            coerce_text(ecog, "abc")


@pytest.mark.parametrize("fact, given", [
    ("creatinine", "132.6"), ("creatinine", "1.5 mg/dL"), ("creatinine", "1.5mg/dL"),
    ("creatinine", "132,6"), ("creatinine", "1,500 umol/L"), ("creatinine", "1.5e2"),
    ("creatinine", "1.5e2 umol/L"), ("creatinine", "15 mg/L"), ("creatinine", "0.01 mg/dL"),
    ("creatinine", "1.5 furlongs"), ("creatinine", "1.5 mg/dL "), ("creatinine", "0.000000000000000000001"),
    ("creatinine", "5."), ("hemoglobin", "3.8 g/dL"), ("hemoglobin", "90 g/L"),
    ("platelets", "180 10*9/L"), ("platelets", "180000 /mm3"), ("platelets", "180000 cells/mm3"),
    ("hba1c", "53 mmol/mol"), ("hba1c", "6.5 %"), ("hba1c", "6.5%"), ("hba1c", "0.07 1"),
])
def test_a_cell_reads_as_the_same_value_or_error_as_the_same_text_anywhere(facts, fact, given):
    """A batch cell goes through `coerce_text`, which reads plainly written quantities by a
    shorter way: the value (exactly as written: `str`) or the error is `coerce`'s."""
    from screener.values import coerce_text

    def read(reader):
        try:
            value = reader(facts[fact], given)
        except InvalidValue as exc:
            return "error", str(exc)
        return type(value).__name__, str(value)

    assert read(coerce_text) == read(coerce)


def test_a_list_read_from_text_is_never_shared_between_candidates(facts):
    from screener.values import coerce_text

    spec = next(s for s in facts.values() if s.type == "list")
    text = '[{"date": "2024-03-01", "systolic": 150, "arm": "left"}]'
    first = coerce_text(spec, text)
    first[0]["arm"] = "right"  # items are mappings: one reader's change must stay its own
    assert coerce_text(spec, text)[0]["arm"] == "left"
