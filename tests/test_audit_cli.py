"""`screener verify` and `screener explain` as a user runs them: messages and exit status."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from audit_support import GOLDEN, TINY, batch_candidate, dialog_with_correction, run_cli as run
from screener.audit.trace import canonical, record_hash

UPDATE = os.environ.get("SCREENER_UPDATE_GOLDEN") == "1"


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "other.yaml").write_text("trial: {}\n")
    shutil.copy(TINY, directory / "tiny-renamed.yaml")
    return directory


@pytest.fixture()
def trace_path(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return batch_candidate(directory, "ineligible").trace


def test_verify_finds_the_rules_by_hash_and_confirms_the_decision(trace_path, rules_dir):
    status, out, err = run("verify", str(trace_path), "--rules-dir", str(rules_dir))
    assert (status, err) == (0, "")
    # the verdict, first: intact and replaying, but nobody vouches for who wrote it
    assert out.startswith(f"{trace_path}: intact but unsigned: its records hold together and "
                          "replay to the recorded decision, but anyone could have written them\n")
    assert "verified" not in out
    assert "  chain: 12 records intact and sealed; file sha256 " in out
    assert f"  replay: {rules_dir / 'tiny-renamed.yaml'} gives the recorded decision: ineligible\n" in out


def test_verify_with_rules_option(trace_path):
    status, out, _ = run("verify", str(trace_path), "--rules", str(TINY))
    assert status == 0
    assert "gives the recorded decision: ineligible" in out


def test_verify_names_the_first_bad_line(trace_path, rules_dir):
    lines = trace_path.read_text().splitlines(keepends=True)
    trace_path.write_text("".join(lines[:2] + lines[3:]))
    status, out, err = run("verify", str(trace_path), "--rules-dir", str(rules_dir))
    assert (status, out) == (1, "")
    assert err == (f"{trace_path}:3: chain broken: sequence number 3, expected 2\n"
                   "verify: FAILED\n")


def test_verify_calls_a_trace_cut_before_its_end_incomplete_not_verified(trace_path, rules_dir):
    lines = trace_path.read_text().splitlines(keepends=True)
    trace_path.write_text("".join(lines[:-1]))
    status, out, err = run("verify", str(trace_path), "--rules-dir", str(rules_dir))
    assert (status, out) == (3, "")
    assert err.startswith(f"{trace_path}: incomplete, 5 facts recorded, last at 4 Mar 2026, 09:30:00 UTC+00:00\n"
                          "  the 11 records written so far are intact;")
    assert err.endswith("verify: INCOMPLETE\n")


def test_verify_still_fails_a_cut_trace_whose_chain_is_broken(trace_path, rules_dir):
    lines = trace_path.read_text().splitlines(keepends=True)
    trace_path.write_text("".join(lines[:3] + lines[4:-1]))
    status, _, err = run("verify", str(trace_path), "--rules-dir", str(rules_dir))
    assert status == 1
    assert err.endswith("verify: FAILED\n") and "incomplete" not in err


def test_verify_fails_when_no_rules_file_has_the_hash(trace_path, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run("verify", str(trace_path), "--rules-dir", str(empty))
    assert status == 1
    assert "cannot replay" in err and "no rules file with hash" in err


def test_verify_refuses_rules_with_another_hash(trace_path, tmp_path):
    edited = tmp_path / "edited.yaml"
    edited.write_text(TINY.read_text().replace("ecog <= 1", "ecog <= 3"))
    status, _, err = run("verify", str(trace_path), "--rules", str(edited))
    assert status == 1
    assert "is not the trace's" in err


def test_verify_fails_when_the_recorded_decision_differs_from_the_replay(trace_path, rules_dir):
    """A chain rebuilt from scratch around an edited decision is caught by the replay."""
    records = [json.loads(line) for line in trace_path.read_text().splitlines()]
    prev, out_lines, digest_input = "0" * 64, [], b""
    for record in records:
        if record["type"] == "decision":
            record["decision"] = "eligible"
        if record["type"] == "end":
            import hashlib
            record["trace_hash"] = hashlib.sha256(digest_input).hexdigest()
        record["prev"] = prev
        record["hash"] = record_hash(record)
        prev = record["hash"]
        line = canonical(record) + "\n"
        digest_input += line.encode()
        out_lines.append(line)
    trace_path.write_text("".join(out_lines))
    status, _, err = run("verify", str(trace_path), "--rules-dir", str(rules_dir))
    assert status == 1
    assert err.splitlines()[:2] == [
        f"{trace_path}:11: replaying with {rules_dir / 'tiny-renamed.yaml'} gives a different result:",
        "  line 11: decision: recorded 'eligible', replayed 'ineligible'",
    ]


def test_verify_missing_file_is_a_usage_error(tmp_path):
    status, _, err = run("verify", str(tmp_path / "nope.jsonl"))
    assert status == 2
    assert "cannot read" in err


def test_explain_matches_reviewed_golden_text(tmp_path):
    dialog_with_correction(tmp_path / "t.jsonl")
    status, out, err = run("explain", str(tmp_path / "t.jsonl"))
    assert (status, err) == (0, "")
    golden = GOLDEN / "explain_dialog_corrected.txt"
    if UPDATE:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8")


def test_explain_marks_an_unfinished_trace(trace_path):
    lines = trace_path.read_text().splitlines(keepends=True)
    trace_path.write_text("".join(lines[:4]))
    status, out, _ = run("explain", str(trace_path))
    assert status == 0
    assert out.startswith("INCOMPLETE TRACE: no end record")
    assert "Decision: none recorded" in out


def test_explain_refuses_an_altered_trace(trace_path):
    trace_path.write_text(trace_path.read_text().replace('"value":3', '"value":1'))
    status, out, err = run("explain", str(trace_path))
    assert (status, out) == (1, "")
    assert "chain broken: record hash does not match its content; not explaining" in err


def test_explain_shows_markup_in_ids_as_text(tmp_path):
    written = batch_candidate(tmp_path, "eligible", "[bold red]X[/] <b>")
    _, out, _ = run("explain", str(written.trace))
    assert "Candidate: [bold red]X[/] <b>" in out


def test_screener_main_runs_verify_with_its_exit_status(trace_path, rules_dir, capsys):
    from screener.cli import main

    assert main(["verify", str(trace_path), "--rules-dir", str(rules_dir)]) == 0
    trace_path.write_text(trace_path.read_text().replace('"value":3', '"value":2'))
    assert main(["verify", str(trace_path), "--rules-dir", str(rules_dir)]) == 1
    assert f"{trace_path}:4: chain broken" in capsys.readouterr().err
