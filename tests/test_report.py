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
    assert "HbA1c" in diabetes["to_collect"].split("; ")  # the clinical label, not the fact name
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


def _batch(tmp_path: Path, people: list[dict], name: str, *trials: str) -> Path:
    source = tmp_path / f"{name}.in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p in people), encoding="utf-8")
    results = tmp_path / name
    main(["batch", str(source), "-o", str(results), *[a for t in trials for a in ("--trial", t)]])
    return results


def test_single_trial_results_are_reported_for_the_trial_they_fit(tmp_path: Path, capsys):
    results = _batch(tmp_path, PEOPLE, "r.jsonl", TRIAL)
    assert "trial_id" not in results.read_text(encoding="utf-8")
    out = tmp_path / "flow.csv"
    assert main(["report", str(results), "-o", str(out)]) == 0
    rows = _flow(out)
    assert {r["trial_id"] for r in rows} == {TRIAL}
    assert next(r for r in rows if r["criterion"] == "I5")["failed"] == "2"
    assert f"records of 1 trials ({TRIAL})" in capsys.readouterr().err


def test_single_trial_results_that_several_trials_could_give_need_their_trial_named(tmp_path: Path, capsys):
    # one candidate failing I5 alone: every shipped trial has an I5 and asks nothing more
    results = _batch(tmp_path, PEOPLE[1:2], "r.jsonl", TRIAL)
    out = tmp_path / "x.csv"
    assert main(["report", str(results), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "r.jsonl" in err and TRIAL in err and OTHER in err and "--trial" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["report", str(results), "-o", str(out), "--trial", TRIAL]) == 0
    assert {r["trial_id"] for r in _flow(out)} == {TRIAL}


def test_single_trial_results_of_other_rules_are_refused(tmp_path: Path, capsys):
    results = _batch(tmp_path, PEOPLE, "r.jsonl", TRIAL)
    assert main(["report", str(results), "-o", str(tmp_path / "x.csv"), "--trial", OTHER]) == 2
    assert "screened with other rules?" in capsys.readouterr().err


def test_trial_chooses_among_the_trials_of_the_results(results: Path, tmp_path: Path):
    out = tmp_path / "flow.csv"
    assert main(["report", str(results), "-o", str(out), "--trial", OTHER]) == 0
    assert {r["trial_id"] for r in _flow(out)} == {OTHER}


def test_batch_and_match_output_of_the_same_candidates_count_each_candidate_once(
        results: Path, tmp_path: Path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(p, default=str) + "\n" for p in PEOPLE), encoding="utf-8")
    matched = tmp_path / "match.csv"
    main(["match", str(source), "-o", str(matched), "--trial", TRIAL, "--trial", OTHER])
    alone, both = tmp_path / "alone.csv", tmp_path / "both.csv"
    assert main(["report", str(results), "-o", str(alone)]) == 0
    capsys.readouterr()
    assert main(["report", str(results), str(matched), "-o", str(both)]) == 0
    assert _flow(both) == _flow(alone)  # six candidates, not twelve
    err = capsys.readouterr().err
    assert f"6 candidates of {TRIAL} are in both {results} and {matched}" in err
    assert "counted once" in err


def test_the_same_candidate_with_different_results_in_two_files_is_refused(tmp_path: Path, capsys):
    before = _batch(tmp_path, PEOPLE[:2], "before.jsonl", TRIAL)
    after = _batch(tmp_path, [PEOPLE[0], _person("MRN-0002")], "after.jsonl", TRIAL)
    out = tmp_path / "x.html"
    assert main(["report", str(before), str(after), "-o", str(out), "--trial", TRIAL]) == 2
    err = capsys.readouterr().err
    assert "MRN-0002" in err and "before.jsonl" in err and "after.jsonl" in err
    assert "ineligible, failing I5; eligible" in err and not out.exists()


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


def test_the_report_and_worklist_speak_chinese_with_lang_zh(results: Path, tmp_path: Path):
    out, worklist = tmp_path / "report.html", tmp_path / "worklist.csv"
    assert main(["report", str(results), "-o", str(out), "--lang", "zh", "--with-ids",
                 "--worklist", str(worklist)]) == 0
    html = out.read_text(encoding="utf-8")
    assert '<html lang="zh">' in html and "<h1>筛选报告</h1>" in html
    gist = html.split(f"<h2>{TRIAL}")[1].split("<h2>")[0]
    assert "伊马替尼" in gist.split("</h2>")[0]  # the trial's title from its Chinese dialog file
    assert "已筛选：6" in gist and "无法筛选（错误）：1" in gist and "已评估：5" in gist
    assert "<tr><td>拒绝参加</td><td class=\"n\">1</td></tr>" in gist
    assert "<tr><td>筛选失败</td><td class=\"n\">2</td></tr>" in gist
    assert "I5 (纳入)" in gist and "ECOG 体能状态评分低于 2 分" in gist  # criterion titles in Chinese
    chart = gist.split("<svg")[1].split("</svg>")[0]
    assert "未通过该标准" in chart and "ECOG 体能状态评分低于 2 分" in chart
    assert "<tr><td>MRN-0005</td><td>知情同意</td></tr>" in gist
    for english in ("Screened", "Flow", "Screening log", "screen failure", "declined", "still not excluded",
                    "Informed consent", "To find out"):
        assert english not in gist, english
    rows = list(csv.DictReader(worklist.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == {"candidate_id": "MRN-0005", "trial_id": TRIAL, "to_collect": "知情同意"}


FONTS = shutil.which("fc-list")
CJK_FAMILIES = (subprocess.run([FONTS, ":lang=zh", "family"], capture_output=True, text=True).stdout
                if FONTS else "")


@pytest.mark.skipif(CHROMIUM is None or not CJK_FAMILIES.strip(),
                    reason="headless Chromium or a Chinese font is not installed")
def test_the_chinese_report_prints_its_chinese_in_a_chinese_font(results: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    assert main(["report", str(results), "-o", str(out), "--lang", "zh"]) == 0
    pdf = tmp_path / "report.pdf"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", out.as_uri()],
                   check=True, capture_output=True, timeout=120)
    embedded = {name.split(b"+", 1)[-1].decode() for name in re.findall(rb"/FontName\s*/([^\s/]+)", pdf.read_bytes())}
    installed = {family.replace(" ", "") for line in CJK_FAMILIES.splitlines() for family in line.split(",")}
    assert embedded & installed, (embedded, installed)  # printed in a font that has the glyphs, not as boxes
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    assert 2 <= pages <= 6, pages


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
