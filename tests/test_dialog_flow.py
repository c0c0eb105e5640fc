"""The screening dialog driven headlessly: plain lines in, the console's text out."""
from __future__ import annotations

from decimal import Decimal

import datetime as dt
import io
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from screener.dialog import store
from screener.dialog.flow import Dialog
from screener.dialog.spec import DialogSpec, load_dialog
from screener.dialog.terminal import LineReader
from screener.engine import Screener
from screener.model import Result, Trial
from screener.trials import dialog_path

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

TODAY = dt.date(2026, 11, 25)

# An eligible man, question by question, in the order the dialog asks: identity and diagnosis,
# disease and prior treatment, performance status, organ function, comorbidities, consent.
MAN = [
    ("sex", "male"), ("birth_date", "3 March 1961"), ("screening_date", ""),
    ("gist_confirmed", "yes"), ("disease_status", "metastatic"),
    ("on_standard_imatinib", "y"), ("progressed_on_imatinib", "y"),
    ("imatinib_start_date", "2020-01-10"), ("first_progression_date", "2021/06/01"),
    ("progressive_organ_count", "1"), ("progressive_lesion_count", "2"), ("mdt_resectable", "yes"),
    ("tumor_bleeding", "no"), ("tumor_perforation", "no"), ("tumor_obstruction", "no"),
    ("other_malignancy_within_5y", "no"), ("other_tki_use", "no"), ("other_clinical_study", "no"),
    ("ecog", "0"), ("asa_class", "II"), ("known_liver_disease", "yes"),
    ("bilirubin_umol_l", "1.2 mg/dL"), ("albumin_g_l", "3.8 g/dL"), ("inr", "1.1"),
    ("ascites", "none"), ("encephalopathy", "none"), ("renal_insufficiency", "no"),
    ("severe_hepatitis", "no"),
    ("severe_cardiopulmonary_disease", "no"), ("nyha_class", "I"), ("pulmonary_infection", "no"),
    ("copd_severity", "none"), ("severe_diabetes", "no"), ("severe_malnutrition", "no"), ("other_serious_comorbidity", "no"),
    ("serious_mental_illness", "no"), ("needs_concurrent_surgery", "no"),
    ("informed_consent", "yes"),
]
ECOG = [fact for fact, _ in MAN].index("ecog")
BILIRUBIN = [fact for fact, _ in MAN].index("bilirubin_umol_l")
CONSENT = len(MAN) - 1
# A woman is asked about pregnancy and breastfeeding once her diagnosis is known: quick
# knock-outs come early, right after the identity and diagnosis questions.
DIAGNOSED = [fact for fact, _ in MAN].index("disease_status") + 1


@pytest.fixture(scope="module")
def dialog_en(trial: Trial) -> DialogSpec:
    return load_dialog(dialog_path(trial.id, "en"), trial)


