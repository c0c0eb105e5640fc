"""Dialog files: complete for every fact of the rules, checked with file:line:col messages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from screener.dialog.spec import REQUIRED_MESSAGES, load_dialog
from screener.errors import RulesError
from screener.model import Trial
from screener.trials import dialog_path

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_fact_has_a_question_and_every_question_a_fact(trial: Trial, lang: str) -> None:
    dialog = load_dialog(dialog_path(trial.id, lang), trial)
    asked = {name for name in trial.facts if name != trial.id_fact}
    assert set(dialog.questions) == asked
    for criterion in trial.criteria:
        for fact in trial.expanded_facts(criterion):
            assert fact in dialog.questions
    assert set(dialog.messages) == set(REQUIRED_MESSAGES)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_consent_is_asked_last(trial: Trial, lang: str) -> None:
    dialog = load_dialog(dialog_path(trial.id, lang), trial)
    assert max(dialog.questions, key=dialog.order) == "informed_consent"


def test_chinese_dialog_is_chinese_throughout(trial: Trial) -> None:
    zh = load_dialog(dialog_path(trial.id, "zh"), trial)
    en = load_dialog(dialog_path(trial.id, "en"), trial)
    for fact, question in zh.questions.items():
        assert CJK.search(question.text) and CJK.search(question.help), fact
        assert question.order == en.questions[fact].order, fact
    untranslated = [k for k, v in zh.messages.items() if v == en.messages[k] and re.search("[a-z]{4}", v)]
    assert untranslated == ["help_title"]  # "{question}" alone
    assert all(CJK.search(zh.title(c)) for c in trial.criteria)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_broken_dialog_reports_every_problem_with_its_position(trial: Trial, tmp_path: Path) -> None:
    source = dialog_path(trial.id, "en").read_text(encoding="utf-8")
    source = source.replace("  ecog:\n", "  ecgo:\n", 1)  # a question naming no fact, ecog unasked
    source = source.replace("    roman: true\n", "    roman: yes\n", 1)
    source = source.replace('      female: [f, woman', '      femme: [f, woman', 1)
    source = source.replace("answers:\n", "criteria:\n  E10: Not a criterion\n\nanswers:\n", 1)
    path = write(tmp_path, source)
    with pytest.raises(RulesError) as caught:
        load_dialog(path, trial)
    lines = source.splitlines()
    messages = [str(p) for p in caught.value.problems]
    ecgo = lines.index("  ecgo:") + 1
    facts = lines.index("facts:") + 2
    femme = next(i for i, line in enumerate(lines) if "femme:" in line) + 1
    roman = lines.index("    roman: yes") + 1
    e10 = lines.index("  E10: Not a criterion") + 1
    assert messages == sorted([
        f"{path}:{facts}:3: missing-question: fact 'ecog' has no question",
        (f"{path}:{ecgo}:3: unknown-fact: question for 'ecgo', which is not a fact of NCT03862768 "
         "(did you mean 'ecog'?)"),
        f"{path}:{femme}:7: bad-synonym: facts.sex: 'femme' is not a value of sex (did you mean 'female'?)",
        f"{path}:{roman}:12: wrong-type: facts.asa_class.roman is true or false, for whole-number facts",
        f"{path}:{e10}:3: unknown-criterion: 'E10' is not a criterion of NCT03862768 (did you mean 'E1'?)",
    ], key=lambda m: int(m.split(":")[1]))


def test_duplicate_keys_and_syntax_errors_have_positions(trial: Trial, tmp_path: Path) -> None:
    path = write(tmp_path, "dialog:\n  trial: NCT03862768\n  trial: X\n")
    with pytest.raises(RulesError) as caught:
        load_dialog(path, trial)
    assert str(caught.value.problems[0]) == f"{path}:3:3: duplicate-key: 'trial' is already given at line 2"
    path = write(tmp_path, "dialog: [unclosed\n")
    with pytest.raises(RulesError, match=r"broken.yaml:2:1: yaml-syntax"):
        load_dialog(path, trial)


def test_dialog_code_names_no_trial_fact_or_criterion(trial: Trial) -> None:
    names = {trial.id} | {n for n in trial.facts if n != trial.id_fact} | {c.id for c in trial.criteria}
    for path in sorted((ROOT / "screener" / "dialog").glob("*.py")):
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", path.read_text(encoding="utf-8")))
        assert not words & names, f"{path.name} names {sorted(words & names)}"


@pytest.mark.parametrize("trial_id", ["NCT03862768", "NCT06898385"])
def test_chinese_dialogs_translate_every_protocol_text_and_note(trial_id: str) -> None:
    from screener.rules.check import load_trial
    from screener.trials import rules_path

    rules = load_trial(rules_path(trial_id))
    zh = load_dialog(dialog_path(trial_id, "zh"), rules)
    assert CJK.search(zh.trial_title)
    for criterion in rules.criteria:
        assert CJK.search(zh.protocol_translation(criterion)), criterion.id
        assert criterion.protocol not in zh.protocol_translation(criterion)
        if criterion.note.strip():
            assert CJK.search(zh.note(criterion)) and zh.note(criterion) != criterion.note, criterion.id
    wording = zh.wording()
    assert wording["language"] == "zh" and wording["titles"]["I1"] == zh.titles["I1"]
    assert set(wording["protocol_translations"]) == {c.id for c in rules.criteria}


def test_a_criterion_entry_is_checked_like_the_rest(trial: Trial, tmp_path: Path) -> None:
    source = dialog_path(trial.id, "zh").read_text(encoding="utf-8")
    source = source.replace("    protocol_translation: 年龄：", "    protocol_translaton: 年龄：", 1)
    source = source.replace("  E7:\n    title: 严重精神疾病\n", "  E7:\n", 1)  # no title
    path = write(tmp_path, source)
    with pytest.raises(RulesError) as caught:
        load_dialog(path, trial)
    lines = source.splitlines()
    typo = next(i for i, line in enumerate(lines) if "protocol_translaton" in line) + 1
    e7 = lines.index("  E7:") + 1
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{typo}:5: unknown-key: unknown key 'protocol_translaton' in criteria.I3 (did you mean 'protocol_translation'?)",
        f"{path}:{e7 + 1}:5: missing-key: criteria.E7 needs 'title'",
    ]


def test_a_plain_title_is_still_a_criterion_entry(trial: Trial) -> None:
    en = load_dialog(dialog_path(trial.id, "en"), trial)
    e6 = trial.criterion("E6")
    assert en.protocol_translation(e6) == "" and en.note(e6) == e6.note


def test_the_disease_criteria_must_be_criteria_of_the_trial(trial: Trial, tmp_path: Path) -> None:
    source = dialog_path(trial.id, "en").read_text(encoding="utf-8")
    assert load_dialog(dialog_path(trial.id, "en"), trial).disease == ("I1",)
    source = source.replace("disease: [I1]\n", "disease: [I1, I11]\n", 1)
    path = write(tmp_path, source)
    with pytest.raises(RulesError) as caught:
        load_dialog(path, trial)
    line = source.splitlines().index("disease: [I1, I11]") + 1
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}:15: unknown-criterion: disease: 'I11' is not a criterion of NCT03862768 (did you mean 'I1'?)"]
