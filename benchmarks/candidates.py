"""Random NCT03862768 candidates for the stress and throughput benchmarks and property tests.

Every fact is independently absent, valid or invalid. Valid values crowd the thresholds the
criteria and derivations use (ages 17/18/75/76 given or by dates, bilirubin 34.1/34.2/51.3/51.4,
albumin 27.9/28/35/35.1, INR 1.69/1.7/2.3/2.31, progression six months after the start of
imatinib plus or minus a day, 29 February). Invalid values are out of range, of the wrong type,
or impossible dates; the generator says which facts it made invalid so a test can demand an
error naming each, without asking the code under test what is valid.

Draws go through a `Chooser`, so the same generator runs on `random.Random` (benchmarks) and
on Hypothesis' `draw` (property tests, which then shrink failures).
"""
from __future__ import annotations

import calendar
import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

BOOLEANS = (
    "gist_confirmed", "on_standard_imatinib", "progressed_on_imatinib", "mdt_resectable",
    "other_malignancy_within_5y", "informed_consent", "severe_cardiopulmonary_disease",
    "pulmonary_infection", "severe_diabetes", "renal_insufficiency", "severe_hepatitis",
    "child_pugh_b_correctable", "severe_malnutrition", "imatinib_primary_resistance",
    "needs_concurrent_surgery", "tumor_bleeding", "tumor_perforation", "tumor_obstruction",
    "pregnant", "breastfeeding", "serious_mental_illness", "other_clinical_study",
    "other_tki_use",
)
ENUMS = {
    "sex": ("female", "male"),
    "disease_status": ("recurrent", "metastatic", "localized_primary"),
    "copd_severity": ("none", "mild", "moderate", "severe", "very_severe"),
    "child_pugh_class": ("A", "B", "C"),
    "ascites": ("none", "mild", "moderate_severe"),
    "encephalopathy": ("none", "grade_1_2", "grade_3_4"),
}
# integer facts: (minimum, maximum or None, values that pass, values that fail)
INTEGERS = {
    "age": (0, 120, (18, 19, 45, 63, 74, 75), (0, 17, 76, 120)),
    "ecog": (0, 4, (0, 1), (2, 3, 4)),
    "asa_class": (1, 6, (1, 2), (3, 4, 5, 6)),
    "nyha_class": (1, 4, (1,), (2, 3, 4)),
    "progressive_lesion_count": (1, None, (1, 2, 3), (4, 5, 12)),
    "progressive_organ_count": (1, None, (1,), (2, 3)),
}
# decimal facts (two places): (minimum, maximum, values scoring 1 point, values scoring more)
DECIMALS = {
    "bilirubin_umol_l": ("0", "2000", ("0", "5.5", "34.1", "34.19"),
                         ("34.2", "51.3", "51.31", "51.4", "120", "2000")),
    "albumin_g_l": ("0", "100", ("35.01", "35.1", "45", "100"),
                    ("0", "20", "27.9", "27.99", "28", "35")),
    "inr": ("0.5", "20", ("0.5", "1", "1.69"), ("1.7", "2.3", "2.31", "3.5", "20")),
}
# enum values that pass (the rest fail or score more)
ENUM_PASS = {
    "sex": ("female", "male"),
    "disease_status": ("recurrent", "metastatic"),
    "copd_severity": ("none", "mild"),
    "child_pugh_class": ("A", "B"),
    "ascites": ("none",),
    "encephalopathy": ("none",),
}
DATES = ("birth_date", "screening_date", "imatinib_start_date", "first_progression_date")
FACTS = ("sex", "disease_status", *BOOLEANS, *ENUMS, *INTEGERS, *DECIMALS, *DATES)
FACTS = tuple(dict.fromkeys(FACTS))  # every fact once, stable order

BAD_DATES = ("2021-02-29", "2020-02-30", "2020-13-01", "2020-00-10", "2020/01/01", "20200101",
             "2020-1-5", "01-02-2020", "yesterday", "2020-01-01T10:00")
