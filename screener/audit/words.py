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
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from screener.audit.chain import Trace
from screener.audit.trace import Source
from screener.i18n import local_date, local_time, named_zone, translate
from screener.shown import computed
from screener.values import show

_LONG_DECIMAL = re.compile(r"-?\d+\.\d{5,}\Z")


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
        return cls(chosen, zone, wording.get("titles", {}),
                   wording.get("protocol_translations", {}), wording.get("notes", {}),
                   wording.get("labels", {}), wording.get("values", {}),
                   str(wording.get("trial_title", "") or ""))

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
        """A fact's clinical label in this language, or the fact name when none is known."""
        return self.labels.get(fact, fact)

    def computed(self, fact: str, value: Any) -> str:
        """A computed (derived) value as a person reads it: as `value`, with a number of more
        than four decimals cut and marked (`32.0983…`); the trace keeps every digit."""
        if isinstance(value, str) and _LONG_DECIMAL.match(value):
            shown, mark = computed(Decimal(value))
            return show(shown) + mark
        return self.value(fact, value)

    def value(self, fact: str, value: Any) -> str:
        """A fact value as a person reads it in this language: yes/no, dates in local form
        (English keeps ISO dates), enum values by their clinical labels; a list fact's items
        as `field=value` pairs, the form they are typed in, their values read the same way."""
        if isinstance(value, str) and value in self.values.get(fact, {}):
            return self.values[fact][value]
        if isinstance(value, list):  # a list fact: items as `field=value` (as they are typed)
            if not value:
                return self.tr("none")
            return "; ".join(
                ", ".join(f"{k}={self._plain(v)}" for k, v in item.items() if v is not None)
                if isinstance(item, Mapping) else self._plain(item) for item in value)
        return self._plain(value)

    def _plain(self, value: Any) -> str:
        """A value without clinical labels: yes/no, never/ongoing, dates, numbers."""
        if value is None:
            return self.tr("unknown")
        if isinstance(value, bool):
            return self.tr("yes") if value else self.tr("no")
        if value in ("never", "ongoing"):
            return self.tr("never") if value == "never" else self.tr("ongoing")
        if self.language != "en" and isinstance(value, str) and len(value) == 10:
            try:
                return local_date(self.language, _dt.date.fromisoformat(value))
            except ValueError:
                pass
        return show(value)

    def time(self, text: str) -> str:
        """A stored time in the site's zone, with its UTC offset."""
        return local_time(self.language, text, self.zone)

    def source(self, data: Mapping[str, Any] | None) -> str:
        """Where a value came from, e.g. `batch in.csv row 3, column weight`."""
        origin = Source.from_json(data or {"kind": "unspecified"})
        if origin.kind == "batch":
            where = ", ".join(part for part in (
                self.tr("row {row}", row=origin.row) if origin.row is not None else "",
                self.tr("column {column}", column=origin.column) if origin.column else "",
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
            text = (self.tr("dialog answer ({question})", question=origin.question)
                    if origin.question else self.tr("dialog answer"))
        elif origin.kind == "derived":
            inputs = ", ".join(self.label(name) for name in origin.inputs)
            text = self.tr("derived by {rule} from {facts}", rule=origin.rule,
                           facts=inputs or self.tr("no facts"))
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
                           source=self.source(change.get("old_source")),
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
