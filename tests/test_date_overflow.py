"""Dates near the end of the calendar: arithmetic past 9999-12-31 is an error, not a crash."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from rich.console import Console

from screener.dialog import store
from screener.dialog.flow import Dialog
from screener.dialog.spec import load_dialog
from screener.dialog.terminal import LineReader
from screener.errors import ImpossibleFacts
from screener.rules.functions import DerivationError, add_months
from screener.trials import dialog_path


def test_add_months_past_9999_overflowed_with_a_value_error():
    assert add_months(dt.date(9999, 6, 30), 6) == dt.date(9999, 12, 30)
    with pytest.raises(DerivationError, match="6 months after 9999-09-01 is past the year 9999"):
        add_months(dt.date(9999, 9, 1), 6)


def test_a_start_date_in_9999_crashed_the_engine(trial, screener):
    start, progression = (name for derivation in trial.derivations if derivation.function == "before_months_after"
                          for name in derivation.inputs)
    with pytest.raises(ImpossibleFacts, match="past the year 9999"):
        screener.evaluate({start: dt.date(9999, 9, 1), progression: dt.date(9999, 10, 1)})


def test_a_start_date_in_9999_crashed_the_dialog(trial, screener, tmp_path):
    start, progression = (name for derivation in trial.derivations if derivation.function == "before_months_after"
                          for name in derivation.inputs)
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, soft_wrap=True)
    session = store.Session(path=tmp_path / "s.json", trial_id=trial.id, trial_hash=trial.content_hash,
                            language="en", candidate_id="P-1")
    dialog = Dialog(trial, screener, load_dialog(dialog_path(trial.id, "en"), trial),
                    LineReader(io.StringIO(""), console), console, session, save=store.save,
                    today=dt.date(2026, 11, 25))
    problems = dialog.prefill({start: "9999-09-01", progression: "9999-10-01"})
    assert problems == ["That cannot be right together with the other answers: Imatinib start date, "
                        "First progression on imatinib cannot all hold. Check the dates, or correct "
                        "an earlier answer with change FACT."]
    assert start not in session.answers and progression not in session.answers
