"""Apply the mappings to one patient's resources: facts, where each came from, and errors.

Only the element paths a mapping needs are read (code, status, time, value), so unknown
elements and resource types no mapping reads cost nothing. Which result counts is decided by
time, never by the order of the file: `latest` is the latest effective time; two results at
that same time with different values are an error naming both. Absence is unknown, unless the
mapping says the record is complete for the fact.

Values come out as a batch record would give them (`{value, unit}` with the UCUM code, ISO
dates, `ongoing`, enum values, lists of items), so units are converted and values checked by
the same code as every other source; a value its fact refuses is an error naming the fact,
the value, the resource and where it was read.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from screener.errors import InvalidValue
from screener.model import FactSpec
from screener.rules import units
from screener.sources.fhir import Located, PatientRecord
from screener.sources.mapping import DEFAULT_STATUS, SYSTEMS, FactMapping, Mappings, ValueRule
from screener.values import coerce, quantity

_UCUM = SYSTEMS["ucum"]
_TIME_PATHS = {
    "Observation": ("effectiveDateTime", "effectiveInstant", "effectivePeriod.start", "issued"),
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
    "MedicationRequest": ("dosageInstruction.timing.repeat.boundsPeriod.start", "authoredOn"),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
}
_END_PATHS = {
    "Condition": ("abatementDateTime", "abatementPeriod.end"),
    "MedicationStatement": ("effectivePeriod.end",),
    "MedicationRequest": ("dosageInstruction.timing.repeat.boundsPeriod.end",),
    "MedicationAdministration": ("effectivePeriod.end",),
    "Procedure": ("performedPeriod.end",),
    "Observation": ("effectivePeriod.end",),
}
_ONGOING_STATUS = {"active", "in-progress", "recurrence", "relapse"}


@dataclass
class Extracted:
    """A patient's facts as read from the record (raw, as a batch record gives them)."""

    fields: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)  # fact -> provenance (JSON)
    errors: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # facts left unknown for want of an anchor


def _path(resource: Any, dotted: str) -> Any:
    value = resource
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _first(resource: dict[str, Any], paths: tuple[str, ...]) -> str | None:
    for dotted in paths:
        value = _path(resource, dotted)
        if isinstance(value, str) and value:
            return value
    return None


def instant(text: str) -> tuple[dt.datetime, str] | None:
    """A FHIR date or dateTime as (a comparable UTC instant, its date as written); None when
    it is not one. A date without a time counts from the start of its day."""
    try:
        if len(text) <= 10:
            parts = [int(p) for p in text.split("-")] + [1, 1]
            day = dt.date(parts[0], parts[1], parts[2])
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc), text
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc), text[:10]


def _codings(resource: dict[str, Any], element: str = "code") -> list[Any]:
    if resource.get("resourceType", "").startswith("Medication") and element == "code":
        concept = resource.get("medicationCodeableConcept")
        if concept is None and isinstance(resource.get("medicationReference"), dict):
            ref = str(resource["medicationReference"].get("reference", ""))
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and ref == "#" + str(contained.get("id")):
                    concept = contained.get("code")
        element_value = concept
    else:
        element_value = resource.get(element)
    codings = element_value.get("coding") if isinstance(element_value, dict) else None
    return codings if isinstance(codings, list) else []


