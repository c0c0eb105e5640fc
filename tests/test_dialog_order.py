"""The conversation a clinician expects: quick knock-outs early, classes as clinicians write
them, trials that close said so, and a progress count that only goes down."""
from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest

from screener.cli import build_parser
from screener.dialog.answers import InvalidAnswer, parse_answer
from screener.dialog.spec import load_dialog
from screener.rules.check import load_trial
from screener.trials import dialog_path, rules_path

from test_dialog_flow import DIAGNOSED, MAN


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], lines: list[str]) -> str:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    args.run(args, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    return out.getvalue()


def asked(text: str) -> list[str]:
    return re.findall(r"\? \[([a-z0-9_]+)\]\n", text)


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize(("typed", "cls"), [("ASA II E", 2), ("IIE", 2), ("2E", 2), ("ii-e", 2), ("IV e", 4), ("III", 3)])
def test_an_emergency_asa_class_is_its_class(language: str, typed: str, cls: int) -> None:
    trial = load_trial(rules_path("NCT03862768"))
    dialog = load_dialog(dialog_path(trial.id, language), trial)
    read = parse_answer(trial.facts["asa_class"], dialog.questions["asa_class"], dialog.vocabulary, typed,
                        dt.date(2026, 3, 1))
    assert read.value == cls


def test_the_e_modifier_belongs_to_asa_alone() -> None:
    trial = load_trial(rules_path("NCT03862768"))
    dialog = load_dialog(dialog_path(trial.id, "en"), trial)
    with pytest.raises(InvalidAnswer):
        parse_answer(trial.facts["nyha_class"], dialog.questions["nyha_class"], dialog.vocabulary, "II E",
                     dt.date(2026, 3, 1))


def test_a_woman_is_asked_about_pregnancy_once_her_diagnosis_is_known(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["female"] + [text for _, text in MAN[1:DIAGNOSED]] + ["yes"]
    text = run(tmp_path, monkeypatch, ["screen", "--trial", "NCT03862768", "--candidate-id", "W-1",
                                       "--session", str(tmp_path / "s.json")], lines + [""])
    assert asked(text) == [fact for fact, _ in MAN[:DIAGNOSED]] + ["pregnant"]
    assert "Decision: ineligible" in text  # six questions, not thirty-six


def test_a_trial_that_closes_is_announced_and_the_end_table_names_facts_by_label(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the site trial and NCT03862768 share sex, ECOG and consent: ECOG 2 closes NCT03862768
    site = Path(__file__).parent / "data" / "site" / "rules"
    text = run(tmp_path, monkeypatch, ["screen", "--rules-dir", str(site), "--trial", "SITE-2", "--trial",
                                       "NCT03862768", "--candidate-id", "P-7", "--session", str(tmp_path / "s.json")],
               ["yes", "metastatic", "yes", "yes", "male", "2", "quit"])  # its diagnosis first
    assert "NCT03862768 is decided: ineligible (I5 ECOG performance status below 2); it needs no more answers." in text
    assert text.count("NCT03862768 is decided") == 1
    assert "\nSex of the patient? [sex]" in text  # shared: no trial named
    assert "\nSITE-2: Haemoglobin (g/dL)? [hemoglobin]" in text  # one trial's question names it
    done = run(tmp_path, monkeypatch, ["resume", str(tmp_path / "s.json")], ["?", "?", ""])
    assert "NCT03862768 is decided" not in done  # said once, when it closed
    table = done[done.index("┃"):]
    assert "┃ trial" in table and "missing" in table
    assert "hemoglobin" not in table.lower().replace("haemoglobin", "")


WIDE = Path(__file__).parent / "data" / "wide"


def test_a_trial_without_a_dialog_file_is_asked_from_its_fact_descriptions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trial = load_trial(WIDE / "WIDE-1.yaml")
    first = next(spec for name, spec in trial.facts.items() if name != trial.id_fact and not spec.context)
    text = run(tmp_path, monkeypatch, ["screen", "--rules-dir", str(WIDE), "--trial", "WIDE-1",
                                       "--candidate-id", "W-1", "--session", str(tmp_path / "s.json")],
               ["yes", "2", ""])
    assert f"{first.description.rstrip('.')}? [{first.name}]" in text
    assert "'yes' is not a whole number." in text  # the screener's own messages
    assert "Decision: " in text


def test_check_warns_of_a_trial_without_a_dialog_file(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["check", str(WIDE / "WIDE-1.yaml")])
    assert args.run(args) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "warning: WIDE-1 has no dialog file; `screener screen` asks its facts by their descriptions" in said


def lefts(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"at most (\d+) left", text)]


def test_at_most_n_left_never_goes_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    woman = (["female"] + [text for _, text in MAN[1:DIAGNOSED]] + ["no", "no"]
             + [text for _, text in MAN[DIAGNOSED:]] + [""])
    text = run(tmp_path, monkeypatch, ["screen", "--trial", "NCT03862768", "--candidate-id", "W-2",
                                       "--session", str(tmp_path / "s.json")], woman)
    assert "Decision: eligible" in text
    counts = lefts(text)
    assert len(counts) == len(asked(text)) and counts[-1] >= 1
    assert all(later <= earlier for earlier, later in zip(counts, counts[1:])), counts
    # the count is a bound: never below the questions still to come
    assert all(left >= len(counts) - number for number, left in enumerate(counts))


def test_at_most_n_left_never_goes_up_with_several_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(tmp_path, monkeypatch, ["screen", "--all-trials", "--candidate-id", "A-2",
                                       "--session", str(tmp_path / "s.json")],
               ["female", "12 June 1965", "", "?", "?", "no", "yes", "quit"])
    counts = lefts(text)
    assert len(counts) >= 6
    assert all(later <= earlier for earlier, later in zip(counts, counts[1:])), counts
