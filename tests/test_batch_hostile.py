"""Regression tests for broken and hostile batch inputs: each is named after what broke.

Every case here once ended in a traceback, lost or invented candidates, or destroyed a file.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from screener.cli import main
from screener.sources.readers import open_text, read_rows

from conftest import TRIAL, running_batch

HUGE = "9" * 5000


def _run(args: list[str], stdin: bytes | None = None, env: dict | None = None,
         **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "screener", "batch", "--trial", TRIAL, *args], input=stdin,
                          capture_output=True, timeout=180, env=env, **kwargs)


def _batch(tmp_path: Path, name: str, content: str | bytes, *extra: str) -> tuple[int, list[dict]]:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    out = tmp_path / "out.jsonl"
    code = main(["batch", "--trial", TRIAL, str(path), "-o", str(out), *extra])
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    return code, records


def _ids(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["candidate_id"], r["decision"]) for r in records]


# --- the output file ----------------------------------------------------------------------

def test_output_naming_the_input_destroyed_it(tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("candidate_id,ecog\nA,3\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias.csv").symlink_to(source)
    os.link(source, tmp_path / "hard.csv")
    for output in (source, tmp_path / "sub" / ".." / "in.csv", tmp_path / "alias.csv", tmp_path / "hard.csv"):
        assert main(["batch", "--trial", TRIAL, str(source), "-o", str(output)]) == 2
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "alias.csv"), "-o", str(source)]) == 2
    assert source.read_text(encoding="utf-8") == "candidate_id,ecog\nA,3\n"
    assert "input file" in capsys.readouterr().err


def test_output_through_a_symlink_overwrote_its_target(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("candidate_id,ecog\nA,3\n", encoding="utf-8")
    target = tmp_path / "precious.jsonl"
    target.write_text("keep me\n", encoding="utf-8")
    (tmp_path / "out.jsonl").symlink_to(target)
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.jsonl")]) == 2
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert "symbolic link" in capsys.readouterr().err


def test_unreadable_input_truncated_the_previous_results(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"previous": true}\n', encoding="utf-8")
    (tmp_path / "in.json").write_text('{"not": "a list"}', encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "in.json"), "-o", str(out)]) == 2
    assert out.read_text(encoding="utf-8") == '{"previous": true}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_missing_output_folder_gave_a_traceback(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("candidate_id,ecog\nA,3\n", encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "in.csv"), "-o", str(tmp_path / "nowhere" / "out.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_traces_naming_a_file_gave_a_traceback(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("candidate_id,ecog\nA,3\n", encoding="utf-8")
    (tmp_path / "file").write_text("", encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "in.csv"), "--traces", str(tmp_path / "file")]) == 2
    assert "cannot use" in capsys.readouterr().err


def test_full_disk_cut_the_last_record_and_exited_1(tmp_path):
    rows = "".join(f"c{i:05d},{i % 5}\n" for i in range(3000))
    (tmp_path / "in.csv").write_text("candidate_id,ecog\n" + rows, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")

    def small_disk() -> None:  # writes past 20 KB fail with EFBIG, as a full disk fails them
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = _run([str(tmp_path / "in.csv"), "-o", str(out)], preexec_fn=small_disk)
    assert done.returncode == 4, done.stderr
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert b"cannot write the results" in done.stderr and b"unchanged" in done.stderr
    assert b"Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_left_a_file_that_looked_complete(tmp_path, signum):
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    process = running_batch(tmp_path, out, subprocess.PIPE)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)  # closes the input
    assert process.returncode == 128 + signum
    assert b"interrupted after" in err and b"candidates were written" in err and b"unchanged" in err
    assert b"Traceback" not in err
    assert out.read_text(encoding="utf-8") == "previous\n"


def test_kill_9_leaves_previous_results_or_none_never_a_cut_file(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    process = running_batch(tmp_path, out, subprocess.DEVNULL)
    process.kill()
    process.communicate(timeout=60)
    assert out.read_text(encoding="utf-8") == "previous\n"
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert all(p.name.startswith(".out.jsonl.") for p in leftovers)  # hidden, never at the path


def test_a_crash_exited_1_with_a_traceback(tmp_path):
    """An internal failure exits 3 with one line; the log has the stack, not the candidate."""
    (tmp_path / "in.csv").write_text("candidate_id,ecog\nSECRET-PATIENT,3\n", encoding="utf-8")
    state = tmp_path / "state"
    code = ("import sys\nimport screener.engine as engine\n"
            "def broken(self, facts):\n    raise RuntimeError('facts were ' + repr(facts))\n"
            "engine.Screener.evaluate = broken\n"
            "from screener.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, "batch", "--trial", TRIAL, str(tmp_path / "in.csv"),
                           "-o", str(tmp_path / "out.jsonl")], capture_output=True, timeout=120,
                          env={**os.environ, "XDG_STATE_HOME": str(state)})
    assert done.returncode == 3
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "internal failure (RuntimeError)" in lines[0] and "Traceback" not in lines[0]
    log = state / "screener" / "internal-errors.log"
    assert str(log) in lines[0]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    text = log.read_text(encoding="utf-8")
    assert "broken" in text and "RuntimeError" in text
    assert "SECRET" not in text and "ecog" not in text
    assert not (tmp_path / "out.jsonl").exists()


# --- one record per candidate, whatever a row holds ---------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "yaml"])
def test_a_5000_digit_integer_aborted_the_batch(tmp_path, fmt):
    content = {
        "csv": f"candidate_id,ecog\nA,{HUGE}\nB,3\n",
        "jsonl": f'{{"candidate_id": "A", "ecog": {HUGE}}}\n{{"candidate_id": "B", "ecog": 3}}\n',
        "json": f'[{{"candidate_id": "A", "ecog": {HUGE}}}, {{"candidate_id": "B", "ecog": 3}}]',
        "yaml": f"- candidate_id: A\n  ecog: {HUGE}\n- candidate_id: B\n  ecog: 3\n",
    }[fmt]
    code, records = _batch(tmp_path, f"in.{fmt}", content)
    assert code == 1
    assert _ids(records) == [("A", "error"), ("B", "ineligible")]
    assert records[0]["errors"] == ["ecog: '999999999999999999999999…': 5000 characters is too long "
                                    "for a integer (at most 100)"]


def test_imatinib_start_in_9999_overflowed_the_year(tmp_path):
    code, records = _batch(tmp_path, "in.jsonl",
                           '{"candidate_id": "late", "imatinib_start_date": "9999-09-01", '
                           '"first_progression_date": "9999-10-01"}\n{"candidate_id": "B", "ecog": 3}\n')
    assert code == 1
    assert _ids(records) == [("late", "error"), ("B", "ineligible")]
    assert "9999-09-01" in records[0]["errors"][0] and "past the year 9999" in records[0]["errors"][0]


def test_a_lone_surrogate_in_json_crashed_the_writer(tmp_path):
    code, records = _batch(tmp_path, "in.jsonl",
                           '{"candidate_id": "A", "sex": "\\udc00"}\n{"candidate_id": "\\ud800x"}\n'
                           '{"candidate_id": "C", "ecog": 3}\n')
    assert code == 1
    assert _ids(records) == [("A", "error"), ("", "error"), ("C", "ineligible")]
    assert records[0]["errors"] == ["line 1: text that is not UTF-8 (a lone surrogate U+DC00)"]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_nested_100000_deep_crashed(tmp_path, fmt):
    deep = "[" * 100_000 + "]" * 100_000
    record = f'{{"candidate_id": "A", "ecog": {deep}}}'
    content = (f"{record}\n" + '{"candidate_id": "B", "ecog": 3}\n' if fmt == "jsonl"
               else f'[{record}, {{"candidate_id": "B", "ecog": 3}}]')
    code, records = _batch(tmp_path, f"in.{fmt}", content)
    assert code == 1
    assert _ids(records) == [("", "error"), ("B", "ineligible")]
    assert "nested deeper than 64 levels" in records[0]["errors"][0]


def test_a_quoted_cell_over_128_kib_became_thousands_of_records(tmp_path):
    note = "pasted, note\n" * 11_000  # 143 KB, commas and line breaks included
    code, records = _batch(tmp_path, "in.csv",
                           f'candidate_id,ecog,notes\nA,3,x\nB,1,"{note}"\nC,3,y\n')
    assert _ids(records)[::2] == [("A", "ineligible"), ("C", "ineligible")] and len(records) == 3
    assert records[1]["candidate_id"] == "B"


def test_a_cell_over_the_size_limit_is_one_error_naming_its_row(tmp_path):
    note = "GHOST-9,0,1\n" * 100_000  # 1.2 MB of pasted rows inside one quoted cell
    code, records = _batch(tmp_path, "in.csv", f'candidate_id,ecog,notes\nA,3,x\nB,1,"{note}"\nC,3,y\n')
    assert code == 1
    assert _ids(records) == [("A", "ineligible"), ("B", "error"), ("C", "ineligible")]
    assert records[1]["errors"][0] == "row 2: longer than the limit of 1 MiB"


def test_a_pasted_row_in_a_notes_cell_invented_a_candidate(tmp_path):
    code, records = _batch(tmp_path, "in.csv",
                           'candidate_id,ecog,notes\nA,3,"seen in clinic\nGHOST-1,0,\nsee above"\nB,3,\n')
    assert [r["candidate_id"] for r in records] == ["A", "B"]


def test_an_unclosed_quote_swallowed_the_following_rows(tmp_path):
    code, records = _batch(tmp_path, "in.csv",
                           'candidate_id,ecog,notes\nA,3,x\nB,1,"never closed\nC,3,y\nD,3,z\n')
    assert code == 1
    assert _ids(records) == [("A", "ineligible"), ("B", "error"), ("C", "ineligible"), ("D", "ineligible")]
    assert records[1]["errors"][0] == "row 2: the quote that opens column 3 is never closed"


def test_text_after_a_closing_quote_merged_rows(tmp_path):
    code, records = _batch(tmp_path, "in.csv", 'candidate_id,ecog\nA,"3"x\nB,3\nC,"3\nD,3\n')
    assert _ids(records) == [("A", "error"), ("B", "ineligible"), ("C", "error"), ("D", "ineligible")]
    assert records[0]["errors"][0] == "row 1: text after the closing quote of column 2"


@pytest.mark.parametrize("line, cells, problem", [
    ('A,"1","say ""no"", then yes"\n', ["A", "1", 'say "no", then yes'], None),
    ('A,"",x"y\r\n', ["A", "", 'x"y'], None),
    ('"A",1,"a\rb"\n', ["A", "1", "a\rb"], None),  # a bare carriage return inside quotes is text
    ('A,"1"x,y\n', ["A", "1x"], "row 1: text after the closing quote of column 2"),
    ('A,1,"\udcff"\udcff\n', ["A", "1", ""], "row 1: not UTF-8 in column 3 (byte 0xff)"),
], ids=["doubled-quotes", "empty-and-inner-quote", "carriage-return", "text-after-quote", "bad-byte"])
def test_a_row_quoting_its_cells_on_one_line_reads_as_written(line, cells, problem):
    (row,) = read_rows(io.StringIO("candidate_id,ecog,notes\n" + line, newline=""), "csv")
    assert (list(row.fields.values()), row.problem) == (cells, problem)


def test_a_non_utf8_byte_in_row_10000_named_row_9954():
    body = b"".join(b"c%d,1\n" % i if i != 10_000 else b"c10000,\xe9\n" for i in range(1, 10_002))
    rows = list(read_rows(open_text(io.BytesIO(b"candidate_id,notes\n" + body)), "csv"))
    assert len(rows) == 10_001
    broken = [row for row in rows if row.problem]
    assert [(row.number, row.problem, row.fields["candidate_id"]) for row in broken] == [
        (10_000, "row 10000: not UTF-8 in column 2 (byte 0xe9)", "c10000")]


def test_a_non_utf8_byte_after_a_quoted_line_break_made_two_rows_of_one():
    body = b'A,1,"seen\nin clinic"\xff\r\nB,1,x\r\n'
    rows = list(read_rows(open_text(io.BytesIO(b"candidate_id,ecog,notes\r\n" + body)), "csv"))
    assert [(row.fields["candidate_id"], row.problem) for row in rows] == [
        ("A", "row 1: not UTF-8 in column 3 (byte 0xff)"), ("B", None)]


def test_a_non_utf8_byte_stopped_the_run(tmp_path):
    code, records = _batch(tmp_path, "in.csv", b"candidate_id,ecog\nA,3\nB\xff,1\nC,3\n")
    assert code == 1
    assert _ids(records) == [("A", "ineligible"), ("", "error"), ("C", "ineligible")]
    assert records[1]["errors"][0] == "row 2: not UTF-8 in column 1 (byte 0xff)"


def test_a_second_yaml_document_was_dropped(tmp_path, capsys):
    code, _ = _batch(tmp_path, "in.yaml", "- candidate_id: A\n  ecog: 3\n---\n- candidate_id: B\n  ecog: 3\n")
    assert code == 2
    assert "a second YAML document starts at line 3" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_text_after_the_json_list_was_dropped(tmp_path, capsys):
    code, _ = _batch(tmp_path, "in.json", '[{"candidate_id": "A"}] [{"candidate_id": "B"}]')
    assert code == 2 and "text follows the JSON list" in capsys.readouterr().err


def test_billion_laughs_yaml_hung_the_batch(tmp_path):
    laughs = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        laughs.append(f"{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, "
                      f"*{previous}, *{previous}, *{previous}, *{previous}]")
    item = "- candidate_id: laugh\n" + "".join(f"  {line}\n" for line in laughs)
    started = time.monotonic()
    code, records = _batch(tmp_path, "in.yaml", item + "- candidate_id: B\n  ecog: 3\n")
    assert time.monotonic() - started < 30
    assert _ids(records) == [("", "error"), ("B", "ineligible")]
    assert records[0]["errors"] == ["record 1 (line 1): the anchor &a is not allowed: anchors and aliases are not read"]


def test_a_yaml_merge_key_was_read_silently(tmp_path):
    code, records = _batch(tmp_path, "in.yaml", "- candidate_id: A\n  <<: {ecog: 0}\n  ecog: 3\n")
    assert _ids(records) == [("A", "error")]
    assert "merge keys (<<) are not allowed" in records[0]["errors"][0]


@pytest.mark.parametrize("name,content", [
    ("in.jsonl", '{"candidate_id": "A", "ecog": 0, "ecog": 3}\n{"candidate_id": "B", "ecog": 3}\n'),
    ("in.json", '[{"candidate_id": "A", "ecog": 0, "ecog": 3}, {"candidate_id": "B", "ecog": 3}]'),
    ("in.yaml", "- candidate_id: A\n  ecog: 0\n  ecog: 3\n- candidate_id: B\n  ecog: 3\n"),
])
def test_duplicate_keys_kept_the_last_value(tmp_path, name, content):
    code, records = _batch(tmp_path, name, content)
    assert code == 1
    assert _ids(records) == [("A", "error"), ("B", "ineligible")]
    assert "the key 'ecog' is given more than once" in records[0]["errors"][0]


def test_a_huge_jsonl_line_is_one_error(tmp_path):
    big = '{"candidate_id": "A", "notes": "' + "x" * (1 << 21) + '"}\n'
    code, records = _batch(tmp_path, "in.jsonl", big + '{"candidate_id": "B", "ecog": 3}\n')
    assert _ids(records) == [("", "error"), ("B", "ineligible")]
    assert records[0]["errors"] == ["line 1: longer than the limit of 1 MiB"]


# --- spreadsheet safety -------------------------------------------------------------------

def test_formula_ids_went_unescaped_into_csv_results(tmp_path):
    ids = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"candidate_id": i, "ecog": 3}) + "\n" for i in ids), encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(source), "-o", str(tmp_path / "out.csv")]) == 0
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as f:
        cells = [row["candidate_id"] for row in csv.DictReader(f)]
    assert cells == ["'" + i for i in ids[:-1]] + ["plain"]
    assert main(["batch", "--trial", TRIAL, str(source), "-o", str(tmp_path / "out.jsonl")]) == 0
    kept = [json.loads(line)["candidate_id"] for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert kept == ids


# --- traces and letters -------------------------------------------------------------------

def test_full_disk_during_traces_left_files_that_blocked_later_runs_and_exited_0(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"candidate_id": "A", "ecog": 3}\n{"candidate_id": "B", "ecog": 1}\n', encoding="utf-8")
    traces, letters = tmp_path / "traces", tmp_path / "letters"
    args = [str(source), "--traces", str(traces), "--letters", str(letters)]

    def small_disk() -> None:  # every trace is larger than this: each write of one fails
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))

    done = _run(args, preexec_fn=small_disk)
    assert done.returncode == 4, done.stderr
    assert b"2 requested traces or letters could not be written" in done.stderr
    assert [p.name for p in traces.iterdir()] == [] and [p.name for p in letters.iterdir()] == []
    assert len([line for line in done.stdout.splitlines() if line]) == 2  # the results are complete
    again = _run(args)
    assert again.returncode == 0, again.stderr
    assert len(list(traces.glob("*.trace.jsonl"))) == 2 and len(list(letters.iterdir())) == 4


def test_an_interrupted_candidate_left_an_unsealed_trace(tmp_path, trial, screener, monkeypatch):
    from screener.audit import artifacts
    from screener.audit.trace import TraceWriter

    result = screener.evaluate({"ecog": 3})
    real_seal = TraceWriter.seal

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(TraceWriter, "seal", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifacts.write_candidate_artifacts(trial, "A", {"ecog": (3, "row 1")}, result, tmp_path, tmp_path,
                                            None, dt.datetime.now(dt.timezone.utc))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(TraceWriter, "seal", real_seal)
    written = artifacts.write_candidate_artifacts(trial, "A", {"ecog": (3, "row 1")}, result, tmp_path,
                                                  tmp_path, None,
                                                  dt.datetime.now(dt.timezone.utc))
    assert written.trace.exists() and all(p.exists() for p in written.letters.values())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_a_clear_refusal(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("candidate_id,ecog\nA,3\n", encoding="utf-8")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    assert main(["batch", str(tmp_path / "in.csv"), "-o", str(folder / "out.jsonl")]) == 4
    assert "cannot write the results" in capsys.readouterr().err


@pytest.mark.parametrize("trials", [["--trial", "NCT03862768"], ["--all-trials"]])
def test_a_killed_worker_hung_the_parallel_batch(tmp_path, trials):
    out = tmp_path / "out.jsonl"
    process = running_batch(tmp_path, out, subprocess.PIPE, "--jobs", "2", *trials,
                             env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")})
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    workers = [pid for pid in children
               if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(int(workers[0]), signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3
    assert b"internal failure (BrokenProcessPool)" in err and b"Traceback" not in err
    assert not out.exists()


def test_an_absurd_unit_names_the_converted_value_cut(tmp_path):
    from screener.cli import main

    source = tmp_path / "in.csv"
    source.write_text("candidate_id,anc\nA,8 10*70/L\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(source), "--trial", "NCT06898385", "-o", str(out)]) == 1
    (error,) = json.loads(out.read_text(encoding="utf-8"))["errors"]
    # 8 × 10⁷⁰/L is 62 digits of 10*9/L: named by its start, the value given quoted in full
    assert error == "anc: '8 10*70/L': 800000000000000000000000… 10*9/L is above the maximum 200 10*9/L"


@pytest.mark.parametrize("row, cells, problem", [
    ('1,"x,y",3\n', ["1", "x,y", "3"], None),
    ('1,"x""y",\r\n', ["1", 'x"y', ""], None),
    ('"1",x"y",""\r\n', ["1", 'x"y"', ""], None),
    ('1,"x\ry",3\n', ["1", "x\ry", "3"], None),         # a carriage return inside quotes is text
    ('1,"x",3\r\r\n', ["1", "x", "3"], None),           # the csv module would read this one otherwise
    ('1,"x",3\r2,3,4\n', ["1", "x", "3"], None),        # a bare carriage return ends the record
    ('1,"x"y,3\n', ["1", "xy"], "text after the closing quote of column 2"),
    ('1,"x\n', ["1"], "the quote that opens column 2 is never closed"),
])
def test_a_row_with_quoted_cells_splits_the_same_whatever_reads_it(row, cells, problem):
    """Rows on one line with quoted cells are split by the csv module where it splits as the
    scanner does; the others, carriage returns and broken quotes, still go to the scanner."""
    from screener.sources.csvrows import records

    found = list(records(io.StringIO("a,b,c\n" + row + "9,9,9\n", newline="")))
    assert (found[1].cells, found[1].problem) == (cells, problem)
    assert found[-1].cells == ["9", "9", "9"]
