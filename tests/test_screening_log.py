"""The screening-log category of every batch and match record (docs/batch-io.md)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from screener.cli import main
from screener.rules.read import load_yaml

from conftest import ROOT, TRIAL, case_fields

CASES = load_yaml(ROOT / "rules" / f"{TRIAL}.cases.yaml")


def _row(candidate_id: str, **changes: object) -> dict:
    fields = case_fields(CASES, {"set": {k: v for k, v in changes.items() if v is not None},
                                 "unset": [k for k, v in changes.items() if v is None]})
    return fields | {"candidate_id": candidate_id}


PEOPLE = [
    (_row("eligible"), "eligible"),
    (_row("ecog 3", ecog=3), "screen failure"),
    (_row("refused", informed_consent=False), "declined"),
    # refusing consent when a clinical criterion excludes the patient anyway is a screen failure
    (_row("refused, ecog 3", informed_consent=False, ecog=3), "screen failure"),
    (_row("consent not yet asked", informed_consent=None), "pending"),
    (_row("bad ecog", ecog=9), "error"),
]


def _run(tmp_path: Path, people: list[dict], *args: str) -> list[dict]:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p in people), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(["batch", str(source), "-o", str(out), *args])
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_every_batch_record_carries_its_screening_log_category(tmp_path: Path):
    records = _run(tmp_path, [p for p, _ in PEOPLE], "--trial", TRIAL)
    assert [(r["candidate_id"], r["screening_log"]) for r in records] == [
        (p["candidate_id"], want) for p, want in PEOPLE]
    # the field is added after the contract's own, which keep their order
    assert list(records[0]) == ["candidate_id", "decision", "failed_criteria", "missing", "errors",
                                "warnings", "screening_log"]


def test_csv_results_have_a_screening_log_column(tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p, _ in PEOPLE[:3]), encoding="utf-8")
    out = tmp_path / "out.csv"
    main(["batch", str(source), "-o", str(out), "--trial", TRIAL])
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [r["screening_log"] for r in rows] == ["eligible", "screen failure", "declined"]


def test_the_consent_criterion_of_another_trial_is_its_own(tmp_path: Path):
    """IX001's consent is two signatures (I1): a refusal of either is `declined` there, while
    the same person is `pending` for a trial that has no consent criterion and knows nothing."""
    person = {"candidate_id": "P", "prescreening_consent": "yes", "main_consent": "no"}
    records = _run(tmp_path, [person], "--trial", "NCT06898385", "--trial", "NCT06534411")
    assert [(r["trial_id"], r["decision"], r["screening_log"]) for r in records] == [
        ("NCT06898385", "ineligible", "declined"), ("NCT06534411", "undetermined", "pending")]


def test_match_records_carry_the_category_too(tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(PEOPLE[2][0], default=str) + "\n", encoding="utf-8")
    out = tmp_path / "match.jsonl"
    assert main(["match", str(source), "-o", str(out), "--trial", TRIAL, "--trial", "NCT06534411"]) == 0
    matched = {r["trial_id"]: r["screening_log"] for r in map(json.loads, out.read_text().splitlines())}
    assert matched == {TRIAL: "declined", "NCT06534411": "pending"}


@pytest.mark.parametrize("trial_id, consent", [(TRIAL, {"I8"}), ("NCT06898385", {"I1"}),
                                                ("NCT06534411", set())])
def test_shipped_trials_mark_their_consent_criteria(trial_id: str, consent: set[str]):
    from screener.rules.check import load_trial

    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    assert {c.id for c in trial.criteria if c.consent} == consent
