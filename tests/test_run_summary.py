"""What standard error says after a batch run: titles, one line per bad row, "did you mean"."""
from __future__ import annotations

from pathlib import Path

from screener.cli import main
from screener.run.run_summary import suggestion

from conftest import TRIAL

ROWS = ("candidate_id,ecgo,shoe_size,birth_date,sex,informed_consent\n"
        "A,1,44,1966-02-29,male,yes\n"
        "B,1,42,1960-01-01,male,no\n")


def _run(tmp_path: Path, capsys, *trials: str) -> str:
    source = tmp_path / "in.csv"
    source.write_text(ROWS, encoding="utf-8")
    main(["batch", str(source), "-o", str(tmp_path / "out.jsonl"), *(a for t in trials for a in ("--trial", t))])
    return capsys.readouterr().err


def test_a_typed_column_gets_did_you_mean_and_an_unrelated_one_none(tmp_path: Path, capsys):
    err = _run(tmp_path, capsys, TRIAL)
    assert "ecgo (did you mean ecog?)" in err
    assert "shoe_size," in err or "shoe_size\n" in err
    assert "shoe_size (did you mean" not in err


def test_a_bad_value_shared_by_every_trial_is_one_line_without_the_value(tmp_path: Path, capsys):
    err = _run(tmp_path, capsys, TRIAL, "NCT06534411", "NCT06898385")
    lines = [line for line in err.splitlines() if line.startswith("error: row")]
    assert lines == ["error: row 1: bad value of birth_date (every trial)"]
    assert "1966-02-29" not in err  # the results hold the value; standard error does not


def test_the_summary_names_failed_criteria_by_title(tmp_path: Path, capsys):
    err = _run(tmp_path, capsys, TRIAL)
    assert "failed I8: Informed consent" in err


def test_suggestions_only_for_close_names():
    facts = ["ecog", "hba1c", "birth_date", "informed_consent"]
    assert suggestion("HbA1C", facts) == "hba1c"
    assert suggestion("birthdate", facts) == "birth_date"
    assert suggestion("weight", facts) is None


def test_the_run_ends_saying_how_many_records_went_where_per_trial(tmp_path: Path, capsys):
    err = _run(tmp_path, capsys, TRIAL, "NCT06534411")
    assert err.rstrip().endswith(f"4 records written to {tmp_path / 'out.jsonl'}: 2 for each of 2 trials "
                                 f"({TRIAL}, NCT06534411), one per candidate and trial")
    err = _run(tmp_path, capsys, TRIAL)
    assert err.rstrip().endswith(f"2 records written to {tmp_path / 'out.jsonl'}, one per candidate")
