"""The letter's first page is what an investigator reads and signs: trial, candidate, day of
the screening, operator, decision, one line for every criterion, the name to sign. Criteria
never reached once the candidate was excluded are summed up, not listed as missing facts."""
from __future__ import annotations

import json
import re
from pathlib import Path

from english_left import plain_markdown

from screener.cli import build_parser


def letter_of(tmp_path: Path, candidate: dict, *extra: str) -> str:
    given = tmp_path / "c.jsonl"
    given.write_text(json.dumps(candidate) + "\n", encoding="utf-8")
    args = build_parser().parse_args(["batch", str(given), "--trial", "NCT03862768", "--letters", str(tmp_path / "l"),
                                      "--traces", str(tmp_path / "t"), "-o", str(tmp_path / "r.jsonl"), *extra])
    args.run(args)
    return plain_markdown(next((tmp_path / "l").glob("*.letter.md")).read_text(encoding="utf-8"))


def test_criteria_never_reached_after_an_exclusion_are_summed_up(tmp_path: Path) -> None:
    text = letter_of(tmp_path, {"candidate_id": "OLD-1", "sex": "male", "birth_date": "1940-01-01",
                                "screening_date": "2026-03-01"}, "--operator", "Dr Wang")
    page_one, appendix = text.split("## Appendix: criteria")
    assert "- **Screened on:** " in page_one and "- **Operator:** Dr Wang" in page_one
    assert "- ✗ I3 Aged 18 to 75: not met (excludes the candidate)" in page_one
    assert "- ✓ I7 No restriction on sex or race: met" in page_one
    assert re.search(r"Not assessed after exclusion: I1, I2, I4, I5, I6, I8, E1, E2, E3, E4, E5, E7, E8, E9\n", page_one)
    assert "Name: Dr Wang" in page_one
    assert "missing:" not in text  # nothing is missing: the decision needed nothing more
    assert "not assessed: the candidate was already excluded" in appendix


def test_an_undetermined_letter_says_what_is_missing_by_its_clinical_label(tmp_path: Path) -> None:
    text = letter_of(tmp_path, {"candidate_id": "U-1", "sex": "male", "birth_date": "1961-03-03",
                                "screening_date": "2026-03-01", "ecog": 1})
    page_one, appendix = text.split("## Appendix: criteria")
    assert "- ? I5 ECOG performance status below 2" not in page_one  # ECOG was given
    assert "- ? I6 ASA class below 3: unknown (information missing)" in page_one
    assert "Name: ______" in page_one
    assert "missing: ASA class" in appendix


def test_each_source_is_named_once_in_the_appendix(tmp_path: Path) -> None:
    text = letter_of(tmp_path, {"candidate_id": "S-1", "sex": "male", "birth_date": "1940-01-01",
                                "screening_date": "2026-03-01"})
    sources = text.split("## Sources")[1].split("## Record")[0]
    listed = re.findall(r"^(\d+)\. (.*), \d+ \w+ \d{4}, .*$", sources, re.M)
    assert [text for _, text in listed] == ["computed from Date of birth, Screening date", f"batch {tmp_path}/c.jsonl row 1"]
    assert "Age = 86 years [1]" in text and "Date of birth = 1940-01-01 [2]" in text
