"""Always something to collect (docs/batch-io.md, "Lists to complete"): a candidate left open
by a list's unknown item field, or by a list given empty, is told what to complete, in batch
and in the dialog."""
from __future__ import annotations

import io
import json
import os
import sys
from functools import cache
from pathlib import Path

import pytest
from rich.console import Console

from screener.run.batch import screen_row
from screener.dialog import store
from screener.dialog.flow import Dialog
from screener.dialog.spec import load_dialog
from screener.dialog.terminal import LineReader
from screener.engine import Screener
from screener.model import Trial
from screener.sources.readers import Row
from screener.rules.check import load_trial
from screener.rules.collect import describe_ref, parse_ref
from screener.rules.read import load_yaml
from screener.trials import dialog_path

from audit_support import verified
from conftest import ROOT, case_fields

CAR_T = "NCT06898385"


@cache
def _loaded() -> tuple[Trial, Screener, dict]:
    trial = load_trial(ROOT / "rules" / f"{CAR_T}.yaml")
    return trial, Screener(trial), load_yaml(ROOT / "rules" / f"{CAR_T}.cases.yaml")


def _fields(set_: dict) -> dict:
    return case_fields(_loaded()[2], {"set": set_})


TREATED_NO_READING = {"on_antihypertensive_drugs": "yes", "bp_readings": []}


@pytest.mark.parametrize("set_, missing", [
    (TREATED_NO_READING, ["bp_readings[]"]),
    ({"on_antihypertensive_drugs": "yes", "bp_readings": [
        {"measured_on": "2025-04-10", "systolic": 150, "diastolic": 90},
        {"measured_on": "2025-04-12", "diastolic": 90}]}, ["bp_readings[2].systolic"]),
    # the earlier reading's missing date decides which is the latest: that is what to find out
    ({"on_antihypertensive_drugs": "yes", "bp_readings": [
        {"systolic": 170, "diastolic": 90}, {"measured_on": "2025-04-12", "systolic": 150, "diastolic": 90}]},
     ["bp_readings[1].measured_on"]),
    # a node of 25 x 18 mm in an area whose treatment is not known: either answer could settle I5
    ({"lesions": [{"lymph_node": "yes", "longest_diameter": 25, "short_axis": 18}]},
     ["lesions[1].treated_area", "lesions[1].progressed_in_treated_area"]),
], ids=["empty list", "unknown field of the latest", "unknown date", "lesion"])
def test_an_open_list_names_what_to_complete(set_: dict, missing: list[str]) -> None:
    trial, screener, _ = _loaded()
    record = screen_row(trial, screener, Row(1, _fields(set_))).record
    assert record["decision"] == "undetermined" and record["missing"] == missing


def test_an_item_already_decided_either_way_is_not_named() -> None:
    """A second lesion without its size is not asked for: the first one is measurable."""
    trial, screener, _ = _loaded()
    lesions = [{"lymph_node": "no", "longest_diameter": 25, "treated_area": "no"}, {"lymph_node": "no"}]
    assert screen_row(trial, screener, Row(1, _fields({"lesions": lesions}))).record["decision"] == "eligible"


def test_list_entries_read_as_a_person_reads_them() -> None:
    assert parse_ref("lesions[2].short_axis") == ("lesions", 2, "short_axis")
    assert parse_ref("bp_readings[]") == ("bp_readings", None, None) and parse_ref("age") is None
    label = {"lesions": "Lesions", "bp_readings": "Blood pressure readings"}.get
    tr = str.format
    assert describe_ref("lesions[2].short_axis", label, tr) == "Lesions, item 2: short_axis"
    assert describe_ref("bp_readings[]", label, tr) == "Blood pressure readings: add the items"


def _dialog(tmp_path: Path, lines: list[str], language: str = "en") -> tuple[Dialog, io.StringIO]:
    trial, screener, _ = _loaded()
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, soft_wrap=True)
    session = store.Session(path=tmp_path / "s.json", trial_id=trial.id, trial_hash=trial.content_hash,
                            language=language, candidate_id="P-1")
    reader = LineReader(io.StringIO("".join(f"{line}\n" for line in lines)), console)
    return Dialog(trial, screener, load_dialog(dialog_path(trial.id, language), trial), reader, console,
                  session, save=store.save), out


def _given(set_: dict) -> dict:
    return {k: v for k, v in _fields(set_).items() if k != "candidate_id"}


def test_the_dialog_asks_to_complete_an_empty_list_of_readings(tmp_path: Path) -> None:
    dialog, out = _dialog(tmp_path, ["measured_on=2025-04-10, systolic=150, diastolic=90", ""])
    assert dialog.prefill(_given(TREATED_NO_READING)) == []
    assert dialog.next_fact() is None  # every question is answered: only the list is open
    result = dialog.run()
    shown = out.getvalue()
    assert "To decide, complete the list: Blood pressure readings: add the items" in shown
    assert result.decision == "eligible"
    assert dialog.session.answers["bp_readings"][0]["systolic"] == 150


def test_a_list_left_as_it_was_is_asked_once(tmp_path: Path) -> None:
    dialog, out = _dialog(tmp_path, ["none", ""])
    dialog.prefill(_given(TREATED_NO_READING))
    result = dialog.run()
    assert result.decision == "undetermined" and result.missing == ("bp_readings[]",)
    shown = out.getvalue()
    assert shown.count("To decide, complete the list") == 1
    assert "Blood pressure readings: add the items" in shown.split("To decide")[-1]  # the decision screen


def test_completing_a_lesion_in_a_real_terminal_in_chinese(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    answers = tmp_path / "known.json"
    given = _given({"lesions": [{"lymph_node": "no", "treated_area": "no"}]})
    answers.write_text(json.dumps({k: json.dumps(v) if isinstance(v, list) else v for k, v in given.items()}),
                       encoding="utf-8")
    trace = tmp_path / "s.trace.jsonl"
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1", PYTHONPATH=str(ROOT),
               XDG_STATE_HOME=str(tmp_path / "state"), COLUMNS="200")
    child = pexpect.spawn(sys.executable, ["-m", "screener", "screen", "--trial", CAR_T, "--lang", "zh",
                                           "--candidate-id", "P-1", "--answers", str(answers),
                                           "--session", str(tmp_path / "s.json"), "--trace", str(trace)],
                          env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30, dimensions=(50, 200))
    child.expect_exact("要作出判断，请补全列表：")
    child.expect_exact("第 1 项：longest_diameter")
    child.expect_exact("[lesions]")
    child.expect_exact(">")
    child.send("lymph_node=no, longest_diameter=12, treated_area=no\r")
    child.expect_exact("符合入组条件")
    child.expect_exact("回车结束")
    child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    verified(trace)
