"""`screener batch` to the letter of docs/batch-io.md: formats, streams, exit codes, bad rows."""
from __future__ import annotations

import csv
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from screener.cli import main

from conftest import TRIAL


PEOPLE = [
    {"candidate_id": "A-1", "ecog": 3},
    {"candidate_id": "患者-二", "ecog": 1, "asa_class": 2, "sex": "male"},
    {"candidate_id": "C 3", "informed_consent": False},
    {"candidate_id": "D-4", "ecog": 9},
]
WANT = [
    ("A-1", "ineligible", ["I5"]),
    ("患者-二", "undetermined", []),
    ("C 3", "ineligible", ["I8"]),
    ("D-4", "error", []),
]


def _write(path: Path, fmt: str, people: list[dict]) -> Path:
    if fmt == "csv":
        names = sorted({k for p in people for k in p}, key=lambda n: (n != "candidate_id", n))
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, names)
            writer.writeheader()
            writer.writerows(people)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in people), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(people, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(people, allow_unicode=True), encoding="utf-8")
    return path


def _run(args: list[str], stdin: bytes | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "screener", "batch", *args, "--trial", TRIAL], input=stdin,
                          capture_output=True, timeout=timeout, cwd=cwd)


def _records(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode("utf-8").splitlines()]


def _summary(records: list[dict]) -> list[tuple]:
    return [(r["candidate_id"], r["decision"], r["failed_criteria"]) for r in records]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "yaml"])
def test_every_input_format_gives_the_same_results(tmp_path, fmt, capsys):
    path = _write(tmp_path / f"in.{fmt}", fmt, PEOPLE)
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(path), "-o", str(out), "--trial", TRIAL]) == 1  # D-4 is an error
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert _summary(records) == WANT
    assert records[3]["errors"] == ["ecog: 9: above the maximum 4"] or records[3]["errors"] == ["ecog: '9': above the maximum 4"]
    assert set(records[1]) == {"candidate_id", "decision", "failed_criteria", "missing", "errors", "warnings",
                               "screening_log"}
    assert "informed_consent" in records[1]["missing"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    err = capsys.readouterr().err
    assert "eligible" in err and "undetermined" in err


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "yaml"])
def test_standard_input_to_standard_output(tmp_path, fmt):
    data = _write(tmp_path / f"in.{fmt}", fmt, PEOPLE).read_bytes()
    done = _run(["-"], stdin=data)
    assert done.returncode == 1
    assert _summary(_records(done.stdout)) == WANT
    assert b"candidates" in done.stderr  # the summary goes to standard error only


def test_csv_output_joins_lists_with_semicolons(tmp_path):
    path = _write(tmp_path / "in.jsonl", "jsonl", [{"candidate_id": "x", "ecog": 2, "asa_class": 4}])
    out = tmp_path / "out.csv"
    assert main(["batch", str(path), "-o", str(out), "--trial", TRIAL]) == 0
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"candidate_id": "x", "decision": "ineligible", "failed_criteria": "I5;I6",
                     "missing": "", "errors": "", "warnings": "", "screening_log": "screen failure"}]


