"""`screener template` and `screener dictionary`: the input of a batch run, described."""
from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from screener.cli import main
from screener.dictionary import columns, example
from screener.rules.check import load_trial
from screener.values import coerce_text

from conftest import ROOT

SHIPPED = ["NCT03862768", "NCT06534411", "NCT06898385"]
TRIALS = {t: load_trial(ROOT / "rules" / f"{t}.yaml") for t in SHIPPED}


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(text.splitlines()))


def test_template_has_a_column_for_every_fact_a_record_may_carry(tmp_path: Path):
    out = tmp_path / "t.csv"
    assert main(["template", "--trial", "NCT06534411", "-o", str(out)]) == 0
    (header,) = _csv(out.read_text(encoding="utf-8"))
    trial = TRIALS["NCT06534411"]
    assert header[0] == "candidate_id"
    assert set(header) == set(trial.facts)
    assert "hba1c" in header and "antidiabetic_medications" in header
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_template_of_several_trials_is_their_union_each_shared_fact_once(capsys):
    assert main(["template", "--trial", "NCT03862768", "--trial", "NCT06898385"]) == 0
    (header,) = _csv(capsys.readouterr().out)
    assert len(header) == len(set(header))
    assert set(header) == set(TRIALS["NCT03862768"].facts) | set(TRIALS["NCT06898385"].facts)
    assert header.count("birth_date") == 1  # read by both trials


@pytest.mark.parametrize("trial_id", SHIPPED)
def test_the_example_row_is_a_real_candidate_the_batch_screens(tmp_path: Path, capsys, trial_id: str):
    source = tmp_path / "example.csv"
    assert main(["template", "--trial", trial_id, "--example", "-o", str(source)]) == 0
    header, row = _csv(source.read_text(encoding="utf-8"))
    assert len(row) == len(header)
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(source), "--trial", trial_id, "-o", str(out)]) == 0
    (record,) = map(json.loads, out.read_text().splitlines())
    assert record["decision"] == "eligible", record
    assert "ignored" not in capsys.readouterr().err  # every column is a fact of the trial


@pytest.mark.parametrize("trial_id, fact", [(t, f) for t in SHIPPED for f in TRIALS[t].facts
                                            if f != TRIALS[t].id_fact])
def test_every_example_value_is_accepted_by_the_batch_reader(trial_id: str, fact: str):
    spec = TRIALS[trial_id].facts[fact]
    assert coerce_text(spec, example(spec)) is not None


def test_dictionary_describes_a_lab_value_with_units_and_the_criteria_reading_it(capsys):
    assert main(["dictionary", "--trial", "NCT06534411"]) == 0
    text = capsys.readouterr().out
    block = text.split("\nhba1c")[1].split("\n\n")[0]
    assert "Glycated haemoglobin" in block
    assert "in %" in block and "mmol/mol" in block  # declared unit and the one converted from
    assert "I5: HbA1c 7.0-10.5 % (53-91 mmol/mol)" in block
    assert "example: 8.2" in block
    age = text.split("\nage")[1].split("\n\n")[0]
    assert "computed from birth_date, consent_date when not given" in age


def test_dictionary_uses_the_dialogs_clinical_labels_and_lists_allowed_values(capsys):
    assert main(["dictionary", "--trial", "NCT03862768"]) == 0
    text = capsys.readouterr().out
    assert "\nasa_class: ASA class\n" in text
    status = text.split("\ndisease_status")[1].split("\n\n")[0]
    assert "values: recurrent, metastatic, localized_primary" in status


