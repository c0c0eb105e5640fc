"""Whatever a record holds, reading it never raises: random, malformed and mistyped elements
in every place a mapping looks, as a Bundle and as an export; each Patient gives exactly one
record and nothing else becomes a candidate."""
from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.run.batch import screen_row
from screener.engine import Screener
from screener.rules.check import load_trial
from screener.sources.fhir import FhirSource
from screener.sources.mapping import load_mappings
from screener.sources.merge import Sources

from conftest import ROOT

TRIAL = "NCT06898385"
CODES = ["718-7", "1742-6", "85354-9", "8480-6", "89247-1", "82810-3", "C78.7", "A10BA02", "C09AA02",
         "LA9622-7", "5196-1", "10828004", "nonsense", ""]
SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm",
           "http://www.whocc.no/atc", "urn:x", None]
TYPES = ["Observation", "Condition", "MedicationStatement", "MedicationRequest", "Procedure", "Encounter",
         "Nonsense", None, 7]
junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                 st.text(max_size=12), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                       st.integers(), max_size=2))
dates = st.one_of(st.sampled_from(["2026-11-30", "2026-11-30T08:00:00Z", "2026-11", "2026", "2026-02-30",
                                   "2026-11-30T25:00:00", "yesterday", ""]), junk)
coding = st.fixed_dictionaries({"system": st.sampled_from(SYSTEMS), "code": st.one_of(st.sampled_from(CODES), junk)})
concept = st.one_of(st.fixed_dictionaries({"coding": st.one_of(st.lists(coding, max_size=3), junk)}), junk)
quantity = st.one_of(st.fixed_dictionaries({
    "value": st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False), junk),
    "code": st.one_of(st.sampled_from(["g/L", "g/dL", "kg", "10*9/L", "mm[Hg]", "%", "{INR}", "[IU]/mL", "@@"]),
                      junk),
    "system": st.sampled_from(["http://unitsofmeasure.org", None])}), junk)
resource = st.fixed_dictionaries({
    "resourceType": st.sampled_from(TYPES),
    "id": st.one_of(st.text(min_size=1, max_size=6), junk),
    "subject": st.one_of(st.just({"reference": "Patient/p1"}), st.just({"reference": "Patient/p2"}),
                         st.just({"reference": "Patient/zz"}), junk),
}, optional={
    "status": st.one_of(st.sampled_from(["final", "preliminary", "active", "stopped", "entered-in-error"]), junk),
    "code": concept, "medicationCodeableConcept": concept, "clinicalStatus": concept,
    "verificationStatus": concept, "valueCodeableConcept": concept, "valueQuantity": quantity,
    "valueInteger": junk, "effectiveDateTime": dates, "onsetDateTime": dates, "issued": dates,
    "effectivePeriod": st.one_of(st.fixed_dictionaries({"start": dates, "end": dates}), junk),
    "referenceRange": st.one_of(st.lists(st.fixed_dictionaries({"high": quantity}), max_size=2), junk),
    "component": st.one_of(st.lists(st.fixed_dictionaries({"code": concept, "valueQuantity": quantity}),
                                    max_size=3), junk),
})
patient = st.fixed_dictionaries({"resourceType": st.just("Patient"), "id": st.sampled_from(["p1", "p2"])},
                                optional={"gender": junk | st.sampled_from(["female", "male", "other"]),
                                          "birthDate": dates})


@lru_cache(maxsize=None)
def _loaded():
    trial = load_trial(ROOT / "rules" / f"{TRIAL}.yaml")
    shipped = sorted((ROOT / "mappings").glob("*.yaml"))
    return trial, Screener(trial), load_mappings(files=[ROOT / "tests" / "data" / "fhir" / "odd-mappings.yaml",
                                                        *shipped])


def _screen(path):
    trial, screener, mappings = _loaded()
    source = FhirSource(str(path))
    joined = Sources([(str(path), source)], dict(trial.facts), [trial.id_fact], mappings, dt.date(2026, 12, 1))
    return [screen_row(trial, screener, row).record for row in joined.rows()]


_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                            HealthCheck.data_too_large])


@_SETTINGS
@given(patients=st.lists(patient, min_size=1, max_size=2, unique_by=lambda p: p["id"]),
       resources=st.lists(resource, max_size=12))
def test_any_bundle_gives_one_record_per_patient_and_never_raises(tmp_path_factory, patients, resources):
    path = tmp_path_factory.mktemp("b") / "bundle.json"
    entries = [{"resource": r} for r in [*patients, *resources]] + [{"resource": 5}, "junk"]
    path.write_text(json.dumps({"resourceType": "Bundle", "entry": entries}), encoding="utf-8")
    records = _screen(path)
    assert sorted(r["candidate_id"] for r in records) == sorted(p["id"] for p in patients)
    assert all(r["decision"] in ("eligible", "ineligible", "undetermined", "error") for r in records)
    for record in records:
        for message in record["errors"]:
            assert "Traceback" not in message and "{'" not in message and "Decimal(" not in message


@_SETTINGS
@given(patients=st.lists(patient, min_size=1, max_size=2, unique_by=lambda p: p["id"]),
       resources=st.lists(resource, max_size=12), cut=st.integers(0, 200))
def test_any_export_gives_one_record_per_patient_and_never_raises(tmp_path_factory, patients, resources, cut):
    folder = tmp_path_factory.mktemp("e")
    (folder / "Patient.ndjson").write_text("".join(json.dumps(p) + "\n" for p in patients), encoding="utf-8")
    lines = "".join(json.dumps(r) + "\n" for r in resources)
    (folder / "Observation.ndjson").write_text(lines[:len(lines) - cut] if cut < len(lines) else lines,
                                               encoding="utf-8")
    records = _screen(folder)
    named = [r["candidate_id"] for r in records if r["candidate_id"] != ""]
    assert sorted(named) == sorted(p["id"] for p in patients)
    assert all(r["decision"] == "error" for r in records if r["candidate_id"] == "")
