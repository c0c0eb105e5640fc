"""Several sources, one record per candidate: a FHIR export plus a sheet of what it lacks.

The first source is streamed and sets the order; the others are indexed by candidate id, and
a candidate found only in them follows, in their order. Facts are joined: a fact two sources
give with the same value is fine; with different values it is an error naming both sources.
A FHIR record's lookback windows are anchored on a date fact from any source (the screening
date from the sheet) or `--as-of`.

Each output row carries where every fact came from (`sources`): the resource, where it was
read, its date and the value as the record wrote it, and for a table the file and row.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from screener.errors import InvalidValue
from screener.model import FactSpec
from screener.sources.readers import Row
from screener.sources.extract import extract
from screener.sources.fhir import FhirSource, PatientRecord, Problem
from screener.sources.mapping import Mappings
from screener.audit.trace import to_json_value
from screener.values import coerce, describe_conversion


@dataclass
class SourcedRow(Row):
    """A row joined from several sources, with each fact's provenance."""

    sources: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Part:
    """One source's share of a candidate."""

    key: str | None
    label: str  # the source as a person names it: `sheet.csv row 3`, `export/Patient.ndjson:5`
    fields: dict[str, Any] = field(default_factory=dict)
    record: PatientRecord | None = None
    problem: str | None = None
    row: Row | None = None


@dataclass
class Joined:
    """What a run of joined sources reports beside its records."""

    problems: list[Problem] = field(default_factory=list)  # belonging to no candidate
    unread: Counter[str] = field(default_factory=Counter)  # fact -> candidates without an anchor


