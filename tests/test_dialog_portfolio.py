"""One conversation for several trials: shared facts asked once, decided trials ask nothing more."""
from __future__ import annotations

import shutil

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from screener.cli import build_parser

from conftest import ROOT, TRIAL
from test_dialog_e2e import Terminal

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

SITE = ROOT / "tests" / "data" / "site" / "rules"
SITE_TRIAL = "SITE-2"
BOTH = ["--rules-dir", str(SITE), "--trial", SITE_TRIAL, "--trial", TRIAL]


def run(argv: list[str], lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    status = args.run(args, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    return status, out.getvalue()


def asked(text: str) -> list[str]:
    """The facts asked, in order (a question line ends with its fact in brackets)."""
    return re.findall(r"\? \[([a-z_]+)\]\n", text)


def test_a_shared_fact_is_asked_once_and_a_decided_trial_asks_nothing_more(tmp_path, monkeypatch):
    status, text = run(["screen", *BOTH, "--candidate-id", "P-7", "--session", str(tmp_path / "s.json")],
                       ["male", "2", "10.5", "yes", ""], tmp_path, monkeypatch)
    assert status == 0
    # sex, ECOG and consent serve both trials; ECOG 2 decides NCT03862768 (I5), so none of
    # its own questions (birth date, ASA, ...) follows, only the site trial's.
    assert asked(text) == ["sex", "ecog", "hemoglobin", "informed_consent"]
    assert f"{SITE_TRIAL}: Decision: eligible" in text and f"{TRIAL}: Decision: ineligible" in text
    row = next(line for line in text.splitlines() if TRIAL in line and "ineligible" in line and "│" in line)
    assert "I5 ECOG performance status below 2" in row
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert saved["trial"] == f"{SITE_TRIAL}+{TRIAL}" and saved["status"] == "finished"


def test_the_next_question_is_one_that_most_open_trials_need(tmp_path, monkeypatch):
    _, alone = run(["screen", "--trial", TRIAL, "--candidate-id", "P-8", "--session", str(tmp_path / "a.json")],
                   ["male", "quit"], tmp_path, monkeypatch)
    _, both = run(["screen", *BOTH, "--candidate-id", "P-8", "--session", str(tmp_path / "b.json")],
                  ["male", "quit"], tmp_path, monkeypatch)
    # alone, the shipped dialog's order asks the birth date next; with the site trial open
    # too, ECOG (read by both trials) comes first
    assert asked(alone)[:2] == ["sex", "birth_date"]
    assert asked(both)[:2] == ["sex", "ecog"]


def test_why_names_the_criteria_of_every_trial_the_question_serves(tmp_path, monkeypatch):
    _, text = run(["screen", *BOTH, "--candidate-id", "P-9", "--session", str(tmp_path / "s.json")],
                  ["male", "why", "quit"], tmp_path, monkeypatch)
    why = text.split("[ecog] decides:")[1]
    assert f"{SITE_TRIAL} S-I1 ECOG 0 to 2" in why and f"{TRIAL} I5 ECOG performance status below 2" in why


def test_one_trace_and_letter_per_trial_each_verifies_on_its_own(tmp_path, monkeypatch):
    trace, letter = tmp_path / "p.trace.jsonl", tmp_path / "p.letter.md"
    status, _ = run(["screen", *BOTH, "--candidate-id", "P-7", "--session", str(tmp_path / "s.json"),
                     "--trace", str(trace), "--letter", str(letter)],
                    ["male", "2", "10.5", "yes", ""], tmp_path, monkeypatch)
    assert status == 0
    for trial_id, rules_dir, decision in ((SITE_TRIAL, SITE, "eligible"), (TRIAL, ROOT / "rules", "ineligible")):
        path = tmp_path / f"p.{trial_id}.trace.jsonl"
        verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(path), "--rules-dir",
                                   str(rules_dir)], capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"gives the recorded decision: {decision}" in verified.stdout
        assert (tmp_path / f"p.{trial_id}.letter.md").is_file()
    site_facts = [json.loads(line).get("fact") for line in (tmp_path / f"p.{SITE_TRIAL}.trace.jsonl").read_text(encoding="utf-8").splitlines()]
    shipped_facts = [json.loads(line).get("fact") for line in (tmp_path / f"p.{TRIAL}.trace.jsonl").read_text(encoding="utf-8").splitlines()]
    assert "hemoglobin" in site_facts and "hemoglobin" not in shipped_facts  # each trial's own facts


def test_quit_then_resume_continues_for_every_trial(tmp_path, monkeypatch):
    session = tmp_path / "s.json"
    status, _ = run(["screen", *BOTH, "--candidate-id", "P-5", "--session", str(session)], ["male", "quit"],
                    tmp_path, monkeypatch)
    assert status == 3
    status, text = run(["resume", str(session), "--rules-dir", str(SITE)], ["2", "10.5", "yes", ""],
                       tmp_path, monkeypatch)
    assert status == 0
    assert asked(text) == ["ecog", "hemoglobin", "informed_consent"]
    assert f"{SITE_TRIAL}: Decision: eligible" in text


def test_resume_finds_the_site_trial_where_the_screening_found_it(tmp_path, monkeypatch):
    # started with a relative --rules-dir; resumed later from elsewhere, without it
    site_copy = tmp_path / "site" / "rules"
    shutil.copytree(SITE, site_copy)
    shutil.copytree(SITE.parent / "dialogs", tmp_path / "site" / "dialogs")
    session = tmp_path / "s.json"
    monkeypatch.chdir(tmp_path / "site")
    status, _ = run(["screen", "--rules-dir", "rules", "--trial", SITE_TRIAL, "--trial", TRIAL,
                     "--candidate-id", "P-6", "--session", str(session)], ["male", "quit"], tmp_path, monkeypatch)
    assert status == 3
    monkeypatch.chdir(tmp_path)
    status, text = run(["resume", str(session)], ["2", "10.5", "yes", ""], tmp_path, monkeypatch)
    assert status == 0, text
    assert f"{SITE_TRIAL}: Decision: eligible" in text


def test_quit_then_resume_goes_on_in_every_trials_own_trace(tmp_path, monkeypatch):
    session, trace = tmp_path / "s.json", tmp_path / "p.trace.jsonl"
    status, _ = run(["screen", *BOTH, "--candidate-id", "P-5", "--session", str(session), "--trace", str(trace),
                     "--letter", str(tmp_path / "p.letter.md"), "--operator", "Dr Wang"], ["male", "quit"],
                    tmp_path, monkeypatch)
    assert status == 3
    status, text = run(["resume", str(session), "--rules-dir", str(SITE)], ["2", "10.5", "yes", ""],
                       tmp_path, monkeypatch)
    assert status == 0, text
    for trial_id, rules_dir, decision in ((SITE_TRIAL, SITE, "eligible"), (TRIAL, ROOT / "rules", "ineligible")):
        path = tmp_path / f"p.{trial_id}.trace.jsonl"
        verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(path), "--rules-dir",
                                   str(rules_dir)], capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"gives the recorded decision: {decision}" in verified.stdout
        kept = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        types = [r["type"] for r in kept]
        assert types[:4] == ["start", "fact", "pause", "resume"] and kept[1]["fact"] == "sex"
        assert kept[3]["operator"] == "Dr Wang"  # the session remembers who screens
        assert (tmp_path / f"p.{trial_id}.letter.md").is_file()