def _status(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Condition":
        codings = _codings(resource, "clinicalStatus")
        return str(codings[0].get("code")) if codings and isinstance(codings[0], dict) else None
    status = resource.get("status")
    return status if isinstance(status, str) else None


def _verified(resource: dict[str, Any], excluded: tuple[str, ...]) -> bool:
    if resource.get("resourceType") != "Condition":
        return True
    return not any(isinstance(c, dict) and c.get("code") in excluded
                   for c in _codings(resource, "verificationStatus"))


def _quantity(element: Any) -> dict[str, Any] | None:
    if not isinstance(element, dict) or "value" not in element:
        return None
    code = element.get("code") if element.get("system") in (_UCUM, None) else None
    unit = code if isinstance(code, str) else element.get("unit")
    value = element["value"]
    out = {"value": value, "unit": unit} if isinstance(unit, str) and unit else {"value": value}
    if element.get("comparator") is not None:
        # `<20`: a censored result, read as the range it gives (screener.intervals)
        out["comparator"] = element["comparator"]
    return out


class _Unmapped(Exception):
    """A coded value that the mapping's table does not map."""


def _rule_value(rule: ValueRule, located: Located, status: str | None) -> Any:
    """The value `rule` reads from the resource (None: the resource holds none)."""
    resource = located.resource
    kind = resource.get("resourceType", "")
    if rule.kind == "quantity":
        return _quantity(resource.get("valueQuantity"))
    if rule.kind == "number":
        for key in ("valueInteger", "valueDecimal"):
            if isinstance(resource.get(key), (int, Decimal)) and not isinstance(resource.get(key), bool):
                return resource[key]
        q = resource.get("valueQuantity")
        if isinstance(q, dict) and q.get("comparator") is not None:
            return _quantity(q)  # censored: not one number (refused for a number fact)
        return q.get("value") if isinstance(q, dict) else None
    if rule.kind == "boolean":
        value = resource.get("valueBoolean")
        return value if isinstance(value, bool) else None
    if rule.kind == "present":
        return True
    if rule.kind == "birthDate":
        return resource.get("birthDate")
    if rule.kind in ("date", "start"):
        if kind == "Patient":
            return resource.get("birthDate")
        time = _first(resource, _TIME_PATHS.get(kind, ()))
        return None if time is None else time[:10]
    if rule.kind == "end":
        end = _first(resource, _END_PATHS.get(kind, ()))
        if end is not None:
            return end[:10]
        return "ongoing" if status in _ONGOING_STATUS else None
    if rule.kind == "reference_high":
        for reference in resource.get("referenceRange") or []:
            if isinstance(reference, dict) and (q := _quantity(reference.get("high"))) is not None:
                return q
        return None
    if rule.kind == "component":
        assert rule.component is not None
        for component in resource.get("component") or []:
            if isinstance(component, dict) and rule.component.matches(_codings(component)):
                if rule.part == "number":
                    q = component.get("valueQuantity")
                    if isinstance(q, dict) and q.get("comparator") is not None:
                        return _quantity(q)  # censored: not one number (refused for a number fact)
                    return q.get("value") if isinstance(q, dict) else component.get("valueInteger")
                return _quantity(component.get("valueQuantity"))
        return None
    assert rule.table is not None
    if rule.kind == "gender":
        gender = resource.get("gender")
        if not isinstance(gender, str):
            return None
        found, value = rule.table.value_of([{"system": "", "code": gender}])
    else:
        codings = _codings(resource, "valueCodeableConcept" if rule.kind == "concept" else "code")
        if not codings:
            return None
        found, value = rule.table.value_of(codings)
    if not found:
        shown = ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings if isinstance(c, dict)) \
            if rule.kind != "gender" else str(resource.get("gender"))
        raise _Unmapped(shown)
    return value


def _given(raw: Any) -> str:
    """A value as the record wrote it, for a person: `10.5 g/dL`, `yes`, other JSON as JSON."""
    if isinstance(raw, dict) and "value" in raw and not isinstance(raw["value"], (dict, list)):
        return f"{raw.get('comparator') or ''}{raw['value']} {raw.get('unit') or ''}".strip()
    if isinstance(raw, list):
        return f"{len(raw)} items"
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, (dict, list)) or raw is None:
        return json.dumps(raw, ensure_ascii=False, default=str)
    return str(raw)


@dataclass
class _Found:
    located: Located
    when: tuple[dt.datetime, str] | None
    value: Any


def extract(record: PatientRecord, mappings: Mappings, specs: Mapping[str, FactSpec],
            known: Mapping[str, Any], as_of: dt.date | None) -> Extracted:
    """The facts of `specs` that `mappings` read from `record`. `known` holds the facts other
    sources gave (a lookback anchor may be among them); `as_of` anchors the rest."""
    out = Extracted()
    index = _ByCode(record)
    for name, mapping in mappings.facts.items():
        spec = specs.get(name)
        if spec is None:  # no trial of the run has this fact
            continue
        anchor = None
        if mapping.lookback_days is not None:
            anchor = _anchor(mapping, record, mappings, specs, known, as_of)
            if anchor is None:
                out.unread.append(name)
                continue
        try:
            _read_fact(mapping, spec, record, anchor, out, index)
        except _Unmapped as exc:
            out.errors.append(f"{name}: {exc}: a code the mapping does not map")
    return out


def _anchor(mapping: FactMapping, record: PatientRecord, mappings: Mappings,
            specs: Mapping[str, FactSpec], known: Mapping[str, Any], as_of: dt.date | None) -> dt.date | None:
    if mapping.anchor:
        raw = known.get(mapping.anchor)
        if raw is None and mapping.anchor in mappings.facts and mapping.anchor != mapping.fact:
            inner = Extracted()
            _read_fact(mappings.facts[mapping.anchor], specs.get(mapping.anchor), record, None, inner)
            raw = inner.fields.get(mapping.anchor)
        spec = specs.get(mapping.anchor)
        if spec is not None and raw is not None:
            try:
                raw = coerce(spec, raw)  # a date as any source writes it
            except InvalidValue:
                raw = None
        if isinstance(raw, dt.datetime):
            return raw.date()
        if isinstance(raw, dt.date):
            return raw
        if isinstance(raw, str):
            try:
                return dt.date.fromisoformat(raw.strip())
            except ValueError:
                pass
    return as_of


