"""Every condition shape the language allows compiles, and decides like the reference.

Each shape is a small rules file written here: `(a and b) or (c and d)`, an `or` of 20
`and`-pairs, an `in` list of 5,000 values, 1,000 criteria, nesting 100 deep. A child
process loads it, builds the durable-rules ruleset and screens random candidates of it
(benchmarks/candidates.py) through the batch path, comparing each with the reference
evaluator; it runs under a timeout, so a compiler or engine that hangs fails the test
instead of hanging the suite.

    python tests/test_shapes.py RULES COUNT SEED   # the child: prints one JSON line
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300  # generous: a shared CI machine; a hang never ends
COUNT = 60


def _doc(trial_id: str, facts: dict[str, dict[str, Any]], criteria: list[tuple[str, str]]) -> str:
    """A rules file: `criteria` are (kind, condition) pairs, numbered I1.. and E1.."""
    lines = [f"trial: {{id: {trial_id}, title: {trial_id}, version: '1'}}", "facts:",
             "  candidate_id: {type: text, required: true, description: Id.}"]
    for name, spec in facts.items():
        extra = "".join(f", {k}: {v}" for k, v in spec.items())
        lines.append(f"  {name}: {{description: {name}.{extra}}}")
    lines.append("criteria:")
    counts = {"inclusion": 0, "exclusion": 0}
    for kind, when in criteria:
        counts[kind] += 1
        cid = f"{kind[0].upper()}{counts[kind]}"
        lines += [f"  - id: {cid}", f"    kind: {kind}", f"    title: {cid}",
                  f"    protocol: {cid}.", f"    when: {json.dumps(when)}"]
    return "\n".join(lines) + "\n"


def _booleans(names: list[str]) -> dict[str, dict[str, Any]]:
    return {name: {"type": "boolean"} for name in names}


def two_and_pairs() -> str:
    return _doc("SHAPE-PAIRS", _booleans(["a", "b", "c", "d", "e"]),
                [("inclusion", "(a and b) or (c and d)"), ("exclusion", "(a and c) or (b and e)")])


def twenty_and_pairs() -> str:
    names = [f"{x}{i}" for i in range(20) for x in "ab"]
    pairs = " or ".join(f"(a{i} and b{i})" for i in range(20))
    return _doc("SHAPE-OR20", _booleans(names), [("exclusion", pairs), ("inclusion", "a0 or b19")])


def big_in_list() -> str:
    values = ", ".join(str(7 * i + 3) for i in range(5000))
    facts = {"x": {"type": "integer", "min": 0, "max": 40000}, "y": {"type": "integer", "min": 0, "max": 40000}}
    return _doc("SHAPE-IN5000", facts,
                [("inclusion", f"x in [{values}]"), ("exclusion", f"y not in [{values}] and x > 100")])


def thousand_criteria() -> str:
    facts: dict[str, dict[str, Any]] = {f"n{i}": {"type": "integer", "min": 0, "max": 9} for i in range(50)}
    facts.update(_booleans([f"b{i}" for i in range(50)]))
    criteria = []
    for i in range(1000):
        n, b = f"n{i % 50}", f"b{(i * 7) % 50}"
        if i % 2:
            criteria.append(("exclusion", f"{n} > {5 + i % 4} and {b}"))
        else:
            criteria.append(("inclusion", f"{n} <= {5 + i % 4} or not {b}"))
    return _doc("SHAPE-1000", facts, criteria)


def nested_100() -> str:
    names = [f"f{i}" for i in range(101)]
    when = names[100]
    for i in range(99, -1, -1):
        when = f"(f{i} {'and' if i % 2 else 'or'} {when})"
    return _doc("SHAPE-DEEP", _booleans(names), [("inclusion", when), ("exclusion", f"not {when}")])


SHAPES: dict[str, Callable[[], str]] = {
    "(a and b) or (c and d)": two_and_pairs,
    "an or of 20 and-pairs": twenty_and_pairs,
    "an in list of 5,000 values": big_in_list,
    "1,000 criteria": thousand_criteria,
    "nesting 100 deep": nested_100,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shape_compiles_and_decides_like_the_reference(shape, tmp_path):
    rules = tmp_path / "shape.yaml"
    rules.write_text(SHAPES[shape](), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, __file__, str(rules), str(COUNT), "1"],
                              capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{shape}: not compiled and screened within {TIMEOUT_S} s")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["screened"] == COUNT
    assert result["mismatches"] == [], result["mismatches"][:3]
    # the candidates reached every decision the shape allows, so the rules were exercised
    assert {"ineligible", "undetermined"} <= set(result["decisions"]), result["decisions"]


def _child(rules: str, count: int, seed: int) -> int:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
    from candidates import Generator, Profile
    from reference import reference_for

    from screener.run.batch import screen_row
    from screener.engine import Screener
    from screener.sources.readers import Row
    from screener.rules.check import load_trial

    trial = load_trial(rules)
    screener = Screener(trial)
    reference = reference_for(rules)
    profile = Profile(absent=(0.0, 0.05, 0.3, 0.6), passing=(0.5, 0.9, 1.0), invalid=0.1,
                      native=True, consistent=False)
    mismatches: list[dict[str, Any]] = []
    decisions: dict[str, int] = {}
    for n, cand in enumerate(Generator(rules).candidates(seed, count, profile), 1):
        got = screen_row(trial, screener, Row(n, cand.fields)).record
        want = reference.decide(cand.fields)
        decisions[got["decision"]] = decisions.get(got["decision"], 0) + 1
        same = got["decision"] == want["decision"] and (
            want["decision"] == "error"
            or (got["failed_criteria"] == want["failed_criteria"]
                and got["missing"] == (want["missing"] or [])))
        if not same:
            mismatches.append({"fields": cand.fields, "engine": got, "reference": want})
    print(json.dumps({"screened": count, "decisions": decisions, "mismatches": mismatches},
                     default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
