"""What each trace record must hold before anything reads it.

The hash chain says a trace was not changed after it was written; it says nothing about a
record that was written, or re-chained by hand, with a field missing or of the wrong type (a
start record without `trial`, `outcomes` as a list). `verify`, `explain`, letters and `resume`
read records field by field, so such a record is refused here, naming its line and field, as
a broken trace: never an internal failure.

Only what the readers use is checked, and only its type: a field this screener does not know
is left alone, and whether a value is *right* is the replay's question, not this module's.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Iterable, Mapping

from screener.audit.trace import TraceIntegrityError
from screener.i18n import Message, tr

DEPTH_LIMIT = 64  # levels of nesting in one record; a genuine one has fewer than ten

Check = Callable[[Any, str], "Message | None"]


class TraceShapeError(TraceIntegrityError):
    """A record's chain holds but the record lacks a field, or has one of the wrong type, that
    its readers need: the trace is broken all the same (`line` names the record)."""

    code = "trace-malformed"


def record_problem(record: Mapping[str, Any]) -> Message | None:
    """What makes `record` (a decoded trace line) unusable, or None when it has the shape of
    its type. The record's `type` is assumed known (the chain check refuses others)."""
    if (deep := _too_deep(record)) is not None:
        return deep
    check = _RECORDS.get(str(record.get("type")))
    return None if check is None else check(record, "")