def test_two_trials_in_one_conversation_in_a_real_terminal(tmp_path):
    term = Terminal(tmp_path, "screen", *BOTH, "--candidate-id", "P-1", "--session", str(tmp_path / "s.json"))
    term.answers([("sex", "female"), ("ecog", "1"), ("pregnant", "yes")])
    # pregnancy excludes from both (S-E1, E6 when the woman is pregnant): nothing more to ask
    term.expect(f"{SITE_TRIAL}: Decision: ineligible")
    term.expect(f"{TRIAL}: Decision: ineligible")
    assert term.finish() == 0


def test_without_trial_every_trial_found_that_speaks_the_language_is_screened(tmp_path, monkeypatch):
    toy = ROOT / "tests" / "data" / "toy" / "rules"  # a trial without any dialog file
    # the shipped trials that can share one conversation with SITE-2 (NCT06898385 defines
    # hemoglobin otherwise, so it would be refused together with it)
    for folder, pattern in (("rules", f"{TRIAL}.yaml"), ("dialogs", f"{TRIAL}.*.yaml")):
        (tmp_path / folder).mkdir()
        for path in (ROOT / folder).glob(pattern):
            shutil.copy(path, tmp_path / folder / path.name)
    monkeypatch.setenv("SCREENER_RULES", str(tmp_path / "rules"))
    monkeypatch.setenv("SCREENER_DIALOGS", str(tmp_path / "dialogs"))
    status, text = run(["screen", "--rules-dir", str(toy), "--rules-dir", str(SITE), "--candidate-id", "P-2",
                        "--session", str(tmp_path / "s.json")], ["quit"], tmp_path, monkeypatch)
    title = text.splitlines()[0]
    assert status == 3 and SITE_TRIAL in title and TRIAL in title and "TOY-1" not in title
    status, text = run(["screen", "--rules-dir", str(toy), "--all-trials", "--candidate-id", "P-2",
                        "--session", str(tmp_path / "t.json")], ["quit"], tmp_path, monkeypatch)
    # asked for by name, a trial without a dialog file is asked from its rules file
    assert status == 3 and "TOY-1" in text.splitlines()[0]
