"""Reported measurements (docs/rules-language.md, "Reported measurements"): a laboratory's
eGFR, an eCRF's BMI, an ECG machine's QTcF or RR interval and a clearance given as `crcl`
decide as given; the value computed from their inputs is kept beside them (result, trace),
and a difference past the rules' tolerance is a warning in the record, never an error."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
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
from screener.errors import RulesError
from screener.model import Trial
from screener.sources.readers import Row
from screener.rules.check import load_trial
from screener.rules.read import load_yaml
from screener.trials import dialog_path

from audit_support import verified
from conftest import ROOT, case_fields

T2D = "NCT06534411"
CAR_T = "NCT06898385"


@cache
def _loaded(trial_id: str) -> tuple[Trial, Screener, dict]:
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    return trial, Screener(trial), load_yaml(ROOT / "rules" / f"{trial_id}.cases.yaml")


def _screen(trial_id: str, set_: dict, unset: tuple[str, ...] = ()) -> dict:
    trial, screener, table = _loaded(trial_id)
    fields = case_fields(table, {"set": set_, "unset": list(unset)})
    return screen_row(trial, screener, Row(1, fields)).record


def test_a_central_laboratory_egfr_beside_its_creatinine_decides_without_error() -> None:
    """eGFR 87 with creatinine 88 umol/L (CKD-EPI 2021 gives 86.63 for this man of 60): the lab's number."""
    record = _screen(T2D, {"creatinine": 88, "egfr": 87})
    assert record["decision"] == "eligible" and record["errors"] == [] and record["warnings"] == []


def test_a_reported_egfr_far_from_its_computation_decides_with_a_warning() -> None:
    record = _screen(T2D, {"creatinine": 88, "egfr": 20})
    assert record["decision"] == "ineligible" and record["failed_criteria"] == ["E2"]
    (warning,) = record["warnings"]
    assert warning.startswith("egfr: 20") and "reported value used; 86.63" in warning
    assert "computed from creatinine=88" in warning and warning.endswith("differs by more than 5")


def test_an_ecrf_bmi_beside_height_and_weight_decides() -> None:
    """BMI 33.3 from the eCRF; 102 kg / 1.75 m squared is 33.3061..."""
    record = _screen(T2D, {"bmi": 33.3})
    assert record["decision"] == "eligible" and record["warnings"] == []
    below = _screen(T2D, {"bmi": 29.9})  # the eCRF's value decides, even against the inputs
    assert below["failed_criteria"] == ["I6"]
    assert [w.split(":")[0] for w in below["warnings"]] == ["bmi"]


@pytest.mark.parametrize("fields", [
    {"qt_interval": 380, "heart_rate": 72, "qtcf": 408},  # the machine's own RR: 403.8 computed
    {"heart_rate": 70, "rr_interval": "857 ms"},  # 60 / 70 = 0.857142... s
], ids=["machine QTcF", "RR in ms"])
def test_ecg_values_as_the_machine_reports_them(fields: dict) -> None:
    record = _screen(CAR_T, fields)
    assert record["decision"] == "eligible" and record["errors"] == [] and record["warnings"] == []


def test_a_machine_qtcf_above_the_limit_excludes_whatever_qt_and_heart_rate_give() -> None:
    record = _screen(CAR_T, {"qt_interval": 400, "heart_rate": 60, "qtcf": 475})
    assert record["failed_criteria"] == ["E5"]
    assert [w.split(":")[0] for w in record["warnings"]] == ["qtcf"]


def test_a_measured_clearance_is_its_own_fact_beside_cockcroft_gault() -> None:
    """Creatinine 1.8 x ULN, 72 kg, 60 years: Cockcroft-Gault gives 44.4 mL/min, the measured
    clearance of 62 mL/min passes I9 ("creatinine clearance >= 50 mL/min")."""
    high = {"creatinine": "1.8 mg/dL", "creatinine_uln": "1.0 mg/dL", "weight": 72}
    assert _screen(CAR_T, {**high, "crcl_measured": 62})["decision"] == "eligible"
    open_ = _screen(CAR_T, high)
    assert open_["decision"] == "undetermined" and open_["missing"] == ["crcl_measured"]
    assert _screen(CAR_T, {**high, "crcl_measured": 49})["failed_criteria"] == ["I9"]


def test_the_computed_value_is_kept_beside_the_reported_one() -> None:
    trial, screener, table = _loaded(T2D)
    result = screen_row(trial, screener, Row(1, case_fields(table, {"set": {"egfr": 20}}))).result
    assert result is not None
    assert result.derived.get("egfr") is None  # the given value is not replaced
    assert float(result.computed["egfr"]) == pytest.approx(97.13, abs=0.01)


def test_csv_results_carry_the_warnings(tmp_path: Path) -> None:
    _, _, table = _loaded(T2D)
    rows = [case_fields(table, {"set": {"egfr": 20}}), case_fields(table, {"set": {"egfr": 95}})]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({**r, "candidate_id": f"P-{i}"}) + "\n" for i, r in enumerate(rows)),
                    encoding="utf-8")
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-m", "screener", "batch", str(path), "--trial", T2D, "-o", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0])[list(got[0]).index("errors") + 1] == "warnings"  # right after errors
    assert got[0]["decision"] == "ineligible" and got[0]["warnings"].startswith("egfr: 20")
    assert got[1]["decision"] == "eligible" and got[1]["warnings"] == ""


