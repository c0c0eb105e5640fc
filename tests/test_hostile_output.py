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
