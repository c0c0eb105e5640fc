"""screener/ knows no trial: no NCT03862768 names in its Python, and a made-up trial screens."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from screener.rules.check import load_trial

from conftest import ROOT

TOY = ROOT / "tests" / "data" / "toy"


def test_no_trial_knowledge_in_the_package(trial):
    # `candidate_id` is the batch contract's output key, not knowledge of this trial.
    names = (set(trial.facts) - {"candidate_id"}) | {c.id for c in trial.criteria} | {trial.id}
    names |= {d.id for d in trial.derivations} | {"imatinib", "nyha", "child_pugh", "GIST"}
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")
    offenders = []
    for path in sorted((ROOT / "screener").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_no_eval_and_no_unsafe_yaml_in_the_package():
    for path in sorted((ROOT / "screener").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(^|[^._a-z])(eval|exec)\(", text), path
        assert not re.search(r"yaml\.(load|full_load|unsafe_load)\(", text), path


def test_a_made_up_trial_is_screened_by_the_same_engine():
    env = {"SCREENER_RULES": str(TOY / "rules"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "screener", "batch", str(TOY / "candidates.csv")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["candidate_id"], r["decision"], r["failed_criteria"], r["missing"]) for r in records] == [
        ("ann", "eligible", [], []),
        ("bob", "ineligible", ["IN-A"], []),
        ("cat", "ineligible", ["IN-B"], []),
        ("dan", "undetermined", [], ["born", "years"]),
    ]
    assert done.returncode == 0
    assert "TOY-1" in done.stderr


def test_toy_rules_load_with_their_derivation():
    toy = load_trial(TOY / "rules" / "TOY-1.yaml")
    assert toy.facts["years"].derived_by == "years-from-dates"
    assert toy.id_fact == "person"
