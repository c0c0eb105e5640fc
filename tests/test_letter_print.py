"""The HTML letter as it prints: rendered to PDF by headless Chromium (skipped without it).

The summary (decision, why, signature) fills the first page and the criteria appendix starts
on the next, so one page is enough for the investigator to read and sign.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from audit_support import batch_candidate

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")


def print_to_pdf(html: Path, pdf: Path) -> bytes:
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--user-data-dir={pdf.parent / 'chromium-profile'}", f"--print-to-pdf={pdf}",
                    html.as_uri()], check=True, capture_output=True, timeout=120)
    return pdf.read_bytes()


@pytest.mark.parametrize("kind", ["eligible", "ineligible", "undetermined"])
def test_the_letter_prints_as_a_summary_page_then_the_appendix(tmp_path: Path, kind: str) -> None:
    letter = batch_candidate(tmp_path, kind).letters["html"]
    pdf = print_to_pdf(letter, tmp_path / "letter.pdf")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 2, f"{kind}: {pages} printed pages"


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


@pytest.mark.parametrize(("trial_id", "most"), [("NCT03862768", 3), ("NCT06898385", 5)])
def test_an_eligible_letter_of_a_shipped_trial_is_signed_on_page_one_and_stays_short(
        tmp_path: Path, trial_id: str, most: int) -> None:
    """Page 1 holds the trial, candidate, screening date, operator, decision, a line for every
    criterion and the investigator's name to sign; the appendix names each source once."""
    import json

    import yaml

    from screener.cli import build_parser
    from screener.trials import rules_path

    base = yaml.safe_load(rules_path(trial_id).with_suffix(".cases.yaml").read_text(encoding="utf-8"))["base"]
    candidates = tmp_path / "c.jsonl"
    candidates.write_text(json.dumps({**base, "candidate_id": "E-1"}, default=str) + "\n", encoding="utf-8")
    args = build_parser().parse_args(["batch", str(candidates), "--trial", trial_id, "--operator", "Dr Wang",
                                      "--letters", str(tmp_path / "l"), "--traces", str(tmp_path / "t"),
                                      "-o", str(tmp_path / "r.jsonl")])
    assert args.run(args) == 0
    letter = next((tmp_path / "l").glob("*.letter.html"))
    html = letter.read_text(encoding="utf-8")
    page_one = html[:html.index('<h2 class="appendix">')]
    for criterion in ("I1 ", "E1 "):
        assert f'<span class="mark">✓</span>{criterion}' in page_one
    assert "Screened on" in page_one and "Name: <span>Dr Wang</span>" in page_one
    alone = tmp_path / "page-one.html"
    alone.write_text(page_one + "</body></html>", encoding="utf-8")
    assert _pages(print_to_pdf(alone, tmp_path / "page-one.pdf")) == 1
    pages = _pages(print_to_pdf(letter, tmp_path / "letter.pdf"))
    assert pages <= most, f"{trial_id}: {pages} printed pages"
