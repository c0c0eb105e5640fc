"""Reading answers the way clinicians type them, in both dialog languages."""
from __future__ import annotations

from decimal import Decimal

import datetime as dt
from typing import Any

import pytest

from screener.dialog.answers import InvalidAnswer, command_of, parse_answer
from screener.dialog.spec import DialogSpec, load_dialog
from screener.model import Trial
from screener.trials import dialog_path

TODAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module", params=["en", "zh"])
def dialog(request: Any, trial: Trial) -> DialogSpec:
    return load_dialog(dialog_path(trial.id, request.param), trial)


def read(trial: Trial, dialog: DialogSpec, fact: str, text: str) -> Any:
    return parse_answer(trial.facts[fact], dialog.questions[fact], dialog.vocabulary, text, TODAY).value


READS = [
    ("gist_confirmed", "yes", True), ("gist_confirmed", "Y", True), ("gist_confirmed", "是", True),
    ("gist_confirmed", "否", False), ("gist_confirmed", "n", False), ("gist_confirmed", " NO ", False),
    ("gist_confirmed", "?", None), ("gist_confirmed", "不知道", None), ("gist_confirmed", "unknown", None),
    ("gist_confirmed", "？", None),  # full-width question mark from a Chinese keyboard
    ("ecog", "1", 1), ("asa_class", "III", 3), ("asa_class", "ASA ii", 2),
    ("nyha_class", "IV", 4), ("nyha_class", "class i", 1),
    ("birth_date", "1961-03-03", dt.date(1961, 3, 3)), ("birth_date", "3 March 1961", dt.date(1961, 3, 3)),
    ("birth_date", "March 3, 1961", dt.date(1961, 3, 3)), ("birth_date", "1961/03/03", dt.date(1961, 3, 3)),
    ("birth_date", "3-Mar-1961", dt.date(1961, 3, 3)), ("birth_date", "1961年3月3日", dt.date(1961, 3, 3)),
    ("birth_date", "1961.3.3", dt.date(1961, 3, 3)), ("screening_date", "", TODAY),
    ("birth_date", "13/03/1970", dt.date(1970, 3, 13)),  # no month 13: one reading only
    ("birth_date", "03/13/1970", dt.date(1970, 3, 13)), ("birth_date", "03/03/1970", dt.date(1970, 3, 3)),
    ("screening_date", "today", TODAY),
    ("bilirubin_umol_l", "20", Decimal(20)), ("bilirubin_umol_l", "20.5 µmol/L", Decimal("20.5")),
    ("bilirubin_umol_l", "20.5 umol/l", Decimal("20.5")), ("bilirubin_umol_l", "2 mg/dL", Decimal("34.2")),
    ("bilirubin_umol_l", "1,2 mg/dl", Decimal("20.52")), ("albumin_g_l", "3.8 g/dL", Decimal(38)),
    ("albumin_g_l", "38 g/L", Decimal(38)),
    ("bilirubin_umol_l", "51.305", Decimal("51.305")),  # finer than places: kept, never rounded
    ("bilirubin_umol_l", "0.05 mmol/L", Decimal(50)),  # any unit of the same dimension
    ("ecog", "1.0", 1), ("ecog", "1,0", 1),  # whole numbers as exports and batch write them
    ("inr", "1,5", 1.5), ("albumin_g_l", "3,8 克/分升", Decimal(38)),  # a decimal comma
    ("sex", "M", "male"), ("sex", "女", "female"), ("disease_status", "复发", "recurrent"),
    ("disease_status", "Localized primary", "localized_primary"), ("copd_severity", "GOLD 2", "moderate"),
    ("copd_severity", "very severe", "very_severe"), ("child_pugh_class", "b", "B"),
    ("encephalopathy", "grade 3", "grade_3_4"), ("ascites", "no", "none"),
]


@pytest.mark.parametrize(("fact", "text", "want"), READS, ids=[f"{f}:{t}" for f, t, _ in READS])
def test_reads(trial: Trial, dialog: DialogSpec, fact: str, text: str, want: Any) -> None:
    got = read(trial, dialog, fact, text)
    assert got == (pytest.approx(want) if isinstance(want, float) else want)


REFUSED = [
    ("gist_confirmed", "maybe", "bad_yes_no"), ("ecog", "5", "above_maximum"), ("ecog", "-1", "below_minimum"),
    ("ecog", "one", "bad_integer"), ("ecog", "II", "bad_integer"),  # Roman numerals only for ASA and NYHA
    ("asa_class", "VII", "above_maximum"), ("birth_date", "03/04/1961", "ambiguous_date"),
    ("birth_date", "31 February 1961", "bad_date"), ("birth_date", "31/13/1970", "bad_date"), ("birth_date", "soon", "bad_date"),
    ("bilirubin_umol_l", "2 mmol", "bad_unit"), ("bilirubin_umol_l", "high", "bad_number"),
    ("bilirubin_umol_l", "99,999", "out_of_range"),  # a comma before three digits reads two ways
    ("inr", "1,500", "out_of_range"), ("ecog", "1.5", "bad_integer"),
    ("sex", "x", "bad_choice"), ("birth_date", "", "empty"), ("progressive_lesion_count", "0", "below_minimum"),
    # numbers are read from 0-9 only, as in a batch file (docs/hostile-input.md)
    ("ecog", "１", "out_of_range"), ("ecog", "٣", "out_of_range"), ("birth_date", "１９６１年３月３日", "out_of_range"),
    ("bilirubin_umol_l", "２０ µmol/L", "out_of_range"),
]


@pytest.mark.parametrize(("fact", "text", "key"), REFUSED, ids=[f"{f}:{t}" for f, t, _ in REFUSED])
def test_refuses_with_a_reason(trial: Trial, dialog: DialogSpec, fact: str, text: str, key: str) -> None:
    with pytest.raises(InvalidAnswer) as caught:
        read(trial, dialog, fact, text)
    assert caught.value.key == key
    reason = dialog.message(caught.value.key, **caught.value.params)
    assert "\n" not in reason and reason


def test_unit_conversion_is_echoed(trial: Trial, dialog: DialogSpec) -> None:
    answer = parse_answer(trial.facts["bilirubin_umol_l"], dialog.questions["bilirubin_umol_l"],
                          dialog.vocabulary, "2 mg/dL", TODAY)
    assert answer.echo == ("unit_echo", {"given": "2 mg/dL", "value": "34.2", "unit": "µmol/L"})


@pytest.mark.parametrize(("line", "want"), [
    ("why", ("why", "")), ("WHY", ("why", "")), ("为什么", ("why", "")), ("change ecog", ("change", "ecog")),
    ("修改 ecog 录入错误", ("change", "ecog 录入错误")), ("back", ("back", "")), ("quit", ("quit", "")),
    ("no", None), ("why not", None), ("3 March 1961", None),
])
def test_commands(dialog: DialogSpec, line: str, want: Any) -> None:
    assert command_of(line, dialog.vocabulary) == want