class Recorder:
    """An observer that keeps every event, as a trace writer would receive them."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def fact(self, name: str, value: Any, source: str) -> None:
        self.events.append(("fact", name, value, source))

    def correction(self, name: str, old: Any, new: Any, reason: str) -> None:
        self.events.append(("correction", name, old, new, reason))

    def result(self, result: Result) -> None:
        self.events.append(("result", result.decision))


class Run:
    def __init__(self, text: str, result: Result, session: store.Session, observer: Recorder):
        self.text = text
        self.result = result
        self.session = session
        self.observer = observer

    @property
    def asked(self) -> list[str]:
        """Facts asked, in order, as shown in brackets after each question."""
        return re.findall(r"^.*\? \[(\w+)\]$", self.text, flags=re.MULTILINE)


def make(trial: Trial, screener: Screener, spec: DialogSpec, lines: list[str], tmp_path: Path,
         session: store.Session | None = None, complete: bool = False,
         observer: Any = None) -> tuple[Dialog, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, soft_wrap=True)
    reader = LineReader(io.StringIO("".join(f"{line}\n" for line in lines)), console)
    session = session or store.Session(path=tmp_path / "s.json", trial_id=trial.id,
                                       trial_hash=trial.content_hash, language="en",
                                       candidate_id="P-1", complete=complete)
    return Dialog(trial, screener, spec, reader, console, session, save=store.save,
                  observer=observer or Recorder(), today=TODAY), out


def screen(trial: Trial, screener: Screener, spec: DialogSpec, lines: list[str], tmp_path: Path,
           **kwargs: Any) -> Run:
    flow, out = make(trial, screener, spec, lines, tmp_path, **kwargs)
    result = flow.run()
    return Run(out.getvalue(), result, flow.session, flow.observer)  # type: ignore[arg-type]


@pytest.fixture
def run(trial: Trial, screener: Screener, dialog_en: DialogSpec, tmp_path: Path) -> Any:
    def go(lines: list[str], **kwargs: Any) -> Run:
        return screen(trial, screener, dialog_en, lines, tmp_path, **kwargs)
    return go


def answers(pairs: list[tuple[str, str]]) -> list[str]:
    return [answer for _, answer in pairs]


def test_eligible_man_is_asked_only_what_matters_in_order(run: Any) -> None:
    done = run(answers(MAN) + [""])
    assert done.asked == [fact for fact, _ in MAN]
    assert "pregnant" not in done.asked and "age" not in done.asked
    assert "child_pugh_class" not in done.asked  # derived from its five parts
    assert "Decision: eligible" in done.text
    assert done.session.status == "finished" and done.session.decision == "eligible"
    assert done.session.answers["bilirubin_umol_l"] == Decimal("20.52")  # 1.2 mg/dL x 17.1
    assert done.session.answers["albumin_g_l"] == 38


def test_eligible_woman_is_asked_about_pregnancy_and_breastfeeding(run: Any) -> None:
    woman = [("sex", "女")] + MAN[1:DIAGNOSED] + [("pregnant", "否"), ("breastfeeding", "no")] + MAN[DIAGNOSED:]
    done = run(answers(woman) + [""])
    assert done.asked == [fact for fact, _ in woman]
    assert "Decision: eligible" in done.text


def test_echoes_parsed_dates_and_converted_units(run: Any) -> None:
    done = run(answers(MAN) + [""])
    assert "read as 1961-03-03" in done.text
    assert "read as 2026-11-25" in done.text  # the screening date defaults to today
    assert "read as 20.52 µmol/L (from 1.2 mg/dL)" in done.text


def test_ineligible_found_early_ends_without_consent(run: Any) -> None:
    done = run(["male", "1961-03-03", "", "no", ""])
    assert done.asked == ["sex", "birth_date", "screening_date", "gist_confirmed"]
    lines = done.text.splitlines()
    decision = lines.index("Decision: ineligible")
    assert lines[decision + 1:decision + 4] == [
        "Screening log: screen failure", "Failed criteria: I1",
        "  I1 Recurrent or metastatic GIST progressing on standard imatinib — GIST confirmed by pathology: no"]
    assert done.result.failed == ("I1",)


def test_complete_asks_the_rest_for_the_screening_log(run: Any) -> None:
    done = run(["male", "1961-03-03", "", "no"] + answers(MAN[4:]) + [""], complete=True)
    assert "Decision: ineligible" in done.text
    assert done.asked[-1] == "informed_consent"
    assert len(done.asked) == len(MAN)


def test_correction_flips_the_decision_and_keeps_the_old_value(run: Any) -> None:
    lines = answers(MAN[:ECOG]) + ["2", "back", "1"] + answers(MAN[ECOG + 1:]) + [""]
    done = run(lines)
    assert "Decision: ineligible" in done.text
    assert "ECOG performance status corrected: 2 → 1" in done.text
    assert [line for line in done.text.splitlines() if line.startswith("Decision:")][-1] == "Decision: eligible"
    corrections = [e for e in done.session.history if e["event"] == "correction"]
    assert [(c["fact"], c["old"], c["new"]) for c in corrections] == [("ecog", 2, 1)]
    first = next(e for e in done.session.history if e["fact"] == "ecog" and e["event"] == "answer")
    assert first["value"] == 2
    assert ("correction", "ecog", 2, 1, "corrected") in done.observer.events
    assert [e for e in done.observer.events if e[0] == "result"] == [("result", "eligible")]


def test_change_fact_with_a_reason(run: Any) -> None:
    done = run(["female", "change sex entered wrongly", "male", "?", "quit"])
    assert ("correction", "sex", "female", "male", "entered wrongly") in done.observer.events
    assert done.session.status == "in_progress"


def test_change_unknown_fact_suggests_the_name(run: Any) -> None:
    done = run(["change ecgo", "quit"])
    assert "'ecgo' is not a question of this screening (did you mean ecog?)." in done.text


def test_why_quotes_the_protocol_for_both_criteria_of_a_shared_fact(run: Any) -> None:
    done = run(answers(MAN[:15]) + ["why", "quit"])
    why = done.text.split("> why")[1]
    assert "[other_malignancy_within_5y] decides:" in why
    assert "I4 No other malignancy within five years" in why
    assert "E8 Other malignancy within five years" in why
    assert "“No other malignant tumors occurred within five years;”" in why
    assert "One question, one fact, two criteria." in why
    assert done.asked.count("other_malignancy_within_5y") == 2  # asked again after `why`


def test_how_shows_each_criterion_and_the_rules_that_fired(run: Any) -> None:
    done = run(["male", "1961-03-03", "", "how", "quit"])
    how = done.text.split("> how")[1]
    assert "How the conclusion (undetermined) was reached" in how
    assert re.search(r"I3\s+Aged 18 to 75 → met", how)
    assert "Age = 65 years, derived from Date of birth = 3 March 1961, Screening date = 25 November 2026" in how
    assert "rule I3: Age = 65 years" in how
    assert re.search(r"I5\s+ECOG performance status below 2 → unknown", how)


def test_invalid_answers_get_a_reason_and_the_same_question(run: Any) -> None:
    done = run(["male", "1961-13-40", "03/04/1961", "1961-03-03", "", "change ecog", "7", "0", "quit"])
    assert "'1961-13-40' is not a date I can read" in done.text
    assert "'03/04/1961' can be read two ways" in done.text
    assert "'7' is above the highest possible value, 4." in done.text
    assert done.asked == ["sex", "birth_date", "birth_date", "birth_date", "screening_date",
                          "gist_confirmed", "ecog", "ecog", "gist_confirmed"]


def test_unknown_birth_date_asks_age_instead(run: Any) -> None:
    done = run(["male", "?", "65", "quit"])
    assert done.asked == ["sex", "birth_date", "age", "gist_confirmed"]
    assert "screening_date" not in done.asked


def test_unknown_child_pugh_part_asks_the_class_then_b_correctability(run: Any) -> None:
    before = answers(MAN[:BILIRUBIN])
    done = run(before + ["不知道", "B", "yes"] + answers(MAN[BILIRUBIN + 5:]) + [""])
    assert done.asked[BILIRUBIN:BILIRUBIN + 3] == ["bilirubin_umol_l", "child_pugh_class", "child_pugh_b_correctable"]
    assert done.asked[BILIRUBIN + 3:] == [fact for fact, _ in MAN[BILIRUBIN + 5:]]
    assert "Decision: eligible" in done.text


def test_no_known_liver_disease_asks_none_of_the_child_pugh_parts(run: Any) -> None:
    # asked before the five parts; "no" makes them normal: class A, nothing more about them
    parts = ("bilirubin_umol_l", "albumin_g_l", "inr", "ascites", "encephalopathy")
    rest = [(fact, answer) for fact, answer in MAN[BILIRUBIN:] if fact not in parts]
    done = run(answers(MAN[:BILIRUBIN - 1]) + ["no"] + answers(rest) + [""])
    assert done.asked[BILIRUBIN - 1] == "known_liver_disease"
    assert not set(parts + ("child_pugh_class", "child_pugh_b_correctable")) & set(done.asked)
    assert done.result.derived["child_pugh_class"] == "A"
    assert done.result.decision == "eligible"


def test_summary_and_help(run: Any) -> None:
    done = run(["male", "summary", "help", "quit"])
    assert re.search(r"Sex\s+male\s+answered", done.text)
    assert "Eastern" not in done.text and "Date of birth?" in done.text
    assert "change FACT   correct the answer for FACT" in done.text


def test_quit_then_resume_loses_nothing(trial: Trial, screener: Screener, dialog_en: DialogSpec,
                                        tmp_path: Path) -> None:
    first = screen(trial, screener, dialog_en, answers(MAN[:10]) + ["quit"], tmp_path)
    assert first.session.status == "in_progress"
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600
    session = store.load(tmp_path / "s.json", trial)
    assert session.answers == first.session.answers
    second = screen(trial, screener, dialog_en, answers(MAN[10:]) + [""], tmp_path, session=session)
    assert second.asked == [fact for fact, _ in MAN[10:]]
    assert "Decision: eligible" in second.text
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["status"] == "finished" and saved["decision"] == "eligible"
    assert len(saved["history"]) == len(MAN)


def test_end_of_input_saves_after_every_answer(trial: Trial, screener: Screener,
                                               dialog_en: DialogSpec, tmp_path: Path) -> None:
    done = screen(trial, screener, dialog_en, ["male", "0"], tmp_path)  # then end of input
    assert "Screening saved to" in done.text
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["answers"] == {"sex": "male"}


def test_prefilled_answers_are_not_asked(trial: Trial, screener: Screener, dialog_en: DialogSpec,
                                         tmp_path: Path) -> None:
    flow, out = make(trial, screener, dialog_en, ["quit"], tmp_path)
    problems = flow.prefill({"sex": "male", "age": 50, "ecog": 0, "asa_class": "II",
                             "child_pugh_class": "A", "other_malignancy_within_5y": False})
    assert problems == []
    flow.run()
    asked = re.findall(r"\[(\w+)\]$", out.getvalue(), flags=re.MULTILINE)
    assert asked == ["gist_confirmed"]
    assert flow.session.sources["sex"] == "answers"


def test_prefill_refuses_bad_values(trial: Trial, screener: Screener, dialog_en: DialogSpec,
                                    tmp_path: Path) -> None:
    flow, _ = make(trial, screener, dialog_en, [], tmp_path)
    problems = flow.prefill({"ecog": 9, "sexx": "male", "birth_date": "yesterday"})
    assert problems == [
        "ecog: '9' is above the highest possible value, 4.",
        "'sexx' is not a question of this screening (did you mean sex?).",
        "birth_date: 'yesterday' is not a date I can read; write e.g. 1961-03-03 or 3 March 1961.",
    ]
    assert flow.session.answers == {}


def test_prefill_refuses_bad_values_in_the_dialogs_language(trial: Trial, screener: Screener,
                                                            tmp_path: Path) -> None:
    dialog_zh = load_dialog(dialog_path(trial.id, "zh"), trial)
    flow, _ = make(trial, screener, dialog_zh, [], tmp_path)
    assert flow.prefill({"ecog": 9, "inr": 500}) == [
        "ecog: '9' 高于可能的最大值 4。", "inr: '500' 高于可能的最大值 20。"]


def test_conflicting_age_is_refused_and_asked_again(run: Any) -> None:
    done = run(["male", "1961-03-03", "", "change age", "30", "65", "quit"])
    assert "That contradicts other answers: Age given as 30 years, but the other answers give 65 years." in done.text


def test_a_trace_observer_records_answers_corrections_and_the_decision(
        trial: Trial, screener: Screener, dialog_en: DialogSpec, tmp_path: Path) -> None:
    from screener.audit.artifacts import TraceObserver
    from screener.audit.chain import final_facts, read_trace

    lines = answers(MAN[:ECOG]) + ["2", "back", "1"] + answers(MAN[ECOG + 1:]) + [""]
    with TraceObserver(tmp_path / "t.jsonl", trial, candidate_id="P-1") as observer:
        flow, _ = make(trial, screener, dialog_en, lines, tmp_path, observer=observer)
        flow.run()
    trace = read_trace(tmp_path / "t.jsonl")
    assert trace.sealed and trace.decision is not None
    assert trace.decision["decision"] == "eligible"
    ecog = final_facts(trace)["ecog"]
    assert ecog["value"] == 1 and [(c["old"], c["new"]) for c in ecog["corrections"]] == [(2, 1)]


def test_undetermined_when_only_unknowns_remain_lists_what_is_missing(run: Any) -> None:
    done = run(answers(MAN[:-1]) + ["?", ""])
    lines = done.text.splitlines()
    decision = lines.index("Decision: undetermined")
    assert lines[decision + 1:decision + 3] == ["Screening log: pending", "Missing: Informed consent"]
    assert lines[decision + 3].startswith("Next step: find out what is missing, then continue with: screener resume ")
    assert done.session.answers["informed_consent"] is None


def test_a_birth_date_after_the_screening_date_is_refused_and_asked_again(run: Any) -> None:
    done = run(["male", "2030-01-01", "yes", "2024-03-01", "yes", "quit"])
    assert "Date of birth, Screening date cannot all hold" in done.text


def test_a_correction_that_makes_pregnancy_irrelevant_takes_it_out_of_the_record(run: Any) -> None:
    woman = answers(MAN[:DIAGNOSED]) + ["yes"]  # pregnant: yes excludes at once
    done = run(["female"] + woman[1:] + ["change sex entered wrongly", "male"] + answers(MAN[DIAGNOSED:]) + [""])
    assert done.asked[:DIAGNOSED + 1] == [fact for fact, _ in MAN[:DIAGNOSED]] + ["pregnant"]
    assert "Pregnant (yes) no longer applies once Sex is male: removed from the record." in done.text
    assert "pregnant" not in done.session.answers
    assert done.result.decision == "eligible"
    assert not any(f == "pregnant" for f in done.result.missing)
    superseded = [e for e in done.session.history if e["event"] == "superseded"]
    assert [(e["fact"], e["old"], e["reason"]) for e in superseded] == [
        ("pregnant", True, "no longer applies once Sex is male")]
    assert ("correction", "pregnant", True, None, "no longer applies once Sex is male") in done.observer.events


def test_a_question_that_becomes_relevant_again_is_asked(run: Any) -> None:
    lines = (answers(MAN[:CONSENT]) + ["yes", "change sex", "female", "no", "no", ""])
    done = run(lines)
    assert done.asked[-3:] == ["sex", "pregnant", "breastfeeding"]
    assert done.result.decision == "eligible"


def test_answers_that_still_matter_stay_after_a_correction(run: Any) -> None:
    lines = answers(MAN[:ECOG]) + ["2", "back", "1"] + answers(MAN[ECOG + 1:]) + [""]
    done = run(lines)
    assert not [e for e in done.session.history if e["event"] == "superseded"]
    assert len(done.session.answers) == len(MAN)


def test_albumin_in_g_per_dl_without_its_unit_is_caught(run: Any) -> None:
    before = answers(MAN[:BILIRUBIN + 1])  # up to the bilirubin
    done = run(before + ["3.8", "yes"] + answers(MAN[BILIRUBIN + 2:]) + [""])
    assert "Did you mean 3.8 g/dL = 38 g/L?" in done.text
    assert done.session.answers["albumin_g_l"] == 38
    assert done.result.decision == "eligible"


def test_an_unusual_value_is_kept_only_when_confirmed(run: Any) -> None:
    before = answers(MAN[:BILIRUBIN + 1])
    done = run(before + ["3.8", "no", "no", "3.8", "no", "yes", "quit"])
    assert "3.8 g/L is below the usual minimum, 15 g/L. Keep 3.8 g/L?" in done.text
    assert "Not taken; please answer again." in done.text
    assert done.asked.count("albumin_g_l") == 2
    assert done.session.answers["albumin_g_l"] == Decimal("3.8")


def test_wrong_dates_are_caught(run: Any) -> None:
    done = run(["male", "2031-01-01", "no", "1961-03-03", "1986-05-04", "no", "", "quit"])
    assert "1 January 2031 is in the future. Is that right?" in done.text
    assert "4 May 1986 is more than 1 years before today. Is that right?" in done.text
    assert done.session.answers["birth_date"] == dt.date(1961, 3, 3)
    assert done.session.answers["screening_date"] == TODAY
    assert "Age = 65 years (calculated)" in done.text


def test_questions_come_in_clinical_order_with_a_progress_line(run: Any, dialog_en: DialogSpec) -> None:
    done = run(answers(MAN) + [""])
    sections = [dialog_en.questions[f].section for f in done.asked]
    assert sections == sorted(sections, key=[s.id for s in dialog_en.sections].index)
    assert sections[-1] == "consent" and sections[0] == "identity"
    progress = re.findall(r"^Question (\d+), at most (\d+) left$", done.text, flags=re.MULTILINE)
    assert [int(n) for n, _ in progress] == list(range(1, len(MAN) + 1))
    lefts = [int(left) for _, left in progress]
    assert all(later <= earlier for earlier, later in zip(lefts, lefts[1:])) and lefts[-1] == 1
    assert all(len(MAN) - i <= left for i, left in enumerate(lefts))  # never fewer than asked
    assert "— Organ function and labs —" in done.text


def test_the_decision_screen_names_the_values_that_failed_and_counts_a_refusal_apart(run: Any) -> None:
    lines = answers(MAN[:ECOG - 3]) + ["yes"] + answers(MAN[ECOG - 2:])  # another malignancy
    done = run(lines + ["", ""], complete=True)
    text = done.text.split("Decision: ineligible")[-1]
    assert ("  I4 No other malignancy within five years; E8 Other malignancy within five years"
            " — Other malignancy within 5 years: yes") in text  # one fact, one line
    assert "Screening log: screen failure" in text
    refused = run(answers(MAN[:CONSENT]) + ["no", ""])
    assert "Screening log: declined" in refused.text and refused.session.category == "declined"
    assert "I8 Informed consent — Informed consent: no" in refused.text


def test_a_review_screen_lists_every_answer_by_section_before_finishing(run: Any) -> None:
    done = run(answers(MAN) + [""])
    review = done.text.split("Review before finishing")[1].split("Decision:")[0]
    assert re.search(r"Organ function and labs\s*\n\s+Known chronic liver disease or cirrhosis\s+yes\s+answered\s*\n"
                     r"\s+Total bilirubin .*\n\s+Serum albumin\s+38 g/L\s+answered", review)
    assert review.index("Identity and diagnosis") < review.index("Comorbidities") < review.index("Consent")


@pytest.mark.parametrize("exam,decision,missing", [
    (["2024-12-02", "dilated", "no"], "undetermined",  # 91 days before screening: pending
     ("eye_exam_date", "eye_exam_method", "unstable_retinopathy")),
    (["2025-02-10", "undilated", "yes"], "undetermined",  # not verified without dilation
     ("eye_exam_date", "eye_exam_method", "unstable_retinopathy")),
    (["2025-02-10", "dilated", "no"], "eligible", ()),
    (["2025-02-10", "non_mydriatic_camera", "yes"], "ineligible", ()),
])
def test_an_eye_examination_that_does_not_qualify_leaves_the_screening_pending(
        tmp_path: Path, exam: list[str], decision: str, missing: tuple[str, ...]) -> None:
    import yaml

    from screener.rules.check import load_trial
    from screener.trials import rules_path

    trial = load_trial(rules_path("NCT06534411"))
    spec = load_dialog(dialog_path(trial.id, "en"), trial)
    base = yaml.safe_load(rules_path(trial.id).with_suffix(".cases.yaml").read_text(encoding="utf-8"))["base"]
    flow, out = make(trial, Screener(trial), spec, exam + [""], tmp_path)
    flow.prefill({k: v for k, v in base.items() if k not in ("eye_exam_date", "eye_exam_method",
                                                             "unstable_retinopathy")})
    result = flow.run()
    done = Run(out.getvalue(), result, flow.session, flow.observer)  # type: ignore[arg-type]
    assert done.asked == ["eye_exam_date", "eye_exam_method", "unstable_retinopathy"]
    assert (result.decision, result.missing) == (decision, missing)
    if missing:  # the examination to collect, by its clinical labels
        assert ("Screening log: pending\nMissing: Fundus examination date, Fundus examination method, "
                "Unstable diabetic retinopathy or maculopathy") in done.text