class _ByCode:
    """A patient's resources by (type, system, code), built once per patient, so that each
    mapping looks at the resources of its codes only."""

    def __init__(self, record: PatientRecord):
        self.codes: dict[tuple[Any, Any], dict[Any, list[int]]] = {}
        self.resources = record.resources
        for number, located in enumerate(record.resources):
            kind = located.resource.get("resourceType")
            for coding in _codings(located.resource):
                if isinstance(coding, dict):
                    by_code = self.codes.setdefault((kind, coding.get("system")), {})
                    by_code.setdefault(coding.get("code"), []).append(number)

    def find(self, mapping: FactMapping) -> list[Located]:
        numbers: set[int] = set()
        codes = mapping.codes
        for kind in mapping.resources:
            if codes is None:
                numbers.update(i for i, r in enumerate(self.resources) if r.resource.get("resourceType") == kind)
                continue
            for system in set(codes.exact) | set(codes.prefixes):
                by_code = self.codes.get((kind, system))
                if not by_code:
                    continue
                for code in codes.exact.get(system, ()):
                    numbers.update(by_code.get(code, ()))
                for prefix in codes.prefixes.get(system, ()):
                    for code, found in by_code.items():
                        if isinstance(code, str) and code.startswith(prefix):
                            numbers.update(found)
        return [self.resources[i] for i in sorted(numbers)]


def _candidates(mapping: FactMapping, record: PatientRecord, anchor: dt.date | None,
                index: _ByCode | None = None) -> list[tuple[Located, str | None]]:
    if mapping.resources == ("Patient",):
        return [(record.patient, None)] if record.patient is not None else []
    chosen = []
    for located in (index or _ByCode(record)).find(mapping):
        resource = located.resource
        kind = resource.get("resourceType")
        status = _status(resource)
        allowed = mapping.statuses if mapping.statuses is not None else DEFAULT_STATUS.get(str(kind), ())
        if status not in allowed or not _verified(resource, mapping.verification_excluded):
            continue
        if anchor is not None:
            time = _first(resource, _TIME_PATHS.get(str(kind), ()))
            when = instant(time) if time else None
            if when is None:
                continue
            day = dt.date.fromisoformat(when[1]) if len(when[1]) == 10 else None
            if day is None or day > anchor or (anchor - day).days > (mapping.lookback_days or 0):
                continue
        chosen.append((located, status))
    return chosen


def _read_fact(mapping: FactMapping, spec: FactSpec | None, record: PatientRecord,
               anchor: dt.date | None, out: Extracted, index: _ByCode | None = None) -> None:
    name = mapping.fact
    candidates = _candidates(mapping, record, anchor, index)
    if mapping.pick == "exists":
        if candidates:
            located = _latest_first(candidates)[0][0]
            out.fields[name] = True
            out.sources[name] = _provenance(located, True)
        elif mapping.complete:
            out.fields[name] = False
            out.sources[name] = {"record": "complete", "found": "none"}
        return
    if mapping.pick == "all":
        items, refs = [], []
        for located, status in _latest_first(candidates)[::-1]:
            item = {}
            for field_name, rule in mapping.item:
                value = _rule_value(rule, located, status)
                if value is not None:
                    item[field_name] = value
            items.append(item)
            refs.append(_provenance(located, None))
        if items or mapping.complete:
            out.fields[name] = items
            out.sources[name] = refs
        return
    assert mapping.value is not None
    found = []
    for located, status in candidates:
        value = _rule_value(mapping.value, located, status)
        if value is None:
            continue
        time = _first(located.resource, _TIME_PATHS.get(str(located.resource.get("resourceType")), ()))
        found.append(_Found(located, instant(time) if time else None, value))
    if not found:
        return
    if mapping.pick in ("latest", "earliest"):
        timed = [f for f in found if f.when is not None] or found
        key = (lambda f: f.when[0]) if timed[0].when is not None else (lambda f: 0)
        best = (max if mapping.pick == "latest" else min)(key(f) for f in timed)
        top = [f for f in timed if key(f) == best]
    else:
        scored = []
        for f in found:
            try:
                scored.append((_magnitude(spec, f.value), f))
            except InvalidValue as exc:
                out.errors.append(f"{exc.fact}: {_given(f.value)}: {exc.reason} ({f.located.reference}, "
                                  f"{f.located.where})")
                return
        best_score = (max if mapping.pick == "highest" else min)(s for s, _ in scored)
        top = [f for s, f in scored if s == best_score]
    distinct = {repr(_comparable(spec, f.value)) for f in top} if len(top) > 1 else ()
    if len(distinct) > 1:
        a, b = top[0], next(f for f in top[1:] if repr(_comparable(spec, f.value)) != repr(_comparable(spec, top[0].value)))
        out.errors.append(f"{name}: {a.located.reference} ({a.located.where}) gives {_given(a.value)} and "
                          f"{b.located.reference} ({b.located.where}) gives {_given(b.value)} at the same time")
        return
    chosen = top[0]
    if spec is not None and spec.type in ("integer", "decimal"):
        if isinstance(chosen.value, dict) and chosen.value.get("comparator") is not None:
            out.errors.append(f"{name}: {_given(chosen.value)}: a censored result, and the fact takes one "
                              f"number ({chosen.located.reference}, {chosen.located.where})")
            return
        if isinstance(chosen.value, dict):
            try:
                chosen.value = _in_unit(spec, chosen.value)
            except units.UnitError:
                out.errors.append(f"{name}: {_given(chosen.value)}: the unit {chosen.value.get('unit')} does not "
                                  f"convert to {spec.unit or 'a plain number'} ({chosen.located.reference}, "
                                  f"{chosen.located.where})")
                return
        if isinstance(chosen.value, Decimal):  # written as the record wrote it, digit for digit
            chosen.value = int(chosen.value) if chosen.value == chosen.value.to_integral_value() \
                and spec.type == "integer" else format(chosen.value, "f")
    if spec is not None:
        try:
            coerce(spec, chosen.value)
        except InvalidValue as exc:
            out.errors.append(f"{exc.fact}: {_given(chosen.value)}: {exc.reason} ({chosen.located.reference}, "
                              f"{chosen.located.where})")
            return
    out.fields[name] = chosen.value
    out.sources[name] = _provenance(chosen.located, chosen.value)