def test_the_trace_keeps_computed_value_and_warning_and_verifies(tmp_path: Path) -> None:
    _, _, table = _loaded(T2D)
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({**case_fields(table, {"set": {"egfr": 20}}), "candidate_id": "P-9"}) + "\n",
                    encoding="utf-8")
    traces = tmp_path / "traces"
    done = subprocess.run([sys.executable, "-m", "screener", "batch", str(path), "--trial", T2D,
                           "-o", str(tmp_path / "out.jsonl"), "--traces", str(traces)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (trace,) = traces.glob("*.jsonl")
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    (decision,) = [r for r in records if r["type"] == "decision"]
    assert decision["decision"] == "ineligible"
    assert [w.split(":")[0] for w in decision["warnings"]] == ["egfr"]
    assert decision["computed"]["egfr"].startswith("97.13")
    verified(trace)
    explained = subprocess.run([sys.executable, "-m", "screener", "explain", str(trace)],
                               capture_output=True, text=True, timeout=120, cwd=ROOT,
                               env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
    assert "Reported values used: egfr: 20" in explained.stdout, explained.stdout + explained.stderr


@pytest.mark.parametrize("entry, message", [
    ("given: measured", "given must be 'same' or 'reported'"),
    ("tolerance: 5", "a tolerance is for a reported value"),
    ("given: reported\n    tolerance: -1", "tolerance must be a number of 0 or more"),
])
def test_a_wrong_given_or_tolerance_is_named_at_its_line(tmp_path: Path, entry: str, message: str) -> None:
    text = (ROOT / "rules" / f"{T2D}.yaml").read_text(encoding="utf-8")
    text = text.replace("    given: reported\n    tolerance: 5\n", f"    {entry}\n", 1)
    path = tmp_path / f"{T2D}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_trial(path)
    (problem,) = info.value.problems
    assert message in problem.message and problem.line > 0


def _dialog(trial_id: str, tmp_path: Path, lines: list[str]) -> tuple[Dialog, io.StringIO]:
    trial, screener, _ = _loaded(trial_id)
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, soft_wrap=True)
    session = store.Session(path=tmp_path / "s.json", trial_id=trial.id, trial_hash=trial.content_hash,
                            language="en", candidate_id="P-1")
    reader = LineReader(io.StringIO("".join(f"{line}\n" for line in lines)), console)
    return Dialog(trial, screener, load_dialog(dialog_path(trial.id, "en"), trial), reader, console,
                  session, save=store.save), out


def test_the_dialog_asks_the_laboratory_egfr_before_the_creatinine(tmp_path: Path) -> None:
    _, _, table = _loaded(T2D)
    given = {k: v for k, v in case_fields(table, {"unset": ["creatinine"]}).items() if k != "candidate_id"}
    dialog, out = _dialog(T2D, tmp_path, ["87", ""])
    assert dialog.prefill(given) == []
    assert dialog.next_fact() == "egfr"
    result = dialog.run()
    assert result.decision == "eligible" and "creatinine" not in dialog.session.answers
    assert "eGFR reported by the central laboratory?" in out.getvalue()


def test_an_unknown_laboratory_egfr_makes_the_dialog_ask_the_creatinine(tmp_path: Path) -> None:
    _, _, table = _loaded(T2D)
    given = {k: v for k, v in case_fields(table, {"unset": ["creatinine"]}).items() if k != "candidate_id"}
    dialog, _ = _dialog(T2D, tmp_path, ["?", "80", ""])
    assert dialog.prefill(given) == []
    result = dialog.run()
    assert result.decision == "eligible" and dialog.session.answers["egfr"] is None
    assert dialog.session.answers["creatinine"] is not None


def test_a_measured_clearance_in_the_terminal_dialog(tmp_path: Path) -> None:
    """A clinician enters a measured clearance once the weight is known: the dialog asks it
    beside Cockcroft-Gault and the trace it leaves verifies."""
    pexpect = pytest.importorskip("pexpect")
    _, _, table = _loaded(CAR_T)
    answers = tmp_path / "known.json"
    fields = case_fields(table, {"set": {"creatinine": "1.8 mg/dL", "creatinine_uln": "1.0 mg/dL", "weight": 72}})
    # an answers file gives a list as JSON text, like a CSV cell
    answers.write_text(json.dumps({k: json.dumps(v) if isinstance(v, list) else v
                                   for k, v in fields.items() if k != "candidate_id"}), encoding="utf-8")
    trace = tmp_path / "s.trace.jsonl"
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1", PYTHONPATH=str(ROOT),
               XDG_STATE_HOME=str(tmp_path / "state"), COLUMNS="200")
    child = pexpect.spawn(sys.executable, ["-m", "screener", "screen", "--trial", CAR_T, "--candidate-id", "P-1",
                                           "--answers", str(answers), "--session", str(tmp_path / "s.json"),
                                           "--trace", str(trace)],
                          env=env, cwd=str(tmp_path), encoding="utf-8", timeout=30, dimensions=(50, 200))
    child.expect_exact("Measured creatinine clearance (timed urine collection)?")
    child.expect_exact(">")
    child.send("62\r")
    child.expect_exact("Decision: eligible")
    child.expect_exact("Press Enter to finish")
    child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    verified(trace)
