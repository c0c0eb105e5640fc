"""The rules language's grammar and type checker: every construct parses into what it means,
and every mistake is reported with its code and column, never as a traceback."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from screener.errors import RulesError
from screener.model import (
    Aggregate, And, Arith, Call, Cmp, Compare, Const, Duration, In, IsSpecial, ItemField, Not,
    Number, Ref, Scale, Special, Truth, Within,
)
from screener.rules.check import build_trial, load_trial
from screener.rules.parse import ConditionError
from screener.rules.read import load_yaml_text
from screener.rules.typecheck import Checker

from conftest import ROOT

LANG = ROOT / "tests" / "data" / "lang" / "LANG-1.yaml"


@pytest.fixture(scope="module")
def lang():
    return load_trial(LANG)


@pytest.fixture(scope="module")
def check(lang):
    return Checker(lang.facts)


PARSED = [
    ("18 <= age <= 75", And((Compare("age", ">=", 18), Compare("age", "<=", 75)))),
    ("sex == female or not liver_metastases",
     __import__("screener.model", fromlist=["Or"]).Or((Compare("sex", "==", "female"),
                                                      Not(Compare("liver_metastases", "==", True))))),
    ("sex not in [male]", Not(In("sex", ("male",)))),
    ("true", Const(True)),
    ("sex == 'female'", Compare("sex", "==", "female")),      # quoted words, as before
    ("mi_date > '2024-03-01'", Compare("mi_date", ">", dt.date(2024, 3, 1))),
    ("sex in ['male']", In("sex", ("male",))),
    ("hemoglobin > 9 'g/dL'", Compare("hemoglobin", ">", Decimal(90))),
    ("hemoglobin >= 95", Compare("hemoglobin", ">=", Decimal(95))),
    ("alt <= 3 * alt_uln", Cmp("<=", Ref("alt"), Arith("*", Number(Decimal(3)), Ref("alt_uln")))),
    ("-age < -17", Cmp("<", __import__("screener.model", fromlist=["Neg"]).Neg(Ref("age")), Number(Decimal(-17)))),
    ("mi_date is never", IsSpecial(Ref("mi_date"), Special.NEVER)),
    ("mi_date is not never", Not(IsSpecial(Ref("mi_date"), Special.NEVER))),
    ("stop_date is ongoing", IsSpecial(Ref("stop_date"), Special.ONGOING)),
    ("mi_date within 12 weeks before screening_date",
     Within(Ref("mi_date"), Duration(Decimal(84), False), Ref("screening_date"), False)),
    ("mi_date within 1 year after consent_date",
     Within(Ref("mi_date"), Duration(Decimal(12), True), Ref("consent_date"), True)),
    ("stop_date >= screening_date - 90 days",
     Cmp(">=", Ref("stop_date"), Arith("-", Ref("screening_date"), Duration(Decimal(90), False)))),
    ("consent_date - 6 months <= mi_date",
     Cmp("<=", Arith("-", Ref("consent_date"), Duration(Decimal(6), True), calendar=True), Ref("mi_date"))),
    ("screening_date - consent_date <= 14 days",
     Cmp("<=", Arith("-", Ref("screening_date"), Ref("consent_date")), Duration(Decimal(14), False))),
    ("mi_date > 2024-03-01", Compare("mi_date", ">", dt.date(2024, 3, 1))),
    ("years_between(consent_date, screening_date) >= 1",
     Cmp(">=", Call("years_between", (Ref("consent_date"), Ref("screening_date"))), Number(Decimal(1)))),
    ("value(creatinine, 'mg/dL') < 1.5",
     Cmp("<", Scale(Ref("creatinine"), Fraction(10, 884)), Number(Decimal("1.5")))),
    ("abs(alt - alt_uln) < 10 'U/L'",
     Cmp("<", Call("abs", (Arith("-", Ref("alt"), Ref("alt_uln")),)), Number(Decimal(10)))),
    ("count(bp, systolic < 95) >= 2",
     Cmp(">=", Aggregate("count", "bp", (Cmp("<", ItemField("systolic"), Number(Decimal(95))),)), Number(Decimal(2)))),
    ("2 <= count(bp, systolic < 95)",
     Cmp(">=", Aggregate("count", "bp", (Cmp("<", ItemField("systolic"), Number(Decimal(95))),)), Number(Decimal(2)))),
    ("any(regimens, regimen == folfirinox)",
     Aggregate("any", "regimens", (Cmp("==", ItemField("regimen"), __import__("screener.model", fromlist=["Literal"]).Literal("folfirinox")),))),
    ("latest(bp, date, systolic) > 160",
     Cmp(">", Aggregate("latest", "bp", (ItemField("date"), ItemField("systolic"))), Number(Decimal(160)))),
    ("if(sex == male, 450, 470) > age", Cmp(">", Call("if", (Compare("sex", "==", "male"), Number(Decimal(450)),
                                                            Number(Decimal(470)))), Ref("age"))),
    ("if(liver_metastases, true, false)", Truth(Call("if", (Compare("liver_metastases", "==", True),
                                                             __import__("screener.model", fromlist=["Literal"]).Literal(True),
                                                             __import__("screener.model", fromlist=["Literal"]).Literal(False))))),
]


@pytest.mark.parametrize("text,expected", PARSED, ids=[t for t, _ in PARSED])
def test_each_construct_parses_into_its_meaning(check, text, expected):
    assert check.condition(text) == expected


def test_definitions_are_their_expression_wherever_they_are_used(lang):
    e1, e6 = lang.criterion("E1").condition, lang.criterion("E6").condition
    assert isinstance(e1, Within)
    assert e6 == And((e1, Compare("sex", "==", "male")))
    assert lang.criterion("E6").facts == ("mi_date", "screening_date", "sex")


def test_a_formula_derivation_reads_its_inputs_and_converts_to_the_fact_unit(lang):
    bmi = next(d for d in lang.derivations if d.fact == "bmi")
    assert bmi.function == "formula" and bmi.inputs == ("weight", "height")
    assert isinstance(bmi.formula, Scale) and bmi.formula.factor == 10000  # kg/cm2 -> kg/m2
    assert lang.facts["bmi"].derived_by == "D-bmi"


ERRORS = [
    # text, code, column (0-based offset) of the offending part, words of the message
    ("age >", "syntax", 5, "expected a fact name"),
    ("(age > 1", "syntax", 8, "expected ')'"),
    ("agee > 1", "unknown-fact", 0, "did you mean 'age'"),
    ("sex == femal", "unknown-value", 7, "did you mean 'female'"),
    ("age > screening_date", "wrong-type", 4, "cannot compare a number with a date"),
    ("screening_date + consent_date > mi_date", "wrong-type", 15, "cannot add a date to a date"),
    ("screening_date - consent_date < 1 month + 3 days", "wrong-type", 40, "months and years"),
    ("hemoglobin > 9 'mmol/L'", "unit", 11, "does not convert"),
    ("hemoglobin > 9 'g/kilo'", "unit", 13, "not a UCUM unit"),
    ("sex > female", "wrong-type", 4, "no order for '>'"),
    ("mi_date is ongoing", "wrong-type", 8, "cannot be ongoing"),
    ("age is never", "wrong-type", 4, "only dates"),
    ("count(bp, systolic < 95) + 1 > 2", "wrong-type", 25, "can only be compared"),
    ("sum(regimens, regimen) > 1", "wrong-type", 14, "sum takes numbers"),
    ("latest(bp, systolic, date) > 2024-01-01", "wrong-type", 11, "date field"),
    ("median(age) > 1", "unknown-function", 0, "unknown function 'median'"),
    ("weight ^ 0.5 > 1", "wrong-type", 7, "whole-number"),
    ("age", "wrong-type", 0, "not yes/no"),
    ("age > 1.5", "wrong-type", 6, "'1.5' is not a value of age"),
    ("systolic > 1", "unknown-fact", 0, "not in the data dictionary"),
    ("any(age, true)", "wrong-type", 0, "takes a list fact"),
    ("age > 1e5", "syntax", 7, "unexpected 'e5'"),
    ("age > 1234567890123456789012345678901", "too-large", 6, "30 digits"),
    ("mi_date within 3 'kg' before screening_date", "wrong-type", 15, "needs a duration"),
    ("if(age, 1, 2) > 1", "wrong-type", 3, "not yes/no"),
]


@pytest.mark.parametrize("text,code,offset,words", ERRORS, ids=[e[0] for e in ERRORS])
def test_each_mistake_is_reported_with_its_code_and_place(check, text, code, offset, words):
    with pytest.raises(ConditionError) as info:
        check.condition(text)
    assert (info.value.code, info.value.offset) == (code, offset), info.value.message
    assert words in info.value.message


def test_limits_are_problems_not_crashes(check):
    deep = "(" * 200 + "age > 1" + ")" * 200
    assert check.condition(deep) == Compare("age", ">", 1)
    for text, code in [
        ("(" * 201 + "age > 1" + ")" * 201, "too-deep"),
        ("not " * 250 + "liver_metastases", "too-deep"),
        ("-" * 300 + "age > 1", "too-deep"),
        ("age in [" + ",".join(str(i % 10) for i in range(10_001)) + "]", "too-large"),
        ("age > 1 and " * 10_000 + "age > 1", "too-long"),
    ]:
        with pytest.raises(ConditionError) as info:
            check.condition(text)
        assert info.value.code == code
    big = "age in [" + ", ".join(str(i) for i in range(10_000)) + "]"
    assert len(check.condition(big).values) == 10_000


def _document(extra: str) -> str:
    return LANG.read_text(encoding="utf-8") + extra


def _problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        build_trial(load_yaml_text(text, "t.yaml"), "t.yaml", "0")
    return [f"{p.line}:{p.column}: {p.code}: {p.message}" for p in info.value.problems]


def test_criterion_errors_point_into_the_condition_text():
    text = _document('  - {id: X1, kind: inclusion, title: T, protocol: T., when: "alt <= 3 * alt_ul"}\n')
    line = text.count("\n")
    [problem] = _problems(text)
    assert problem.startswith(f"{line}:73: unknown-fact: criterion X1: 'alt_ul'")
    assert "did you mean 'alt_uln'" in problem


def test_a_definition_may_not_shadow_a_fact_nor_use_a_later_one():
    text = LANG.read_text(encoding="utf-8").replace(
        "definitions:\n", "definitions:\n  - {name: age, expr: '1'}\n  - {name: first, expr: 'second + 1'}\n"
        "  - {name: second, expr: '2'}\n", 1)
    problems = _problems(text)
    assert any("duplicate-id: definition 'age' has the name of a fact" in p for p in problems)
    assert any("cycle: definition first" in p for p in problems)


def test_band_tables_must_cover_every_total_and_use_the_facts_values():
    text = """
