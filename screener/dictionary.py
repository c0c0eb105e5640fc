"""The data dictionary of one or several trials, for whoever builds the input of a batch run.

`columns` are the CSV header a coordinator fills (`screener template`): the candidate id, then
every fact a candidate record may carry, in the order the first trial's data dictionary lists
them, then the facts only later trials add. `entries` describe each column in words
(`screener dictionary`): its clinical label, type, unit and the units also accepted, allowed
values, an example the batch reader takes as it is, and the criteria that read it. Nothing
here prints; `cli` writes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Mapping, Sequence

from screener.i18n import tr
from screener.model import FactSpec, Special, Trial

EXAMPLE_DATE = "2025-03-01"


@dataclass(frozen=True, slots=True)
class Entry:
    """One column of the input, described for a person."""

    column: str
    label: str  # the clinical label from the dialog file ("" when none)
    description: str  # the data dictionary's sentence
    type: str  # in words: yes/no, whole number, number, quantity, date, one of, text, list
    unit: str  # the declared unit ("" when none)
    other_units: tuple[str, ...]  # units the rules convert from besides the declared one
    values: tuple[str, ...]  # allowed words: enum values, never/ongoing for dates
    example: str  # a cell the batch reader takes
    computed_from: tuple[str, ...]  # for a derived fact: the facts it is computed from
    criteria: tuple[tuple[str, str, str], ...]  # (trial id, criterion id, title) reading it
    record: str = ""  # how a patient record supplies it ("" when no mapping reads it)
    value_labels: tuple[str, ...] = ()  # each allowed value's clinical label ("" when none given)


TYPE_WORDS = {
    "boolean": tr("yes/no"), "integer": tr("whole number"), "decimal": tr("number"),
    "quantity": tr("quantity"), "date": tr("date"), "enum": tr("one of"), "text": tr("text"),
    "list": tr("list"),
}


def columns(trials: Sequence[Trial]) -> list[str]:
    """The input columns of `trials`: the candidate id first, then every fact a record may
    carry (context facts are given once per run, not per candidate), without repeats."""
    out = [trials[0].id_fact] if trials else []
    for trial in trials:
        for name, spec in trial.facts.items():
            if name not in out and name != trial.id_fact and not spec.context:
                out.append(name)
    return out


def example(spec: FactSpec) -> str:
    """A value of `spec` as a CSV cell, one the batch reader accepts: inside the fact's
    limits, in its declared unit; a list as JSON text with one item."""
    if spec.type == "boolean":
        return "no"
    if spec.type == "date":
        return EXAMPLE_DATE
    if spec.type == "enum":
        return spec.values[0]
    if spec.type == "text":
        return "text"
    if spec.type == "list":
        return json.dumps([{item.name: _item_example(item) for item in spec.item}], ensure_ascii=False)
    number = _middle(spec)
    if spec.type == "integer":
        return str(int(number.to_integral_value()))
    places = Decimal(1).scaleb(-(spec.places or 0))
    text = f"{number.quantize(places, ROUND_HALF_EVEN):f}"
    return f"{text} {spec.unit}" if spec.type == "quantity" and spec.unit else text


def worked_example(trial: Trial) -> dict[str, str]:
    """A real candidate of the trial as CSV cells: the `base` candidate of the hand-made cases
    kept beside its rules file (`rules/<TRIAL>.cases.yaml`), when there is one; else {}.
    Facts it leaves out (those computed from others) are absent."""
    from pathlib import Path

    from screener.errors import RulesError
    from screener.rules.read import load_yaml

    path = Path(trial.path)
    cases = path.with_name(path.name[: -len(path.suffix)] + ".cases.yaml")
    try:
        base = load_yaml(cases).get("base") if cases.is_file() else None
    except (RulesError, AttributeError):
        return {}
    if not isinstance(base, Mapping):
        return {}
    return {str(name): _cell(value) for name, value in base.items()
            if name in trial.facts and value is not None}


def _cell(value: object) -> str:
    """A YAML value as the CSV cell that says the same."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return json.dumps([dict(item) for item in value], ensure_ascii=False, default=str)
    return str(value)


