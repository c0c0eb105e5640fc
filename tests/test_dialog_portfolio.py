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

from audit_support import run_dialog, verified
from conftest import ROOT, TRIAL
from test_dialog_e2e import Terminal, converse

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

SITE = ROOT / "tests" / "data" / "site" / "rules"
SITE_TRIAL = "SITE-2"
BOTH = ["--rules-dir", str(SITE), "--trial", SITE_TRIAL, "--trial", TRIAL]
# NCT03862768's disease questions (its dialog file's `disease: [I1]`) come before any other:
# a pathology-confirmed metastatic GIST that progressed on standard imatinib
GIST = [("gist_confirmed", "yes"), ("disease_status", "metastatic"), ("on_standard_imatinib", "yes"),
        ("progressed_on_imatinib", "yes")]
DIAGNOSED = [answer for _, answer in GIST]


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
                       [*DIAGNOSED, "male", "2", "10.5", "yes", ""], tmp_path, monkeypatch)
    assert status == 0
    # sex, ECOG and consent serve both trials; ECOG 2 decides NCT03862768 (I5), so none of
    # its own questions (birth date, ASA, ...) follows, only the site trial's.
    assert asked(text) == [*(fact for fact, _ in GIST), "sex", "ecog", "hemoglobin", "informed_consent"]
    assert f"{SITE_TRIAL}: Decision: eligible" in text and f"{TRIAL}: Decision: ineligible" in text
    row = next(line for line in text.splitlines() if TRIAL in line and "ineligible" in line and "│" in line)
    assert "I5 ECOG performance status below 2" in row
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert saved["trial"] == f"{SITE_TRIAL}+{TRIAL}" and saved["status"] == "finished"


def test_the_next_question_is_one_that_most_open_trials_need(tmp_path, monkeypatch):
    _, alone = run(["screen", "--trial", TRIAL, "--candidate-id", "P-8", "--session", str(tmp_path / "a.json")],
                   ["male", "quit"], tmp_path, monkeypatch)
    _, both = run(["screen", *BOTH, "--candidate-id", "P-8", "--session", str(tmp_path / "b.json")],
                  [*DIAGNOSED, "male", "quit"], tmp_path, monkeypatch)
    # alone, the shipped dialog's order asks the birth date next; with the site trial open
    # too, ECOG (read by both trials) comes first
    assert asked(alone)[:2] == ["sex", "birth_date"]
    assert asked(both)[len(GIST):len(GIST) + 2] == ["sex", "ecog"]


def test_why_names_the_criteria_of_every_trial_the_question_serves(tmp_path, monkeypatch):
    _, text = run(["screen", *BOTH, "--candidate-id", "P-9", "--session", str(tmp_path / "s.json")],
                  [*DIAGNOSED, "male", "why", "quit"], tmp_path, monkeypatch)
    why = text.split("[ecog] decides:")[1]
    assert f"{SITE_TRIAL} S-I1 ECOG 0 to 2" in why and f"{TRIAL} I5 ECOG performance status below 2" in why


def test_one_trace_and_letter_per_trial_each_verifies_on_its_own(tmp_path, monkeypatch):
    trace, letter = tmp_path / "p.trace.jsonl", tmp_path / "p.letter.md"
    status, _ = run(["screen", *BOTH, "--candidate-id", "P-7", "--session", str(tmp_path / "s.json"),
                     "--trace", str(trace), "--letter", str(letter)],
                    [*DIAGNOSED, "male", "2", "10.5", "yes", ""], tmp_path, monkeypatch)
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
    status, _ = run(["screen", *BOTH, "--candidate-id", "P-5", "--session", str(session)], [*DIAGNOSED, "male", "quit"],
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
                     "--candidate-id", "P-6", "--session", str(session)], [*DIAGNOSED, "male", "quit"], tmp_path, monkeypatch)
    assert status == 3
    monkeypatch.chdir(tmp_path)
    status, text = run(["resume", str(session)], ["2", "10.5", "yes", ""], tmp_path, monkeypatch)
    assert status == 0, text
    assert f"{SITE_TRIAL}: Decision: eligible" in text


