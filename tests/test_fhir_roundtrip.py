"""A candidate written as a FHIR record (plus a sheet of what no record holds) is decided as
its fact table is: for random candidates of every shipped trial, with noise a correct reader
ignores (older, preliminary, entered-in-error, future and stale results, other units,
resolved and refuted conditions, stopped drugs, shuffled entries); as Bundles and as a Bulk
Data export."""
from __future__ import annotations

import datetime as dt
import random
import sys
from functools import lru_cache

import pytest

from screener.run.batch import screen_row
from screener.engine import Screener
from screener.sources.readers import Row
from screener.rules.check import load_trial
from screener.sources.fhir import FhirSource
from screener.sources.mapping import load_mappings
from screener.sources.merge import Sources

from conftest import ROOT
from fhir_synth import bundle, ndjson, split

sys.path.insert(0, str(ROOT / "benchmarks"))
from candidates import Profile, generator_for  # noqa: E402

TRIALS = sorted(p.stem for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".cases.yaml"))
AS_OF = dt.date(2026, 12, 1)
# complete-ish, valid candidates that often pass, so that record values decide outcomes
PROFILE = Profile(absent=(0.0, 0.05, 0.3), passing=(0.8, 0.95, 1.0), invalid=0.0, native=True, consistent=True)


@lru_cache(maxsize=None)
def _loaded(trial_id: str):
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    return trial, Screener(trial)


def _want(trial, screener, fields):
    record = screen_row(trial, screener, Row(1, dict(fields))).record
    return {k: record[k] for k in ("candidate_id", "decision", "failed_criteria", "missing", "errors")}


def _got(trial, screener, rows):
    out = []
    for row in rows:
        record = screen_row(trial, screener, row).record
        out.append(({k: record[k] for k in ("candidate_id", "decision", "failed_criteria", "missing", "errors")},
                    record.get("sources", {})))
    return out


def _patients(trial_id: str, seed: int, count: int):
    trial, screener = _loaded(trial_id)
    mappings = load_mappings()
    rng = random.Random(seed)
    cases = []
    for cand in generator_for(ROOT / "rules" / f"{trial_id}.yaml").candidates(seed, count, PROFILE):
        resources, sheet = split(trial, mappings, cand.fields, AS_OF, rng)
        cases.append((cand.fields, resources, sheet))
    return trial, screener, mappings, cases


def _joined(trial, mappings, fhir_path, sheets):
    def table():
        return iter(Row(i, dict(s)) for i, s in enumerate(sheets, 1))
    return Sources([(str(fhir_path), FhirSource(str(fhir_path))), ("sheet", table)],
                   dict(trial.facts), [trial.id_fact], mappings, AS_OF)


@pytest.mark.parametrize("trial_id", TRIALS)
def test_bundles_and_a_sheet_give_the_decisions_of_the_fact_table(trial_id, tmp_path):
    trial, screener, mappings, cases = _patients(trial_id, seed=7, count=30)
    for i, (_, resources, _) in enumerate(cases):
        (tmp_path / f"patient-{i:03}.json").write_text(bundle(resources), encoding="utf-8")
    got = _got(trial, screener, _joined(trial, mappings, tmp_path, [s for _, _, s in cases]).rows())
    want = [_want(trial, screener, fields) for fields, _, _ in cases]
    assert [g for g, _ in got] == want
    from_record = [name for _, sources in got for name, p in sources.items()
                   if isinstance(p, list) or "resource" in p and not p["resource"].startswith("Patient/")]
    # the record, not the sheet, gave these facts: the test is not passing by leaving FHIR out
    assert len(from_record) >= len(cases)


@pytest.mark.parametrize("trial_id", TRIALS)
def test_a_bulk_export_of_the_same_patients_gives_the_same_decisions(trial_id, tmp_path):
    trial, screener, mappings, cases = _patients(trial_id, seed=11, count=20)
    for name, text in ndjson([resources for _, resources, _ in cases]).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    got = _got(trial, screener, _joined(trial, mappings, tmp_path, [s for _, _, s in cases]).rows())
    want = [_want(trial, screener, fields) for fields, _, _ in cases]
    assert [g for g, _ in got] == want
