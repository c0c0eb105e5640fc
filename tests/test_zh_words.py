"""A screening in Chinese speaks Chinese to the end: the decision line, list answers typed
with Chinese field names and values (and refused in Chinese), 阴性/阳性 for antibody and
pregnancy tests, and letters whose HTML names a CJK font to print with."""
from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from rich.console import Console

from screener.dialog import render
from screener.dialog.answers import InvalidAnswer, parse_answer
from screener.dialog.spec import DialogSpec, load_dialog
from screener.engine import Screener
from screener.model import Special, Trial
from screener.rules.check import load_trial
from screener.trials import dialog_path, rules_path

TCR_T = "NCT06898385"
TODAY = dt.date(2025, 4, 10)


@pytest.fixture(scope="module")
def tcr_t() -> Trial:
    return load_trial(rules_path(TCR_T))


@pytest.fixture(scope="module")
def zh(tcr_t: Trial) -> DialogSpec:
    return load_dialog(dialog_path(TCR_T, "zh"), tcr_t)


def answer(trial: Trial, dialog: DialogSpec, fact: str, text: str) -> Any:
    return parse_answer(trial.facts[fact], dialog.questions[fact], dialog.vocabulary, text, TODAY).value


@pytest.mark.parametrize(("fact", "text", "value"), [
    ("hiv_antibody_positive", "阴性", False), ("hiv_antibody_positive", "阳性", True),
    ("hbsag_positive", "阴性", False), ("kras_g12v_positive", "阳性", True),
    ("hcg_negative_screening", "阴性", True),   # "negative at screening?": 阴性 is a yes
    ("hcg_negative_baseline", "阳性", False),
    ("hiv_antibody_positive", "否", False),      # yes/no still answers
    ("hiv_antibody_positive", "neg", False), ("hcv_rna_positive", "Positive", True),  # as lab reports print it
    ("hcg_negative_screening", "negative", True), ("hcg_negative_baseline", "pos", False),
])
def test_a_test_result_is_answered_as_clinicians_write_it(tcr_t: Trial, zh: DialogSpec, fact: str,
                                                          text: str, value: bool) -> None:
    assert answer(tcr_t, zh, fact, text) is value


def test_english_test_results_read_too(tcr_t: Trial) -> None:
    en = load_dialog(dialog_path(TCR_T, "en"), tcr_t)
    assert answer(tcr_t, en, "hcv_antibody_positive", "negative") is False
    assert answer(tcr_t, en, "hcg_negative_screening", "negative") is True
    # a Chinese laboratory report's words in the English screening
    assert answer(tcr_t, en, "tp_antibody_positive", "阴性") is False and answer(tcr_t, en, "hbsag_positive", "阳性") is True
    assert answer(tcr_t, en, "hcg_negative_baseline", "阴性") is True


def test_every_test_result_question_takes_both_languages_result_words(tcr_t: Trial) -> None:
    # the questions whose hint offers positive / negative: each reads all the result words
    for language in ("en", "zh"):
        dialog = load_dialog(dialog_path(TCR_T, language), tcr_t)
        results = [f for f, q in dialog.questions.items() if "阳性 / 阴性" in q.hint or "positive / negative" in q.hint
                   or "阴性 / 阳性" in q.hint or "negative / positive" in q.hint]
        assert len(results) >= 11, results
        for fact in results:
            positive = not fact.startswith("hcg_negative")
            for word in ("positive", "pos", "阳性"):
                assert answer(tcr_t, dialog, fact, word) is positive, (language, fact, word)
            for word in ("negative", "neg", "阴性"):
                assert answer(tcr_t, dialog, fact, word) is not positive, (language, fact, word)


def test_a_list_is_typed_with_chinese_field_names_values_dates_and_punctuation(tcr_t: Trial, zh: DialogSpec) -> None:
    typed = ("方案=含吉西他滨方案，治疗阶段=辅助，末次用药日期=2025年2月15日，进展日期=未进展；"
             "方案=FOLFIRINOX, 阶段=晚期, 结束日期=仍在用, 进展日期=2025-03-01")
    assert answer(tcr_t, zh, "prior_regimens", typed) == (
        {"regimen": "gemcitabine_based", "setting": "adjuvant", "end_date": dt.date(2025, 2, 15),
         "progression_date": Special.NEVER},
        {"regimen": "folfirinox", "setting": "advanced", "end_date": Special.ONGOING,
         "progression_date": dt.date(2025, 3, 1)})
    lesions = answer(tcr_t, zh, "lesions", "淋巴结=否, 最长径=24 mm, 治疗区域=否")
    assert lesions[0]["lymph_node"] is False and lesions[0]["longest_diameter"] == 24
    # the English field names still work in the Chinese dialog
    assert answer(tcr_t, zh, "cardiac_events", "event=心梗, event_date=2023-11-02")[0]["event"] == "myocardial_infarction"