trial: {id: B, title: B, version: "1"}
facts:
  candidate_id: {type: text, required: true, description: Id.}
  x: {type: integer, min: 0, max: 4, description: X.}
  y: {type: enum, values: [a, b], description: Y.}
  c: {type: enum, values: [low, high], derived: true, description: C.}
derivations:
  - id: D
    fact: c
    function: banded_score
    inputs: [x, y]
    params:
      points: {x: [[0, "< 2"], [1, ">= 2"]], y: {a: 0, b: 5}}
      classes: [[low, "<= 1"], [top, ">= 6"]]
    description: D.
criteria:
  - {id: I1, kind: inclusion, title: T, protocol: T., when: c == low}
"""
    problems = _problems(text)
    assert any("unknown-value: derivation D: class 'top' is not one of c's values" in p for p in problems)
    assert any("uncovered: derivation D: no class covers the total 2" in p for p in problems)


@pytest.mark.parametrize("gate,inputs,problem", [
    ("y", "[x, y]", "'normal_unless' must name a yes/no fact among the inputs, not 'y'"),
    ("known", "[x, y]", "'normal_unless' must name a yes/no fact among the inputs, not 'known'"),
    ("known", "[x, y, known]", None),
])
def test_a_score_is_normal_unless_a_yes_no_input_says_otherwise(gate, inputs, problem):
    text = f"""
