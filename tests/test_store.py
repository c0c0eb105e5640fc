"""The screening store: a nightly run re-screens only what changed, and says who changed."""
from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from screener.cli import main
from screener.run.store import open_store

from conftest import RULES, ROOT, TRIAL

SAMPLE = ROOT / "examples" / "candidates.csv"


def _rows() -> tuple[list[str], list[dict[str, str]]]:
    with SAMPLE.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, names: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, names)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _batch(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["batch", *argv])
    return status, capsys.readouterr().err


def test_a_second_run_reuses_every_result_and_writes_the_same_bytes(tmp_path, capsys):
    store = tmp_path / "store.db"
    full, first, second = tmp_path / "full.jsonl", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert _batch(capsys, str(SAMPLE), "--all-trials", "-o", str(full))[0] == 1
    status, err = _batch(capsys, str(SAMPLE), "--all-trials", "-o", str(first), "--store", str(store))
    assert status == 1
    pairs = 3 * len(_rows()[1])  # every candidate for each of the three shipped trials
    assert f"store: 0 results reused, {pairs} screened ({pairs} not in the store before)" in err
    status, err = _batch(capsys, str(SAMPLE), "--all-trials", "-o", str(second), "--store", str(store))
    assert status == 1
    assert f"store: {pairs} results reused, 0 screened" in err
    assert first.read_bytes() == full.read_bytes() == second.read_bytes()
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def test_match_takes_no_store(tmp_path, capsys):
    # a match record ranks by every criterion's outcome, which a stored record does not keep
    with pytest.raises(SystemExit) as exc:
        main(["match", str(SAMPLE), "--store", str(tmp_path / "store.db")])
    assert exc.value.code == 2
    assert not (tmp_path / "store.db").exists()


def test_only_the_changed_candidate_is_screened_again_and_changes_lists_it(tmp_path, capsys):
    names, rows = _rows()
    store = tmp_path / "store.db"
    before = _write(tmp_path / "monday.csv", names, rows)
    assert _batch(capsys, str(before), "--trial", TRIAL, "-o", str(tmp_path / "m.jsonl"),
                  "--store", str(store))[0] == 1
    eligible = next(r for r in rows if r["candidate_id"] == "ZS-001")
    eligible["ecog"] = "3"  # ZS-001 was eligible; ECOG 3 is beyond the protocol's limit
    after = _write(tmp_path / "tuesday.csv", names, rows)
    stored, full = tmp_path / "stored.jsonl", tmp_path / "full.jsonl"
    status, err = _batch(capsys, str(after), "--trial", TRIAL, "-o", str(stored), "--store", str(store))
    assert f"store: {len(rows) - 1} results reused, 1 screened (1 with changed facts)" in err
    _batch(capsys, str(after), "--trial", TRIAL, "-o", str(full))
    assert stored.read_bytes() == full.read_bytes()
    record = next(json.loads(line) for line in stored.read_text().splitlines() if "ZS-001" in line)
    assert record["decision"] == "ineligible"

    capsys.readouterr()
    assert main(["changes", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"candidate_id": "ZS-001", "trial_id": TRIAL, "before": "eligible", "now": "ineligible"}]
    assert "decisions changed in the latest run: 1" in err

    # an unchanged night after that: nothing changed in the latest run
    _batch(capsys, str(after), "--trial", TRIAL, "-o", str(stored), "--store", str(store))
    assert main(["changes", "--store", str(store)]) == 0
    assert capsys.readouterr().out == ""


def test_an_amended_rules_file_screens_its_trial_again(tmp_path, capsys):
    store = tmp_path / "store.db"
    amended = tmp_path / f"{TRIAL}.yaml"
    amended.write_bytes(RULES.read_bytes())
    out = tmp_path / "out.jsonl"
    _batch(capsys, str(SAMPLE), "--rules", str(amended), "-o", str(out), "--store", str(store))
    amended.write_bytes(RULES.read_bytes() + b"\n# amendment 2: the same criteria\n")
    status, err = _batch(capsys, str(SAMPLE), "--rules", str(amended), "-o", str(out), "--store", str(store))
    n = len(_rows()[1])
    assert f"store: 0 results reused, {n} screened ({n} for the changed rules of {TRIAL})" in err
    status, err = _batch(capsys, str(SAMPLE), "--rules", str(amended), "-o", str(out), "--store", str(store))
    assert f"store: {len(_rows()[1])} results reused, 0 screened" in err