def refusal(dialog: DialogSpec, trial: Trial, fact: str, text: str) -> str:
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer(trial.facts[fact], dialog.questions[fact], dialog.vocabulary, text, TODAY)
    return render.refusal(dialog, refused.value)


def test_a_list_typed_wrongly_is_refused_in_chinese_naming_the_chinese_fields(tcr_t: Trial, zh: DialogSpec) -> None:
    said = refusal(zh, tcr_t, "prior_regimens", "方案=folfirinox, 药物=x")
    assert said == "“方案=folfirinox, 药物=x”：每条写作 方案=..., 治疗阶段=..., 末次用药日期=..., 进展日期=...，多条用 ; 分隔（没有则答“无”）"
    assert refusal(zh, tcr_t, "prior_regimens", "方案=folfirinox，方案=nalirifox") == \
        "“方案=folfirinox，方案=nalirif…”：同一条中 方案 填写了两次"  # a long answer is quoted cut


@pytest.mark.parametrize(("language", "fact", "typed", "said"), [
    ("zh", "prior_regimens", "方案=吉西他宾", "第 1 项，方案：'吉西他宾' 不在可选范围内：含吉西他滨方案 / FOLFIRINOX / NALIRIFOX / 其他方案。"),
    ("zh", "prior_regimens", "方案=folfirinox；方案=含吉西他滨方案，末次用药日期=2025年13月15日",
     "第 2 项，末次用药日期：无法识别日期 '2025年13月15日'；请写成 1961-03-03 或 1961年3月3日。"),
    ("zh", "lesions", "淋巴结=否，最长径=25 kg", "第 1 项，最长径：'25 kg' 的单位无法识别；请使用 mm。"),
    ("zh", "lesions", "lymph_node=no, longest_diameter=abc", "第 1 项，最长径：'abc' 不是数字。"),
    ("zh", "lesions", "淋巴结=可能", "第 1 项，淋巴结“可能”：请回答“是”或“否”（不知道请输入 ?）。"),
    ("en", "lesions", "lymph_node=maybe", "Item 1, The lesion is a lymph node 'maybe': Please answer yes or no (or ? if unknown)."),
    ("en", "lesions", "lymph_node=no, longest_diameter=2.5 kg",
     "Item 1, Longest diameter (non-nodal lesions): Unknown unit in '2.5 kg'; use mm."),
    ("en", "prior_regimens", "regimen=folfirinox, end_date=2025-13-01",
     "Item 1, Last day of the regimen, or ongoing: '2025-13-01' is not a date I can read; write e.g. 1961-03-03 or 3 March 1961."),
])
def test_a_list_items_value_that_cannot_be_read_is_refused_by_its_label_in_the_screenings_language(
        tcr_t: Trial, language: str, fact: str, typed: str, said: str) -> None:
    assert refusal(load_dialog(dialog_path(TCR_T, language), tcr_t), tcr_t, fact, typed) == said


def test_a_list_item_field_unknown_is_left_to_complete(tcr_t: Trial, zh: DialogSpec) -> None:
    lesions = answer(tcr_t, zh, "lesions", "淋巴结=是，短径=16 mm，治疗区域=不知道")
    assert lesions[0]["short_axis"] == 16 and lesions[0]["treated_area"] is None


def test_the_chinese_decision_line_is_chinese(tcr_t: Trial, zh: DialogSpec) -> None:
    result = Screener(tcr_t).evaluate({"sex": "male", "pdac_confirmed": False})
    out = io.StringIO()
    Console(file=out, width=100).print(render.decision(zh, tcr_t, result, {}, "screener resume X"))
    first = out.getvalue().splitlines()[0]
    assert first == "结论：不符合入组条件"


def test_a_list_answer_is_shown_back_with_its_chinese_labels(tcr_t: Trial, zh: DialogSpec) -> None:
    value = answer(tcr_t, zh, "prior_regimens", "方案=folfirinox, 阶段=晚期, 结束日期=2025-02-15, 进展日期=2025-03-01")
    assert render.show_value(zh, value, "prior_regimens") == \
        "方案：FOLFIRINOX，治疗阶段：晚期，末次用药日期：2025年2月15日，进展日期：2025年3月1日"


def test_the_html_letter_names_a_cjk_font_to_print_chinese_with() -> None:
    from screener.audit.letter import environment
    source = environment().loader.get_source(environment(), "letter.html.j2")[0]  # type: ignore[union-attr]
    fonts = re.findall(r"html:lang\(zh\) body \{ font-family: ([^;]+);", source)
    assert fonts and "Noto Serif CJK SC" in fonts[0] and fonts[0].rstrip().endswith("serif")
