"""The engine decides every construct of the rules language as its words say: windows to
the day, calendar months, never/ongoing, counts over lists with unknown items, units,
formulas and failed computations."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from screener.engine import Screener
from screener.errors import ImpossibleFacts
from screener.model import Special
from screener.rules.check import load_trial

from conftest import ROOT

DATA = ROOT / "tests" / "data" / "lang"
D = dt.date


@pytest.fixture(scope="module")
def lang():
    return Screener(load_trial(DATA / "LANG-1.yaml"))


@pytest.fixture(scope="module")
def edges():
    return Screener(load_trial(DATA / "LANG-2.yaml"))


BASE = dict(
    candidate_id="a", sex="female", age=40, liver_metastases=False, alt=Decimal(100), alt_uln=Decimal(40),
    hemoglobin=Decimal(95), weight=Decimal("70.0"), height=Decimal(175), half_life=Decimal(24),
    screening_date=D(2024, 3, 1), consent_date=D(2024, 3, 1), mi_date=Special.NEVER,
    last_dose_date=D(2024, 1, 1), stop_date=D(2023, 1, 1),
    bp=({"date": D(2024, 1, 1), "systolic": 120},), regimens=(),
)


def outcome(screener, criterion, **facts):
    return screener.evaluate({**BASE, **facts}).outcomes[criterion]


def test_an_eligible_candidate_meets_every_construct(lang):
    result = lang.evaluate(BASE)
    assert result.decision == "eligible", result.outcomes
    # kept as computed, to 34 significant digits, never rounded to the fact's places
    assert result.derived == {"bmi": Decimal("22.85714285714285714285714285714286"), "ratio": 2.5}


def test_terms_and_formulas_are_rules_that_fire_in_the_engine(lang):
    rules = [f.rule for f in lang.evaluate(BASE).firings]
    assert "derive.D-bmi" in rules and any(r.startswith("term.") for r in rules)
    assert all(name.startswith(("open", "derive.", "term.", "seal", "seen", "I", "E")) for name in lang.definition)


@pytest.mark.parametrize("alt,liver,want", [
    (120, False, "met"), (121, False, "not_met"), (200, True, "met"), (201, True, "not_met"),
])
def test_limits_in_multiples_of_another_fact(lang, alt, liver, want):
    assert outcome(lang, "I2", alt=Decimal(alt), liver_metastases=liver) == want


def test_a_threshold_depending_on_an_unknown_fact_is_unknown_and_names_it(lang):
    result = lang.evaluate({**BASE, "liver_metastases": None, "alt": Decimal(130)})
    assert result.outcomes["I2"] == "unknown" and result.missing == ("liver_metastases",)
    # ...but a value under both limits needs no answer: 100 <= 3 x 40 and <= 5 x 40
    # (docs/rules-language.md, "Settled when settled")
    assert outcome(lang, "I2", liver_metastases=None) == "met"
    # and one over both limits fails whatever the answer: 201 > 5 x 40
    assert outcome(lang, "I2", liver_metastases=None, alt=Decimal(201)) == "not_met"


@pytest.mark.parametrize("hb,want", [(91, "met"), (90, "not_met")])
def test_a_literal_in_another_unit_is_converted(lang, hb, want):
    assert outcome(lang, "I3", hemoglobin=Decimal(hb)) == want  # hemoglobin > 9 g/dL, kept in g/L


@pytest.mark.parametrize("creatinine,want", [("132.5", "met"), ("132.6", "not_met")])
def test_value_in_a_unit_uses_the_analyte_factor(edges, creatinine, want):
    assert edges.evaluate({"creatinine": Decimal(creatinine)}).outcomes["C1"] == want  # 132.6 = 1.5 mg/dL


@pytest.mark.parametrize("weight,height,bmi,want", [
    ("70.0", 175, "22.9", "met"), ("130.0", 180, "40.1", "not_met"), ("51.0", 166, "18.5", "met"),
])
def test_a_formula_derivation_feeds_the_criteria(lang, weight, height, bmi, want):
    result = lang.evaluate({**BASE, "weight": Decimal(weight), "height": Decimal(height)})
    # kept as computed (never rounded to places: 18.5077 is not 18.5); shown here to one place
    assert round(result.derived["bmi"], 1) == Decimal(bmi) and result.derived["bmi"] != Decimal(bmi)
    assert result.outcomes["I4"] == want


def test_a_formula_with_an_unknown_input_leaves_its_criteria_unknown_and_names_the_input(lang):
    result = lang.evaluate({**BASE, "height": None})
    assert result.outcomes["I4"] == "unknown" and "bmi" not in result.derived
    assert result.missing == ("height", "bmi")


# --- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("dose,want", [
    (D(2024, 2, 16), "met"),       # 14 days before: inside
    (D(2024, 2, 15), "not_met"),   # 15 days before: outside
    (D(2024, 3, 1), "met"),        # the anchor day itself
    (D(2024, 3, 2), "not_met"),    # after the anchor
    (Special.ONGOING, "met"),      # still taken at the anchor: inside, never an error
])
def test_a_day_window_includes_both_ends(edges, dose, want):
    assert edges.evaluate({"dose_date": dose, "screening_date": D(2024, 3, 1)}).outcomes["W1"] == want


@pytest.mark.parametrize("start,progression,want", [
    (D(2024, 1, 31), D(2024, 2, 29), "met"),      # 31 Jan + 1 month = 29 Feb (clamped)
    (D(2024, 1, 31), D(2024, 3, 1), "not_met"),
    (D(2023, 1, 31), D(2023, 2, 28), "met"),      # common year: 28 Feb
    (D(2023, 1, 31), D(2023, 3, 1), "not_met"),
    (D(2024, 1, 31), D(2024, 1, 30), "not_met"),  # before the start
    (D(2024, 1, 31), Special.NEVER, "not_met"),
])
def test_calendar_months_clamp_to_the_month_end(edges, start, progression, want):
    assert edges.evaluate({"start_date": start, "progression_date": progression}).outcomes["W2"] == want


def test_never_is_not_met_by_any_comparison_and_its_negation_is_met(edges):
    result = edges.evaluate({"progression_date": Special.NEVER, "screening_date": D(2024, 3, 1),
                             "start_date": D(2024, 1, 1)})
    assert [result.outcomes[c] for c in ("W2", "W3", "W4")] == ["not_met", "met", "met"]
    recent = edges.evaluate({"progression_date": D(2024, 2, 1), "screening_date": D(2024, 3, 1)})
    assert [recent.outcomes[c] for c in ("W3", "W4")] == ["not_met", "not_met"]


def test_never_answers_the_fact_so_it_is_not_missing(edges):
    result = edges.evaluate({"progression_date": Special.NEVER})
    assert (result.outcomes["W2"], result.outcomes["W3"]) == ("not_met", "met")  # no other date needed
    assert "progression_date" not in result.missing
    assert "screening_date" in result.missing  # W1 and W5 need it


@pytest.mark.parametrize("dose,want", [
    (Special.ONGOING, "met"), (D(2023, 12, 2), "met"), (D(2023, 12, 1), "not_met"),
])
def test_ongoing_orders_after_every_date(edges, dose, want):
    # dose_date >= screening_date - 90 days; 2024-03-01 - 90 days = 2023-12-02
    assert edges.evaluate({"dose_date": dose, "screening_date": D(2024, 3, 1)}).outcomes["W5"] == want


@pytest.mark.parametrize("dose,want", [
    (D(2024, 1, 31), "met"), (D(2024, 2, 1), "not_met"), (D(2024, 1, 1), "met"), (Special.ONGOING, "not_met"),
])
def test_a_window_after_an_anchor_and_ongoing_is_after_it(edges, dose, want):
    # 2024-01-01 + 30 days = 2024-01-31; a drug not stopped has not ended within the window
    assert edges.evaluate({"dose_date": dose, "screening_date": D(2024, 1, 1)}).outcomes["W6"] == want


def test_ongoing_settles_a_window_or_comparison_whose_other_side_is_unknown(edges):
    # a drug not stopped is inside every window before a date, after every date, and never
    # inside a window after one: the screening date cannot change that
    result = edges.evaluate({"dose_date": Special.ONGOING})
    assert [result.outcomes[c] for c in ("W1", "W5", "W6")] == ["met", "met", "not_met"]
    # whatever the half-life, but the progression date may be `never`, outside every window
    assert edges.evaluate({"dose_date": Special.ONGOING}).outcomes["O1"] == "unknown"
    assert outcome(edges, "O1", dose_date=Special.ONGOING, progression_date=D(2024, 3, 1)) == "met"


@pytest.mark.parametrize("end,strict,plain", [
    (None, "unknown", "met"), (Special.ONGOING, "not_met", "met"), (D(2024, 3, 1), "met", "met"),
])
def test_ongoing_against_a_date_that_may_be_ongoing_too(edges, end, strict, plain):
    # `ongoing > X` holds for every date X but not for X ongoing: unknown until X is known
    facts = {"dose_date": Special.ONGOING, "study_end_date": end}
    result = edges.evaluate({k: v for k, v in facts.items() if v is not None})
    assert (result.outcomes["O2"], result.outcomes["O3"]) == (strict, plain)


def test_a_plain_date_is_never_after_or_within_before_an_ongoing_one(edges):
    result = edges.evaluate({"dose_date": Special.ONGOING})
    assert (result.outcomes["O4"], result.outcomes["O5"]) == ("not_met", "not_met")


def test_the_whichever_is_longer_window(lang):
    # max(28 days, 5 x half-life): 24 h -> 5 days, so 28 days; 240 h -> 50 days
    early = D(2024, 3, 1) - dt.timedelta(days=40)
    assert outcome(lang, "E2", last_dose_date=early, half_life=Decimal(24)) == "not_met"
    assert outcome(lang, "E2", last_dose_date=early, half_life=Decimal(240)) == "met"
    assert outcome(lang, "E2", last_dose_date=D(2024, 2, 2), half_life=Decimal(24)) == "met"  # 28 days
    assert outcome(lang, "E2", last_dose_date=D(2024, 2, 1), half_life=Decimal(24)) == "not_met"  # 29 days


@pytest.mark.parametrize("birth,want", [(D(2006, 3, 1), "met"), (D(2006, 3, 2), "not_met"),
                                        (D(2006, 2, 28), "met")])
def test_years_between_counts_the_anniversary(edges, birth, want):
    assert edges.evaluate({"birth_date": birth, "screening_date": D(2024, 3, 1)}).outcomes["A1"] == want


# --- lists --------------------------------------------------------------------------------


def _bp(*systolic):
    return tuple({"date": D(2024, 1, i + 1), "systolic": s} for i, s in enumerate(systolic))


@pytest.mark.parametrize("readings,want", [
    (_bp(90, 80, None), "met"),          # two of three already below 95, the third unknown
    (_bp(90, None, 100), "unknown"),     # one below, one unknown: could be two
    (_bp(90, 100, 100), "not_met"),
    (_bp(90, None, None), "unknown"),
    (_bp(), "not_met"),                  # known to be empty
    (None, "unknown"),                   # the list itself not given
])
def test_count_over_a_list_is_a_range(lang, readings, want):
    assert outcome(lang, "E3", bp=readings) == want


def test_an_absent_list_is_missing_and_a_given_one_is_not(lang):
    # `missing` names facts not given; a list given with unknown items leaves it unknown, and
    # the item field to complete is named after the facts (docs/batch-io.md, "Lists to complete")
    assert lang.evaluate({**BASE, "bp": _bp(90, None, 100)}).missing == ("bp[2].systolic",)
    assert lang.evaluate({**BASE, "bp": None}).missing == ("bp",)
    assert lang.evaluate({**BASE, "bp": _bp(90, 80, 100)}).missing == ()


@pytest.mark.parametrize("regimens,want", [
    (({"regimen": "folfirinox", "progression_date": D(2023, 5, 1)},), "met"),
    (({"regimen": "folfirinox", "progression_date": Special.NEVER},), "not_met"),
    (({"regimen": "gemcitabine", "progression_date": D(2023, 5, 1)},), "not_met"),
    (({"regimen": None, "progression_date": D(2023, 5, 1)},), "unknown"),
    (({"regimen": None, "progression_date": Special.NEVER},), "not_met"),
    (({"regimen": "other"}, {"regimen": "folfirinox", "progression_date": D(2023, 5, 1)}), "met"),
])
def test_any_over_items_is_kleene(lang, regimens, want):
    assert outcome(lang, "E5", regimens=regimens) == want


# --- definitions and failed computations ---------------------------------------------------


def test_a_definition_used_by_two_criteria_is_one_term(lang):
    result = lang.evaluate({**BASE, "mi_date": D(2024, 1, 1), "sex": "male"})
    assert result.outcomes["E1"] == result.outcomes["E6"] == "met"
    terms = [f for f in result.firings if f.rule.startswith("term.") and "mi_date" in f.facts]
    assert len(terms) == 1
    assert outcome(lang, "E1", mi_date=D(2023, 12, 8)) == "met"      # 12 weeks = 84 days before
    assert outcome(lang, "E1", mi_date=D(2023, 12, 7)) == "not_met"  # 85 days


def test_division_by_zero_is_an_error_only_when_the_decision_needs_it(edges):
    with pytest.raises(ImpossibleFacts) as info:
        edges.evaluate({"alt": 40.0, "alt_uln": 0.0})
    assert "division by zero" in str(info.value) and "alt_uln" in str(info.value)
    waived = edges.evaluate({"alt": 40.0, "alt_uln": 0.0, "waived": True})
    assert waived.outcomes["R1"] == "met"
    assert edges.evaluate({"alt": 40.0, "alt_uln": 20.0}).outcomes["R1"] == "met"
    assert edges.evaluate({"alt": 70.0, "alt_uln": 20.0}).outcomes["R1"] == "unknown"  # 3.5 > 3, waived?


def test_a_failed_formula_that_no_criterion_needs_is_no_error(lang):
    result = lang.evaluate({**BASE, "alt_uln": Decimal(0), "alt": Decimal(0)})
    assert "ratio" not in result.derived  # alt / alt_uln cannot be computed, and nothing reads it
    assert result.outcomes["I2"] == "met"


@pytest.mark.parametrize("readings,want", [
    (_bp(150, 170), "met"),                                      # the later reading counts
    (_bp(170, 150), "not_met"),
    ((({"date": D(2024, 1, 2), "systolic": 150}), {"date": D(2024, 1, 2), "systolic": 170}), "met"),  # tie: last listed
    ((({"date": None, "systolic": 150}), {"date": D(2024, 1, 2), "systolic": 170}), "unknown"),
])
def test_latest_takes_the_item_with_the_latest_date(lang, readings, want):
    assert outcome(lang, "E7", bp=readings) == want


def test_all_and_sum_over_items(lang):
    assert outcome(lang, "I5", regimens=()) == "met"  # all of nothing
    assert outcome(lang, "I5", regimens=({"regimen": "other"},)) == "not_met"
    assert outcome(lang, "I5", regimens=({"regimen": None}, {"regimen": "other"})) == "not_met"
    assert outcome(lang, "I5", regimens=({"regimen": None}, {"regimen": "folfirinox"})) == "unknown"
    assert outcome(lang, "I6", bp=_bp(500, 499)) == "met"
    assert outcome(lang, "I6", bp=_bp(500, 500)) == "not_met"
    assert outcome(lang, "I6", bp=_bp(500, None)) == "unknown"


def test_is_ongoing_is_decided_by_the_engine(lang):
    assert outcome(lang, "E8", stop_date=Special.ONGOING) == "met"
    assert outcome(lang, "E8", stop_date=D(2024, 1, 1)) == "not_met"
    assert lang.evaluate({**BASE, "stop_date": None}).missing == ("stop_date",)


def test_if_needs_only_the_branch_it_takes(edges):
    assert edges.evaluate({"alt": 500.0, "waived": True}).outcomes["R2"] == "met"
    chosen = edges.evaluate({"waived": True})  # alt <= 1000: the other branch's ULN is not needed
    assert "alt" in chosen.missing and "alt_uln" not in chosen.missing
    result = edges.evaluate({"alt": 500.0, "waived": False})
    assert result.outcomes["R2"] == "unknown" and "alt_uln" in result.missing
    assert edges.evaluate({"alt": 61.0, "alt_uln": 20.0, "waived": False}).outcomes["R2"] == "not_met"


@pytest.mark.parametrize("start,want", [(D(2024, 1, 31), "met"), (D(2024, 2, 1), "met"), (D(2024, 2, 2), "not_met"),
                                        (D(2024, 1, 1), "met"), (D(2023, 12, 1), "not_met")])
def test_months_between_counts_whole_calendar_months(edges, start, want):
    # from 31 Jan to 1 Mar 2024: one whole month (29 Feb is the clamped anniversary)
    assert edges.evaluate({"start_date": start, "screening_date": D(2024, 3, 1)}).outcomes["M1"] == want


@pytest.mark.parametrize("facts", [
    {"dose_date": "ongoing"},
    {"dose_date": "ongoing", "study_end_date": "ongoing"},
    {"dose_date": "ongoing", "study_end_date": "2024-03-01", "progression_date": "never"},
    {"dose_date": "ongoing", "progression_date": "2024-03-01", "start_date": "2024-02-15"},
    {"dose_date": "2024-02-20", "study_end_date": "ongoing", "half_life": "48"},
])
def test_the_reference_reads_ongoing_against_unknowns_as_the_engine(facts):
    # the reference implements docs/rules-language.md on its own; both settle the same
    from reference import reference_for

    from screener.run.batch import screen_row
    from screener.sources.readers import Row

    trial = load_trial(DATA / "LANG-2.yaml")
    fields = {"candidate_id": "a", **facts}
    record = screen_row(trial, Screener(trial), Row(1, fields)).record
    want = reference_for(trial).decide(fields)
    assert (record["decision"], record["failed_criteria"], record["missing"]) == (
        want["decision"], want["failed_criteria"], want["missing"] or [])


@pytest.fixture(scope="module")
def stuck():
    return load_trial(DATA / "LANG-3.yaml")


def _missing(trial, fields):
    from screener.run.batch import screen_row
    from screener.sources.readers import Row

    return screen_row(trial, Screener(trial), Row(1, {"candidate_id": "a", **fields})).record["missing"]


def test_a_question_that_no_answer_can_turn_into_a_decision_is_not_asked(stuck):
    # S1: (d1 and latest home reading > 160) or latest clinic reading > 160. With no readings
    # of either kind, both comparisons stay unknown whatever d1 is: d1 is not missing.
    missing = _missing(stuck, {"home": [], "clinic": []})
    assert "d1" not in missing
    # with clinic readings still to come, d1 = no can end S1 (not excluded)
    assert "d1" in _missing(stuck, {"home": []})
    # a home reading whose value is still unknown can be completed: d1 can matter again
    assert "d1" in _missing(stuck, {"home": [{"date": "2024-01-01"}], "clinic": []})
    # S2 (d2 and latest home > 160) or o2: d2 = no and o2 = no end it, so d2 is asked
    assert "d2" in missing


def test_a_list_given_empty_is_completed_before_what_matters_only_with_its_items(stuck):
    # home given empty is named as home[] only: d1 would matter once home readings are
    # added, and is asked then. Here the only clinic reading, 805 mmHg, is above 160 whatever
    # its date: completing the date excludes, whatever d1 is, so d1 is not asked...
    missing = _missing(stuck, {"home": [], "clinic": [{"systolic": 805}]})
    assert "d1" not in missing and missing[-2:] == ["home[]", "clinic[1].date"]
    # ...while a clinic reading of 150 can end S1 (not excluded) once d1 = no
    assert "d1" in _missing(stuck, {"home": [], "clinic": [{"systolic": 150}]})
    # two undated clinic readings on either side of 160: either may be the latest
    assert "d1" in _missing(stuck, {"home": [], "clinic": [{"systolic": 150}, {"systolic": 805}]})


@pytest.mark.parametrize("known,asked", [(170, False), (160, True), (150, True)])
def test_a_greatest_value_already_past_the_limit_asks_nothing_that_could_only_end_the_other_way(
        tmp_path, known, asked):
    rules = (DATA / "LANG-3.yaml").read_text().replace(
        "or latest(clinic, date, systolic) > 160", "or max_of(clinic, systolic) > 160")
    (tmp_path / "LANG-3.yaml").write_text(rules)
    trial = load_trial(tmp_path / "LANG-3.yaml")
    # the greatest clinic reading is `known` or more, whatever the second one is
    missing = _missing(trial, {"home": [], "clinic": [{"systolic": known}, {"date": "2024-01-01"}]})
    assert ("d1" in missing) is asked and "clinic[2].systolic" in missing


def test_the_reference_agrees_on_random_candidates_with_empty_readings_and_early_formulas(stuck):
    import random
    import sys

    from reference import reference_for

    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from candidates import ADVERSARIAL, RandomChooser, generator_for

    from screener.run.batch import screen_row
    from screener.sources.readers import Row

    generator, reference, screener = generator_for(DATA / "LANG-3.yaml"), reference_for(stuck), Screener(stuck)
    rng = random.Random(3)
    for _ in range(300):
        fields = generator.candidate(RandomChooser(rng), ADVERSARIAL).fields
        if rng.random() < 0.5:  # lists given empty are what this trial is about
            fields.update({name: [] for name in ("home", "clinic") if rng.random() < 0.7})
        record = screen_row(stuck, screener, Row(1, dict(fields))).record
        want = reference.decide(fields)
        assert (record["decision"], record["missing"]) == (want["decision"], want["missing"] or []), fields


PENDING = """
trial: {id: LANG-P, title: Pending test trial, version: "1"}
facts:
  candidate_id: {type: text, required: true, description: Id.}
  screening_date: {type: date, description: Screening.}
  exam_date: {type: date, description: Examination date.}
  exam_finding: {type: boolean, description: Examination shows the disease.}
  other: {type: boolean, description: Another reason to exclude.}
