"""`screener report`: attrition per criterion, screening log, missing facts and worklist."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from screener.cli import main
from screener.rules.read import load_yaml

from conftest import ROOT, TRIAL, case_fields

CASES = load_yaml(ROOT / "rules" / f"{TRIAL}.cases.yaml")
OTHER = "NCT06534411"


def _person(candidate_id: str, **changes: object) -> dict:
    fields = case_fields(CASES, {"set": {k: v for k, v in changes.items() if v is not None},
                                 "unset": [k for k, v in changes.items() if v is None]})
    return fields | {"candidate_id": candidate_id}


PEOPLE = [
    _person("MRN-0001"),                                  # eligible
    _person("MRN-0002", ecog=3),                          # fails I5 alone
    _person("MRN-0003", ecog=3, asa_class=4),             # fails I5 and I6
    _person("MRN-0004", informed_consent=False),          # declined: fails I8 alone
    _person("MRN-0005", informed_consent=None),           # pending: consent not yet asked
    _person("MRN-0006", ecog=9),                          # error
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One batch run for the GIST trial and the diabetes trial, as JSON Lines."""
    folder = tmp_path_factory.mktemp("report")
    source = folder / "in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p in PEOPLE), encoding="utf-8")
    out = folder / "results.jsonl"
    assert main(["batch", str(source), "-o", str(out), "--trial", TRIAL, "--trial", OTHER]) == 1
    return out


def _flow(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def test_csv_report_has_exactly_the_attrition_columns_and_counts(results: Path, tmp_path: Path):
    out = tmp_path / "flow.csv"
    assert main(["report", str(results), "-o", str(out)]) == 0
    rows = _flow(out)
    assert list(rows[0]) == ["trial_id", "criterion", "title", "failed", "failed_alone", "remaining"]
    gist = {r["criterion"]: (int(r["failed"]), int(r["failed_alone"]), int(r["remaining"]))
            for r in rows if r["trial_id"] == TRIAL}
    # five assessed (one error); I5 takes two (one alone), I6 one already gone, I8 the refusal
    assert gist["I1"] == (0, 0, 5)
    assert gist["I5"] == (2, 1, 3)
    assert gist["I6"] == (1, 0, 3)
    assert gist["I8"] == (1, 1, 2)
    assert gist["E9"] == (0, 0, 2)  # left: the eligible one and the pending one
    assert [r["criterion"] for r in rows if r["trial_id"] == TRIAL][:3] == ["I1", "I2", "I3"]
    diabetes = [r for r in rows if r["trial_id"] == OTHER]
    # nothing known against them: all six pending (an ECOG of 9 is no error where ECOG is no fact)
    assert {r["remaining"] for r in diabetes} == {"6"}
    assert "MRN" not in out.read_text(encoding="utf-8")


def test_html_report_shows_the_flow_the_log_the_missing_facts_and_a_chart(results: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    gist = html.split(f"<h2>{TRIAL}")[1].split("<h2>")[0]
    assert "Screened: 6" in gist and "Could not be screened (errors): 1" in gist and "Assessed: 5" in gist
    assert "<tr><td>declined</td><td class=\"n\">1</td></tr>" in gist
    assert "<tr><td>screen failure</td><td class=\"n\">2</td></tr>" in gist
    assert "<tr><td>Informed consent</td><td><code>informed_consent</code></td><td class=\"n\">1</td></tr>" in gist
    assert gist.count("<svg") == 1 and "ECOG performance status below 2" in gist.split("<svg")[1]
    # de-identified, self-contained
    assert "MRN-" not in html
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|url\((?!#)", html)


def test_with_ids_the_report_lists_what_to_collect_for_each_pending_candidate(results: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    worklist = tmp_path / "worklist.csv"
    assert main(["report", str(results), "-o", str(out), "--with-ids", "--worklist", str(worklist)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "<tr><td>MRN-0005</td><td>Informed consent</td></tr>" in html
    rows = list(csv.DictReader(worklist.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == {"candidate_id": "MRN-0005", "trial_id": TRIAL, "to_collect": "Informed consent"}
    diabetes = next(r for r in rows if r["trial_id"] == OTHER)
    assert "Glycated haemoglobin (HbA1c)" in diabetes["to_collect"]  # the dictionary's words
    assert "hba1c" not in diabetes["to_collect"]


def test_candidate_ids_are_escaped_in_html(tmp_path: Path):
    hostile = '<img src=x onerror="alert(1)">'
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(_person(hostile, informed_consent=None), default=str) + "\n", encoding="utf-8")
    results = tmp_path / "r.jsonl"
    assert main(["batch", str(source), "-o", str(results), "--trial", TRIAL]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out), "--trial", TRIAL, "--with-ids"]) == 0
    html = out.read_text(encoding="utf-8")
    assert hostile not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_match_output_and_csv_results_read_the_same(results: Path, tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p in PEOPLE), encoding="utf-8")
    matched = tmp_path / "match.csv"
    main(["match", str(source), "-o", str(matched), "--trial", TRIAL, "--trial", OTHER])
    from_match, from_batch = tmp_path / "m.csv", tmp_path / "b.csv"
    assert main(["report", str(matched), "-o", str(from_match)]) == 0
    assert main(["report", str(results), "-o", str(from_batch)]) == 0
    assert _flow(from_match) == _flow(from_batch)


def test_single_trial_results_need_their_trial_named(tmp_path: Path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(PEOPLE[1], default=str) + "\n", encoding="utf-8")
    results = tmp_path / "r.jsonl"
    main(["batch", str(source), "-o", str(results), "--trial", TRIAL])
    assert main(["report", str(results), "-o", str(tmp_path / "x.csv")]) == 2
    assert "--trial" in capsys.readouterr().err
    assert main(["report", str(results), "-o", str(tmp_path / "x.csv"), "--trial", TRIAL]) == 0


@pytest.mark.parametrize("content, message", [
    ("not json\n", "r.jsonl:1: not a JSON object"),
    ('{"candidate_id": "A"}\n', "r.jsonl:1: not a result record"),
    ('{"candidate_id": "A", "decision": "ineligible", "failed_criteria": ["Z9"], "trial_id": "NCT03862768"}\n',
     "criteria it does not have (Z9)"),
])
def test_a_file_that_is_not_results_is_refused_by_line(tmp_path: Path, capsys, content: str, message: str):
    bad = tmp_path / "r.jsonl"
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "x.html"
    assert main(["report", str(bad), "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_html_report_prints_one_trial_per_page_in_headless_chromium(results: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    pdf = tmp_path / "report.pdf"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", out.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    assert 2 <= pages <= 6, pages  # each trial starts a page; the GIST trial's takes two at most


def test_without_matplotlib_the_report_is_written_without_its_chart_and_says_so(
        results: Path, tmp_path: Path, capsys, monkeypatch):
    import screener.report_chart as chart

    def unavailable() -> None:
        raise chart.ChartUnavailable("No module named 'matplotlib'")

    monkeypatch.setattr(chart, "_matplotlib", unavailable)
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    assert "<svg" not in out.read_text(encoding="utf-8") and "Screened: 6" in out.read_text(encoding="utf-8")
    assert "pip install 'screener[report]'" in capsys.readouterr().err
