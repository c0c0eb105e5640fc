"""The sample candidates decide as examples/README.md says, for the trial of their disease."""
from __future__ import annotations

import json
import re
from pathlib import Path

from screener.cli import main

from conftest import ROOT

CATEGORIES = ("screen failure", "eligible", "declined", "pending", "error")


def _table() -> dict[str, tuple[str, str]]:
    """candidate id -> (trial id or 'every trial', screening-log category) from the README."""
    want = {}
    for line in (ROOT / "examples" / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 3 or not re.match(r"[A-Z]{2}-\d{3}", cells[0]):
            continue
        trial = cells[1].split()[0] if cells[1].startswith("NCT") else cells[1]
        category = next(c for c in CATEGORIES if cells[2].startswith(c))
        for candidate in cells[0].split(", "):
            want[candidate] = (trial, category)
    return want


def test_every_sample_candidate_decides_as_the_examples_readme_says(tmp_path: Path, capsys):
    out = tmp_path / "screened.jsonl"
    assert main(["batch", str(ROOT / "examples" / "candidates.csv"), "--all-trials", "-o", str(out)]) == 1
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    want = _table()
    assert len(want) == 18 and {r["candidate_id"] for r in records} == set(want)
    for record in records:
        trial, category = want[record["candidate_id"]]
        if trial in (record["trial_id"], "every trial"):
            assert record["screening_log"] == category, record
    # every shipped trial decides real cases: some eligible, some excluded, some pending
    for trial_id in {r["trial_id"] for r in records}:
        own = {r["screening_log"] for r in records if want[r["candidate_id"]][0] == trial_id}
        assert {"eligible", "screen failure", "pending"} <= own, trial_id
    assert "54 records written" in capsys.readouterr().err


def test_the_record_example_decides_as_the_table_and_names_each_facts_resource(tmp_path: Path, capsys):
    fhir = ROOT / "examples" / "fhir"
    out = tmp_path / "from-record.jsonl"
    status = main(["batch", "--trial", "NCT06898385", str(fhir / "bundles"), str(fhir / "sheet.csv"),
                   "-o", str(out)])
    assert status == 0, capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    want = {c: category for c, (trial, category) in _table().items() if c.startswith("PC-")}
    assert {r["candidate_id"]: r["screening_log"] for r in records} == want
    first = next(r for r in records if r["candidate_id"] == "PC-001")
    assert first["sources"]["hemoglobin"]["resource"].startswith("Observation/")
    assert first["sources"]["main_consent"] == {"file": str(fhir / "sheet.csv"), "row": 1}
