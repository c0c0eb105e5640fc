"""Synthetic FHIR R4 patients from a candidate's facts, with noise a correct reader ignores.

`split(trial, mappings, fields, as_of, rng)` writes what the record can hold of a candidate's
facts as FHIR resources and leaves the rest (judgement, consent, values no code carries) to a
sheet row, so that reading the record and the sheet back gives the candidate's facts:

- labs are written at a date inside the lookback window, in the fact's unit or another unit a
  power of ten away (exact both ways), beside an older result with another value, a newer
  preliminary one, a newer entered-in-error one, one after the anchor date and a stale one
  outside the window;
- a `yes` condition or medication is written as active; a `no` stays in the sheet and the
  record gets a resolved, a refuted or a stopped one that must not turn it into `yes`;
- lists are written one resource per item, in time order, when every field is expressible.

`bundle(...)` and `ndjson(...)` lay the resources out as a Bundle or a Bulk Data export.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
from decimal import Decimal
from typing import Any

from screener.model import FactSpec, Special, Trial
from screener.rules import units
from screener.sources.mapping import FactMapping, Mappings
from screener.values import coerce

ALT_UNITS = ("g/dL", "mg/L", "mg/dL", "mmol/L", "10*3/uL", "10*6/L", "/nL", "m", "g", "mm", "U/mL",
             "kU/L", "ms", "min", "cm")
_LAB_STATUS_NOISE = ("preliminary", "entered-in-error", "registered", "cancelled")


def _first_code(mapping: FactMapping) -> tuple[str, str]:
    assert mapping.codes is not None
    for system, codes in mapping.codes.exact.items():
        return system, sorted(codes)[0]
    system, prefixes = next(iter(mapping.codes.prefixes.items()))
    return system, prefixes[0] + "01"


def _code_for(table: Any, value: Any) -> tuple[str, str] | None:
    """A code the table maps to `value` (an exact code, or a prefix made whole)."""
    for system, key, mapped in table.entries:
        if mapped == value and type(mapped) is type(value):
            code = key[:-1] + "99" if key.endswith("*") else key
            found, back = table.value_of([{"system": system, "code": code}])
            if found and back == value and type(back) is type(value):
                return system, code
    return None


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _power_of_ten(factor: Decimal) -> bool:
    if factor <= 0:
        return False
    digits = factor.normalize().as_tuple().digits
    return digits == (1,)


class Writer:
    def __init__(self, patient_id: str, rng: random.Random):
        self.patient_id = patient_id
        self.rng = rng
        self.resources: list[dict[str, Any]] = []
        self.count = 0

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        resource.setdefault("id", f"{self.patient_id}-{self.count}")
        resource["subject"] = {"reference": f"Patient/{self.patient_id}"}
        self.resources.append(resource)
        return resource


def _ucum(unit: str) -> str:
    return unit.replace("µ", "u")


def _quantity(spec: FactSpec, value: Decimal, rng: random.Random) -> dict[str, Any]:
    if spec.type != "quantity":  # a number fact keeps its own unit, or the record says none
        unit = _ucum(spec.unit) or "1"
        return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    units_tried = [u for u in ALT_UNITS if u != spec.unit]
    rng.shuffle(units_tried)
    if rng.random() < 0.5:
        for unit in units_tried:
            try:
                how = units.conversion(unit, spec.unit)
            except units.UnitError:
                continue
            if how.offset or not _power_of_ten(how.factor):
                continue
            given = value / how.factor
            if given * how.factor == value:
                return {"value": given, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return {"value": value, "unit": spec.unit, "system": "http://unitsofmeasure.org", "code": spec.unit}


def _other(spec: FactSpec, value: Decimal) -> Decimal:
    return value + Decimal(1) if spec.maximum is None or value + 1 <= Decimal(str(spec.maximum)) else value - 1


def split(trial: Trial, mappings: Mappings, fields: dict[str, Any], as_of: dt.date,
          rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the candidate's FHIR resources, Patient first; the sheet row of what stays out)."""
    pid = str(fields[trial.id_fact])
    typed: dict[str, Any] = {}
    for name, raw in fields.items():
        spec = trial.facts.get(name)
        if spec is not None and name != trial.id_fact and raw not in (None, ""):
            typed[name] = coerce(spec, raw) if not isinstance(raw, str) else coerce(spec, raw)
    sheet: dict[str, Any] = {trial.id_fact: pid}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    w = Writer(pid, rng)
    # Observations by code: one resource carries a value and its reference range
    labs: dict[tuple[str, str], dict[str, Any]] = {}
    for name, raw in fields.items():
        if name == trial.id_fact or raw in (None, ""):
            continue
        mapping = mappings.facts.get(name)
        spec = trial.facts.get(name)
        value = typed.get(name)
        if mapping is None or spec is None or value is None:
            sheet[name] = raw
            continue
        anchor = typed.get(mapping.anchor) if mapping.anchor else None
        anchor = anchor if isinstance(anchor, dt.date) else as_of
        if not _write(mapping, spec, value, anchor, patient, w, labs):
            sheet[name] = raw
    for (anchor_text, code), lab in labs.items():
        w.add(lab)
    w.rng.shuffle(w.resources)  # a correct reader never depends on the order of the file
    return [patient, *w.resources], sheet


