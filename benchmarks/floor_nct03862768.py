"""The floor of NCT03862768: its criteria decided by straight-line Python, no engine.

    python benchmarks/floor_nct03862768.py CANDIDATES.csv [RESULTS.jsonl]

Reads the CSV with the screener's own row and value readers (`read_rows`, `candidate_facts`:
the same typed values, units converted, the same value errors), then decides in plain code
written for this one trial: the three derivations, the seventeen criteria in three-valued
logic, the facts still missing. Nothing is general: no rules file is read for the decision,
no condition is interpreted. It is what a programmer would write by hand for this trial, so
the time per candidate is the floor `screener batch` is measured against
(`benchmarks/batch_throughput.py` reports the ratio per CPU second, in the same run).

With RESULTS (the JSONL of `screener batch` on the same file) every record is compared with
the floor's decision, failed criteria and missing facts; the exit status is 1 when any
differs. The floor follows rules/NCT03862768.yaml by hand: a change of the rules needs the
same change here (the differences say where).
"""
from __future__ import annotations

import calendar
import datetime as dt
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from screener.rules.check import load_trial  # noqa: E402
from screener.run.batch import candidate_facts  # noqa: E402
from screener.sources.readers import read_rows  # noqa: E402

RULES = ROOT / "rules" / "NCT03862768.yaml"
ORDER = (
    "candidate_id", "sex", "disease_status", "gist_confirmed", "on_standard_imatinib",
    "progressed_on_imatinib", "progressive_lesion_count", "progressive_organ_count", "mdt_resectable", "age",
    "birth_date", "screening_date", "other_malignancy_within_5y", "ecog", "asa_class", "informed_consent",
    "severe_cardiopulmonary_disease", "nyha_class", "pulmonary_infection", "copd_severity", "severe_diabetes",
    "renal_insufficiency", "severe_hepatitis", "known_liver_disease", "child_pugh_class", "child_pugh_b_correctable",
    "bilirubin_umol_l", "albumin_g_l", "inr", "ascites", "encephalopathy", "severe_malnutrition",
    "other_serious_comorbidity", "imatinib_primary_resistance", "imatinib_start_date",
    "first_progression_date", "needs_concurrent_surgery", "tumor_bleeding", "tumor_perforation",
    "tumor_obstruction", "pregnant", "breastfeeding", "serious_mental_illness", "other_clinical_study",
    "other_tki_use",
)
RANK = {name: i for i, name in enumerate(ORDER)}
CHILD_PUGH_PARTS = ("bilirubin_umol_l", "albumin_g_l", "inr", "ascites", "encephalopathy")
B34_2, B51_3, A35, A28, I1_7, I2_3 = (Decimal(x) for x in ("34.2", "51.3", "35", "28", "1.7", "2.3"))


def _exact(value: Any) -> Any:
    return Decimal(repr(value)) if isinstance(value, float) else value


def _points(name: str, value: Any) -> int:
    if name == "bilirubin_umol_l":
        v = _exact(value)
        return 1 if v < B34_2 else 2 if v <= B51_3 else 3
    if name == "albumin_g_l":
        v = _exact(value)
        return 1 if v > A35 else 2 if v >= A28 else 3
    if name == "inr":
        v = _exact(value)
        return 1 if v < I1_7 else 2 if v <= I2_3 else 3
    if name == "ascites":
        return {"none": 1, "mild": 2, "moderate_severe": 3}[value]
    return {"none": 1, "grade_1_2": 2, "grade_3_4": 3}[value]


def _class(total: int) -> str:
    return "A" if total <= 6 else "B" if total <= 9 else "C"


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _and(*values: Any) -> Any:
    if False in values:
        return False
    return None if None in values else True


def _or(*values: Any) -> Any:
    if True in values:
        return True
    return None if None in values else False


def _not(value: Any) -> Any:
    return None if value is None else not value