trial: {{id: B, title: B, version: "1"}}
facts:
  candidate_id: {{type: text, required: true, description: Id.}}
  x: {{type: integer, min: 0, max: 4, description: X.}}
  y: {{type: enum, values: [a, b], description: Y.}}
  known: {{type: boolean, description: Known disease.}}
  c: {{type: enum, values: [low, high], derived: true, description: C.}}
derivations:
  - id: D
    fact: c
    function: banded_score
    inputs: {inputs}
    params:
      normal_unless: {gate}
      points: {{x: [[0, "< 2"], [1, ">= 2"]], y: {{a: 0, b: 5}}}}
      classes: [[low, "<= 1"], [high, ">= 2"]]
    description: D.
criteria:
  - {{id: I1, kind: inclusion, title: T, protocol: T., when: c == low}}
"""
    if problem is None:
        build_trial(load_yaml_text(text, "t.yaml"), "t.yaml", "0")
    else:
        assert any(problem in p for p in _problems(text))


@pytest.mark.parametrize("formula,code", [
    ("weight / height", "unit"),          # kg/cm is no kg/m2
    ("screening_date", "wrong-type"),     # a date is no quantity
    ("count(bp, systolic < 95)", "wrong-type"),
    ("bmi * 1", "cycle"),
])
def test_formula_types_must_fit_the_derived_fact(formula, code):
    text = LANG.read_text(encoding="utf-8").replace("formula: weight / height ^ 2", f"formula: {formula}")
    problems = _problems(text)
    assert any(f": {code}: " in p and ("D-bmi" in p or "'bmi'" in p) for p in problems), problems


def test_derivations_that_feed_each_other_in_a_circle_are_refused():
    text = LANG.read_text(encoding="utf-8").replace("formula: alt / alt_uln", "formula: value(bmi, 'kg/m2') / 10").replace(
        "formula: weight / height ^ 2", "formula: ratio * 10 'kg/m2'")
    problems = _problems(text)
    assert any("cycle: derivation D-bmi: facts derive each other in a circle" in p for p in problems), problems


PENDING_TRIAL = """
trial: {id: P, title: P, version: "1"}
facts:
  candidate_id: {type: text, required: true, description: Id.}
  exam_date: {type: date, description: Exam date.}
  exam_finding: {type: boolean, description: Finding.}
  age: {type: integer, description: Age.}
  reads: {type: list, description: Readings., item: {value: {type: integer, description: V.}}}
  bmi: {type: decimal, derived: true, description: BMI.}