def test_byte_order_mark_and_unicode_ids_are_kept(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcandidate_id,ecog\n张三 ☃,3\ne\u0301,0\n".encode("utf-8"))
    done = _run([str(path)])
    records = _records(done.stdout)
    assert [r["candidate_id"] for r in records] == ["张三 ☃", "e\u0301"]
    assert records[0]["decision"] == "ineligible"


def test_rows_with_too_many_or_too_few_cells_are_errors_and_the_run_goes_on(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("candidate_id,ecog,asa_class\nok-1,3,2\nshort,1\nlong,1,2,3\nok-2,0,1\n", encoding="utf-8")
    done = _run([str(path)])
    records = _records(done.stdout)
    assert [(r["candidate_id"], r["decision"]) for r in records] == [
        ("ok-1", "ineligible"), ("short", "error"), ("long", "error"), ("ok-2", "undetermined")]
    assert records[1]["errors"] == ["row 2 has 2 cells, the header has 3"]
    assert records[2]["errors"] == ["row 3 has 4 cells, the header has 3"]
    assert done.returncode == 1


def test_malformed_json_lines_keep_their_place(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"candidate_id": "a", "ecog": 3}\n{oops\n[1, 2]\n{"ecog": 3}\n{"candidate_id": "e", "ecog": null}\n',
                    encoding="utf-8")
    records = _records(_run([str(path)]).stdout)
    assert [(r["candidate_id"], r["decision"]) for r in records] == [
        ("a", "ineligible"), ("", "error"), ("", "error"), ("", "error"), ("e", "undetermined")]
    assert records[3]["errors"] == ["candidate_id: missing: every candidate needs an id"]


def test_yes_no_spellings_and_json_booleans(tmp_path):
    people = [{"candidate_id": str(i), "informed_consent": v} for i, v in
              enumerate(["No", "N", "FALSE", "0", False, "yes", "Y", "True", "1", True])]
    records = _records(_run([str(_write(tmp_path / "b.jsonl", "jsonl", people))]).stdout)
    assert [r["decision"] for r in records] == ["ineligible"] * 5 + ["undetermined"] * 5


@pytest.mark.parametrize("fmt,content,code,count", [
    ("csv", "", 0, 0), ("csv", "candidate_id,ecog\n", 0, 0), ("jsonl", "", 0, 0),
    ("yaml", "", 0, 0), ("json", "[]", 0, 0), ("json", "", 0, 0), ("json", '{"a": 1}', 2, 0),
])
def test_empty_inputs(tmp_path, fmt, content, code, count):
    path = tmp_path / f"empty.{fmt}"
    path.write_text(content, encoding="utf-8")
    done = _run([str(path)])
    assert done.returncode == code, done.stderr
    assert len(_records(done.stdout)) == count


def test_usage_errors_exit_2(tmp_path):
    assert _run([str(tmp_path / "absent.csv")]).returncode == 2
    (tmp_path / "x.txt").write_text("candidate_id\n", encoding="utf-8")
    assert _run([str(tmp_path / "x.txt")]).returncode == 2
    (tmp_path / "x.csv").write_text("candidate_id\n", encoding="utf-8")
    assert _run([str(tmp_path / "x.csv"), "-o", str(tmp_path / "out.txt")]).returncode == 2
    assert _run([str(tmp_path / "x.csv"), "--trial", "NCT00000000"]).returncode == 2
    (tmp_path / "latin1.csv").write_bytes("candidate_id,é\nJosé,1\n".encode("latin-1"))
    done = _run([str(tmp_path / "latin1.csv")])
    assert done.returncode == 2 and b"UTF-8" in done.stderr


def test_unknown_fields_are_reported_not_fatal(tmp_path):
    path = _write(tmp_path / "u.jsonl", "jsonl", [{"candidate_id": "a", "ecog": 3, "shoe_size": 44}])
    done = _run([str(path)])
    assert done.returncode == 0
    assert b"shoe_size" in done.stderr and b"44" not in done.stderr


def test_a_hundred_thousand_candidates_one_record_each_in_order(tmp_path):
    path = tmp_path / "many.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("candidate_id,ecog,asa_class\n")
        for i in range(100_000):
            f.write(f"c{i},{i % 5},{1 + i % 3}\n")
    out = tmp_path / "many.jsonl"
    # The timeout catches a hang, not slowness: on two busy shared cores this takes minutes.
    done = _run([str(path), "-o", str(out), "--jobs", "2"], timeout=900)
    assert done.returncode == 0, done.stderr
    count = 0
    with out.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            record = json.loads(line)
            assert record["candidate_id"] == f"c{i}"
            want = "ineligible" if (i % 5 >= 2 or 1 + i % 3 >= 3) else "undetermined"
            assert record["decision"] == want
            count += 1
    assert count == 100_000


def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("candidate_id,ecog\n" + "".join(f"c{i},1\n" for i in range(5000)), encoding="utf-8")
    done = subprocess.run(f"{sys.executable} -m screener batch {path} --trial {TRIAL} | head -n 1", shell=True,
                          capture_output=True, timeout=120)
    assert done.stdout.count(b"\n") == 1
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_traces_and_letters_per_candidate_stay_inside_their_directories(tmp_path, jobs):
    people = [{"candidate_id": "../../x", "ecog": 3}, {"candidate_id": "<b>&amp;</b>", "ecog": 1},
              {"candidate_id": "../../X", "ecog": 0}, {"candidate_id": "bad", "ecog": 7}]
    path = _write(tmp_path / "in.jsonl", "jsonl", people)
    traces, letters = tmp_path / "traces", tmp_path / "letters"
    done = _run([str(path), "--traces", str(traces), "--letters", str(letters), "--operator", "Dr Li",
                 "--jobs", jobs], cwd=tmp_path)
    assert done.returncode == 1  # the last one is an error record
    assert len(_records(done.stdout)) == 4
    written = sorted(p.name for p in traces.iterdir())
    assert len(written) == 3 and all(n.endswith(".trace.jsonl") for n in written)
    assert len(list(letters.iterdir())) == 6
    assert not (tmp_path.parent / "x").exists() and not any(tmp_path.glob("x*"))
    for trace in traces.iterdir():
        assert stat.S_IMODE(trace.stat().st_mode) == 0o600
        verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)],
                                  capture_output=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    html = "".join(p.read_text(encoding="utf-8") for p in letters.glob("*.html"))
    assert "<b>&amp;</b>" not in html and "&lt;b&gt;&amp;amp;&lt;/b&gt;" in html
    assert b"row 4: no trace for an error record" in done.stderr


def test_letters_need_traces(tmp_path):
    path = _write(tmp_path / "in.jsonl", "jsonl", PEOPLE)
    assert _run([str(path), "--letters", str(tmp_path / "l")]).returncode == 2
