"""Regression tests: names from input that planted files outside their folders, and FIFOs
that hung the scanners. Each is named after what broke."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from screener.cli import main
from screener.paths import PathEscape, inside, is_safe_name

from conftest import ROOT, TRIAL

SITE = ROOT / "tests" / "data" / "site" / "rules"
SITE_RULES = (SITE / "SITE-2.yaml").read_text(encoding="utf-8")
HOSTILE_IDS = ["../../../ESCAPED", "/abs/path", "a/../../b", "..", "a..b", ".hidden", "-x"]


def _without_shipped(tmp_path, monkeypatch) -> None:
    """Scans find only the test's own folders: the shipped trials would cost seconds to check."""
    empty = tmp_path / "no-shipped"
    empty.mkdir()
    monkeypatch.setenv("SCREENER_RULES", str(empty))
    monkeypatch.setenv("SCREENER_DIALOGS", str(empty))


@pytest.fixture
def no_shipped(tmp_path, monkeypatch):
    _without_shipped(tmp_path, monkeypatch)


def _site_with_id(directory: Path, trial_id: str) -> Path:
    """A site rules folder whose one trial claims `trial_id` (file SITE-2.yaml, line 4)."""
    rules = directory / "site" / "rules"
    rules.mkdir(parents=True)
    assert "  id: SITE-2\n" in SITE_RULES
    (rules / "SITE-2.yaml").write_text(SITE_RULES.replace("  id: SITE-2\n", f"  id: '{trial_id}'\n"),
                                       encoding="utf-8")
    return rules


def _files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def _absolute(trial_id: str, tmp_path: Path) -> str:
    """`/abs/path` made to point into the test's own folder, so a failure plants nothing real."""
    return str(tmp_path / "abs" / "path") if trial_id == "/abs/path" else trial_id