class Sources:
    """Candidates from several inputs: tables (rows of facts) and FHIR folders or Bundles."""

    def __init__(self, inputs: Sequence[tuple[str, Callable[[], Iterator[Row]] | FhirSource]],
                 specs: Mapping[str, FactSpec], id_facts: Sequence[str], mappings: Mappings | None,
                 as_of: dt.date | None):
        self.inputs = inputs
        self.specs = specs
        self.id_facts = list(dict.fromkeys(id_facts))
        self.mappings = mappings
        self.as_of = as_of
        self.report = Joined()

    def _parts(self, name: str, source: Callable[[], Iterator[Row]] | FhirSource) -> Iterator[_Part]:
        if isinstance(source, FhirSource):
            for found in source.patients():
                if isinstance(found, Problem):
                    yield _Part(None, found.where, problem=str(found))
                else:
                    where = found.patient.where if found.patient else name
                    yield _Part(found.key, where, record=found,
                                problem="; ".join(found.problems) or None)
            self.report.problems.extend(source.problems)
            return
        for row in source():
            key = next((row.fields.get(f) for f in self.id_facts if row.fields.get(f) not in (None, "")), None)
            yield _Part(key if isinstance(key, str) else (None if key is None else str(key)),
                        f"{name} row {row.number}", dict(row.fields), problem=row.problem, row=row)

    def rows(self) -> Iterator[Row]:
        """One row per candidate, the first source's first, in its order."""
        (first_name, first), rest = self.inputs[0], self.inputs[1:]
        indexed: list[dict[str, list[_Part]]] = []
        loose: list[_Part] = []
        for name, source in rest:
            index: dict[str, list[_Part]] = {}
            for part in self._parts(name, source):
                if part.key is None:
                    loose.append(part)
                else:
                    index.setdefault(part.key, []).append(part)
            indexed.append(index)
        used: set[str] = set()
        number = 0
        for part in self._parts(first_name, first):
            number += 1
            others = [p for index in indexed for p in index.get(part.key, [])] if part.key is not None else []
            if part.key is not None:
                used.add(part.key)
            yield self._joined(number, [part, *others], primary_row=part.row)
        for i, index in enumerate(indexed):
            for key, parts in index.items():
                if key in used:
                    continue
                used.add(key)
                later = [p for other in indexed[i + 1:] for p in other.get(key, [])]
                number += 1
                yield self._joined(number, [*parts, *later])
        for part in loose:
            number += 1
            yield self._joined(number, [part])

    def _joined(self, number: int, parts: list[_Part], primary_row: Row | None = None) -> Row:
        fields: dict[str, Any] = {}
        given_by: dict[str, str] = {}
        sources: dict[str, Any] = {}
        problems = [p.problem for p in parts if p.problem]
        key = next((p.key for p in parts if p.key is not None), None)

        def add(name: str, raw: Any, label: str, provenance: Any) -> None:
            if name in self.id_facts:
                return
            if name in fields:
                if self._same(name, fields[name], raw):
                    return
                problems.append(f"{name}: {label} gives {_shown(raw)} but {given_by[name]} gives "
                                f"{_shown(fields[name])}")
                return
            fields[name] = raw
            given_by[name] = label
            if provenance is not None:
                sources[name] = provenance

        for part in parts:
            for name, raw in part.fields.items():
                if raw is None or raw == "":
                    continue
                add(name, raw, part.label, {"file": part.label.rsplit(" row ", 1)[0],
                                            "row": part.row.number if part.row else None}
                    if name in self.specs else None)
        for part in parts:
            if part.record is None or self.mappings is None:
                continue
            found = extract(part.record, self.mappings, self.specs, fields, self.as_of)
            problems.extend(f"{e} [{part.label}]" if "(" not in e else e for e in found.errors)
            self.report.unread.update(found.unread)
            for name, raw in found.fields.items():
                provenance = found.sources.get(name)
                if isinstance(provenance, dict) and name in self.specs:
                    converted = describe_conversion(self.specs[name], raw)
                    if converted is not None:
                        provenance = {**provenance, "converted": str(converted)}
                label = provenance.get("resource", part.label) if isinstance(provenance, dict) else part.label
                add(name, raw, str(label), provenance)
        if key is not None:
            for id_fact in self.id_facts:
                fields[id_fact] = key
        columns = primary_row.columns if primary_row is not None and len(parts) == 1 else {}
        return SourcedRow(number, fields, "; ".join(problems) or None, columns,
                          sources=_jsonable(sources))

    def _same(self, name: str, a: Any, b: Any) -> bool:
        spec = self.specs.get(name)
        if spec is None:
            return bool(a == b)
        try:
            return coerce(spec, a) == coerce(spec, b)
        except InvalidValue:
            return bool(a == b)


def _shown(raw: Any) -> str:
    """A value as a source gave it, for a person (never a Python repr)."""
    if isinstance(raw, dict) and "value" in raw and not isinstance(raw["value"], (dict, list)):
        return f"{raw['value']} {raw.get('unit') or ''}".strip()
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, str):
        return raw
    return json.dumps(to_json_value(raw), ensure_ascii=False, default=str)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def trace_source(provenance: Any, fallback: Any) -> Any:
    """The trace's Source for a fact's provenance (from the record or a table)."""
    from screener.audit.trace import Source

    if isinstance(provenance, list):
        refs = [p.get("resource", "") for p in provenance if isinstance(p, dict)]
        files = sorted({str(p.get("where", "")).rsplit(":", 1)[0].split(" entry ")[0]
                        for p in provenance if isinstance(p, dict)})
        return Source("record", file=", ".join(files), column=", ".join(refs))
    if isinstance(provenance, dict) and "resource" in provenance:
        return Source("record", file=str(provenance.get("where", "")), column=str(provenance["resource"]),
                      note=str(provenance.get("date", "")), given=str(provenance.get("given", "")))
    if isinstance(provenance, dict) and provenance.get("record") == "complete":
        return Source("record", note="none in the record, which is complete for this fact")
    if isinstance(provenance, dict) and "file" in provenance:
        return Source.batch(str(provenance["file"]), provenance.get("row") or 0, "")
    return fallback
