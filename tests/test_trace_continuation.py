"""A paused dialog's trace goes on in the same file: earlier records keep their times, the
pause and the resumption are records of their own, and a trace changed meanwhile is refused."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from audit_support import NOW, TINY, run_cli, ticking_clock, tiny_trial
from screener.audit.artifacts import ContinuationRefused, TraceObserver
from screener.audit.chain import read_trace
from screener.audit.trace import Source, canonical, record_hash
from screener.engine import Screener

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

FIRST = {"birth_date": dt.date(1980, 1, 31), "screening_date": dt.date(2026, 3, 4)}
LATER = {"ecog": 1, "pregnant": False}


def paused(path: Path, reason: str = "quit") -> tuple[int, str]:
    """A dialog that answers FIRST and stops; returns (records, last hash) as a session keeps."""
    observer = TraceObserver(path, tiny_trial(), operator="nurse-7", candidate_id="D-042",
                             clock=ticking_clock())
    for name, value in FIRST.items():
        observer.fact(name, value, Source.dialog(name))
    observer.pause(reason)
    state = observer.writer.seq, observer.writer.prev
    observer.close()
    return state


def resumed(path: Path, records: int, last_hash: str, **options: Any) -> TraceObserver:
    observer = TraceObserver.continuing(path, tiny_trial(), records=records, last_hash=last_hash,
                                        clock=ticking_clock(NOW + dt.timedelta(days=1)), **options)
    observer.resume("nurse-9")
    return observer


def finish(observer: TraceObserver) -> None:
    for name, value in LATER.items():
        observer.fact(name, value, Source.dialog(name))
    observer.result(Screener(tiny_trial()).evaluate({**FIRST, **LATER}))


def test_a_resumed_trace_is_one_chain_that_verifies(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    records, last = paused(path)
    before = path.read_bytes()
    finish(resumed(path, records, last))
    assert path.read_bytes().startswith(before)  # appended to, never rewritten
    trace = read_trace(path)
    assert trace.sealed and trace.decision["decision"] == "eligible"
    kinds = [r["type"] for r in trace.records
             if r["type"] != "firing" and r.get("source", {}).get("kind") != "derived"]
    assert kinds == ["start", "fact", "fact", "pause", "resume", "fact", "fact", "decision", "end"]
    times = {r["fact"]: r["time"] for r in trace.of_type("fact")}
    assert times["birth_date"] == "2026-03-04T09:30:01.000000+00:00"  # the original answer time
    assert times["ecog"].startswith("2026-03-05")
    assert trace.of_type("pause")[0]["reason"] == "quit"
    assert trace.of_type("resume")[0]["operator"] == "nurse-9"
    status, out, err = run_cli("verify", str(path), "--rules", str(TINY))
    assert (status, err) == (0, ""), err
    assert "gives the recorded decision: eligible" in out


def test_explain_shows_when_the_dialog_was_left_and_taken_up(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    finish(resumed(path, *paused(path, "interrupt")))
    status, out, _ = run_cli("explain", str(path))
    assert status == 0
    assert "Paused: 4 Mar 2026, 09:30:03 UTC+00:00 (interrupted with Ctrl-C)\n" in out
    assert "Resumed: 5 Mar 2026, 09:30:00 UTC+00:00 by nurse-9\n" in out


def test_a_paused_trace_is_incomplete_not_failed(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    paused(path, "eof")
    status, out, err = run_cli("verify", str(path), "--rules", str(TINY))
    assert (status, out) == (3, "")
    assert err == (f"{path}: incomplete, 2 facts recorded, last at 4 Mar 2026, 09:30:02 UTC+00:00\n"
                   "  the 4 records written so far are intact; the screening has not finished\n"
                   "  paused (input ended with Ctrl-D) at 4 Mar 2026, 09:30:03 UTC+00:00: screener resume continues it\n"
                   "verify: INCOMPLETE\n")


def test_a_trace_cut_short_by_a_crash_is_incomplete(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    observer = TraceObserver(path, tiny_trial(), clock=ticking_clock())
    observer.fact("ecog", 1, "dialog")
    observer.close()  # no pause: the process died
    status, _, err = run_cli("verify", str(path))
    assert status == 3
    assert err.startswith(f"{path}: incomplete, 1 facts recorded, last at 4 Mar 2026, 09:30:01 UTC+00:00\n")
    assert "paused" not in err


def _rechained(path: Path, edit) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    edit(records)
    prev = "0" * 64
    lines = []
    for record in records:
        record["prev"] = prev
        record["hash"] = record_hash(record)
        prev = record["hash"]
        lines.append(canonical(record) + "\n")
    path.write_text("".join(lines))


def _edit_a_value(path: Path) -> None:
    path.write_text(path.read_text().replace('"1980-01-31"', '"1950-01-31"'))


def _remove(path: Path) -> None:
    path.unlink()


def _append_a_fact(path: Path) -> None:
    observer = TraceObserver.continuing(path, tiny_trial(), **_state(path))
    observer.fact("ecog", 0, "dialog")
    observer.close()


def _rechain_an_edit(path: Path) -> None:
    _rechained(path, lambda records: records[1].update(value="1950-01-31"))


def _drop_the_pause(path: Path) -> None:
    _rechained(path, lambda records: records.pop())


def _state(path: Path) -> dict[str, Any]:
    records = path.read_text().splitlines()
    return {"records": len(records), "last_hash": json.loads(records[-1])["hash"]}


@pytest.mark.parametrize(("change", "problem", "says"), [
    (_edit_a_value, "altered", "line 2: record hash does not match its content"),
    (_remove, "missing", "the trace file is gone"),
    (_append_a_fact, "altered", "it holds 5 records"),
    (_rechain_an_edit, "altered", "it holds 4 records ending in"),
    (_drop_the_pause, "altered", "it holds 3 records"),
], ids=["edited", "removed", "appended", "edited-and-rechained", "record-dropped"])
@pytest.mark.tampered
def test_a_trace_changed_while_paused_is_not_continued(tmp_path: Path, change, problem, says):
    path = tmp_path / "t.jsonl"
    records, last = paused(path)
    change(path)
    after = path.read_bytes() if path.exists() else None
    with pytest.raises(ContinuationRefused) as refused:
        TraceObserver.continuing(path, tiny_trial(), records=records, last_hash=last)
    assert refused.value.problem == problem
    assert says in str(refused.value)
    assert (path.read_bytes() if path.exists() else None) == after  # nothing written


def test_a_sealed_trace_is_not_continued(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    observer = resumed(path, *paused(path))
    finish(observer)
    with pytest.raises(ContinuationRefused, match="sealed") as refused:
        TraceObserver.continuing(path, tiny_trial(), **_state(path))
    assert refused.value.problem == "sealed"


def test_a_trace_started_under_other_rules_is_not_continued(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    records, last = paused(path)
    edited = tmp_path / "tiny.yaml"
    edited.write_text(TINY.read_text().replace("ecog <= 1", "ecog <= 2"))
    from screener.rules.check import load_trial
    with pytest.raises(ContinuationRefused) as refused:
        TraceObserver.continuing(path, load_trial(edited), records=records, last_hash=last)
    assert refused.value.problem == "rules"


def test_an_existing_letter_is_refused_before_the_dialog_goes_on(tmp_path: Path):
    path, letter = tmp_path / "t.jsonl", tmp_path / "l.md"
    records, last = paused(path)
    letter.write_text("someone else's letter")
    with pytest.raises(ContinuationRefused) as refused:
        TraceObserver.continuing(path, tiny_trial(), records=records, last_hash=last,
                                 letter_path=letter)
    assert refused.value.problem == "letter"
    assert letter.read_text() == "someone else's letter"


def test_a_trace_may_be_paused_and_resumed_more_than_once(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    observer = resumed(path, *paused(path))
    observer.fact("ecog", 1, Source.dialog("ecog"))
    observer.pause("interrupt")
    observer.close()
    again = resumed(path, **_state(path))
    again.fact("pregnant", False, Source.dialog("pregnant"))
    again.result(Screener(tiny_trial()).evaluate({**FIRST, **LATER}))
    trace = read_trace(path)
    assert [r["type"] for r in trace.records].count("resume") == 2
    assert run_cli("verify", str(path), "--rules", str(TINY))[0] == 0


def test_a_trace_still_open_in_another_screening_is_not_continued(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    running = TraceObserver(path, tiny_trial(), clock=ticking_clock())  # the first dialog, still open
    running.fact("ecog", 1, "dialog")
    before = path.read_bytes()
    with pytest.raises(ContinuationRefused) as refused:
        TraceObserver.continuing(path, tiny_trial(), **_state(path))
    assert refused.value.problem == "busy"
    running.close()
    assert path.read_bytes() == before
    TraceObserver.continuing(path, tiny_trial(), **_state(path)).close()  # free once it is closed