def example_row(trials: Sequence[Trial]) -> dict[str, str]:
    """One complete example row for `columns(trials)`: each trial's worked example (the first
    trial that has a column gives it), else a value of the right form; what a trial's worked
    example leaves out (facts computed from others) stays empty, as unknown."""
    row: dict[str, str] = {}
    for column in columns(trials):
        owners = [t for t in trials if column in t.facts]
        worked = next((w[column] for w in map(worked_example, owners) if column in w), None)
        spec = owners[0].facts[column]
        if column == owners[0].id_fact:
            row[column] = "P-0001"
        elif worked is not None:
            row[column] = worked
        elif any(worked_example(t) for t in owners):
            row[column] = ""  # unknown to the worked example: a made-up value could contradict it
        else:
            row[column] = example(spec)
    return row


def _middle(spec: FactSpec) -> Decimal:
    low = Decimal(str(spec.minimum)) if spec.minimum is not None else None
    high = Decimal(str(spec.maximum)) if spec.maximum is not None else None
    if low is not None and high is not None:
        return low if spec.type == "integer" else (low + high) / 2
    return low if low is not None else (high if high is not None else Decimal(1))


def _item_example(item: FactSpec) -> object:
    """A JSON value for one field of a list item."""
    text = example(item)
    if item.type == "boolean":
        return False
    if item.type in ("integer", "decimal"):
        return json.loads(text)
    return text


def _values(spec: FactSpec) -> tuple[str, ...]:
    if spec.type == "enum":
        return spec.values
    if spec.type == "date":
        return tuple(s.value for s in spec.special if isinstance(s, Special))
    return ()


def _computed_from(trial: Trial, spec: FactSpec) -> tuple[str, ...]:
    if spec.derived_by is None:
        return ()
    derivation = next(d for d in trial.derivations if d.id == spec.derived_by)
    return tuple(derivation.inputs)


def entries(trials: Sequence[Trial], labels: Mapping[str, Mapping[str, str]] | None = None,
            record: Mapping[str, str] | None = None, language: str = "en", *,
            titles: Mapping[str, Mapping[str, str]] | None = None,
            values: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None) -> list[Entry]:
    """One Entry per column of `columns(trials)`, its words in `language`; `labels` maps a
    trial id to its dialog file's clinical labels (fact -> label), `titles` to its criterion
    titles (criterion -> title) and `values` to its values' labels (fact -> value -> label),
    `record` a fact to how a patient record supplies it (`record_sources`). A fact several
    trials share is described by the first that declares it, and lists the criteria of every
    trial that reads it. The description is the rules' own sentence."""
    labels = labels or {}
    record = record or {}
    titles = titles or {}
    values = values or {}
    examples = [worked_example(t) for t in trials]
    out = []
    for column in columns(trials):
        owners = [t for t in trials if column in t.facts]
        spec = owners[0].facts[column]
        label = next((labels.get(t.id, {}).get(column, "") for t in owners
                      if labels.get(t.id, {}).get(column)), "")
        criteria = tuple((t.id, c.id, titles.get(t.id, {}).get(c.id) or c.title)
                         for t in owners for c in t.criteria_using(column))
        worked = next((w[column] for w in examples if column in w), None)
        allowed = _values(spec)
        value_label = next((values[t.id][column] for t in owners if values.get(t.id, {}).get(column)), {})
        type_word = TYPE_WORDS.get(spec.type)
        out.append(Entry(
            column=column, label=label, description=spec.description,
            type=type_word.in_language(language) if type_word else spec.type, unit=spec.unit,
            other_units=tuple(u for u, _ in spec.convert) + tuple(u for u, _, _ in spec.affine),
            values=allowed,
            example="P-0001" if column == owners[0].id_fact else worked or example(spec),
            computed_from=_computed_from(owners[0], spec), criteria=criteria,
            record=record.get(column, ""),
            value_labels=tuple(value_label.get(v, "") for v in allowed) if value_label else (),
        ))
    return out


