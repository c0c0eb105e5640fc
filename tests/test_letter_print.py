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