def decide(f: dict[str, Any]) -> dict[str, Any] | None:
    """Decision, failed criteria and missing facts of typed facts `f`; None when the facts
    contradict one another (an error record)."""
    g = f.get
    # derivations: each runs when its inputs are known; a given value must agree
    birth, screening = g("birth_date"), g("screening_date")
    if birth is not None and screening is not None:
        if screening < birth:
            return None
        years = screening.year - birth.year
        if screening < _add_months(birth, 12 * years):
            years -= 1
        if not 0 <= years <= 120 or ("age" in f and f["age"] != years):
            return None
        f["age"] = years
    start, progression = g("imatinib_start_date"), g("first_progression_date")
    if start is not None and progression is not None:
        if progression < start:
            return None
        primary = progression < _add_months(start, 6)
        if "imatinib_primary_resistance" in f and f["imatinib_primary_resistance"] != primary:
            return None
        f["imatinib_primary_resistance"] = primary
    if "known_liver_disease" in f or any(name in f for name in CHILD_PUGH_PARTS):
        # without known liver disease a part not given scores as normal (1 point)
        normal = f.get("known_liver_disease") is False
        low = high = 0
        for name in CHILD_PUGH_PARTS:
            if name in f:
                points = _points(name, f[name])
                low, high = low + points, high + points
            else:
                low, high = low + 1, high + (1 if normal else 3)
        settled = _class(low) if _class(low) == _class(high) else None
        if settled is not None:
            if "child_pugh_class" in f and f["child_pugh_class"] != settled:
                return None
            f["child_pugh_class"] = settled

    def fact(name: str) -> Any:
        return f.get(name)

    def at_most(name: str, limit: int) -> Any:
        value = f.get(name)
        return None if value is None else value <= limit

    def more_than(name: str, limit: int) -> Any:
        value = f.get(name)
        return None if value is None else value > limit

    sex, status, cp = g("sex"), g("disease_status"), g("child_pugh_class")
    copd, age = g("copd_severity"), g("age")
    i1 = _and(fact("gist_confirmed"), None if status is None else status in ("recurrent", "metastatic"),
              fact("on_standard_imatinib"), fact("progressed_on_imatinib"))
    i2 = _and(at_most("progressive_lesion_count", 3),
              None if g("progressive_organ_count") is None else f["progressive_organ_count"] == 1,
              fact("mdt_resectable"))
    i3 = None if age is None else 18 <= age <= 75
    i4 = _not(fact("other_malignancy_within_5y"))
    i5 = at_most("ecog", 1)
    i6 = at_most("asa_class", 2)
    i8 = fact("informed_consent")
    cp_b = _and(None if cp is None else cp == "B", _not(fact("child_pugh_b_correctable")))
    e1 = _or(fact("severe_cardiopulmonary_disease"), None if g("nyha_class") is None else f["nyha_class"] >= 2,
             fact("pulmonary_infection"),
             None if copd is None else copd in ("moderate", "severe", "very_severe"),
             fact("severe_diabetes"), fact("renal_insufficiency"), fact("severe_hepatitis"),
             None if cp is None else cp == "C", cp_b, fact("severe_malnutrition"), fact("other_serious_comorbidity"))
    e2 = _or(more_than("progressive_organ_count", 1), more_than("progressive_lesion_count", 3),
             _not(fact("mdt_resectable")))
    e3 = fact("imatinib_primary_resistance")
    e4 = fact("needs_concurrent_surgery")
    e5 = _or(fact("tumor_bleeding"), fact("tumor_perforation"), fact("tumor_obstruction"))
    e6 = _and(None if sex is None else sex == "female", _or(fact("pregnant"), fact("breastfeeding")))
    e7 = fact("serious_mental_illness")
    e8 = fact("other_malignancy_within_5y")
    e9 = _or(fact("other_clinical_study"), fact("other_tki_use"))

    inclusions = (("I1", i1), ("I2", i2), ("I3", i3), ("I4", i4), ("I5", i5), ("I6", i6), ("I7", True),
                  ("I8", i8))
    exclusions = (("E1", e1), ("E2", e2), ("E3", e3), ("E4", e4), ("E5", e5), ("E6", e6), ("E7", e7),
                  ("E8", e8), ("E9", e9))
    failed = [c for c, v in inclusions if v is False] + [c for c, v in exclusions if v is True]
    if failed:
        return {"decision": "ineligible", "failed_criteria": failed, "missing": []}
    if all(v is True for _, v in inclusions) and all(v is False for _, v in exclusions):
        return {"decision": "eligible", "failed_criteria": [], "missing": []}

    # undetermined: the absent facts an answer to which could move an unknown criterion
    missing: set[str] = set()

    def absent(*names: str) -> None:
        missing.update(name for name in names if name not in f)

    if i1 is None:
        absent("gist_confirmed", "disease_status", "on_standard_imatinib", "progressed_on_imatinib")
    if i2 is None:
        absent("progressive_lesion_count", "progressive_organ_count", "mdt_resectable")
    if i3 is None:
        absent("age", "birth_date", "screening_date")
    if i4 is None:
        absent("other_malignancy_within_5y")
    if i5 is None:
        absent("ecog")
    if i6 is None:
        absent("asa_class")
    if i8 is None:
        absent("informed_consent")
    if e1 is None:
        absent("severe_cardiopulmonary_disease", "nyha_class", "pulmonary_infection", "copd_severity",
               "severe_diabetes", "renal_insufficiency", "severe_hepatitis", "severe_malnutrition",
               "other_serious_comorbidity")
        if cp is None:
            absent("child_pugh_class", *CHILD_PUGH_PARTS, "known_liver_disease")
        if cp_b is None:
            absent("child_pugh_b_correctable")
    if e2 is None:
        absent("progressive_organ_count", "progressive_lesion_count", "mdt_resectable")
    if e3 is None:
        absent("imatinib_primary_resistance", "imatinib_start_date", "first_progression_date")
    if e4 is None:
        absent("needs_concurrent_surgery")
    if e5 is None:
        absent("tumor_bleeding", "tumor_perforation", "tumor_obstruction")
    if e6 is None:
        if sex is None:
            absent("sex")
        if _or(fact("pregnant"), fact("breastfeeding")) is None:
            absent("pregnant", "breastfeeding")
    if e7 is None:
        absent("serious_mental_illness")
    if e8 is None:
        absent("other_malignancy_within_5y")
    if e9 is None:
        absent("other_clinical_study", "other_tki_use")
    return {"decision": "undetermined", "failed_criteria": [], "missing": sorted(missing, key=RANK.__getitem__)}