criteria:
  - id: E1
    kind: exclusion
    title: T
    protocol: T.
    when: >-
      (exam_date within 30 days before screening_date and exam_finding)
      or other
      or (not (exam_date within 30 days before screening_date)
          and pending(exam_date, exam_finding))
"""


@pytest.mark.parametrize("facts,decision,missing", [
    # an examination in the window decides
    ({"exam_date": "2024-02-20", "exam_finding": "yes"}, "ineligible", None),
    ({"exam_date": "2024-02-20", "exam_finding": "no", "other": "no"}, "eligible", None),
    # one too early is no examination yet: to collect again, given as it is
    ({"exam_date": "2024-01-01", "exam_finding": "no", "other": "no"}, "undetermined", ["exam_date", "exam_finding"]),
    ({"exam_date": "2024-01-01", "exam_finding": "yes"}, "undetermined", ["exam_date", "exam_finding", "other"]),
    # pending never hides what settles the criterion otherwise
    ({"exam_date": "2024-01-01", "exam_finding": "no", "other": "yes"}, "ineligible", None),
    ({}, "undetermined", ["exam_date", "exam_finding", "other"]),
])
def test_a_pending_condition_stays_unknown_and_names_what_to_collect_given_or_not(
        tmp_path, facts, decision, missing):
    from reference import reference_for

    from screener.run.batch import screen_row
    from screener.sources.readers import Row

    (tmp_path / "LANG-P.yaml").write_text(PENDING)
    trial = load_trial(tmp_path / "LANG-P.yaml")
    fields = {"candidate_id": "a", "screening_date": "2024-03-01", **facts}
    record = screen_row(trial, Screener(trial), Row(1, dict(fields))).record
    assert (record["decision"], record["missing"] or None) == (decision, missing)
    want = reference_for(trial).decide(fields)
    assert (want["decision"], want["missing"]) == (decision, missing)