AWKWARD_DAYS = ((2, 28), (2, 29), (3, 1), (8, 31), (1, 31), (12, 31), (6, 15))


class Chooser:
    """Where random choices come from."""

    def choice(self, items: Sequence[Any]) -> Any:
        raise NotImplementedError

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def chance(self, p: float) -> bool:
        raise NotImplementedError


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, items: Sequence[Any]) -> Any:
        return self.rng.choice(items)

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class DrawChooser(Chooser):
    """Hypothesis: `draw` from `st.data()`; chances become booleans it can shrink."""

    def __init__(self, draw: Callable[[Any], Any]):
        from hypothesis import strategies as st

        self.draw = draw
        self.st = st

    def choice(self, items: Sequence[Any]) -> Any:
        return self.draw(self.st.sampled_from(list(items)))

    def integer(self, low: int, high: int) -> int:
        return self.draw(self.st.integers(low, high))

    def chance(self, p: float) -> bool:
        # shrinks towards True: towards absent (simpler) candidates
        return self.draw(self.st.integers(0, 99)) < round(p * 100)


@dataclass(frozen=True)
class Profile:
    """How candidates are drawn; each candidate picks its own rates from these."""

    absent: tuple[float, ...]  # chance a fact is left out (or empty)
    passing: tuple[float, ...]  # chance a fact takes a value that passes its criterion
    invalid: float  # chance a candidate has invalid values at all (then ~5% of its facts)
    native: bool  # may use JSON/YAML-typed values (bool, int, float, date); else text only
    consistent: bool  # give derived facts only in agreement with their inputs


ADVERSARIAL = Profile(absent=(0.0, 0.03, 0.1, 0.3, 0.7), passing=(0.5, 0.9, 0.97, 1.0),
                      invalid=0.15, native=True, consistent=False)
REALISTIC = Profile(absent=(0.0, 0.01, 0.05), passing=(0.9, 0.97, 0.99), invalid=0.003,
                    native=False, consistent=True)


@dataclass
class Candidate:
    fields: dict[str, Any]
    invalid: set[str] = field(default_factory=set)  # facts given an invalid value


def shift_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(index, 12)
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def _a_date(c: Chooser, low: int = 1930, high: int = 2025) -> dt.date:
    year = c.integer(low, high)
    if c.chance(0.5):
        month, day = c.choice(AWKWARD_DAYS)
        if (month, day) == (2, 29) and not calendar.isleap(year):
            year = next(y for y in range(year, year + 8) if calendar.isleap(y))
    else:
        month, day = c.integer(1, 12), c.integer(1, 28)
    return dt.date(year, month, day)


def _boolean(c: Chooser, value: bool, native: bool) -> Any:
    if native and c.chance(0.3):
        return c.choice((value, int(value)))
    return c.choice(("yes", "Yes", "y", "true", "1") if value else ("no", "NO", "n", "false", "0"))


def _integer(c: Chooser, value: int, native: bool) -> Any:
    if native and c.chance(0.3):
        return c.choice((value, float(value)))
    return c.choice((str(value), str(value), f" {value} ", f"+{value}"))


def _decimal(c: Chooser, text: str, native: bool) -> Any:
    if native and c.chance(0.3):
        return float(text)
    if c.chance(0.05) and "." not in text and text != "0":
        return f"{text}e0"
    return text


def _date(c: Chooser, day: dt.date, native: bool) -> Any:
    if native and c.chance(0.3):
        return day
    return day.isoformat()