def _too_deep(record: Mapping[str, Any]) -> Message | None:
    stack: list[tuple[Any, int]] = [(record, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH_LIMIT:
            return tr("nested deeper than {limit} levels", limit=DEPTH_LIMIT)
        if isinstance(item, dict):
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
    return None


def _at(field: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{field}[{name}]"
    return f"{field}.{name}" if field else name


# --- checks: each takes the value and the field's name, and returns a problem or None ------

def _text(value: Any, field: str) -> Message | None:
    return None if isinstance(value, str) else tr("{field} must be text", field=field)


def _whole(value: Any, field: str) -> Message | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return tr("{field} must be a whole number", field=field)


def _time(value: Any, field: str) -> Message | None:
    problem = tr("{field} must be a time with its UTC offset", field=field)
    if not isinstance(value, str) or len(value) > 64:
        return problem
    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        return problem
    # shown in the site's zone: a moment at the ends of the calendar has no local time there
    return None if moment.tzinfo is not None and 1 < moment.year < 9999 else problem


def _anything(value: Any, field: str) -> Message | None:
    return None


def _optional(check: Check) -> Check:
    return lambda value, field: None if value is None else check(value, field)


def _one_of(*allowed: str) -> Check:
    def check(value: Any, field: str) -> Message | None:
        if isinstance(value, str) and value in allowed:
            return None
        return tr("{field} must be one of {values}", field=field, values=", ".join(allowed))
    return check


def _list_of(item: Check) -> Check:
    def check(value: Any, field: str) -> Message | None:
        if not isinstance(value, list):
            return tr("{field} must be a list", field=field)
        for number, element in enumerate(value):
            if (problem := item(element, _at(field, number))) is not None:
                return problem
        return None
    return check


def _map_of(item: Check) -> Check:
    """An object with any keys (JSON keys are text), each value passing `item`."""
    def check(value: Any, field: str) -> Message | None:
        if not isinstance(value, dict):
            return tr("{field} must be an object", field=field)
        for key, element in value.items():
            if (problem := item(element, _at(field, key))) is not None:
                return problem
        return None
    return check


def _fields(fields: Mapping[str, Check], required: Iterable[str] = ()) -> Check:
    """An object whose named fields, when present, pass their checks; `required` must be there."""
    needed = tuple(required)

    def check(value: Any, field: str) -> Message | None:
        if not isinstance(value, dict):
            return tr("{field} must be an object", field=field)
        for name in needed:
            if name not in value:
                return tr("{field} is missing", field=_at(field, name))
        for name, inner in fields.items():
            if name in value and (problem := inner(value[name], _at(field, name))) is not None:
                return problem
        return None
    return check


def _language(value: Any, field: str) -> Message | None:
    if known_language(value):
        return None
    return tr("{field} is not a language the screener can write", field=field)


def known_language(code: Any) -> bool:
    """Whether `code` names a language letters and explanations can be written in (its
    dates and times formatted), e.g. `en`, `zh`, `fr`."""
    return isinstance(code, str) and 2 <= len(code) <= 8 and code.replace("_", "").isalpha() \
        and code.isascii() and _known_locale(code)


def _known_locale(code: str) -> bool:
    # letters and explanations format dates and times through Babel
    from babel import Locale, UnknownLocaleError

    from screener.i18n import DATE_LOCALES

    try:
        Locale.parse(DATE_LOCALES.get(code, code))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


_TEXT_OR_NONE = _optional(_text)

_SOURCE = _fields({
    "kind": _text, "file": _text, "row": _optional(_whole), "column": _text,
    "line": _optional(_whole), "question": _text, "rule": _text, "note": _text, "given": _text,
    "inputs": _list_of(_text),
})

_CRITERION = _fields({
    "id": _text, "kind": _one_of("inclusion", "exclusion"), "title": _text, "protocol": _text,
    "note": _text, "condition": _text, "facts": _list_of(_text),
}, required=("id", "kind", "title", "protocol", "note", "facts"))

_TRIAL = _fields({
    "id": _text, "title": _text, "version": _text, "rules_file": _text, "rules_hash": _text,
    "id_fact": _TEXT_OR_NONE, "criteria": _list_of(_CRITERION),
    "facts": _map_of(_fields({"type": _text, "description": _TEXT_OR_NONE, "unit": _TEXT_OR_NONE})),
}, required=("id", "title", "version", "rules_file", "rules_hash", "criteria"))

_TEXTS = _map_of(_text)
_WORDING = _fields({
    "language": _text, "dialog_file": _text, "trial_title": _TEXT_OR_NONE, "titles": _TEXTS,
    "protocol_translations": _TEXTS, "notes": _TEXTS, "labels": _TEXTS, "values": _map_of(_TEXTS),
})

_OUTCOME = _one_of("met", "not_met", "unknown")

_RECORDS: dict[str, Check] = {
    "start": _fields({
        "time": _time, "format": _text, "screener_version": _text, "mode": _text,
        "operator": _TEXT_OR_NONE, "investigator": _TEXT_OR_NONE, "candidate_id": _TEXT_OR_NONE,
        "trial": _TRIAL, "language": _optional(_language), "wording": _WORDING,
    }, required=("time", "screener_version", "mode", "trial")),
    "fact": _fields({"time": _time, "fact": _text, "value": _anything, "source": _SOURCE},
                    required=("time", "fact", "value", "source")),
    "correction": _fields({"time": _time, "fact": _text, "old": _anything, "new": _anything,
                           "source": _SOURCE}, required=("time", "fact", "old", "new")),
    "firing": _fields({
        "time": _time, "rule": _text, "criterion": _TEXT_OR_NONE, "outcome": _optional(_OUTCOME),
        "facts": _map_of(_anything), "derived": _map_of(_anything),
    }, required=("time", "rule", "facts", "derived")),
    "decision": _fields({
        "time": _time, "decision": _one_of("eligible", "ineligible", "undetermined"),
        "outcomes": _map_of(_OUTCOME), "failed": _list_of(_text), "missing": _list_of(_text),
        "derived": _map_of(_anything),
    }, required=("time", "decision", "outcomes", "failed", "missing", "derived")),
    "pause": _fields({"time": _time}, required=("time",)),
    "resume": _fields({"time": _time, "operator": _TEXT_OR_NONE}, required=("time",)),
    "end": _fields({"time": _time, "records": _whole, "trace_hash": _text},
                   required=("time", "records", "trace_hash")),
    # whether a statement can be read and is sound is the signature check's to say
    # (`screener.audit.sign`); here only what an explanation shows before that check
    "signature": _fields({"time": _time, "statement": _fields({
        "signer": _text, "meaning": _text, "key": _text, "signed_at": _time})}, required=("time",)),
}
