"""Trials past what durable-rules takes as written still compile, or `check` says why.

durable-rules 2.0.28 overflows its 64-entry matching stack (error 303 on every candidate)
when too many tests hang off one network node, refuses more than 4,096 rules in a ruleset
and facts of 254+ fields. These build such trials and run them the way a user would.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from screener.run.batch import screen_row
from screener.engine import Screener
from screener.sources.readers import Row
from screener.rules.check import load_trial

from reference import reference_decide


def _rules_file(path: Path, facts: int, criteria: list[str]) -> Path:
    lines = [f"trial: {{id: {path.stem}, title: Limits, version: '1'}}", "facts:",
             "  candidate_id: {type: text, required: true, description: Id.}"]
    lines += [f"  b{i}: {{type: boolean, description: B{i}.}}" for i in range(facts)]
    lines.append("criteria:")
    for n, when in enumerate(criteria):
        lines += [f"  - id: I{n}", "    kind: inclusion", "    title: T", "    protocol: P.",
                  f"    when: \"{when}\""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_criteria_that_would_overflow_the_matching_stack_are_regrouped(tmp_path):
    # 300 criteria over 60 facts: as written, every candidate fails with error 303
    path = _rules_file(tmp_path / "WIDE-300.yaml", 60,
                       [f"b{i % 60} or b{(i * 7 + 3) % 60}" for i in range(300)])
    trial = load_trial(path)
    screener = Screener(trial)
    assert any("g1." in json.dumps(rule) for rule in screener.definition.values())
    rng = random.Random(3)
    for n in range(20):
        fields = {f"b{i}": rng.choice(["yes", "no", "yes", ""]) for i in range(60)}
        want = reference_decide(trial, fields)
        got = screen_row(trial, screener, Row(n + 1, {"candidate_id": str(n), **fields})).record
        assert (got["decision"], got["failed_criteria"]) == (want["decision"], want["failed_criteria"])


def test_more_criteria_than_one_ruleset_takes_are_spread_over_several(tmp_path):
    path = _rules_file(tmp_path / "MANY.yaml", 10, [f"b{i % 10} or not b{(i + 1) % 10}" for i in range(600)])
    trial = load_trial(path)
    screener = Screener(trial)
    assert len(screener.ruleset_names) > 1
    everything_yes = {f"b{i}": True for i in range(10)}
    result = screener.evaluate(everything_yes)
    assert result.decision == "eligible" and len(result.outcomes) == 600
    one_no = screener.evaluate({**everything_yes, "b3": False, "b4": False})
    # I594 is "b4 or not b5": not met, and decided in the last ruleset like the first
    assert one_no.failed == tuple(f"I{n}" for n in range(4, 600, 10))


@pytest.mark.parametrize("facts", [300])
def test_more_facts_than_an_engine_fact_holds_is_refused_by_check(tmp_path, facts):
    path = _rules_file(tmp_path / "HUGE.yaml", facts, ["b0"])
    done = subprocess.run([sys.executable, "-m", "screener", "check", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{path}:1:1: too-large:" in done.stderr
    assert "Traceback" not in done.stderr