@pytest.mark.parametrize("trial_id", HOSTILE_IDS)
def test_check_accepted_a_trial_id_that_is_a_path(tmp_path, capsys, trial_id):
    trial_id = _absolute(trial_id, tmp_path)
    rules = _site_with_id(tmp_path, trial_id)
    assert main(["check", str(rules / "SITE-2.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{rules / 'SITE-2.yaml'}:4:8: bad-name: trial id {trial_id!r} must be letters, digits" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("trial_id", HOSTILE_IDS)
def test_a_site_trial_id_planted_traces_and_letters_outside_their_folders(tmp_path, capsys, trial_id):
    trial_id = _absolute(trial_id, tmp_path)
    rules = _site_with_id(tmp_path / "work", trial_id)
    candidates = tmp_path / "work" / "c.csv"
    candidates.write_text("candidate_id,ecog\nA,1\n", encoding="utf-8")
    before = _files_under(tmp_path)
    deep = tmp_path / "work" / "out" / "a" / "b"
    code = main(["batch", str(candidates), "--rules-dir", str(rules), "--traces", str(deep / "traces"),
                 "--letters", str(deep / "letters"), "-o", str(tmp_path / "work" / "r.jsonl")])
    assert code == 2
    assert "SITE-2.yaml:4:8: bad-name: trial id" in capsys.readouterr().err
    assert _files_under(tmp_path) == before  # nothing written anywhere, not even the folders


@pytest.mark.parametrize("command", ["trials", "check", "match"])
def test_every_scan_of_a_rules_folder_reports_a_bad_trial_id(tmp_path, capsys, monkeypatch, command):
    if command != "trials":  # trials shows that the good ones are still listed
        _without_shipped(tmp_path, monkeypatch)
    rules = _site_with_id(tmp_path, "../../../ESCAPED")
    candidates = tmp_path / "c.csv"
    candidates.write_text("candidate_id,ecog\nA,1\n", encoding="utf-8")
    args = [command, *([str(candidates)] if command == "match" else []), "--rules-dir", str(rules)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "SITE-2.yaml:4:8: bad-name: trial id '../../../ESCAPED'" in captured.err
    assert "ESCAPED" not in captured.out  # reported, never used
    if command == "trials":
        assert TRIAL in captured.out  # the good trials are still listed


def test_a_trial_id_on_the_trials_path_planted_files_from_the_dialog(tmp_path, capsys, monkeypatch):
    rules = _site_with_id(tmp_path, "../ESCAPED")
    monkeypatch.setenv("SCREENER_TRIALS_PATH", str(rules))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    before = _files_under(tmp_path)
    code = main(["screen", "--all-trials", "--trace", str(tmp_path / "p1.trace.jsonl")])
    assert code == 2
    assert "SITE-2.yaml:4:8: bad-name" in capsys.readouterr().err
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize("name", ["../../../ESCAPED", "/abs/path", "a/../../b", "..", ".", "", "a\0b"])
def test_a_name_from_input_cannot_lead_out_of_its_folder(tmp_path, name):
    with pytest.raises(PathEscape):
        inside(tmp_path, name)
    assert not is_safe_name(name)


def test_a_link_named_like_a_trace_cannot_lead_out_of_the_folder(tmp_path):
    from screener.audit.artifacts import artifact_paths, safe_name

    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / f"{safe_name('A')}.trace.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(PathEscape):
        artifact_paths("A", traces, None)
    assert inside(traces, "x.trace.jsonl") == traces / "x.trace.jsonl"


def test_a_batch_trace_behind_a_link_out_of_the_folder_is_a_warning_not_a_file(tmp_path, capsys):
    from screener.audit.artifacts import safe_name

    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / f"{safe_name('A')}.trace.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    (tmp_path / "c.csv").write_text("candidate_id,ecog\nA,3\n", encoding="utf-8")
    code = main(["batch", "--trial", TRIAL, str(tmp_path / "c.csv"), "--traces", str(traces),
                 "-o", str(tmp_path / "r.jsonl")])
    assert code == 4
    assert "row 1: trace not written: PathEscape" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere.jsonl").exists()


def test_the_per_trial_trace_name_stays_beside_the_trace(tmp_path):
    from screener.dialog.cli import _per_trial

    assert _per_trial(tmp_path / "p1.trace.jsonl", "SITE-2") == tmp_path / "p1.SITE-2.trace.jsonl"
    with pytest.raises(PathEscape):
        _per_trial(tmp_path / "p1", "../../ESCAPED")


def test_a_batch_trial_folder_is_proven_inside_the_traces_folder(tmp_path):
    from screener.run.batch import AuditOptions
    from screener.run.portfolio import trial_audit

    audit = AuditOptions(str(tmp_path / "traces"), str(tmp_path / "letters"), None, "c.csv")
    made = trial_audit(audit, "SITE-2")
    assert made is not None and made.traces_dir == str(tmp_path / "traces" / "SITE-2")
    for trial_id in ("../ESCAPED", str(tmp_path / "abs"), ".."):
        with pytest.raises(PathEscape):
            trial_audit(audit, trial_id)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["letters", "traces"]


@pytest.mark.parametrize("name", ["../screening-x", "..", "sub/screening-x", "screening-link"])
def test_a_session_id_is_a_name_in_the_sessions_folder(tmp_path, name, monkeypatch):
    from screener.dialog import store

    sessions = tmp_path / "sessions"
    sessions.mkdir()
    (tmp_path / "screening-x.json").write_text("{}", encoding="utf-8")
    (sessions / "screening-link.json").symlink_to(tmp_path / "screening-x.json")
    monkeypatch.chdir(tmp_path / "sessions")  # so that no name is also a path to a file here
    assert store.find(Path(name), sessions) is None
    (sessions / "screening-y.json").write_text("{}", encoding="utf-8")
    assert store.find(Path("screening-y"), sessions) == sessions / "screening-y.json"


# --- FIFOs ------------------------------------------------------------------------------------

class _Hung(Exception):
    pass


def _finishes(run, seconds: float = 30) -> int:
    """`run()`'s result, failing the test if it is still waiting (on a FIFO) after `seconds`:
    an alarm interrupts the wait."""
    def hung(signum, frame):
        raise _Hung()

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return run()
    except _Hung:
        pytest.fail(f"still waiting after {seconds} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["trials", "check", "batch"])
def test_a_fifo_in_a_rules_folder_hung_the_scanners(tmp_path, capsys, no_shipped, command):
    rules = tmp_path / "rules"
    rules.mkdir()
    fifo = _fifo(rules / "PIPE.yaml")
    candidates = tmp_path / "c.csv"
    candidates.write_text("candidate_id,ecog\nA,1\n", encoding="utf-8")
    args = [command, *([str(candidates)] if command == "batch" else []), "--rules-dir", str(rules)]
    assert _finishes(lambda: main(args)) == 2
    assert f"{fifo}:1:1: unreadable: not a regular file" in capsys.readouterr().err


def test_a_fifo_on_the_trials_path_and_among_dialogs_hung_batch_and_check(tmp_path, capsys, monkeypatch,
                                                                           no_shipped):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "SITE-2.yaml").write_text(SITE_RULES, encoding="utf-8")
    dialog = _fifo(rules / "SITE-2.en.yaml")
    monkeypatch.setenv("SCREENER_TRIALS_PATH", str(rules))
    assert _finishes(lambda: main(["check"])) == 2
    assert f"{dialog}:1:1: unreadable" in capsys.readouterr().err
    candidates = tmp_path / "c.csv"
    candidates.write_text("candidate_id,ecog\nA,1\n", encoding="utf-8")
    # the rules file itself is regular, so batch screens without opening the dialog
    assert _finishes(lambda: main(["batch", str(candidates), "--trial", "SITE-2",
                                   "-o", str(tmp_path / "r.jsonl")])) == 0


def test_a_fifo_named_pub_among_the_trusted_keys_hung_verify(tmp_path, capsys):
    from signing_support import signed_candidate, trusted_dir

    from audit_support import TINY

    trace = signed_candidate(tmp_path, "ineligible").trace
    trusted = trusted_dir(tmp_path / "trusted")
    fifo = _fifo(trusted / "planted.pub")
    rules = str(TINY)
    code = _finishes(lambda: main(["verify", str(trace), "--rules", rules, "--trusted-keys", str(trusted)]))
    assert code == 2
    assert "planted.pub" in capsys.readouterr().err


def test_a_fifo_among_saved_sessions_hung_resume_and_sessions(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from screener.dialog import store

    folder = store.state_dir()
    folder.mkdir(parents=True)
    fifo = _fifo(folder / "screening-20990101-000000-abcdef.json")
    assert _finishes(lambda: main(["sessions"])) == 0
    assert store.latest() is None
    assert _finishes(lambda: main(["resume", fifo.stem])) == 2


def test_a_fifo_on_the_trials_path_hung_batch(tmp_path, capsys, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    fifo = _fifo(rules / "PIPE.yaml")
    monkeypatch.setenv("SCREENER_TRIALS_PATH", str(rules))
    candidates = tmp_path / "c.csv"
    candidates.write_text("candidate_id,ecog\nA,1\n", encoding="utf-8")
    assert _finishes(lambda: main(["batch", str(candidates), "-o", str(tmp_path / "r.jsonl")])) == 2
    assert f"{fifo}:1:1: unreadable: not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()
    # a trial named beside it is screened: the FIFO is never opened
    assert _finishes(lambda: main(["batch", str(candidates), "--trial", TRIAL, "-o", str(tmp_path / "r.jsonl")])) == 0


def test_a_fifo_among_the_rules_verify_searches_hung_it(tmp_path, capsys):
    import shutil

    from signing_support import signed_candidate

    from audit_support import TINY

    trace = signed_candidate(tmp_path, "ineligible").trace
    rules = tmp_path / "rules"
    rules.mkdir()
    _fifo(rules / "A-first.yaml")  # sorted before the real one
    shutil.copy(TINY, rules / "tiny.yaml")
    assert _finishes(lambda: main(["verify", str(trace), "--rules-dir", str(rules)])) == 0
    assert "verified" in capsys.readouterr().out


def test_a_fifo_in_a_folder_of_fhir_records_hung_the_reader(tmp_path):
    from screener.sources.fhir import FhirSource

    bundles = tmp_path / "bundles"
    bundles.mkdir()
    patient = {"resourceType": "Patient", "id": "p1", "gender": "male"}
    (bundles / "a.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                "entry": [{"resource": patient}]}), encoding="utf-8")
    _fifo(bundles / "b.json")
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(json.dumps(patient) + "\n", encoding="utf-8")
    _fifo(export / "Observation.ndjson")
    for folder in (bundles, export):
        found = _finishes(lambda: list(FhirSource(str(folder)).patients()))
        assert [(p.key, p.problems) for p in found] == [("p1", [])]