def test_quit_then_resume_goes_on_in_every_trials_own_trace(tmp_path, monkeypatch):
    session, trace = tmp_path / "s.json", tmp_path / "p.trace.jsonl"
    status, _ = run(["screen", *BOTH, "--candidate-id", "P-5", "--session", str(session), "--trace", str(trace),
                     "--letter", str(tmp_path / "p.letter.md"), "--operator", "Dr Wang"], [*DIAGNOSED, "male", "quit"],
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
        paused = types.index("pause")
        facts = [r["fact"] for r in kept[1:paused]]  # the answers before the pause, each trial's own
        assert types[0] == "start" and set(types[1:paused]) == {"fact"} and types[paused + 1] == "resume"
        assert "sex" in facts and ("gist_confirmed" in facts) == (trial_id == TRIAL)
        assert kept[paused + 1]["operator"] == "Dr Wang"  # the session remembers who screens
        assert (tmp_path / f"p.{trial_id}.letter.md").is_file()


def test_two_trials_in_one_conversation_in_a_real_terminal(tmp_path):
    term = Terminal(tmp_path, "screen", *BOTH, "--candidate-id", "P-1", "--session", str(tmp_path / "s.json"))
    term.answers([*GIST, ("sex", "female"), ("ecog", "1"), ("pregnant", "yes")])
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


SHIPPED = ["--trial", "NCT03862768", "--trial", "NCT06534411", "--trial", "NCT06898385"]
# each trial's own questions (no other trial of SHIPPED reads them)
GIST_ONLY = {"disease_status", "on_standard_imatinib", "asa_class", "mdt_resectable", "informed_consent"}
DIABETES_ONLY = {"hba1c", "consent_date", "antidiabetic_medications", "bmi"}


def test_several_trials_ask_each_diagnosis_first_and_close_a_trial_without_it(tmp_path):
    # a 61-year-old woman with pancreatic cancer, screened for the GIST, the diabetes and the
    # pancreatic-cancer trial at once, in a real terminal
    trace = tmp_path / "w.trace.jsonl"
    term = Terminal(tmp_path, "screen", *SHIPPED, "--candidate-id", "W-61", "--session", str(tmp_path / "s.json"),
                    "--trace", str(trace), "--letter", str(tmp_path / "w.letter.md"))
    answers = {"gist_confirmed": "no", "screening_date": "2026-03-02", "t2d_diagnosis_date": "never",
               "pdac_confirmed": "yes", "sex": "female", "birth_date": "1965-01-10", "ecog": "3"}
    asked, counts = converse(term, answers, "NCT06898385: Decision: ineligible")
    # the diagnoses, trial by trial, before anything else; each trial without it closes at once
    assert asked[:4] == ["gist_confirmed", "screening_date", "t2d_diagnosis_date", "pdac_confirmed"]
    text = term.child.before
    assert term.finish() == 0
    assert not GIST_ONLY & set(asked) and not DIABETES_ONLY & set(asked)
    assert all(later < earlier for earlier, later in zip(counts, counts[1:])), counts  # never up, no correction
    verified(*(tmp_path / f"w.{trial}.trace.jsonl" for trial in ("NCT03862768", "NCT06534411", "NCT06898385")))


def test_the_trial_a_closing_answer_closes_says_so_once(tmp_path, monkeypatch):
    status, text = run(["screen", *SHIPPED, "--candidate-id", "W-62", "--session", str(tmp_path / "s.json")],
                       ["no", "", "never", "quit"], tmp_path, monkeypatch)
    assert status == 3
    assert text.count("NCT03862768 is decided: ineligible (I1 Recurrent or metastatic GIST progressing on "
                      "standard imatinib); it needs no more answers.") == 1
    assert text.count("NCT06534411 is decided: ineligible (I3 ") == 1
    assert asked(text)[-1] == "pdac_confirmed"  # the last open trial's diagnosis comes next


def test_a_fact_one_trial_computes_is_not_asked_though_another_cannot(tmp_path, monkeypatch):
    # NCT03862768 computes the age at the screening date; NCT06898385 at its main consent date,
    # which is not known: the age is not asked as a question of its own, and the diabetes
    # trial's consent date is still asked (each consent date named with its trial)
    trace = tmp_path / "a.trace.jsonl"
    status, text, person = run_dialog(
        ["screen", *SHIPPED, "--candidate-id", "A-1", "--session", str(tmp_path / "s.json"), "--trace", str(trace)],
        {"birth_date": "1965-01-10", "screening_date": "2026-03-02", "gist_confirmed": "yes",
         "disease_status": "metastatic", "on_standard_imatinib": "yes", "progressed_on_imatinib": "yes",
         "pdac_confirmed": "yes", "t2d_diagnosis_date": "2020-01-01", "main_consent_date": "?"})
    assert status in (0, 1)  # undetermined with so much unknown
    assert "age" not in person.asked and {"consent_date", "main_consent_date"} <= set(person.asked)
    assert "\nNCT06534411: " in text.split("[consent_date]")[0][-200:]
    assert "\nNCT06898385: " in text.split("[main_consent_date]")[0][-200:]
    assert "Age = 61 years (calculated)" in text
    verified(*(tmp_path / f"a.{trial}.trace.jsonl" for trial in ("NCT03862768", "NCT06534411", "NCT06898385")))