def describe(entry: Entry, several: bool, language: str = "en") -> list[str]:
    """The lines that describe one column for a person (`screener dictionary`), in `language`."""
    comma = "、" if language == "zh" else ", "
    heading = f"{entry.column}: {entry.label}" if entry.label else entry.column
    kind = entry.type
    if entry.unit:
        # units as a cell takes them (`10*9/L`), not as a letter prints them (`×10⁹/L`)
        kind = tr("{type}, in {unit}", type=kind, unit=entry.unit).in_language(language)
    if entry.other_units:
        units = comma.join(entry.other_units)
        kind = tr("{kind} (also accepted: {units}, converted)", kind=kind, units=units).in_language(language)
    elif entry.type == TYPE_WORDS["quantity"].in_language(language):
        kind = tr("{kind} (or any unit of the same kind, converted)", kind=kind).in_language(language)
    said = [tr("type: {kind}", kind=kind)]
    if entry.values:
        opening, closing = ("（", "）") if language == "zh" else (" (", ")")
        labels = entry.value_labels or ("",) * len(entry.values)
        shown = [f"{value}{opening}{label}{closing}" if label and label != value else value
                 for value, label in zip(entry.values, labels)]
        said.append(tr("values: {values}", values=comma.join(shown)))
    said.append(tr("example: {example}", example=entry.example))
    if entry.computed_from:
        said.append(tr("computed from {facts} when not given", facts=comma.join(entry.computed_from)))
    for trial_id, criterion_id, title in entry.criteria:
        criterion = f"{trial_id} {criterion_id}" if several else criterion_id
        said.append(tr("read by {criterion}: {title}", criterion=criterion, title=title))
    said.append(tr("from the patient record: {source}", source=entry.record) if entry.record
                else tr("from the patient record: no (give it in the sheet or the dialog)"))
    return [heading, f"  {entry.description}"] + [f"  {message.in_language(language)}" for message in said]


SYSTEM_NAMES = {
    "http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM", "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm", "http://www.whocc.no/atc": "ATC",
}


def record_sources(mappings: object) -> dict[str, str]:
    """Fact -> how the FHIR mappings read it from a patient record, in words:
    `Observation (LOINC 718-7)`, `Condition (SNOMED CT, ICD-10-CM)`."""
    out = {}
    for fact, mapping in getattr(mappings, "facts", {}).items():
        codes = mapping.codes
        systems: list[str] = []
        shown: list[str] = []
        if codes is not None:
            for system in [*codes.exact, *codes.prefixes]:
                name = SYSTEM_NAMES.get(system, system)
                if name not in systems:
                    systems.append(name)
            if len(systems) == 1:
                exact = sorted(next(iter(codes.exact.values()), ()))
                shown = exact[:3]
        what = " or ".join(mapping.resources)
        if systems:
            what += f" ({', '.join(systems)}{' ' + ', '.join(shown) if shown else ''})"
        out[fact] = what
    return out


DICTIONARY_COLUMNS = ("column", "label", "description", "type", "unit", "other_units", "values",
                      "example", "computed_from", "criteria", "from_record")


def as_row(entry: Entry) -> dict[str, str]:
    """An Entry as one row of the dictionary's CSV form (lists joined with '; ')."""
    return {
        "column": entry.column, "label": entry.label, "description": entry.description,
        "type": entry.type, "unit": entry.unit, "other_units": "; ".join(entry.other_units),
        "values": "; ".join(entry.values), "example": entry.example,
        "computed_from": "; ".join(entry.computed_from),
        "criteria": "; ".join(f"{t} {c}: {title}" for t, c, title in entry.criteria),
        "from_record": entry.record,
    }