definitions:
  - {name: d, expr: "pending(exam_date)"}
derivations:
  - {id: D, fact: bmi, formula: "age * 1", description: D.}
criteria:
  - {id: I1, kind: inclusion, title: T, protocol: T., when: "WHEN"}
"""


@pytest.mark.parametrize("when,problem", [
    ("any(reads, pending(exam_date))", "wrong-type: criterion I1: pending(...) is a condition of a criterion"),
    ("if(pending(exam_date), 1, 2) > 0", "wrong-type: criterion I1: pending(...) is a condition of a criterion"),
    ("pending(exam_dat)", "unknown-fact: criterion I1: 'exam_dat' is not in the data dictionary (did you mean 'exam_date'?)"),
    ("pending()", "wrong-type: criterion I1: pending needs the facts still to collect"),
    ("pending(reads)", "wrong-type: criterion I1: pending takes facts a person collects, not 'reads'"),
    ("pending(bmi)", "wrong-type: criterion I1: pending takes facts a person collects, not 'bmi'"),
    ("pending(age + 1)", "wrong-type: criterion I1: pending takes the names of facts"),
    ("age + pending(exam_date) > 1", "wrong-type: criterion I1: pending(...) is a condition of a criterion, not a value"),
])
def test_pending_names_facts_and_is_a_condition_of_a_criterion_only(when, problem):
    text = PENDING_TRIAL.replace("WHEN", when)
    problems = _problems(text)
    assert any(problem in p for p in problems), problems
    # a definition is a value: pending is refused there too
    assert any("definition" in p and "pending(...) is a condition of a criterion" in p for p in problems)


def test_pending_is_read_in_a_criterion():
    trial = build_trial(load_yaml_text(PENDING_TRIAL.replace('  - {name: d, expr: "pending(exam_date)"}\n', "")
                                       .replace("definitions:\n", "").replace(
        "WHEN", "exam_finding or (exam_date < 2024-01-01 and pending(exam_date, exam_finding))"),
        "t.yaml"), "t.yaml", "0")
    assert trial.criteria[0].facts == ("exam_finding", "exam_date")