def _invalid(c: Chooser, name: str, native: bool) -> Any:
    """A value that no reading of `name`'s type accepts."""
    texts: list[Any]
    natives: list[Any] = [[1], {"a": 1}]
    if name in BOOLEANS:
        texts = ["maybe", "2", "-1", "si", "yes please", "1.0"]
        natives += [2, -1, 1.0, 0.5]
    elif name in ENUMS:
        texts = ["unknown", "D", ENUMS[name][0].upper() + "x", "n/a", "0"]
        natives += [1, True, 0.0]
    elif name in INTEGERS:
        low, high, _, _ = INTEGERS[name]
        texts = [str(low - 1), str(low - 10), "abc", "1.5", "2.0", "1e2", "one", "0x1"]
        if high is not None:
            texts += [str(high + 1), str(high + 100)]
        natives += [True, False, 1.5, float("nan"), float("inf")]
        if high is not None:
            natives += [high + 1]
        natives += [low - 1]
    elif name in DECIMALS:
        low, high, _, _ = DECIMALS[name]
        texts = ["-0.01" if low == "0" else "0.49", f"{high}.01", "abc", "1.234", "34.105",
                 "nan", "inf", "-inf", "1,5"]
        natives += [True, float("nan"), float("inf"), 1.234, float(high) + 1]
    else:  # dates
        texts = list(BAD_DATES)
        natives += [20200101, dt.datetime(2020, 1, 1, 10, 0), 1.5, True]
    if native and c.chance(0.4):
        return c.choice(natives)
    return c.choice(texts)


# yes/no facts whose "yes" passes; for every other one "no" passes
PASS_YES = {"gist_confirmed", "on_standard_imatinib", "progressed_on_imatinib", "mdt_resectable",
            "informed_consent", "child_pugh_b_correctable"}
DERIVED_OR_INPUT = {"age", "imatinib_primary_resistance", "child_pugh_class", "bilirubin_umol_l",
                    "albumin_g_l", "inr", "ascites", "encephalopathy", *DATES}


def candidate(c: Chooser, profile: Profile, candidate_id: str = "c") -> Candidate:
    """One candidate's raw fields (id first) and the facts made invalid."""
    fields: dict[str, Any] = {"candidate_id": candidate_id}
    bad: set[str] = set()
    native = profile.native
    absent = c.choice(profile.absent)
    passing = c.choice(profile.passing)
    invalid = 0.05 if c.chance(profile.invalid) else 0.0

    def passes() -> bool:
        return c.chance(passing)

    def put(name: str, make_valid: Callable[[], Any]) -> None:
        if c.chance(absent):
            if c.chance(0.3):
                fields[name] = c.choice(("", "  ")) if not native or c.chance(0.5) else None
            return
        if invalid and c.chance(invalid):
            fields[name] = _invalid(c, name, native)
            bad.add(name)
            return
        fields[name] = make_valid()

    # dates first: the age and the imatinib interval are built around their thresholds
    screening = _a_date(c, 2015, 2026)
    _, _, good, poor = INTEGERS["age"]
    age_target = c.choice(good if passes() else poor) if c.chance(0.9) else c.integer(0, 120)
    birth = shift_months(screening, -12 * age_target) + dt.timedelta(days=c.choice((-1, 0, 0, 1)))
    if c.chance(0.1):  # born on 29 February
        leap = next(y for y in range(birth.year, birth.year + 8) if calendar.isleap(y))
        birth = dt.date(leap, 2, 29)
    true_age = screening.year - birth.year - ((screening.month, screening.day) < (birth.month, birth.day))
    if (birth.month, birth.day) == (2, 29) and (screening.month, screening.day) == (2, 28) \
            and not calendar.isleap(screening.year):
        true_age += 1  # the year completes on 28 February in a common year
    start = _a_date(c, 2005, 2024)
    if c.chance(0.8):
        edge = shift_months(start, 6)
        progression = edge + dt.timedelta(days=c.choice((0, 1, 40)) if passes() else -c.choice((1, 60)))
    else:
        progression = start + dt.timedelta(days=c.integer(-30, 2000))
    resistant = progression < shift_months(start, 6)

    put("sex", lambda: c.choice(ENUMS["sex"]))
    put("disease_status", lambda: _enum(c, "disease_status", passes()))
    put("birth_date", lambda: _date(c, birth, native))
    put("screening_date", lambda: _date(c, screening, native))
    have_dates = bool(str(fields.get("birth_date") or "").strip()) \
        and bool(str(fields.get("screening_date") or "").strip())
    if profile.consistent and have_dates:
        pass  # a realistic row does not repeat the age its dates give
    elif 0 <= true_age <= 120 and (profile.consistent or c.chance(0.85)):
        put("age", lambda: _integer(c, true_age, native))
    else:
        put("age", lambda: _integer(c, _integer_value(c, "age", passes()), native))

    if not profile.consistent or c.chance(0.7):
        put("imatinib_start_date", lambda: _date(c, start, native))
        put("first_progression_date", lambda: _date(c, progression, native))
    if not profile.consistent or "imatinib_start_date" not in fields:
        agree = profile.consistent or c.chance(0.85)
        put("imatinib_primary_resistance",
            lambda: _boolean(c, resistant if agree else not passes(), native))

    parts = ("bilirubin_umol_l", "albumin_g_l", "inr", "ascites", "encephalopathy")
    if not profile.consistent or c.chance(0.8):
        for name in parts[:3]:
            put(name, lambda name=name: _decimal(c, _decimal_value(c, name, passes()), native))
        for name in parts[3:]:
            put(name, lambda name=name: _enum(c, name, passes()))
    if not profile.consistent or "bilirubin_umol_l" not in fields:
        given = _child_pugh(fields) if c.chance(0.7) else None
        put("child_pugh_class", lambda: given or _enum(c, "child_pugh_class", passes()))

    for name in FACTS:
        if name in fields or name in DERIVED_OR_INPUT:
            continue
        if name in BOOLEANS:
            put(name, lambda name=name: _boolean(c, passes() == (name in PASS_YES), native))
        elif name in ENUMS:
            put(name, lambda name=name: _enum(c, name, passes()))
        elif name in INTEGERS:
            put(name, lambda name=name: _integer(c, _integer_value(c, name, passes()), native))
    return Candidate(fields, bad)


