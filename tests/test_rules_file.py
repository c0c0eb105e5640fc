"""The shipped rules file against the protocol and the spec, and broken rules files."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from screener.cli import main
from screener.errors import RulesError
from screener.rules.check import load_trial

from conftest import ROOT, SHARED

BAD = sorted((ROOT / "tests" / "data" / "bad_rules").glob("*.yaml"))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


PROTOCOL = ROOT / "docs" / "protocol" / "NCT03862768.txt"
SHIPPED = sorted(p for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".cases.yaml"))
# Registry texts stored as markdown carry two copies: the raw text (block A, with markdown
# backslash-escapes) and the text as the registry page displays it (block B). Quotes are
# taken from block B, word for word.
_DISPLAYED = re.compile(r"^===== BLOCK B[^\n]*\n(.*?)\n===== END OF BLOCK B", re.S | re.M)


def _quotable(text: str) -> str:
    match = _DISPLAYED.search(text)
    return _squash(match.group(1) if match else text)


@pytest.mark.parametrize("rules", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_criterion_quotes_the_protocol_verbatim(rules):
    shipped = load_trial(rules)
    protocol = _quotable((ROOT / "docs" / "protocol" / f"{shipped.id}.txt").read_text(encoding="utf-8"))
    for criterion in shipped.criteria:
        assert _squash(criterion.protocol) in protocol, criterion.id


def test_a_quote_only_in_the_escaped_registry_text_is_not_verbatim():
    text = (ROOT / "docs" / "protocol" / "NCT06534411.txt").read_text(encoding="utf-8")
    assert "greater than or equal to (\\>=) 180 days" in _squash(text)
    assert "greater than or equal to (\\>=) 180 days" not in _quotable(text)
    assert "greater than or equal to (>=) 180 days" in _quotable(text)


@pytest.mark.skipif(not (SHARED / "protocol").is_dir(), reason="shared protocol text not present")
@pytest.mark.parametrize("rules", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_the_shipped_protocol_is_the_registered_text(rules):
    name = f"{rules.stem}.txt"
    assert (ROOT / "docs" / "protocol" / name).read_bytes() == (SHARED / "protocol" / name).read_bytes()


def test_criteria_follow_the_protocol_numbering(trial):
    assert [c.id for c in trial.criteria] == [f"I{i}" for i in range(1, 9)] + [f"E{i}" for i in range(1, 10)]
    assert {c.kind for c in trial.criteria if c.id.startswith("I")} == {"inclusion"}
    assert {c.kind for c in trial.criteria if c.id.startswith("E")} == {"exclusion"}


@pytest.mark.skipif(not (SHARED / "spec").is_dir(), reason="shared spec not present")
def test_data_dictionary_names_every_fact_of_the_spec(trial):
    spec = (SHARED / "spec" / "NCT03862768-criteria.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z][a-z0-9_]+)`", spec))
    facts = {n for n in named if "_" in n or n in {"sex", "age", "ecog", "inr", "ascites", "encephalopathy"}}
    not_facts = {"not_met", "screening_date", "very_severe", "localized_primary", "moderate_severe",
                 "grade_1_2", "grade_3_4"}
    assert (facts - not_facts) - set(trial.facts) == set()


def test_interpretation_notes_of_the_spec_are_carried(trial):
    notes = {c.id: c.note for c in trial.criteria}
    for cid in ("I2", "E2", "I4", "E8", "E1", "E3", "E9", "I8"):
        assert notes[cid], cid
    assert "NYHA class II" in notes["E1"]


@pytest.mark.parametrize("trial_id, inclusions, exclusions", [("NCT06534411", 6, 4), ("NCT06898385", 10, 21)])
def test_new_trials_follow_the_protocol_numbering(trial_id, inclusions, exclusions):
    shipped = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    assert [c.id for c in shipped.criteria] == (
        [f"I{i}" for i in range(1, inclusions + 1)] + [f"E{i}" for i in range(1, exclusions + 1)])


def test_wording_the_registry_got_wrong_is_explained_to_auditors():
    reimagine = {c.id: c.note for c in load_trial(ROOT / "rules" / "NCT06534411.yaml").criteria}
    assert "Metformin" in reimagine["I4"] and "SGLT2i" in reimagine["I4"]  # bullets of I4
    assert "less than < 30" in reimagine["E2"] and "Inker" in reimagine["E2"]
    ix001 = {c.id: c.note for c in load_trial(ROOT / "rules" / "NCT06898385.yaml").criteria}
    assert "90 g/dL" in ix001["I9"] and "90 g/L" in ix001["I9"]
    assert "INR ≤ 1.5 × ULN" in ix001["I9"]
    assert "whichever is longer" in ix001["E16"].lower()


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_broken_rules_file_reports_every_problem_with_its_position(path, capsys):
    expected = path.with_suffix(".expected").read_text(encoding="utf-8")
    relative = path.relative_to(ROOT)
    with pytest.raises(RulesError):
        load_trial(path, display=str(relative))
    import os

    old = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["check", str(relative)]) == 2
    finally:
        os.chdir(old)
    assert capsys.readouterr().err == expected
    for line in expected.splitlines():
        assert re.match(rf"{re.escape(str(relative))}:\d+:\d+: [a-z-]+: .+", line)


def test_shipped_rules_check_clean(capsys):
    assert main(["check"]) == 0
    assert "NCT03862768" in capsys.readouterr().err


def test_yaml_tags_construct_nothing(tmp_path: Path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("trial: !!python/object/apply:os.system ['echo owned']\n", encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_trial(evil)
    assert "trial must be a mapping" in str(info.value)


def test_yaml_1_1_surprises_are_not_applied(tmp_path: Path):
    from screener.rules.read import load_yaml

    path = tmp_path / "v.yaml"
    path.write_text("a: no\nb: 2001-02-03\nc: 010\nd: 12:30\ne: true\n", encoding="utf-8")
    assert load_yaml(path) == {"a": "no", "b": "2001-02-03", "c": 10, "d": "12:30", "e": True}


def test_check_also_checks_each_trials_dialog_files(tmp_path, monkeypatch, capsys):
    dialogs = tmp_path / "dialogs"
    dialogs.mkdir()
    for path in (ROOT / "dialogs").glob("NCT03862768.*.yaml"):
        text = path.read_text(encoding="utf-8")
        if path.name.endswith(".en.yaml"):
            text = text.replace("\n  ecog:", "\n  ecgo:", 1)
        (dialogs / path.name).write_text(text, encoding="utf-8")
    monkeypatch.setenv("SCREENER_DIALOGS", str(dialogs))
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "NCT03862768.en.yaml:" in err and "missing-question: fact 'ecog' has no question" in err
    assert "(did you mean 'ecog'?)" in err