def test_dictionary_as_csv_names_every_trial_reading_a_shared_fact(tmp_path: Path):
    out = tmp_path / "d.csv"
    assert main(["dictionary", "--all-trials", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [r["column"] for r in rows] == columns(list(TRIALS.values()))
    birth = next(r for r in rows if r["column"] == "birth_date")
    assert {"NCT03862768", "NCT06534411", "NCT06898385"} <= {c.split()[0] for c in birth["criteria"].split("; ")}


def test_unknown_trial_is_a_usage_error(capsys):
    assert main(["template", "--trial", "NCT00000000"]) == 2
    assert "NCT00000000" in capsys.readouterr().err


def test_the_example_rows_of_the_contract_are_what_template_writes_and_screen_eligible(tmp_path: Path, capsys):
    doc = (ROOT / "docs" / "batch-io.md").read_text(encoding="utf-8")
    csv_block = doc.split("```csv\n")[1].split("```")[0]
    json_block = doc.split("```json\n")[1].split("```")[0]
    assert main(["template", "--trial", "NCT06534411", "--example"]) == 0
    assert capsys.readouterr().out == csv_block
    # the CSV row is the one test_the_example_row_is_a_real_candidate_the_batch_screens screens
    (tmp_path / "doc.jsonl").write_text(json_block, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(tmp_path / "doc.jsonl"), "--trial", "NCT06534411", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["decision"] == "eligible"
    assert "NCT03862768-criteria.md" not in doc  # a file that does not exist


def test_dictionary_says_which_facts_the_patient_record_supplies_and_which_it_does_not(tmp_path: Path, capsys):
    assert main(["dictionary", "--trial", "NCT06534411"]) == 0
    text = capsys.readouterr().out
    hba1c = text.split("\nhba1c: ", 1)[1].split("\n\n", 1)[0]
    assert "from the patient record: Observation (LOINC" in hba1c
    exam = text.split("\neye_exam_date: ", 1)[1].split("\n\n", 1)[0]
    assert "from the patient record: no" in exam
    out = tmp_path / "d.csv"
    assert main(["dictionary", "--trial", "NCT06534411", "-o", str(out)]) == 0
    rows = {r["column"]: r for r in csv.DictReader(out.read_text(encoding="utf-8").splitlines())}
    assert rows["hba1c"]["from_record"].startswith("Observation")
    assert rows["eye_exam_date"]["from_record"] == ""


def test_a_sites_own_mapping_makes_a_fact_come_from_the_record(tmp_path: Path, capsys):
    site = tmp_path / "site" / "rules"
    (tmp_path / "site" / "mappings").mkdir(parents=True)
    site.mkdir()
    (tmp_path / "site" / "mappings" / "eye.yaml").write_text(
        "facts:\n  eye_exam_date:\n    resource: Procedure\n    code: {snomed: ['252779009']}\n"
        "    pick: latest\n    value: date\n", encoding="utf-8")
    status = main(["dictionary", "--trial", "NCT06534411", "--rules-dir", str(site)])
    captured = capsys.readouterr()
    exam = captured.out.split("\neye_exam_date: ", 1)[1].split("\n\n", 1)[0]
    assert status == 0, captured.err
    assert "from the patient record: Procedure" in exam


def test_dictionary_in_chinese_has_chinese_labels_titles_types_and_value_labels(capsys, tmp_path: Path):
    assert main(["dictionary", "--trial", "NCT03862768", "--lang", "zh"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("NCT03862768 (伊马替尼治疗后局灶性进展胃肠间质瘤（GIST）的手术治疗研究) 的输入列：")
    status = text.split("\ndisease_status: ")[1].split("\n\n")[0]
    assert status.startswith("疾病状态\n")  # the clinical label of the Chinese dialog file
    assert "类型：取值之一" in status
    # the words a cell takes, each with its label
    assert "取值：recurrent（复发）、metastatic（转移）、localized_primary（局限性原发）" in status
    assert "用于标准 I1：经病理确诊的复发或转移性 GIST" in status
    assert "来自病历：否（请在表格或对话中填写）" in status
    age = text.split("\nage: ")[1].split("\n\n")[0]
    assert "未填写时由 birth_date、screening_date 计算" in age
    for english in ("type:", "values:", "example:", "read by", "from the patient record", "one of", "yes/no"):
        assert english not in text, english
    out = tmp_path / "d.csv"
    assert main(["dictionary", "--trial", "NCT03862768", "--lang", "zh", "-o", str(out)]) == 0
    rows = {r["column"]: r for r in csv.DictReader(out.read_text(encoding="utf-8").splitlines())}
    assert list(rows["sex"])[:4] == ["column", "label", "description", "type"]  # the columns stay
    assert rows["sex"]["label"] == "性别" and rows["sex"]["type"] == "取值之一"
    assert rows["sex"]["values"] == "female; male"  # as a cell takes them


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_dictionary_names_units_as_a_cell_takes_them(capsys, lang: str):
    assert main(["dictionary", "--trial", "NCT06898385", "--lang", lang]) == 0
    anc = capsys.readouterr().out.split("\nanc: ")[1].split("\n\n")[0]
    assert "10*9/L" in anc and "×10" not in anc
    assert coerce_text(TRIALS["NCT06898385"].facts["anc"], "3.2 10*9/L") is not None
