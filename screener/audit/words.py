"""A trace's wording for a person: its language, the trial wording its start record carries,
the screener's own words from the gettext catalogue, and times in the site's zone.

A trace records the screening's language and, when a dialog file was used, that file's wording
of the trial (criterion titles, protocol translations, notes, clinical labels of facts and
values). Letters and explanations read everything through a `Words`, so they speak the
screening's language from the trace alone; the protocol's own words are never translated here,
only shown beside the translation the dialog file gave.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from screener.audit.chain import Trace
from screener.audit.trace import Source
from screener.i18n import local_date, local_time, named_zone, translate
from screener.intervals import from_record
from screener.present import humanize, label_from, list_text, plain_value



@dataclass(frozen=True, slots=True)
class Words:
    """How to word one trace: language, zone, and the trial wording of that language."""

    language: str = "en"
    zone: _dt.tzinfo | None = None  # None: the system's zone (TZ honoured)
    titles: Mapping[str, str] = field(default_factory=dict)
    protocol_translations: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    trial_title: str = ""
    # from the trace's data dictionary: each fact's unit and description
    units: Mapping[str, str] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)
    # list facts: field name -> its label, and field -> value -> label (the dialog file's)
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    field_values: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    field_order: Mapping[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, trace: Trace, language: str | None = None,
           zone: _dt.tzinfo | None = None) -> "Words":
        """The wording of `trace`: its recorded language unless `language` overrides it. The
        trial wording recorded in the trace is used only in its own language (an override to
        another language keeps the rules file's wording). Times are shown in `zone`, else in
        the zone the screening recorded, else in the system's."""
        start = trace.start
        zone = zone if zone is not None else recorded_zone(trace)
        recorded = str(start.get("language") or "en")
        chosen = language or recorded
        wording = start.get("wording") or {}
        if not isinstance(wording, Mapping) or wording.get("language", recorded) != chosen:
            wording = {}
        facts = (start.get("trial") or {}).get("facts") or {}
        return cls(chosen, zone, wording.get("titles", {}),
                   wording.get("protocol_translations", {}), wording.get("notes", {}),
                   wording.get("labels", {}), wording.get("values", {}),
                   str(wording.get("trial_title", "") or ""),
                   {name: str(spec.get("unit") or "") for name, spec in facts.items()},
                   {name: str(spec.get("description") or "") for name, spec in facts.items()},
                   wording.get("fields", {}), wording.get("field_values", {}),
                   wording.get("field_order", {}))

    def tr(self, message: str, **params: Any) -> str:
        """A message of the screener (an English message id) in this language."""
        return translate(self.language, message, **params)

    def meaning(self, meaning: Any) -> str:
        """A signature's meaning (21 CFR 11.50) in this language; an unknown one as written."""
        known = {"authorship": self.tr("authorship"), "review": self.tr("review"),
                 "approval": self.tr("approval"), "responsibility": self.tr("responsibility")}
        return known.get(meaning, str(meaning))

    def pause_reason(self, reason: Any) -> str:
        """Why a dialog stopped before its decision (a pause record's reason)."""
        known = {"quit": self.tr("left with quit"), "interrupt": self.tr("interrupted with Ctrl-C"),
                 "eof": self.tr("input ended with Ctrl-D")}
        return known.get(reason, str(reason))

    def title(self, criterion: Mapping[str, Any]) -> str:
        return self.titles.get(criterion["id"], criterion["title"])

    def note(self, criterion: Mapping[str, Any]) -> str:
        return self.notes.get(criterion["id"], criterion["note"])

    def protocol_translation(self, criterion: Mapping[str, Any]) -> str:
        """The protocol text in this language ("" when none was given, or it is the rules')."""
        return self.protocol_translations.get(criterion["id"], "")

    def label(self, fact: str) -> str:
        """A fact's clinical label in this language; without one, a label made from the data
        dictionary's description (`screener.present.label_from`), never the bare fact name."""
        if fact in self.labels:
            return self.labels[fact]
        return label_from(fact, self.descriptions.get(fact, "") if self.language == "en" else "")


    def missing_label(self, fact: str, recorded: Any, kind: str = "") -> str:
        """A missing fact's label, with what is needed when the record gave it only as a range
        (`Last deep vein thrombosis (the exact day is needed)`)."""
        label = self.label(fact)
        if recorded is None:
            return label
        ranged = from_record(recorded)
        year = kind == "date" and isinstance(recorded, str) and recorded.isdigit()
        if ranged is None and not year:
            return label
        day = year or (ranged is not None and ranged.form in ("month", "year"))
        hint = self.tr("the exact day is needed") if day else self.tr("the exact value is needed")
        return f"{label} ({hint})"

    def value(self, fact: str, value: Any) -> str:
        """A fact value as a person reads it in this language: yes/no, dates in local form
        (English keeps ISO dates), enum values by their clinical labels, numbers at a clinical
        precision with their unit as clinicians write it; a list fact's items as readable
        items, each field by its label (the dialog file's, else its name in words)."""
        if isinstance(value, str) and value in self.values.get(fact, {}):
            return self.values[fact][value]
        if isinstance(value, (list, tuple)):
            labels = self.fields.get(fact, {})
            values = self.field_values.get(fact, {})

            def field_value(name: str, raw: Any) -> str:
                if isinstance(raw, str) and raw in values.get(name, {}):
                    return values[name][raw]
                return self._plain(raw)

            order = {name: rank for rank, name in enumerate(self.field_order.get(fact, []))}
            value = [dict(sorted(item.items(), key=lambda kv: order.get(kv[0], len(order))))
                     if isinstance(item, Mapping) else item for item in value]
            return list_text(value, self.language,
                             field_label=lambda name: labels.get(name, humanize(name)),
                             field_value=field_value)
        return self._plain(value, self.units.get(fact, ""))

    def _plain(self, value: Any, unit: str = "") -> str:
        """A value without clinical labels: yes/no, never/ongoing, dates, numbers."""
        date = None if self.language == "en" else (lambda day: local_date(self.language, day))
        return plain_value(value, self.language, unit=unit, date=date)

    def day(self, text: str) -> str:
        """The day of a stored time in the site's zone, written in this language."""
        moment = _dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return local_date(self.language, moment.astimezone(self.zone).date())

    def time(self, text: str) -> str:
        """A stored time in the site's zone, with its UTC offset."""
        return local_time(self.language, text, self.zone)

    def source(self, data: Mapping[str, Any] | None, fact: str | None = None) -> str:
        """Where a value of `fact` came from, e.g. `batch in.csv row 3` (the column only when
        it is not the fact's own: a column named for the fact says nothing more)."""
        origin = Source.from_json(data or {"kind": "unspecified"})
        if origin.kind == "batch":
            column = origin.column if origin.column and origin.column != fact else ""
            where = ", ".join(part for part in (
                self.tr("row {row}", row=origin.row) if origin.row is not None else "",
                self.tr("column {column}", column=column) if column else "",
                origin.note) if part)
            return " ".join(part for part in (self.tr("batch"), origin.file, where) if part)
        if origin.kind == "record":
            text = self.tr("from the record, {resource}", resource=origin.column) if origin.column \
                else self.tr("from the record")
            date = self._plain(origin.note) if origin.note[:4].isdigit() else origin.note
            return f"{text}, {date}" if date else text
        if origin.kind == "answers_file":
            text = (self.tr("answers file {file} line {line}", file=origin.file, line=origin.line)
                    if origin.line is not None else self.tr("answers file {file}", file=origin.file))
        elif origin.kind == "dialog":
            asked = origin.question if origin.question and origin.question != fact else ""
            text = (self.tr("dialog answer ({question})", question=self.label(asked))
                    if asked else self.tr("dialog answer"))
        elif origin.kind == "derived":  # the rule's id stays in the trace, for auditors' tools
            inputs = ", ".join(self.label(name) for name in origin.inputs)
            text = self.tr("computed from {facts}", facts=inputs) if inputs else self.tr("computed")
        else:
            text = {"context": self.tr("context"),
                    "correction": self.tr("correction")}.get(origin.kind, self.tr("unspecified"))
        # The dialog notes an answer left at its default (the screening date: today).
        note = self.tr("default value") if origin.note == "default" else origin.note
        return self.tr("{text} ({note})", text=text, note=note) if note else text

    def correction(self, fact: str, change: Mapping[str, Any]) -> str:
        """One correction (from `final_facts`): the replaced value with its source and time,
        the new value and time, and the reason."""
        old, new = self.value(fact, change["old"]), self.value(fact, change["new"])
        when = self.time(change["time"])
        if change.get("old_time"):
            text = self.tr("{old} ({source}, {time}) changed to {new} at {when}", old=old,
                           source=self.source(change.get("old_source"), fact),
                           time=self.time(change["old_time"]), new=new, when=when)
        else:
            text = self.tr("{old} changed to {new} at {when}", old=old, new=new, when=when)
        if not change.get("reason"):
            return text
        return self.tr("{change}: {reason}", change=text, reason=change["reason"])


def recorded_zone(trace: Trace) -> _dt.tzinfo | None:
    """The time zone the screening showed its times in, as its start record names it; None
    when it names none (a trace written before zones were recorded) or one unknown here."""
    name = trace.start.get("zone")
    if not isinstance(name, str) or not name:
        return None
    try:
        return named_zone(name)
    except ValueError:
        return None