def _in_unit(spec: FactSpec, raw: dict[str, Any]) -> Any:
    """The number of a quantity, in the unit of a number fact that declares one (a decimal in
    µmol/L); a unitless quantity (INR, `{INR}`, `1`) is its number. Raises UnitError."""
    number, unit = raw.get("value"), str(raw.get("unit") or "")
    own = spec.unit.replace("µ", "u")
    if not unit or unit == "1" or unit.startswith("{") and unit.endswith("}") and not own:
        return number
    if unit.replace("µ", "u") == own:
        return number
    if not own:
        raise units.UnitError(unit)
    how = units.conversion(unit.replace("µ", "u"), own, dict(spec.convert))
    return how.apply(Decimal(str(number)))


def _latest_first(candidates: list[tuple[Located, str | None]]) -> list[tuple[Located, str | None]]:
    def key(pair: tuple[Located, str | None]) -> tuple[int, Any]:
        kind = str(pair[0].resource.get("resourceType"))
        time = _first(pair[0].resource, _TIME_PATHS.get(kind, ()))
        when = instant(time) if time else None
        return (1, when[0]) if when else (0, dt.datetime.min.replace(tzinfo=dt.timezone.utc))
    return sorted(candidates, key=key, reverse=True)


def _magnitude(spec: FactSpec | None, raw: Any) -> Decimal:
    if isinstance(raw, dict) and raw.get("comparator") is not None:
        # a censored result has no one value to rank: which is highest is not known
        raise InvalidValue(spec.name if spec else "", _given(raw), "a censored result cannot be "
                           "ranked against the other results the mapping picks from")
    if spec is not None and spec.type == "quantity":
        value, _ = quantity(spec, raw)
        if value is None:
            raise InvalidValue(spec.name, raw, "no value")
        return value
    number = raw.get("value") if isinstance(raw, dict) else raw
    try:
        found = Decimal(str(number)) if not isinstance(number, bool) else None
    except (InvalidOperation, ValueError):
        found = None
    if found is None or not found.is_finite():
        raise InvalidValue(spec.name if spec else "", number, "not a number")
    return found


def _comparable(spec: FactSpec | None, raw: Any) -> Any:
    if spec is None:
        return raw
    try:
        return coerce(spec, raw)
    except InvalidValue:
        return raw


def _provenance(located: Located, value: Any) -> dict[str, Any]:
    resource = located.resource
    kind = str(resource.get("resourceType"))
    time = _first(resource, _TIME_PATHS.get(kind, ())) if kind != "Patient" else None
    out: dict[str, Any] = {"resource": located.reference, "where": located.where}
    if time:
        out["date"] = time[:10]
    if value is not None and not isinstance(value, list) and not (isinstance(value, dict) and kind == "Patient"):
        out["given"] = _given(value)
    return out
