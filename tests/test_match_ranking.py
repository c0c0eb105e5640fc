"""`screener match` ranks what is known: a trial nothing speaks for is `not assessed`."""
from __future__ import annotations

import json
from pathlib import Path

from screener.cli import main
from screener.run.portfolio import rank
from screener.rules.read import load_yaml

from conftest import ROOT, TRIAL, case_fields

GIST = load_yaml(ROOT / "rules" / f"{TRIAL}.cases.yaml")
DIABETES = load_yaml(ROOT / "rules" / "NCT06534411.cases.yaml")
PANCREAS = "NCT06898385"


def _match(tmp_path: Path, people: list[dict]) -> list[dict]:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p in people), encoding="utf-8")
    out = tmp_path / "match.jsonl"
    main(["match", str(source), "-o", str(out), "--all-trials"])
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_a_trial_for_a_disease_the_patient_does_not_have_ranks_last(tmp_path: Path, capsys):
    gist = case_fields(GIST, {}) | {"candidate_id": "G"}
    unfit = case_fields(GIST, {"set": {"ecog": 3}}) | {"candidate_id": "U"}
    records = _match(tmp_path, [gist, unfit])
    ranked = [(r["candidate_id"], r["rank"], r["trial_id"], r["prospect"]) for r in records]
    assert ranked == [
        ("G", 1, TRIAL, "eligible"),
        # ECOG 1 meets the pancreatic trial's I7: something is known for it
        ("G", 2, PANCREAS, "pending"),
        # nothing of the diabetes trial is known to be met: fewer missing answers do not lift it
        ("G", 3, "NCT06534411", "not assessed"),
        # an ineligible trial with inclusion criteria known to be met ranks above one not assessed
        ("U", 1, TRIAL, "ineligible"), ("U", 2, PANCREAS, "ineligible"), ("U", 3, "NCT06534411", "not assessed"),
    ]
    assert records[2]["decision"] == "undetermined" and records[2]["screening_log"] == "pending"
    assert "2 candidates matched: 1 with an eligible trial, 0 more with a pending one" in capsys.readouterr().err


def test_pending_trials_rank_by_the_share_of_criteria_settled(tmp_path: Path):
    """A diabetic whose diabetes trial is settled but for HbA1c ranks it first; the trials for
    which only ECOG and sex speak come after, the larger share settled first."""
    diabetic = case_fields(DIABETES, {"unset": ["hba1c"]}) | {"candidate_id": "D", "ecog": 1}
    records = _match(tmp_path, [diabetic])
    first = records[0]
    assert (first["trial_id"], first["prospect"]) == ("NCT06534411", "pending")
    assert first["criteria_settled"] == first["criteria_total"] - 1  # all but HbA1c
    assert len(first["missing"]) >= 1
    pending = [r for r in records if r["prospect"] == "pending"]
    shares = [r["criteria_settled"] / r["criteria_total"] for r in pending]
    assert len(pending) == 3 and shares == sorted(shares, reverse=True)


def _record(trial: str, decision: str, prospect: str, settled: int, total: int, missing: int, failed: int = 0):
    return {"candidate_id": "X", "trial_id": trial, "decision": decision, "failed_criteria": ["I1"] * failed,
            "missing": ["f"] * missing, "errors": [], "prospect": prospect,
            "criteria_settled": settled, "criteria_total": total}


def test_rank_orders_prospects_then_share_known_then_missing_then_failed():
    records = [
        _record("A", "error", "error", 0, 5, 0),
        _record("B", "undetermined", "not assessed", 0, 5, 1),
        _record("C", "ineligible", "ineligible", 3, 5, 0, failed=2),
        _record("D", "ineligible", "ineligible", 1, 5, 0, failed=1),
        _record("E", "undetermined", "pending", 1, 10, 2),
        _record("F", "undetermined", "pending", 8, 10, 9),
        _record("G", "eligible", "eligible", 5, 5, 0),
    ]
    assert [r["trial_id"] for r in rank(records)] == ["G", "F", "E", "D", "C", "B", "A"]
    assert [r["rank"] for r in rank(records)] == [1, 2, 3, 4, 5, 6, 7]