def test_a_run_that_does_not_finish_leaves_the_store_as_it_was(tmp_path, capsys):
    store_path = tmp_path / "store.db"
    _batch(capsys, str(SAMPLE), "--trial", TRIAL, "-o", str(tmp_path / "a.jsonl"), "--store", str(store_path))
    store = open_store(str(store_path))
    store.begin()
    store.remember("ZS-001", TRIAL, "facts", "rules", {"decision": "ineligible"})
    store.close()  # killed before its commit
    status, err = _batch(capsys, str(SAMPLE), "--trial", TRIAL, "-o", str(tmp_path / "b.jsonl"),
                         "--store", str(store_path))
    assert f"store: {len(_rows()[1])} results reused, 0 screened" in err
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_the_store_holds_results_and_hashes_but_no_fact_values(tmp_path, capsys):
    store = tmp_path / "store.db"
    _batch(capsys, str(SAMPLE), "--trial", TRIAL, "-o", str(tmp_path / "a.jsonl"), "--store", str(store))
    content = store.read_bytes()
    for value in (b"1962-05-14", b"2019-06-01", b"metastatic"):  # ZS-001's birth date and facts
        assert value not in content
    assert b"ZS-001" in content  # the id, as in the results


def test_a_file_that_is_no_store_is_a_usage_error_and_no_results(tmp_path, capsys):
    bogus = tmp_path / "notes.db"
    bogus.write_text("shopping list\n" * 100)
    out = tmp_path / "out.jsonl"
    status, err = _batch(capsys, str(SAMPLE), "--trial", TRIAL, "-o", str(out), "--store", str(bogus))
    assert status == 2
    assert "cannot use" in err and "Traceback" not in err
    assert not out.exists()
    assert bogus.read_text() == "shopping list\n" * 100
    status, err = _batch(capsys, str(SAMPLE), "--trial", TRIAL, "--jobs", "2", "--store", str(tmp_path / "s.db"))
    assert status == 2 and "--store goes with neither --jobs nor --traces" in err
    capsys.readouterr()
    assert main(["changes", "--store", str(tmp_path / "absent.db")]) == 2
    assert "no screening store" in capsys.readouterr().err


def test_ids_12_and_text_12_are_two_candidates_and_rows_without_id_are_screened_each_time(tmp_path, capsys):
    source = tmp_path / "odd.jsonl"
    source.write_text("\n".join([
        '{"candidate_id": 12, "ecog": "1"}',
        '{"candidate_id": "12", "ecog": "3"}',
        '{"candidate_id": "\\udcff", "ecog": "0"}',  # not text: an error record without an id
        '{"ecog": "1"}',
        'not json at all',
    ]) + "\n", encoding="utf-8")
    store = tmp_path / "store.db"
    outputs = []
    for name, extra in (("full", []), ("first", ["--store", str(store)]), ("second", ["--store", str(store)])):
        out = tmp_path / f"{name}.jsonl"
        status, err = _batch(capsys, str(source), "--trial", TRIAL, "-o", str(out), *extra)
        assert status == 1 and "Traceback" not in err
        outputs.append(out.read_bytes())
    assert "store: 2 results reused, 3 screened (3 without a candidate id)" in err
    assert outputs[0] == outputs[1] == outputs[2]
    assert [json.loads(line)["candidate_id"] for line in outputs[2].decode().splitlines()] == [12, "12", "", "", ""]


def test_a_store_that_cannot_be_written_ends_the_run_with_4_and_no_results(tmp_path, capsys, monkeypatch):
    import screener.run.store

    def full_disk(self, *args):
        raise screener.run.store.StoreUnwritable(0, f"the store {self.path}: database or disk is full")

    monkeypatch.setattr(screener.run.store.Store, "remember", full_disk)
    out = tmp_path / "out.jsonl"
    status, err = _batch(capsys, str(SAMPLE), "--trial", TRIAL, "-o", str(out), "--store", str(tmp_path / "s.db"))
    assert status == 4
    assert "database or disk is full" in err and "Traceback" not in err
    assert not out.exists()
