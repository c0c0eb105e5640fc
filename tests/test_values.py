"""What a candidate's value becomes: quantities converted into the fact's unit, never/ongoing
dates, lists of items; and every bad value an error naming the fact, the value and why."""
from __future__ import annotations

import datetime as dt
import json
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


# --- the short ways of reading a batch's texts, against `coerce` on random texts ----------

_UNITS = ["mm", "cm", "m", "[in_i]", "in", "ft", "kg", "lb", "[lb_av]", "mg/dL", "umol/L", "µmol/L",
          "mmol/L", "mol/L", "g/L", "g/dL", "%", "1", "mmol/mol", "10*9/L", "x10^9/L", "10^9/L",
          "/uL", "/mm3", "cells/mm3", "{cells}/uL", "10*3/uL", "U/L", "IU/L", "s", "min", "mm[Hg]",
          "mmHg", "kPa", "furlongs", "mg/dL/", "10*70/L", "'", "ft 4 in", "'4", "e", "E3", ",5"]


def _random_number(rng, spec, usual):
    if rng.random() < usual:  # mostly as a lab export writes one
        low, high = spec.minimum or 0, spec.maximum or 500
        return f"{rng.uniform(low - 1, high + 1):.{rng.choice([0, 0, 1, 2, 3, 6])}f}"
    whole = str(rng.choice([0, 1, 5, 12, 57, 132, 180, 1500, 99999, 10**12]) + rng.randrange(3))
    return rng.choice([
        f"{whole},{rng.randrange(100)}", f"{whole},{rng.randrange(100, 1000)}", f"{whole}.", f".{whole}",
        f"-{whole}", f"+{whole}", f"{whole}e{rng.randrange(-3, 4)}", "0" * rng.randrange(1, 40) + whole,
        f"<{whole}", f">= {whole}", "٣", "３.５", "", "abc", "nan", "1_000", f"{whole} {whole}",
    ])


def _random_text(rng, spec, usual=0.6):
    """A text for `spec`, of a usual form with the probability `usual`, else of any form."""
    kind = spec.type
    if kind == "quantity":
        unit = rng.choice([spec.unit, "", *(unit for unit, _ in spec.convert), *(a[0] for a in spec.affine)]
                          if rng.random() < usual else _UNITS)
        return _random_number(rng, spec, usual) + (rng.choice([" ", "", "  "]) + unit if unit else "")
    if kind == "date":
        if rng.random() < usual:
            return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02}-{rng.randrange(1, 29):02}"
        return rng.choice(["2024-02-29", "2023-02-29", "2024-13-01", "2024-1-1", "2021-03", "2021",
                           "never", "ongoing", "Never", "ONGOING", "٢٠٢٤-٠١-٠١", "yesterday", " "])
    if kind == "enum":
        return rng.choice(spec.values if rng.random() < usual else [spec.values[0].upper(), "other", " "])
    if kind == "boolean":
        return rng.choice(["yes", "no", "Y", "n", "TRUE", "false", "1", "0", "2", "maybe", ""])
    return rng.choice(["x", "17", "a b"])


def _random_item(rng, spec):
    pairs = [(field.name, json.dumps(_random_text(rng, field, 0.95)) if rng.random() < 0.97 else
              rng.choice(["null", "true", "12", "1.5e2", "[]", '{"a": 1}']))
             for field in spec.item if rng.random() < 0.9]
    if rng.random() < 0.03:
        pairs.append(("colour", '"red"'))
    if pairs and rng.random() < 0.03:
        pairs.append(pairs[0])  # a key given twice
    return "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in pairs) + "}"


def _random_list(rng, spec):
    text = "[" + ", ".join(_random_item(rng, spec) for _ in range(rng.choice([0, 1, 1, 2]))) + "]"
    return rng.choice([text] * 12 + [
        text[:rng.randrange(len(text))], text + rng.choice([" ", "\n", " x", "]", "[]"]), " " + text,
        text.replace("[", "[1, ", 1), "[" * 3000, "{}", "1", '["a"]', "[,]", "[ ]"])


def test_a_text_read_the_short_ways_reads_as_coerce_reads_it(facts):
    """A batch cell or list field is read by shorter ways than `coerce` (`coerce_text`,
    `text_reader`, the plainly written quantity, a list's JSON scanned): on random texts, valid
    and not, each gives `coerce`'s value or error, for every kind of fact and item field."""
    import random

    from screener import values
    from screener.values import coerce_text, text_reader

    rng = random.Random(20261207)
    specs = [*facts.values(), *(field for spec in facts.values() for field in spec.item)]

    def by_reader(spec, text):
        return text_reader(spec)(text)

    def read(reader, spec, text):
        try:
            value = reader(spec, text)
        except InvalidValue as exc:
            return "error", str(exc)
        return type(value).__name__, repr(value)

    for spec in specs:
        texts = [(_random_list if spec.type == "list" else _random_text)(rng, spec) for _ in range(150)]
        for text in texts * 2:  # the second time, as remembered
            assert read(coerce_text, spec, text) == read(by_reader, spec, text) == read(coerce, spec, text), text
            if spec.type == "quantity" and (plain := values._plain_quantity(values._entry(spec), text)) is not None:
                assert ("Decimal", repr(plain)) == read(coerce, spec, text)
            if spec.type == "list" and text.startswith("[") and len(text) < 1000:
                try:
                    decoded = "value", values._LIST_DECODER.decode(text)
                except values._GivenTwice as twice:
                    decoded = "error", f"the field {twice.key!r} is given twice in one item"
                except (ValueError, RecursionError):
                    decoded = "error", "not a JSON list of items"
                try:
                    scanned = "value", values._json_list(spec, text)
                except InvalidValue as exc:
                    scanned = "error", exc.reason
                assert scanned == decoded, text
