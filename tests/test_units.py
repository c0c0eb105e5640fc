"""UCUM units as the rules and the values read them: conversions a lab value needs, and the
ones that would silently give wrong numbers refused."""
from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from screener.rules.units import UnitError, conversion, dimension, factor, parse_unit


@pytest.mark.parametrize("given, declared, expected", [
    ("g/dL", "g/L", "10"),
    ("mg/dL", "g/L", "0.01"),
    ("/mm3", "10*9/L", "0.001"),
    ("10*3/uL", "10*9/L", "1"),
    ("[lb_av]", "kg", "0.45359237"),
    ("mm[Hg]", "kPa", "0.133322387415"),
    ("umol/L", "mmol/L", "0.001"),
    ("wk", "d", "7"),
    ("a", "d", "365.25"),   # UCUM's mean Julian year; calendar years are durations, not units
    ("mo", "d", "30.4375"),
    ("ms", "s", "0.001"),
    ("[in_i]", "cm", "2.54"),
    ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}", "1"),
])
def test_a_lab_value_in_another_unit_of_the_same_dimension_converts_exactly(given, declared, expected):
    assert factor(given, declared) == Decimal(expected)


def test_a_creatinine_in_mg_per_dl_converts_only_with_the_analyte_factor_the_rules_declare():
    with pytest.raises(UnitError, match="does not convert"):
        factor("mg/dL", "umol/L")
    assert factor("mg/dL", "umol/L", {"mg/dL": Decimal("88.4")}) == Decimal("88.4")
    # a unit of the declared unit's dimension goes through it
    assert factor("mg/L", "umol/L", {"mg/dL": Decimal("88.4")}) == Decimal("8.84")


def test_hba1c_percent_and_mmol_per_mol_never_convert_as_plain_ratios():
    # pint would say 1 % = 10 mmol/mol; for HbA1c that gives 53 mmol/mol = 5.3 % instead of 7.0 %
    with pytest.raises(UnitError):
        factor("mmol/mol", "%")
    assert dimension("%") != dimension("mmol/mol")
    ngsp = conversion("mmol/mol", "%", {"mmol/mol": Decimal("0.09148")},
                      {"mmol/mol": Decimal("2.152")})
    assert round(ngsp.apply(Decimal(53)), 1) == Decimal("7.0")
    with pytest.raises(UnitError, match="offset"):
        factor("Cel", "[degF]")


def test_an_egfr_per_body_surface_is_not_a_clearance():
    with pytest.raises(UnitError):
        factor("mL/min/{1.73_m2}", "mL/min")
    assert dimension("mL/min/{1.73_m2}") != dimension("mL/min")


def test_dimensions_name_what_can_be_compared():
    assert dimension("g/dL") == dimension("g/L") == "[mass] / [length] ** 3"
    assert dimension("10*9/L") == dimension("/mm3")
    assert dimension("umol/L") != dimension("mg/dL")
    assert dimension("d") == dimension("wk") == dimension("mo") == dimension("a")
    assert dimension("kg/m2") == "[mass] / [length] ** 2"


@pytest.mark.parametrize("code", ["foo", "", " mg", "mg/dL/", "m" * 70, "10*9999/L", "mg//dL"])
def test_text_that_is_not_a_ucum_code_is_a_unit_error_not_a_crash(code):
    with pytest.raises(UnitError, match="not a UCUM unit code"):
        parse_unit(code)


def test_a_trial_without_quantities_never_loads_the_unit_system():
    code = ("import sys\n"
            "from screener.rules.check import load_trial\n"
            "from screener.engine import Screener\n"
            "Screener(load_trial('tests/data/toy/rules/TOY-1.yaml'))\n"
            "print('pint' in sys.modules)\n")
    from conftest import ROOT
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_rules_file_declares_quantities_conversions_never_dates_lists_and_context_facts():
    from conftest import ROOT
    from screener.rules.check import load_trial

    trial = load_trial(ROOT / "tests" / "data" / "kinds" / "KINDS-1.yaml")
    facts = trial.facts
    assert facts["creatinine"].convert == (("mg/dL", Decimal("88.4")),)
    assert facts["hba1c"].affine == (("mmol/mol", Decimal("0.09148"), Decimal("2.152")),)
    assert facts["hba1c"].convert == ()  # an affine conversion is never used as a plain factor
    assert facts["platelets"].places == 0 and facts["bp"].item[1].places == 0
    assert [f.name for f in facts["bp"].item] == ["date", "systolic", "arm"]
    assert [s.value for s in facts["drug_stop"].special] == ["never", "ongoing"]
    assert facts["cohort"].context and not facts["consent"].context
