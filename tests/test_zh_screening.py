"""A screening in Chinese from start to end: the dialog in a real pseudo-terminal, then its
letter, `explain` and `verify`, all in Chinese. English is allowed only in the protocol's
verbatim quotes, codes (fact names, criterion and rule ids, hashes, paths) and the Latin terms
the Chinese dialog file itself uses (GIST, ECOG, units)."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from audit_support import paused_intact
from english_left import codes_of, english_left, plain_html, plain_markdown, terms_of, verbatim_of
from test_dialog_e2e import ROOT, Terminal
from test_dialog_flow import CONSENT, DIAGNOSED, ECOG, MAN

from conftest import RULES, TRIAL
from screener.audit.artifacts import write_candidate_artifacts
from screener.audit.trace import Source
from screener.dialog.spec import load_dialog
from screener.engine import Screener
from screener.model import Trial
from screener.trials import dialog_path
from screener.values import coerce

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

pexpect = pytest.importorskip("pexpect")

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SCREENER_UPDATE_GOLDEN") == "1"
WOMAN = [("sex", "女")] + MAN[1:DIAGNOSED] + [("pregnant", "否"), ("breastfeeding", "否")] + MAN[DIAGNOSED:]


def records(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]


def english_in(text: str, trace: Path) -> list[str]:
    """The English words in `text` (plain text of a letter or a command's output)."""
    lines = records(trace)
    start = lines[0]
    units = [spec.get("unit", "") for spec in start["trial"]["facts"].values()]
    return english_left(text, verbatim_of(start), codes_of(start, lines),
                        terms_of(start.get("wording", {}), units))


def screener(*args: str, zone: str = "UTC") -> subprocess.CompletedProcess[str]:
    """Run the screener as a clinician would, without line wrapping (so quotes stay whole)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="5000", NO_COLOR="1", TZ=zone)
    return subprocess.run([sys.executable, "-m", "screener", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def screen_zh(tmp_path: Path, answers: list[tuple[str, str]], letter: str, *extra: str) -> Terminal:
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--lang", "zh", "--candidate-id", "P-1",
                    "--session", str(tmp_path / "s.json"), "--trace", str(tmp_path / "t.jsonl"),
                    "--letter", str(tmp_path / letter), "--operator", "王医生", *extra)
    term.answers(answers)
    return term


def test_an_eligible_woman_screened_in_chinese_gets_a_chinese_letter_explain_and_verify(tmp_path: Path) -> None:
    term = screen_zh(tmp_path, WOMAN, "l.html", "--tz", "Asia/Shanghai")
    term.expect("结论：符合入组条件")
    assert term.finish("回车结束") == 0
    trace = tmp_path / "t.jsonl"
    assert records(trace)[0]["language"] == "zh"

    letter = (tmp_path / "l.html").read_text(encoding="utf-8")
    assert '<html lang="zh">' in letter
    text = plain_html(letter)
    assert "符合入组条件：全部纳入标准均符合" in text and "研究者" in text
    assert "Patients whose pathology is clearly diagnosed" in text  # the protocol, verbatim
    assert "译文：病理明确诊断为复发/转移性 GIST" in text  # and its translation beside it
    assert "UTC+08:00" in text  # local time of the site, with its offset
    assert english_in(text, trace) == []

    explained = screener("explain", str(trace), zone="Asia/Shanghai")
    assert explained.returncode == 0, explained.stderr
    assert "受试者：P-1" in explained.stdout and "UTC+08:00" in explained.stdout
    assert english_in(explained.stdout, trace) == []

    verified = screener("verify", str(trace))
    assert verified.returncode == 0, verified.stderr
    # the verdict first: intact, but nobody signed it
    assert verified.stdout.startswith(f"{trace}：记录完整但未签名")
    assert "得出与记录相同的结论：符合入组" in verified.stdout
    assert english_in(verified.stdout, trace) == []


def test_a_corrected_ineligible_screening_in_chinese_gets_a_chinese_markdown_letter(tmp_path: Path) -> None:
    woman = ([("sex", "女")] + MAN[1:DIAGNOSED] + [("pregnant", "否"), ("breastfeeding", "否")]
             + MAN[DIAGNOSED:ECOG] + [("ecog", "2")])
    term = screen_zh(tmp_path, woman, "l.md")
    term.expect("结论：不符合入组条件")
    term.expect("回车结束")
    term.child.send("修改 ecog 录入错误\r")
    term.answer("ecog", "3")
    term.expect("ECOG 体能状态 已修改：2 → 3")
    assert term.finish("回车结束") == 0
    trace = tmp_path / "t.jsonl"
    text = plain_markdown((tmp_path / "l.md").read_text(encoding="utf-8"))
    assert "不符合入组条件" in text and "I5（纳入）：ECOG 体能状态评分低于 2 分" in text
    assert "已修改：原为 2（对话回答，" in text and " 改为 3：录入错误" in text
    assert english_in(text, trace) == []
    other = ROOT / "rules" / "NCT06534411.yaml"  # another trial's rules: the replay cannot run
    broken = screener("verify", str(trace), "--rules", str(other))
    assert broken.returncode == 1
    assert "无法重放" in broken.stderr and "核验：未通过" in broken.stderr
    assert english_in(broken.stderr, trace) == []


def test_explain_and_verify_speak_the_language_asked_for(tmp_path: Path) -> None:
    screen_zh(tmp_path, WOMAN, "l.html").finish("回车结束")
    trace = tmp_path / "t.jsonl"
    english = screener("explain", str(trace), "--lang", "en", "--tz", "Europe/Paris")
    assert english.returncode == 0, english.stderr
    assert "Candidate: P-1" in english.stdout and "UTC+01:00" in english.stdout
    # the checker finds English where there is some
    assert {"Candidate", "Inclusion", "criteria", "met"} <= set(english_in(english.stdout, trace))
    assert "intact but unsigned" in screener("verify", str(trace), "--lang", "en").stdout
    wrong = screener("explain", str(trace), "--tz", "Mars/Olympus")
    assert wrong.returncode == 2 and "unknown time zone 'Mars/Olympus'" in wrong.stderr


@pytest.mark.tampered
def test_a_tampered_chinese_trace_is_reported_in_chinese(tmp_path: Path) -> None:
    screen_zh(tmp_path, WOMAN, "l.html").finish("回车结束")
    trace = tmp_path / "t.jsonl"
    lines = trace.read_text(encoding="utf-8").splitlines(keepends=True)
    trace.write_text("".join(lines[:3] + lines[4:]), encoding="utf-8")
    verified = screener("verify", str(trace))
    assert verified.returncode == 1
    assert "哈希链断裂" in verified.stderr and "核验：未通过" in verified.stderr
    assert english_in(verified.stderr, trace) == []
    explained = screener("explain", str(trace))
    assert explained.returncode == 1 and "不解释被改动过的记录" in explained.stderr


# --- golden Chinese letters -----------------------------------------------------------------

NOW = dt.datetime(2026, 3, 4, 9, 30, tzinfo=dt.timezone.utc)


def zh_letters(tmp_path: Path, trial: Trial) -> dict[str, str]:
    """The letters of a woman failing ECOG, screened in batch with the Chinese wording."""
    cases = yaml.safe_load((RULES.parent / f"{TRIAL}.cases.yaml").read_text(encoding="utf-8"))
    given = {**cases["base"], "sex": "female", "pregnant": False, "breastfeeding": False, "ecog": 2}
    facts = {name: coerce(trial.facts[name], value) for name, value in given.items()}
    result = Screener(trial).evaluate(facts)
    assert result.decision == "ineligible" and result.failed == ("I5",)
    wording = load_dialog(dialog_path(TRIAL, "zh"), trial).wording()
    sources = {name: (value, Source.batch("candidates.csv", 2, name)) for name, value in facts.items()}
    written = write_candidate_artifacts(trial, "ZS-007", sources, result, tmp_path, tmp_path,
                                        "王医生", NOW, language="zh", wording=wording,
                                        zone=ZoneInfo("Asia/Shanghai"))
    return {fmt: path.read_text(encoding="utf-8") for fmt, path in written.letters.items()}


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_chinese_letter_matches_reviewed_golden_file(tmp_path: Path, trial: Trial, fmt: str) -> None:
    text = zh_letters(tmp_path, trial)[fmt]
    golden = GOLDEN / f"letter_zh_ineligible.{fmt}"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_batch_letters_of_the_tcr_t_trial_in_chinese_leave_no_english(tmp_path: Path) -> None:
    from screener.rules.check import load_trial
    from screener.trials import rules_path

    trial = load_trial(rules_path("NCT06898385"))
    cases = yaml.safe_load(rules_path("NCT06898385").with_suffix(".cases.yaml").read_text(encoding="utf-8"))
    facts = {name: coerce(trial.facts[name], value) for name, value in cases["base"].items()}
    result = Screener(trial).evaluate(facts)
    wording = load_dialog(dialog_path(trial.id, "zh"), trial).wording()
    sources = {name: (value, Source.batch("k.jsonl", 1, name)) for name, value in facts.items()}
    written = write_candidate_artifacts(trial, "K-1", sources, result, tmp_path, tmp_path, None,
                                        NOW, language="zh", wording=wording)
    md = plain_markdown(written.letters["md"].read_text(encoding="utf-8"))
    # a list fact: its fields and values by their Chinese labels, its dates local
    assert "既往全身治疗方案 = 方案：FOLFIRINOX，治疗阶段：晚期，末次用药日期：2025年2月15日，进展日期：2025年3月1日" in md
    assert "性别 = 男" in md
    for text in (md, plain_html(written.letters["html"].read_text(encoding="utf-8"))):
        assert english_in(text, written.trace) == []


def test_batch_lang_writes_chinese_letters_in_the_sites_zone(tmp_path: Path) -> None:
    done = screener("batch", str(ROOT / "examples" / "candidates.csv"), "--trial", TRIAL, "--jobs", "2",
                    "--traces", str(tmp_path / "t"), "--letters", str(tmp_path / "l"),
                    "--lang", "zh", "--tz", "Asia/Shanghai", "-o", str(tmp_path / "r.jsonl"))
    assert done.returncode in (0, 1), done.stderr
    letters = sorted((tmp_path / "l").glob("*.letter.html"))
    assert letters
    for letter in letters:
        trace = tmp_path / "t" / letter.name.replace(".letter.html", ".trace.jsonl")
        html = letter.read_text(encoding="utf-8")
        assert '<html lang="zh">' in html and "UTC+08:00" in html
        assert english_in(plain_html(html), trace) == []
    wrong = screener("batch", str(ROOT / "examples" / "candidates.csv"), "--trial", TRIAL,
                     "--traces", str(tmp_path / "t2"), "--tz", "Nowhere/Land")
    assert wrong.returncode == 2 and "unknown time zone" in wrong.stderr


def test_a_chinese_trace_is_counter_signed_in_chinese(tmp_path: Path, trial: Trial) -> None:
    zh_letters(tmp_path, trial)
    trace = next(tmp_path.glob("*.trace.jsonl"))
    (tmp_path / "pass").write_text("s3cret\n")
    assert screener("keygen", str(tmp_path / "li.key"), "--passphrase-file",
                    str(tmp_path / "pass")).returncode == 0
    signed = screener("sign", str(trace), "--key", str(tmp_path / "li.key"), "--passphrase-file",
                      str(tmp_path / "pass"), "--name", "李医生", "--meaning", "approval")
    assert signed.returncode == 0, signed.stderr
    assert "已由 李医生" in signed.stdout and "含义：批准" in signed.stdout
    assert english_in(signed.stdout.split("密钥")[0], trace) == []  # the fingerprint is hex


def test_a_list_item_typed_wrongly_in_chinese_is_refused_in_chinese_by_its_label(tmp_path: Path) -> None:
    trace = tmp_path / "r.trace.jsonl"
    term = Terminal(tmp_path, "screen", "--trial", "NCT06898385", "--lang", "zh", "--candidate-id", "R-1",
                    "--session", str(tmp_path / "s.json"), "--trace", str(trace))
    while True:  # unknown until the treatment history
        term.child.expect(r"\[([a-z_0-9]+)\]")
        fact = term.child.match.group(1)
        term.child.expect_exact(">")
        if fact == "prior_regimens":
            break
        term.child.send("?\r")
    term.child.send("方案=吉西他宾\r")
    term.expect("第 1 项，方案：'吉西他宾' 不在可选范围内：含吉西他滨方案 / FOLFIRINOX / NALIRIFOX / 其他方案。")
    term.answer("prior_regimens", "方案=FOLFIRINOX；方案=含吉西他滨方案，末次用药日期=2025年13月15日")
    term.expect("第 2 项，末次用药日期：无法识别日期 '2025年13月15日'")
    term.answer("prior_regimens", "方案=含吉西他滨方案，治疗阶段=晚期，末次用药日期=2025年2月15日，进展日期=2025年3月1日")
    term.child.expect(r"\[([a-z_0-9]+)\]")
    assert term.child.match.group(1) != "prior_regimens"  # taken
    term.child.expect_exact(">")
    term.child.send("退出\r")
    term.child.expect(pexpect.EOF)
    assert [r["value"] for r in records(trace) if r.get("fact") == "prior_regimens"] == [
        [{"regimen": "gemcitabine_based", "setting": "advanced", "end_date": "2025-02-15",
          "progression_date": "2025-03-01"}]]
    paused_intact(trace)  # paused: verifies as an intact prefix
