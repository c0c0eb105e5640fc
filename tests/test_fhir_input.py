"""`screener batch` and `match` on FHIR R4 records: Bundles, exports, joined sheets,
provenance in records and traces, mappings checked and overridden, and broken input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from screener.cli import main
from screener.rules.check import load_trial
from screener.sources.mapping import check_against, load_mappings

from conftest import ROOT

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
TRIAL = "NCT06898385"


def _obs(rid, patient, code, when, status="final", value=None, unit=None, **extra):
    resource = {"resourceType": "Observation", "id": rid, "status": status,
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": when, **extra}
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return resource


def _patient(pid, **extra):
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-05-01", **extra}


def _bundle(path: Path, *resources) -> Path:
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": r} for r in resources]}), encoding="utf-8")
    return path


def _run(tmp_path, *args, command="batch"):
    out = tmp_path / "out.jsonl"
    code = main([command, "--trial", TRIAL, *map(str, args), "-o", str(out)])
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    return code, records


def _sheet(tmp_path, text):
    path = tmp_path / "sheet.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bundle_and_a_sheet_are_joined_with_each_fact_s_provenance(tmp_path, capsys):
    bundle = _bundle(tmp_path / "p1.json", _patient("p1"),
                     _obs("hb-new", "p1", "718-7", "2026-11-30T08:00:00Z", value=10.5, unit="g/dL"),
                     _obs("hb-old", "p1", "718-7", "2026-11-20", value=90, unit="g/L"),
                     _obs("hb-prelim", "p1", "718-7", "2026-12-01", status="preliminary", value=50, unit="g/L"))
    sheet = _sheet(tmp_path, "candidate_id,screening_date,ecog\np1,2026-12-01,1\np2,2026-12-01,0\n")
    code, records = _run(tmp_path, bundle, sheet)
    assert code == 0
    assert [r["candidate_id"] for r in records] == ["p1", "p2"]  # the record's order, then the sheet's
    hb = records[0]["sources"]["hemoglobin"]
    assert hb["resource"] == "Observation/hb-new" and hb["date"] == "2026-11-30"
    assert hb["given"] == "10.5 g/dL" and hb["converted"] == "10.5 g/dL = 105 g/L"
    assert hb["where"].endswith("p1.json entry 2")
    assert records[0]["sources"]["ecog"] == {"file": str(sheet), "row": 1}
    assert "hemoglobin" not in records[0]["missing"] and "hemoglobin" in records[1]["missing"]
    assert "sources" in records[1] and "hemoglobin" not in records[1]["sources"]


def test_a_fact_two_sources_give_differently_is_an_error_naming_both(tmp_path):
    bundle = _bundle(tmp_path / "p1.json", _patient("p1"))
    sheet = _sheet(tmp_path, "candidate_id,sex,birth_date\np1,male,1960-05-01\n")
    code, records = _run(tmp_path, bundle, sheet)
    assert code == 1
    (record,) = records
    assert record["decision"] == "error"
    (error,) = record["errors"]
    assert error.startswith("sex:") and "Patient/p1" in error and "sheet.csv row 1" in error
    assert "male" in error and "female" in error


def test_traces_record_the_resource_and_verify(tmp_path, capsys):
    bundle = _bundle(tmp_path / "p1.json", _patient("p1"),
                     _obs("hb", "p1", "718-7", "2026-11-30", value=10.5, unit="g/dL"))
    traces = tmp_path / "traces"
    code = main(["batch", "--trial", TRIAL, str(bundle), "--as-of", "2026-12-01", "-o",
                 str(tmp_path / "out.jsonl"), "--traces", str(traces)])
    assert code == 0
    (trace,) = traces.glob("*.jsonl")
    facts = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    source = next(r for r in facts if r.get("fact") == "hemoglobin")["source"]
    assert source["kind"] == "record" and source["column"] == "Observation/hb"
    assert source["note"] == "2026-11-30" and source["given"] == "10.5 g/dL"
    capsys.readouterr()
    assert main(["verify", str(trace)]) == 0
    assert main(["explain", str(trace)]) == 0
    shown = " ".join(capsys.readouterr().out.replace("│", " ").split())  # lines wrap at the width
    # by its clinical label, the converted value in its unit as given and as kept
    assert "Haemoglobin = 10.5 g/dL = 105 g/L from the record, Observation/hb, 2026-11-30" in shown


def test_id_system_keys_candidates_by_their_mrn(tmp_path):
    mrn = "urn:oid:1.2.3.4"
    bundle = _bundle(tmp_path / "b.json",
                     _patient("r1", identifier=[{"system": "urn:other", "value": "X"},
                                                {"system": mrn, "value": "MRN-001"}]),
                     _patient("r2"))
    code = main(["batch", "--trial", TRIAL, str(bundle), "--id-system", mrn, "-o", str(tmp_path / "o.jsonl")])
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert code == 1
    assert [r["candidate_id"] for r in records] == ["MRN-001", ""]
    assert "Patient/r2 has no identifier with system urn:oid:1.2.3.4" in records[1]["errors"][0]


def test_a_window_ends_on_the_candidate_s_screening_date_and_without_one_the_fact_stays_unknown(tmp_path, capsys):
    hb = [_obs(f"hb-{p}", p, "718-7", "2026-11-30", value=10.5, unit="g/dL") for p in ("p1", "p2", "p3")]
    bundle = _bundle(tmp_path / "b.json", _patient("p1"), _patient("p2"), _patient("p3"), *hb)
    # p1 has no screening date; p2's is two months after the result (stale); p3's is the next day
    sheet = _sheet(tmp_path, "candidate_id,screening_date\np2,2027-02-01\np3,2026-12-01\n")
    code, records = _run(tmp_path, bundle, sheet)
    assert code == 0
    assert ["hemoglobin" in r["missing"] for r in records] == [True, True, False]
    assert "hemoglobin: not read from the record for 1 candidates" in capsys.readouterr().err


def test_match_takes_a_record_too(tmp_path):
    bundle = _bundle(tmp_path / "p1.json", _patient("p1"))
    out = tmp_path / "m.jsonl"
    assert main(["match", str(bundle), "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["candidate_id"] for r in records} == {"p1"} and len(records) == 3
    assert all(r["sources"]["sex"]["resource"] == "Patient/p1" for r in records)


# --- broken input: a message naming file, line or entry and resource; nobody lost or invented


def test_a_broken_export_screens_everyone_else_and_names_each_problem(tmp_path, capsys):
    export = tmp_path / "export"
    export.mkdir()
    patients = [_patient("a"), _patient("b"), _patient("c")]
    lines = [json.dumps(p) for p in patients] + ['{"resourceType": "Patient", "id": "d", "gend']
    (export / "Patient.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    observations = [
        _obs("ok", "a", "718-7", "2026-11-30", value=120, unit="g/L"),
        _obs("kg", "b", "718-7", "2026-11-30", value=11, unit="kg"),                  # no conversion
        _obs("t1", "c", "751-8", "2026-11-30T08:00:00Z", value=2.0, unit="10*9/L"),  # two results
        _obs("t2", "c", "751-8", "2026-11-30T08:00:00Z", value=3.0, unit="10*9/L"),  # at one time
        _obs("ghost", "zz", "718-7", "2026-11-30", value=120, unit="g/L"),           # no such patient
        {"resourceType": "Observation", "id": "lonely", "status": "final"},          # no subject
        {"resourceType": "Obsrvation", "id": "typo", "subject": {"reference": "Patient/a"}},
        _obs("ecog", "a", "89247-1", "2026-11-30",
             valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA0000-0"}]}),  # unmapped
    ]
    text = "\n".join(json.dumps(o) for o in observations)
    text += '\n{"resourceType": "Observation", "id": "cut", "subject": {"reference": "Patient/b"}, "val'
    text += '\n{"resourceType": "Observation", "id": "cut2", "sta\n'
    (export / "Observation.ndjson").write_text(text, encoding="utf-8")
    code, records = _run(tmp_path, export, "--as-of", "2026-12-01")
    err = capsys.readouterr().err
    assert code == 1
    by_id = {r["candidate_id"]: r for r in records}
    assert set(by_id) == {"a", "b", "c", ""} and len(records) == 5  # d and cut2 are records of ""
    assert "ecog: http://loinc.org|LA0000-0: a code the mapping does not map" in by_id["a"]["errors"][0]
    b_errors = " | ".join(by_id["b"]["errors"])
    assert "hemoglobin: 11 kg: the unit kg does not convert to g/L (Observation/kg" in b_errors
    assert "Observation.ndjson:9: resource cut: not JSON" in b_errors
    (c_error,) = by_id["c"]["errors"]
    assert "anc: Observation/t1" in c_error and "Observation/t2" in c_error and "at the same time" in c_error
    lost = [r["errors"][0] for r in records if r["candidate_id"] == ""]
    assert any("Patient.ndjson:4: resource d: not JSON" in e for e in lost)
    assert any("Observation.ndjson:10: resource cut2: not JSON" in e for e in lost)
    assert "Observation.ndjson:5: Observation/ghost: its subject Patient/zz is not in the input" in err
    assert "Observation.ndjson:6: Observation/lonely: no subject or patient" in err
    assert "Observation.ndjson:7: Obsrvation/typo: not a FHIR R4 resource type" in err
    assert "Traceback" not in err


def test_a_bundle_that_is_not_json_is_an_error_record_naming_its_file(tmp_path, capsys):
    folder = tmp_path / "bundles"
    folder.mkdir()
    _bundle(folder / "1.json", _patient("p1"))
    (folder / "2.json").write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    _bundle(folder / "3.json", _patient("p3"))
    code, records = _run(tmp_path, folder)
    assert code == 1
    assert [r["candidate_id"] for r in records] == ["p1", "", "p3"]
    assert "2.json:1: not JSON" in records[1]["errors"][0]
    assert "Traceback" not in capsys.readouterr().err


def test_a_folder_without_fhir_files_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _ = _run(tmp_path, tmp_path / "empty")
    assert code == 2
    assert "no FHIR files" in capsys.readouterr().err


def test_the_manifest_names_the_files_of_an_export(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(json.dumps(_patient("a")) + "\n", encoding="utf-8")
    (export / "Old.ndjson").write_text(json.dumps(_patient("stale")) + "\n", encoding="utf-8")
    (export / "manifest.json").write_text(json.dumps({"transactionTime": "2026-12-01T00:00:00Z", "output": [
        {"type": "Patient", "url": "https://ehr.example/bulk/Patient.ndjson"}]}), encoding="utf-8")
    code, records = _run(tmp_path, export)
    assert [r["candidate_id"] for r in records] == ["a"]


# --- mappings: checked, overridden by a site ------------------------------------------------


def test_check_reports_every_mapping_problem_with_its_position(tmp_path, capsys):
    site = tmp_path / "site"
    (site / "rules").mkdir(parents=True)
    (site / "mappings").mkdir()
    (site / "mappings" / "bad.yaml").write_text(
        "facts:\n"
        "  hemoglobin:\n"
        "    resource: Observaton\n"
        "    code: {lonc: [718-7]}\n"
        "    pick: newest\n"
        "    value: quantty\n", encoding="utf-8")
    assert main(["check", "--rules-dir", str(site / "rules")]) == 2
    err = capsys.readouterr().err
    bad = str(site / "mappings" / "bad.yaml")
    assert f"{bad}:3:15: unknown-resource: hemoglobin: 'Observaton'" in err and "did you mean 'Observation'" in err
    assert f"{bad}:4:12: unknown-system:" in err and "did you mean 'loinc'" in err
    assert f"{bad}:5:11: bad-pick:" in err
    assert f"{bad}:6:12: bad-value:" in err and "did you mean 'quantity'" in err
    # a batch run refuses it too, before reading anyone
    bundle = _bundle(tmp_path / "p.json", _patient("p1"))
    assert main(["batch", "--trial", TRIAL, "--rules-dir", str(site / "rules"), str(bundle)]) == 2


def test_a_mapping_that_does_not_fit_its_fact_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "facts:\n  bp_readings:\n    resource: Observation\n    code: {loinc: [85354-9]}\n    value: quantity\n"
        "  ecog:\n    resource: Observation\n    code: {loinc: [89247-1]}\n"
        "    lookback: {days: 3, anchor: sex}\n    value: number\n"
        "  sex:\n    resource: Condition\n    code: {snomed: [248153007]}\n    pick: exists\n"
        "  weight:\n    resource: Observation\n    code: {loinc: [29463-7]}\n    value: date\n", encoding="utf-8")
    trial = load_trial(ROOT / "rules" / f"{TRIAL}.yaml")
    found = "\n".join(str(p) for p in check_against(load_mappings(files=[path]), dict(trial.facts)))
    assert "m.yaml:2:3: mapping-kind: bp_readings is a list fact" in found
    assert "m.yaml:6:3: bad-anchor: ecog: lookback anchor 'sex' is not a date fact" in found
    assert "m.yaml:11:3: mapping-kind: sex is an enum fact: pick exists gives a boolean" in found
    assert "m.yaml:15:3: mapping-kind: weight is a quantity fact: value date gives a date" in found


def test_a_site_mapping_overrides_the_shipped_one_and_may_declare_the_record_complete(tmp_path):
    site = tmp_path / "site"
    (site / "rules").mkdir(parents=True)
    (site / "mappings").mkdir()
    (site / "mappings" / "local.yaml").write_text(
        "systems:\n  lab: http://hospital.example/lab\n"
        "facts:\n"
        "  hemoglobin:\n    resource: Observation\n    code: {lab: [HB]}\n    value: quantity\n"
        "  organ_transplant:\n    resource: Condition\n    value_set: transplant.json\n"
        "    pick: exists\n    complete: true\n", encoding="utf-8")
    (site / "mappings" / "transplant.json").write_text(json.dumps({
        "resourceType": "ValueSet", "compose": {"include": [
            {"system": "http://hl7.org/fhir/sid/icd-10-cm", "concept": [{"code": "Z94.0"}]}]}}), encoding="utf-8")
    local = {"resourceType": "Observation", "id": "local", "status": "final",
             "code": {"coding": [{"system": "http://hospital.example/lab", "code": "HB"}]},
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-30",
             "valueQuantity": {"value": 99, "code": "g/L", "system": UCUM}}
    bundle = _bundle(tmp_path / "p.json", _patient("p1"), local,
                     _obs("loinc", "p1", "718-7", "2026-12-01", value=140, unit="g/L"))
    code, records = _run(tmp_path, "--rules-dir", site / "rules", bundle)
    sources = records[0]["sources"]
    assert sources["hemoglobin"]["resource"] == "Observation/local"
    assert "organ_transplant" not in records[0]["missing"]  # the site says: none recorded means none
    assert sources["organ_transplant"] == {"record": "complete", "found": "none"}


def test_bundle_entries_that_name_their_patient_by_full_url_are_hers(tmp_path):
    path = tmp_path / "synthea.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1c", "resource": _patient("p-uuid")},
        {"fullUrl": "urn:uuid:0b2d", "resource": {**_obs("hb", "x", "718-7", "2026-11-30", value=120, unit="g/L"),
                                                 "subject": {"reference": "urn:uuid:6f1c"}}}]}), encoding="utf-8")
    code, records = _run(tmp_path, path, "--as-of", "2026-12-01")
    assert code == 0 and records[0]["sources"]["hemoglobin"]["resource"] == "Observation/hb"


def test_highest_and_lowest_compare_values_in_the_fact_s_unit(tmp_path):
    site = tmp_path / "site"
    (site / "rules").mkdir(parents=True)
    (site / "mappings").mkdir()
    (site / "mappings" / "worst.yaml").write_text(
        "facts:\n"
        "  alt:\n    resource: Observation\n    code: {loinc: [1742-6]}\n    pick: highest\n    value: quantity\n"
        "  platelets:\n    resource: Observation\n    code: {loinc: [777-3]}\n    pick: lowest\n    value: quantity\n",
        encoding="utf-8")
    bundle = _bundle(tmp_path / "p.json", _patient("p1"),
                     _obs("alt-1", "p1", "1742-6", "2026-11-01", value=90, unit="U/L"),
                     _obs("alt-2", "p1", "1742-6", "2026-11-20", value=0.1, unit="U/mL"),  # 100 U/L: highest
                     _obs("alt-3", "p1", "1742-6", "2026-11-30", value=40, unit="U/L"),
                     _obs("plt-1", "p1", "777-3", "2026-11-01", value=150, unit="10*9/L"),
                     _obs("plt-2", "p1", "777-3", "2026-11-20", value=120, unit="10*3/uL"),   # lowest
                     _obs("plt-3", "p1", "777-3", "2026-11-25", value=50, unit="10*9/L", status="entered-in-error"))
    code, records = _run(tmp_path, "--rules-dir", site / "rules", bundle)
    sources = records[0]["sources"]
    assert sources["alt"]["resource"] == "Observation/alt-2" and sources["alt"]["converted"] == "0.1 U/mL = 100 U/L"
    assert sources["platelets"]["resource"] == "Observation/plt-2"


def test_an_export_s_temporary_index_stays_beside_the_results_and_goes(tmp_path, monkeypatch):
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(json.dumps(_patient("a")) + "\n", encoding="utf-8")
    results = tmp_path / "results"
    results.mkdir()
    seen = []
    import screener.sources.fhir as fhir

    real = fhir.sqlite3.connect
    monkeypatch.setattr(fhir.sqlite3, "connect", lambda path: seen.append(path) or real(path))
    assert main(["batch", "--trial", TRIAL, str(export), "-o", str(results / "out.jsonl")]) == 0
    (index,) = seen
    assert Path(index).parent.parent == results
    assert sorted(p.name for p in results.iterdir()) == ["out.jsonl"]
    assert sorted(p.name for p in export.iterdir()) == ["Patient.ndjson"]


def _panel(rid, when, systolic, diastolic, status="final"):
    def part(code, value):
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}
    return {**_obs(rid, "p1", "85354-9", when, status=status),
            "component": [part("8480-6", systolic), part("8462-4", diastolic)]}


def test_blood_pressure_panels_become_the_list_of_readings_in_time_order(tmp_path):
    bundle = _bundle(tmp_path / "p.json", _patient("p1"),
                     _panel("bp-2", "2026-11-30T10:00:00+08:00", 150, 95),
                     _panel("bp-1", "2026-11-29T09:00:00+08:00", 138, 88),
                     _panel("bp-old", "2026-09-01", 190, 120),                       # outside 28 days
                     _panel("bp-bad", "2026-11-30T11:00:00+08:00", 80, 40, status="entered-in-error"))
    out = tmp_path / "o.jsonl"
    assert main(["batch", "--trial", TRIAL, str(bundle), "--as-of", "2026-12-01", "-o", str(out),
                 "--traces", str(tmp_path / "t")]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["resource"] for p in record["sources"]["bp_readings"]] == ["Observation/bp-1", "Observation/bp-2"]
    (trace,) = (tmp_path / "t").glob("*.jsonl")
    fact = next(json.loads(line) for line in trace.read_text().splitlines() if '"fact":"bp_readings"' in line)
    assert fact["value"] == [{"measured_on": "2026-11-29", "systolic": "138", "diastolic": "88"},
                             {"measured_on": "2026-11-30", "systolic": "150", "diastolic": "95"}]


def test_medications_give_their_class_start_and_stop_and_ongoing_when_active(tmp_path):
    def statement(rid, atc, status, start, end=None):
        period = {"start": start, **({"end": end} if end else {})}
        return {"resourceType": "MedicationStatement", "id": rid, "status": status,
                "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": atc}]},
                "subject": {"reference": "Patient/p1"}, "effectivePeriod": period}
    bundle = _bundle(tmp_path / "p.json", _patient("p1"),
                     statement("met", "A10BA02", "active", "2024-02-01"),
                     statement("sglt", "A10BK01", "stopped", "2023-01-10", "2023-06-30"),
                     statement("err", "A10BH01", "entered-in-error", "2025-01-01"),
                     statement("ace", "C09AA02", "active", "2022-01-01"))
    out = tmp_path / "o.jsonl"
    assert main(["batch", "--trial", "NCT06534411", str(bundle), "-o", str(out), "--traces", str(tmp_path / "t")]) == 0
    (trace,) = (tmp_path / "t").glob("*.jsonl")
    fact = next(json.loads(line) for line in trace.read_text().splitlines() if '"fact":"antidiabetic_medications"' in line)
    assert fact["value"] == [
        {"drug": "sglt2i", "start_date": "2023-01-10", "stop_date": "2023-06-30", "dose_since": None},
        {"drug": "metformin", "start_date": "2024-02-01", "stop_date": "ongoing", "dose_since": None}]


def test_csv_results_carry_the_sources_as_json_in_a_last_column(tmp_path):
    import csv

    bundle = _bundle(tmp_path / "p1.json", _patient("p1"))
    out = tmp_path / "out.csv"
    assert main(["batch", "--trial", TRIAL, str(bundle), "-o", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert list(row)[-1] == "sources"
    assert json.loads(row["sources"])["sex"] == {"resource": "Patient/p1", "where": f"{bundle} entry 1",
                                                 "given": "female"}


def test_a_censored_hbv_dna_decides_e9_from_its_comparator(tmp_path):
    """FHIR Quantity's comparator: HBV DNA `< 20 IU/mL` with a positive HBcAb is below E9's
    2000 IU/mL whatever its value; `> 1000` is not, and names the fact."""
    def hbv(rid, patient, comparator, value):
        return _obs(rid, patient, "29615-2", "2026-11-30", valueQuantity={
            "value": value, "comparator": comparator, "unit": "IU/mL", "system": UCUM, "code": "[IU]/mL"})
    bundle = _bundle(tmp_path / "p.json", _patient("p1"), hbv("hbv-1", "p1", "<", 20),
                     _patient("p2"), hbv("hbv-2", "p2", ">", 1000))
    sheet = _sheet(tmp_path, "candidate_id,screening_date,hbcab_positive\np1,2026-12-01,yes\np2,2026-12-01,yes\n")
    code, records = _run(tmp_path, bundle, sheet)
    first, second = records
    assert first["sources"]["hbv_dna"]["given"] == "<20 [IU]/mL"  # as the record codes it
    assert "E9" not in first["failed_criteria"] and "hbv_dna" not in first["missing"]
    assert "E9" not in second["failed_criteria"] and "hbv_dna" in second["missing"]
