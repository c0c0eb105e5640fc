"""Regression tests: what batch and match write when the input carries terminal controls, and
the smaller hostile-input defects of round 3. Each is named after what broke."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from screener.cli import main

from conftest import ROOT, TRIAL

SITE = ROOT / "tests" / "data" / "site" / "rules"
# every character a terminal obeys that JSON (ensure_ascii=False) used to leave raw
CONTROLS = "\x7f\x85\x9b\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
HOSTILE_ID = "A\x9b2J\u202eelbigile\u2066x\u2069\x7f\u2028z"


def _jsonl_input(tmp_path: Path, *ids: str) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"candidate_id": i, "ecog": 3}) + "\n" for i in ids), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["batch", "--trial", TRIAL], ["match", "--rules-dir", str(SITE)]])
def test_controls_from_the_input_reached_standard_output_raw(tmp_path, capsys, command):
    source = _jsonl_input(tmp_path, HOSTILE_ID, "张三", "O'Brien \"é\"")
    assert main([command[0], str(source), *command[1:]]) == 0
    out = capsys.readouterr().out
    assert not RAW_CONTROL.search(out)
    assert "\\u009b2J\\u202eelbigile\\u2066x\\u2069\\u007f\\u2028z" in out
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["candidate_id"] for r in records][::len(records) // 3] == [HOSTILE_ID, "张三", "O'Brien \"é\""]
    assert '"candidate_id": "张三"' in out  # CJK stays readable, written as it was before


def test_controls_are_escaped_in_a_results_file_too_and_ordinary_text_is_unchanged(tmp_path):
    source = _jsonl_input(tmp_path, "P-1", HOSTILE_ID, "李四")
    out = tmp_path / "out.jsonl"
    assert main(["batch", "--trial", TRIAL, str(source), "-o", str(out)]) == 0
    data = out.read_bytes()
    lines = data.decode("utf-8").splitlines()
    assert not RAW_CONTROL.search(data.decode("utf-8"))
    assert [json.loads(line)["candidate_id"] for line in lines] == ["P-1", HOSTILE_ID, "李四"]
    # a record without controls is byte for byte what json.dumps(ensure_ascii=False) writes
    assert lines[2] == json.dumps(json.loads(lines[2]), ensure_ascii=False)
    assert "李四".encode("utf-8") in data


def test_every_control_character_round_trips_through_the_escapes():
    from screener.safe import json_text

    value = {"candidate_id": CONTROLS + "\x00\x1b\n" + "\ud800", CONTROLS: [CONTROLS]}
    text = json_text(value)
    assert text.isascii() and not RAW_CONTROL.search(text)
    assert json.loads(text) == value
    assert json_text({"id": "张三 é ü 😀"}) == '{"id": "张三 é ü 😀"}'


def test_trials_json_escapes_controls_from_a_rules_file(tmp_path, capsys):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (SITE / "SITE-2.yaml").read_text(encoding="utf-8")
    title = "Site study of fit adults with enough haemoglobin"
    assert title in text
    (rules / "SITE-2.yaml").write_text(text.replace(title, f"\"{title} \\u202e\\x9b\""), encoding="utf-8")
    assert main(["trials", "--json", "--rules-dir", str(rules)]) == 0
    out = capsys.readouterr().out
    assert not RAW_CONTROL.search(out)
    assert json.loads(out.splitlines()[0])["title"] == f"{title} \u202e\x9b"


# --- round 3, smaller defects -------------------------------------------------------------

def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_a_killed_run_left_its_results_part_file_beside_the_output(tmp_path, capsys):
    import os
    import subprocess
    import sys
    import time

    from screener.outfile import ABANDONED_AFTER, AtomicOutput

    out = tmp_path / "out.jsonl"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal\n"
        "from screener.outfile import AtomicOutput\n"
        f"part = AtomicOutput({str(out)!r})\n"
        "part.stream.write('{\"candidate_id\": \"P-1\", \"decision\": \"eligible\"}\\n')\n"
        "part.stream.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")], cwd=ROOT)
    assert killed.returncode == -9
    left = list(tmp_path.glob(".out.jsonl.*.part"))
    assert len(left) == 1 and "P-1" in left[0].read_text(encoding="utf-8")
    running = AtomicOutput(str(out))  # a run still writing: its file is locked, and kept
    old = time.time() - ABANDONED_AFTER - 5  # both written to a while ago
    os.utime(left[0], (old, old))
    os.utime(running.temporary, (old, old))
    source = _jsonl_input(tmp_path, "P-2")
    try:
        assert main(["batch", "--trial", TRIAL, str(source), "-o", str(out)]) == 0
        assert Path(running.temporary).exists()
    finally:
        running.discard()
    assert "removed 1 unfinished results file(s) beside" in capsys.readouterr().err
    assert not left[0].exists()
    assert list(tmp_path.glob(".out.jsonl.*.part")) == []  # the running one went with discard()
    assert running.removed == 0  # the killed run's file was too young to judge then
    assert [r["candidate_id"] for r in _records(out)] == ["P-2"]


def test_a_killed_batch_left_half_written_traces_in_the_traces_folder(tmp_path, capsys):
    import os
    import subprocess
    import sys
    import time

    traces = tmp_path / "traces"
    (traces / "SITE-2").mkdir(parents=True)
    for folder in (traces, traces / "SITE-2"):
        killed = subprocess.run([sys.executable, "-c", (
            "import os, signal\n"
            "from pathlib import Path\n"
            "from screener.audit.artifacts import _part_name\n"
            f"part = _part_name(Path({str(folder)!r}) / 'p-1-0123456789abcdef.trace.jsonl')\n"
            "part.write_text('{\"type\": \"start\", \"candidate_id\": \"P-1\"}\\n')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")], cwd=ROOT)
        assert killed.returncode == -9
    left = sorted(traces.rglob(".*.part"))
    assert len(left) == 2
    live = traces / f".p-2-0123456789abcdef.trace.jsonl.{os.getpid()}-0123abcd.part"  # a run still going
    live.write_text("{}", encoding="utf-8")
    old = time.time() - 60
    for part in (*left, live):
        os.utime(part, (old, old))
    source = _jsonl_input(tmp_path, "P-3")
    assert main(["batch", "--rules-dir", str(SITE), "--trial", "SITE-2", "--trial", TRIAL, str(source),
                 "--traces", str(traces), "-o", str(tmp_path / "out.jsonl")]) == 0
    assert "removed 2 unfinished trace or letter file(s)" in capsys.readouterr().err
    assert sorted(traces.rglob(".*.part")) == [live]
    assert len(list((traces / "SITE-2").glob("*.trace.jsonl"))) == 1


def test_a_read_only_traces_folder_exited_2_instead_of_4(tmp_path, capsys, monkeypatch):
    import os

    traces = tmp_path / "traces"
    traces.mkdir()
    traces.chmod(0o500)
    if os.geteuid() == 0:  # root writes anywhere: the folder answers as a read-only one would
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == traces
                            else real(path, mode, **kw))
    source = _jsonl_input(tmp_path, "P-1")
    assert main(["batch", "--trial", TRIAL, str(source), "--traces", str(traces),
                 "-o", str(tmp_path / "out.jsonl")]) == 4
    assert f"cannot use {str(traces)!r} as a folder: Permission denied" in capsys.readouterr().err
    assert list(traces.iterdir()) == [] and not (tmp_path / "out.jsonl").exists()
    # a path that is not a folder at all stays a usage error
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(source), "--traces", str(tmp_path / "file")]) == 2


@pytest.mark.parametrize("text, ids", [
    ('[{"candidate_id": "T1"},]', ["T1"]),
    ('[{"candidate_id": "T1"}, {"candidate_id": "T2"} ,\n ]\n', ["T1", "T2"]),
])
def test_a_json_trailing_comma_made_two_records_of_one_candidate(tmp_path, text, ids):
    (tmp_path / "in.json").write_text(text, encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "in.json"), "-o", str(tmp_path / "out.jsonl")]) == 0
    assert [(r["candidate_id"], r["errors"]) for r in _records(tmp_path / "out.jsonl")] == [(i, []) for i in ids]


@pytest.mark.parametrize("name, content", [("in.json", ""), ("in.json", " \n\t\n"), ("in.csv", ""),
                                           ("in.jsonl", ""), ("in.yaml", "")])
def test_an_empty_json_file_exited_2_where_an_empty_csv_exits_0(tmp_path, name, content):
    (tmp_path / name).write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["batch", "--trial", TRIAL, str(tmp_path / name), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == ""


@pytest.mark.parametrize("text, problem", [
    ("- candidate_id: A\n  ecog: 3\n---\n- candidate_id: B\n  ecog: 3\n",
     "a second YAML document starts at line 3"),
    ("- candidate_id: A\n  ecog: 3\n- candidate_id: B\n  ecog: [3\n", "YAML: line 5"),
])
def test_a_yaml_refusal_had_already_printed_a_record_to_standard_output(tmp_path, capsys, text, problem):
    (tmp_path / "in.yaml").write_text(text, encoding="utf-8")
    assert main(["batch", "--trial", TRIAL, str(tmp_path / "in.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert problem in captured.err


def test_a_bidi_override_in_a_candidate_id_reached_the_letters_raw(tmp_path, capsys):
    candidate = "P-7\u202eelbigile\x9b"
    source = _jsonl_input(tmp_path, candidate)
    traces, letters = tmp_path / "traces", tmp_path / "letters"
    assert main(["batch", "--trial", TRIAL, str(source), "--traces", str(traces), "--letters", str(letters),
                 "-o", str(tmp_path / "out.jsonl")]) == 0
    written = sorted(letters.iterdir())
    assert [p.suffix for p in written] == [".html", ".md"]
    for letter in written:
        text = letter.read_text(encoding="utf-8")
        assert not RAW_CONTROL.search(text.replace("\n", "").replace("\t", ""))
        assert "P-7\\u202eelbigile\\x9b" in text
    (trace,) = traces.iterdir()
    capsys.readouterr()
    for letter in written:
        assert main(["verify", str(trace), "--letter", str(letter)]) == 0
    assert json.loads(trace.read_text(encoding="utf-8").splitlines()[0])["candidate_id"] == candidate


FOREIGN = [("ecog", "١"), ("ecog", "３"), ("progressive_lesion_count", "٢"), ("inr", "１.２"),
           ("birth_date", "１９６１-03-03"), ("screening_date", "٢٠٢٤-٠١-٠١")]


def test_arabic_indic_and_full_width_digits_were_taken_as_numbers_in_batch(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"candidate_id": f"P{i}", fact: value}, ensure_ascii=False) + "\n"
                              for i, (fact, value) in enumerate(FOREIGN)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["batch", "--trial", TRIAL, str(source), "-o", str(out)]) == 1
    records = _records(out)
    assert [r["decision"] for r in records] == ["error"] * len(FOREIGN)
    assert [r["errors"] for r in records] == [
        [f"{fact}: {value!r}: written with digits other than 0-9 (Arabic-Indic, full-width...); write it with 0-9"]
        for fact, value in FOREIGN]


def test_foreign_digits_in_a_quantity_are_refused_too():
    from screener.errors import InvalidValue
    from screener.rules.check import load_trial
    from screener.values import coerce

    trial = load_trial(ROOT / "rules" / "NCT06898385.yaml")
    quantities = [name for name, spec in trial.facts.items() if spec.type == "quantity"]
    spec = trial.facts[quantities[0]]
    assert coerce(spec, f"1 {spec.unit}") is not None
    for raw in (f"١ {spec.unit}", {"value": "３", "unit": spec.unit}, "1_0"):
        with pytest.raises(InvalidValue) as refused:
            coerce(spec, raw)
        assert refused.value.fact == spec.name


@pytest.mark.parametrize("lang, reason", [
    ("en", "written with digits other than 0-9 (Arabic-Indic, full-width...); write it with 0-9"),
    ("zh", "使用了 0-9 以外的数字"),
])
def test_foreign_digits_in_an_answers_file_and_typed_answers_are_refused(tmp_path, monkeypatch, lang, reason):
    import io

    from screener.cli import build_parser

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    answers = tmp_path / "answers.yaml"
    answers.write_text("ecog: '３'\n", encoding="utf-8")
    args = build_parser().parse_args(["screen", "--trial", TRIAL, "--lang", lang, "--answers", str(answers),
                                      "--candidate-id", "X"])
    out = io.StringIO()
    assert args.run(args, stdin=io.StringIO(""), stdout=out) == 2
    assert f"{answers}: ecog:" in out.getvalue() and reason in out.getvalue()
    # typed: the birth date in full-width digits is refused and asked again, then taken in 0-9
    args = build_parser().parse_args(["screen", "--trial", TRIAL, "--lang", lang, "--session",
                                      str(tmp_path / "s.json")])
    out = io.StringIO()
    lines = ["P-1", "male", "１９６１-03-03", "1961-03-03"]
    assert args.run(args, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out) == 3
    assert reason in out.getvalue()
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["answers"]["birth_date"] == "1961-03-03"