def _child_pugh(fields: dict[str, Any]) -> str | None:
    """The class the parts in `fields` give, when all five are there and look valid."""
    try:
        bilirubin, albumin, inr = (float(fields[n]) for n in ("bilirubin_umol_l", "albumin_g_l", "inr"))
        ascites, encephalopathy = fields["ascites"], fields["encephalopathy"]
        if not (isinstance(ascites, str) and isinstance(encephalopathy, str)):
            return None
        total = (1 if bilirubin < 34.2 else 2 if bilirubin <= 51.3 else 3) \
            + (1 if albumin > 35 else 2 if albumin >= 28 else 3) \
            + (1 if inr < 1.7 else 2 if inr <= 2.3 else 3) \
            + ENUMS["ascites"].index(ascites.strip()) + 1 \
            + ENUMS["encephalopathy"].index(encephalopathy.strip()) + 1
    except (KeyError, ValueError, TypeError):
        return None
    return "A" if total <= 6 else "B" if total <= 9 else "C"


def _enum(c: Chooser, name: str, good: bool) -> str:
    fine = ENUM_PASS[name]
    return c.choice(fine if good else tuple(v for v in ENUMS[name] if v not in fine) or fine)


def _decimal_value(c: Chooser, name: str, good: bool) -> str:
    low, high, fine, poor = DECIMALS[name]
    if c.chance(0.9):
        return c.choice(fine if good else poor)
    cents = c.integer(int(float(low) * 100), int(float(high) * 100))
    return f"{cents // 100}.{cents % 100:02d}"


def _integer_value(c: Chooser, name: str, good: bool) -> int:
    low, high, fine, poor = INTEGERS[name]
    if c.chance(0.9):
        return c.choice(fine if good else poor)
    return c.integer(low, high if high is not None else 1000)


def candidates(seed: int, count: int, profile: Profile) -> Any:
    """`count` candidates from `seed`, ids c1, c2, ..."""
    chooser = RandomChooser(random.Random(seed))
    for i in range(1, count + 1):
        yield candidate(chooser, profile, f"c{i}")


def as_csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
