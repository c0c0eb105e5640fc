"""YAML files of every kind (rules, dialogs, answers) are read with bounded work and memory."""
from __future__ import annotations

import time

import pytest

from screener.cli import main
from conftest import TRIAL
from screener.dialog.cli import _read_answers
from screener.dialog.spec import load_dialog
from screener.rules.check import load_trial
from screener.trials import dialog_path, rules_path
from screener.errors import RulesError
from screener.rules.read import load_yaml_text

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"))


def _problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_yaml_text(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("text,want", [
    ("facts:\n  a: &x {type: integer}\n", "f.yaml:2:6: yaml-alias: the anchor &x is not allowed"),
    ("facts:\n  a: *x\n", "f.yaml:2:6: yaml-alias: the alias *x is not allowed"),
    (LAUGHS, "f.yaml:1:4: yaml-alias: the anchor &a is not allowed"),
    ("a:\n" + "".join("  " * (i + 1) + "b:\n" for i in range(80)), ": too-deep: nested deeper than 64 levels"),
    ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "f.yaml:1:67: too-deep: nested deeper than 64 levels"),
])
def test_aliases_and_deep_nesting_in_a_rules_file_were_expanded_or_crashed(text, want):
    started = time.monotonic()
    problems = _problems(text)
    assert time.monotonic() - started < 10
    assert len(problems) == 1 and want in problems[0], problems


def test_a_merge_key_in_a_rules_file_was_read_as_a_key():
    assert _problems("facts:\n  a:\n    <<: {type: integer}\n") == [
        "f.yaml:3:5: yaml-merge: merge keys (<<) are not allowed; write the keys out"]


def test_a_5000_digit_literal_crashed_the_yaml_reader():
    document = load_yaml_text(f"minimum: {'9' * 5000}\nsmall: 12\n", "f.yaml")
    assert document["minimum"] == "9" * 5000 and document["small"] == 12


def test_billion_laughs_in_an_answers_file_hung_the_dialog(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text(LAUGHS, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(RulesError) as caught:
        _read_answers(answers, load_dialog(dialog_path(TRIAL, "en"), load_trial(rules_path(TRIAL))))
    assert time.monotonic() - started < 10
    assert "yaml-alias" in str(caught.value)


def test_screener_check_reports_an_aliased_rules_file_by_position(tmp_path, capsys):
    rules = tmp_path / "r.yaml"
    rules.write_text(LAUGHS, encoding="utf-8")
    assert main(["check", str(rules)]) == 2
    assert f"{rules}:1:4: yaml-alias:" in capsys.readouterr().err