def floor_results(csv_path: Path) -> tuple[list[dict[str, Any]], float]:
    """Every candidate's floor result (decision "error" for a bad value or contradictory
    facts), and the CPU seconds reading and deciding took."""
    trial = load_trial(RULES)
    results: list[dict[str, Any]] = []
    started = time.process_time()
    with csv_path.open(encoding="utf-8", newline="") as stream:
        for row in read_rows(stream, "csv"):
            facts, errors = candidate_facts(trial, row)
            decided = None if errors or row.problem else decide(facts)
            results.append(decided or {"decision": "error", "failed_criteria": [], "missing": []})
    return results, time.process_time() - started


def differences(results: list[dict[str, Any]], batch_output: Path) -> int:
    """Records of a `screener batch` JSONL whose decision, failed criteria or missing facts
    differ from the floor's (only the decision for errors); the first few are printed."""
    bad = 0
    with batch_output.open(encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    for i, (want, record) in enumerate(zip(results, records)):
        same = record["decision"] == want["decision"] and (
            want["decision"] == "error" or (record["failed_criteria"] == want["failed_criteria"]
                                            and record["missing"] == want["missing"]))
        if not same:
            bad += 1
            if bad <= 5:
                print(f"DIFFERENT row {i + 1}: batch {record} floor {want}", file=sys.stderr)
    return bad + abs(len(records) - len(results))


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    results, cpu = floor_results(Path(argv[0]))
    print(f"floor: {len(results):,} candidates in {cpu:.2f} CPU s: {len(results) / cpu:,.0f} per CPU second")
    if len(argv) == 2:
        bad = differences(results, Path(argv[1]))
        print(f"records differing from the floor: {bad}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