def _lab(labs: dict, mapping: FactMapping, anchor: dt.date, day: int) -> dict[str, Any]:
    system, code = _first_code(mapping)
    key = (code, anchor.isoformat())
    if key not in labs:
        when = anchor - dt.timedelta(days=day)
        labs[key] = {"resourceType": "Observation", "status": "final", "code": _concept(system, code),
                     "effectiveDateTime": f"{when.isoformat()}T08:30:00+08:00"}
    return labs[key]


def _write(mapping: FactMapping, spec: FactSpec, value: Any, anchor: dt.date, patient: dict[str, Any],
           w: Writer, labs: dict) -> bool:
    rng = w.rng
    kind = mapping.value.kind if mapping.value is not None else None
    if mapping.resources == ("Patient",):
        if kind == "gender" and value in ("female", "male"):
            patient["gender"] = value
            return True
        if kind == "birthDate" and isinstance(value, dt.date):
            patient["birthDate"] = value.isoformat()
            return True
        return False
    days = mapping.lookback_days if mapping.lookback_days is not None else 365
    if mapping.resources[0] == "Observation" and mapping.pick == "latest" and kind in (
            "quantity", "number", "reference_high", "concept"):
        if kind in ("quantity", "reference_high") and spec.type == "decimal" and isinstance(value, float):
            value = Decimal(repr(value))  # a number fact with a unit (bilirubin in µmol/L)
        if kind in ("quantity", "reference_high") and not isinstance(value, Decimal):
            return False
        day = rng.randint(0, min(days, 3))
        lab = _lab(labs, mapping, anchor, day)
        system, code = _first_code(mapping)
        if kind == "quantity":
            lab["valueQuantity"] = _quantity(spec, value, rng)
        elif kind == "number":
            lab["valueQuantity"] = {"value": Decimal(str(value)), "unit": "{INR}",
                                    "system": "http://unitsofmeasure.org", "code": "{INR}"}
        elif kind == "reference_high":
            high = _quantity(spec, value, rng) if spec.type == "quantity" else {"value": Decimal(str(value))}
            lab["referenceRange"] = [{"high": high}]
        else:
            found = _code_for(mapping.value.table, value)
            if found is None:
                return False
            lab["valueCodeableConcept"] = _concept(*found)
        # noise: an older result, newer ones that do not count, one after the anchor, a stale one
        noise_value = _noise_value(kind, spec, value, mapping)
        if noise_value is not None:
            when = anchor - dt.timedelta(days=day)
            for status, shift in (("final", -1 - rng.randint(0, 2)), (rng.choice(_LAB_STATUS_NOISE), 0),
                                  ("final", day + 1 + rng.randint(0, 3)), ("final", -days - 2)):
                # the result that does not count is later the same day than the one that does
                time = "T23:00:00+08:00" if shift == 0 else ""
                w.add({"resourceType": "Observation", "status": status, "code": _concept(system, code),
                       "effectiveDateTime": (when + dt.timedelta(days=shift)).isoformat() + time,
                       **noise_value})
        return True
    if mapping.pick == "exists":
        system, code = _first_code(mapping)
        resource = mapping.resources[0]
        statuses = mapping.statuses
        if value is True:
            w.add(_clinical(resource, system, code, "active", "2020-01-01"))
        # noise: no diagnosis, or not current
        if resource == "Condition":
            w.add({**_clinical(resource, system, code, "active", "2019-05-05"),
                   "verificationStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                  "refuted")})
            if statuses is None:
                w.add(_clinical(resource, system, code, "resolved", "2018-03-03"))
        elif statuses is not None and "stopped" not in statuses:
            w.add(_clinical(resource, system, code, "stopped", "2018-03-03"))
        return value is True
    if mapping.pick == "earliest" and kind == "date" and isinstance(value, dt.date):
        system, code = _first_code(mapping)
        w.add(_clinical(mapping.resources[0], system, code, "active", value.isoformat()))
        later = value + dt.timedelta(days=rng.randint(1, 400))
        w.add(_clinical(mapping.resources[0], system, code, "inactive", later.isoformat()))
        earlier = value - dt.timedelta(days=rng.randint(1, 400))
        w.add({**_clinical(mapping.resources[0], system, code, "active", earlier.isoformat()),
               "verificationStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                              "entered-in-error")})
        return True
    if mapping.pick == "all" and isinstance(value, tuple) and value:
        return _write_list(mapping, spec, value, anchor, w)
    return False


def _noise_value(kind: str, spec: FactSpec, value: Any, mapping: FactMapping) -> dict[str, Any] | None:
    if kind == "quantity":
        unit = _ucum(spec.unit) or "1"
        return {"valueQuantity": {"value": _other(spec, value), "unit": unit,
                                  "system": "http://unitsofmeasure.org", "code": unit}}
    if kind == "number":
        return {"valueQuantity": {"value": Decimal(str(value)) + 1, "unit": "{INR}",
                                  "system": "http://unitsofmeasure.org", "code": "{INR}"}}
    if kind == "reference_high":
        return {"referenceRange": [{"high": {"value": _other(spec, value), "unit": spec.unit,
                                             "system": "http://unitsofmeasure.org", "code": spec.unit}}]}
    for system, key, mapped in mapping.value.table.entries:
        if mapped != value and mapped is not None and not key.endswith("*") and type(mapped) is type(value):
            return {"valueCodeableConcept": _concept(system, key)}
    return None


def _clinical(resource: str, system: str, code: str, status: str, when: str) -> dict[str, Any]:
    if resource == "Condition":
        return {"resourceType": "Condition", "code": _concept(system, code), "onsetDateTime": when,
                "clinicalStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-clinical", status)}
    return {"resourceType": resource, "status": status, "medicationCodeableConcept": _concept(system, code),
            "effectivePeriod": {"start": when}} if resource != "MedicationRequest" else {
        "resourceType": resource, "status": status, "medicationCodeableConcept": _concept(system, code),
        "authoredOn": when}


def _write_list(mapping: FactMapping, spec: FactSpec, items: tuple, anchor: dt.date, w: Writer) -> bool:
    """One resource per item, when every field of every item is expressible and the items are
    in strict time order (the order a reader gives back)."""
    rules = dict(mapping.item)
    field_specs = {s.name: s for s in spec.item}
    times = []
    resources = []
    for item in items:
        if {k for k, v in item.items() if v is not None} != set(rules):
            return False
        timed = [n for n, r in mapping.item if r.kind in ("date", "start")]
        if len(timed) != 1 or not isinstance(item.get(timed[0]), dt.date):
            return False
        when = item[timed[0]]
        if mapping.lookback_days is not None and not (0 <= (anchor - when).days <= mapping.lookback_days):
            return False
        times.append(when)
        resource = _item_resource(mapping, rules, field_specs, item, when)
        if resource is None:
            return False
        resources.append(resource)
    if any(b <= a for a, b in zip(times, times[1:])):
        return False
    for resource in resources:
        w.add(resource)
    return True


def _item_resource(mapping: FactMapping, rules: dict, field_specs: dict, item: dict, when: dt.date
                   ) -> dict[str, Any] | None:
    kind = mapping.resources[0]
    system, code = _first_code(mapping)
    status = "completed"
    end = None
    components = []
    for name, rule in rules.items():
        value = item.get(name)
        if rule.kind == "code":
            found = _code_for(rule.table, value)
            if found is None:
                return None
            system, code = found
        elif rule.kind == "end":
            if value == Special.ONGOING or value == "ongoing":
                status = "active"
            elif isinstance(value, dt.date):
                if value < when:
                    return None
                end = value.isoformat()
            else:
                return None
        elif rule.kind == "component":
            comp_system, comps = next(iter(rule.component.exact.items()))
            unit = field_specs[name].unit
            components.append({"code": _concept(comp_system, sorted(comps)[0]),
                               "valueQuantity": {"value": value, "unit": unit,
                                                 "system": "http://unitsofmeasure.org", "code": unit}})
    if kind == "Observation":
        resource = {"resourceType": "Observation", "status": "final", "code": _concept(system, code),
                    "effectiveDateTime": when.isoformat(), "component": components}
        return resource
    period = {"start": when.isoformat(), **({"end": end} if end else {})}
    return {"resourceType": kind, "status": status, "medicationCodeableConcept": _concept(system, code),
            "effectivePeriod": period}


def dumps(resource: Any) -> str:
    """JSON with Decimals written digit for digit (never through a binary float)."""
    text = json.dumps(_decimals_as_markers(resource), ensure_ascii=False)
    return re.sub(r'"@@decimal:([-0-9.]+)@@"', r"\1", text)


def _decimals_as_markers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"@@decimal:{format(value, 'f')}@@"
    if isinstance(value, dict):
        return {k: _decimals_as_markers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals_as_markers(v) for v in value]
    return value


def bundle(resources: list[dict[str, Any]]) -> str:
    return dumps({"resourceType": "Bundle", "type": "collection",
                  "entry": [{"fullUrl": f"urn:uuid:{r.get('id')}", "resource": r} for r in resources]})


def ndjson(patients: list[list[dict[str, Any]]]) -> dict[str, str]:
    """File name -> NDJSON text of a Bulk Data export of these patients' resources."""
    files: dict[str, list[str]] = {}
    for resources in patients:
        for resource in resources:
            files.setdefault(f"{resource['resourceType']}.ndjson", []).append(dumps(resource))
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}
