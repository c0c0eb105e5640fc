"""Read what a person typed into a fact value, the way clinicians write it.

Yes/no in any language the dialog file lists, numbers, Roman numerals, written dates, values
with units, synonyms and "unknown" words all come from the dialog file; the result is passed
through the engine's own `coerce` so the trial's types and ranges have the last word. A
parser raises `InvalidAnswer` carrying a message key of the dialog file and its parameters.

Quantities take a UCUM unit after the number (`3.8 g/dL`, `180 10*9/L`), converted into the
fact's unit and echoed. A date that may be `never` or `ongoing` takes those words (any case,
and the dialog file's synonyms for them). A list is typed on one line: items separated by
`;`, each item's fields as `name=value` separated by `,`, and `none` (or a "no" word) for an
empty list, e.g. `date=2024-03-01, systolic=150; date=2024-03-08, systolic=138`; a JSON
list is read as well.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from screener.dialog.spec import Question, Vocabulary, is_number, normalize
from screener.errors import InvalidValue
from screener.intervals import censored, partial_date
from screener.model import FactSpec, FactValue, Interval
from screener.i18n import tr
from screener.present import label_from, number_text as shown_number, plain as _plain, unit_text as shown_unit
from screener.values import (
    MAX_NUMBER_CHARS, coerce, decimal_point, describe_conversion, has_foreign_digits, quantity, shortened,
    without_trailing_zeros,
)


# Refusals the screener words itself (its gettext catalogue), not the dialog file's messages.
OWN_MESSAGES = {
    "list_form": tr("'{answer}': write each item as {fields}, items separated by ';' (none for no items)"),
    "list_twice": tr("'{answer}': {field} is given twice in one item"),
    "list_item": tr("Item {item}, {field}: {reason}"),
    # a refusal that does not quote what was typed (a yes/no field's) quotes it here
    "list_item_value": tr("Item {item}, {field} '{answer}': {reason}"),
}


# dialog messages that do not quote the answer (a list item's refusal quotes it for them)
_UNQUOTED = frozenset({"bad_yes_no", "empty"})


class InvalidAnswer(Exception):
    """An answer that cannot be read; `key` names the dialog message explaining why."""

    def __init__(self, key: str, **params: Any):
        self.key = key
        if isinstance(params.get("answer"), str):  # a pasted page is named, not echoed whole
            params["answer"] = shortened(params["answer"])
        self.params = params
        super().__init__(key, params)


@dataclass(frozen=True, slots=True)
class Answer:
    """A read answer: the fact value (None = unknown) and an echo worth showing, if any."""

    value: FactValue | None
    echo: tuple[str, dict[str, Any]] | None = None  # (message key, params)


_NUMBER = re.compile(r"([-+]?\d+(?:[.,]\d+)?)\s*(.*)\Z")
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}
_ROMAN_TAIL = re.compile(r"(?:.*\s)?([ivx]+)\Z")
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\Z")
_DMY_OR_MDY = re.compile(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{4}\Z")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]+([^\d\s,\-/.]+)\.?[\s\-/.,]+(\d{4})\Z")
_MONTH_DAY_YEAR = re.compile(r"([^\d\s,\-/.]+)\.?[\s\-/.]+(\d{1,2})(?:st|nd|rd|th)?[\s,\-/.]+(\d{4})\Z")


def parse_answer(
    spec: FactSpec, question: Question, words: Vocabulary, text: str, today: dt.date
) -> Answer:
    """Read `text` as an answer for `spec`.

    Returns the Answer (value None when the person said they do not know). Raises
    InvalidAnswer when the text cannot be read or the value does not fit the fact.
    """
    if spec.type in _NUMERIC_KINDS and has_foreign_digits(text):
        # checked before NFKC, which would turn full-width digits into 0-9: a number is read
        # from 0-9 only, in the dialog as in a batch file
        raise InvalidAnswer("out_of_range", answer=text.strip(), reason=tr(
            "written with digits other than 0-9 (Arabic-Indic, full-width...); write it with 0-9"))
    said = normalize(text)
    if not said:
        if question.default == "today":
            return Answer(today, ("date_echo", {"date": today.isoformat()}))
        raise InvalidAnswer("empty")
    if said in words.unknown:
        return Answer(None)
    if said in question.synonyms:
        return Answer(_coerce(spec, question.synonyms[said], text))
    kind = spec.type
    if kind in ("quantity", "date"):
        ranged = _ranged(spec, text)
        if ranged is not None:
            return Answer(ranged)
    if kind == "quantity":
        return _quantity(spec, question, text)
    if kind == "list":
        return _list(spec, question, words, said, text, today)
    if kind == "date" and said in _SPECIAL_WORDS:
        return Answer(_coerce(spec, said, text))
    if kind == "boolean":
        if said in words.yes:
            return Answer(True)
        if said in words.no:
            return Answer(False)
        raise InvalidAnswer("bad_yes_no", answer=text)
    if kind in ("integer", "decimal") and len(said) > MAX_NUMBER_CHARS:
        # longer than any number a fact holds (and int() refuses past 4,300 digits): the
        # engine's coercion refuses it
        return Answer(_coerce(spec, said, text))
    if kind == "integer":
        return Answer(_coerce(spec, _integer(question, said, text), text))
    if kind == "decimal":
        return _decimal(spec, question, said, text)
    if kind == "date":
        day = parse_date(said, words, today)
        return Answer(_coerce(spec, day, text), ("date_echo", {"date": day.isoformat()}))
    if kind == "enum":
        choice = said.replace(" ", "_").replace("-", "_")
        for value in spec.values:
            if normalize(value) == choice or normalize(question.values.get(value, value)) == said:
                return Answer(value)
        # the values as the dialog labels them (a label is typed as well as the value)
        raise InvalidAnswer("bad_choice", answer=text,
                            choices=" / ".join(question.values.get(v, v) for v in spec.values))
    return Answer(_coerce(spec, text.strip(), text))


def _ranged(spec: FactSpec, text: str) -> Interval | None:
    """A censored result (`<20`, `低于检测下限`) or a month or year (`March 2021`,
    `2021年3月`), read by the batch reader; None when the answer is not written as one."""
    try:
        return censored(spec, text.strip()) if spec.type == "quantity" else partial_date(spec, text.strip())
    except InvalidValue as exc:
        raise InvalidAnswer("out_of_range", answer=text.strip(), reason=exc.reason) from None


def _coerce(spec: FactSpec, value: Any, text: str) -> FactValue | None:
    try:
        typed = coerce(spec, value)
    except InvalidValue as exc:
        if spec.type in ("integer", "decimal") and is_number(value):
            _check_range(spec, float(value), text)
        raise InvalidAnswer("out_of_range", answer=text.strip(), reason=exc.reason) from None
    return typed


_SPECIAL_WORDS = frozenset({"never", "ongoing"})
_NUMERIC_KINDS = frozenset({"integer", "decimal", "quantity", "date"})
_MICRO = str.maketrans({"µ": "u", "μ": "u"})


def _quantity_text(text: str) -> tuple[str, str] | None:
    """The number and unit of a typed quantity: `1,5 µmol/L` -> `1,5`, umol/L (the number
    is read by the same reader as batch values, decimal comma included)."""
    typed = unicodedata.normalize("NFKC", text).strip().translate(_MICRO)
    match = _NUMBER.match(typed)
    if not match:
        return None
    return match.group(1), match.group(2).strip()


@functools.lru_cache(maxsize=1)
def _unit_spellings() -> dict[str, str]:
    """How answers may write a unit (without spaces, lower case) -> its UCUM code, from the
    shared table screener/templates/unit_names.yaml."""
    from screener.rules.read import load_yaml_text

    text = resources.files("screener.templates").joinpath("unit_names.yaml").read_text(encoding="utf-8")
    table = load_yaml_text(text, "unit_names.yaml")
    return {name.replace(" ", "").lower(): str(code) for code, names in table.items() for name in names}


def _ucum(unit_text: str) -> str:
    """A typed unit as its UCUM code where the shared table spells it (`毫米` -> mm, `毫克/分升`
    -> mg/dL, part by part); else as typed."""
    spellings = _unit_spellings()
    whole = spellings.get(unit_text.replace(" ", "").lower())
    if whole is not None:
        return whole
    if "/" not in unit_text:
        return unit_text
    return "/".join(spellings.get(part.replace(" ", "").lower(), part) for part in unit_text.split("/"))


def typed_quantity(spec: FactSpec, text: str | None) -> str | None:
    """For the trace: a typed quantity as given (`1.5 mg/dL`) when it was converted; else None."""
    if spec.type != "quantity" or not text or (parts := _quantity_text(text)) is None:
        return None
    converted = describe_conversion(spec, f"{parts[0]} {_ucum(parts[1])}".strip())
    return None if converted is None or converted.unit == spec.unit else converted.given_text


def _quantity(spec: FactSpec, question: Question, text: str) -> Answer:
    """`3.8 g/dL` (any UCUM unit that converts, a unit the dialog file names, or one the
    shared table spells: `25毫米`, `36 hours`), or a plain number in the fact's own unit."""
    parts = _quantity_text(text)
    if parts is None:
        raise InvalidAnswer("bad_number", answer=text)
    number_text, unit_text = parts
    named = unit_text.replace(" ", "").lower()
    for unit in question.units:
        if named and named in (n.lower() for n in unit.names) and unit.factor != 1:
            # a unit as the dialog file spells it (`毫克/分升`): its factor, exactly
            try:
                number = without_trailing_zeros(
                    Decimal(decimal_point(spec, number_text)) * Decimal(repr(unit.factor)))
            except InvalidOperation:
                raise InvalidAnswer("bad_number", answer=text) from None
            except InvalidValue as exc:
                raise InvalidAnswer("out_of_range", answer=text.strip(), reason=exc.reason) from None
            value = _coerce(spec, number, text)
            return Answer(value, ("unit_echo", {"given": text.strip(), "value": str(value),
                                                "unit": question.units[0].label}))
        if named and named in (n.lower() for n in unit.names):
            unit_text = ""
    unit_text = _ucum(unit_text)
    try:
        value, converted = quantity(spec, f"{number_text} {unit_text}".strip())
    except InvalidValue as exc:
        if "does not convert" in exc.reason:
            units = [spec.unit, *(u for u, _ in spec.convert), *(u for u, _, _ in spec.affine)]
            raise InvalidAnswer("bad_unit", answer=text, units=" / ".join(units)) from None
        raise InvalidAnswer("out_of_range", answer=text.strip(), reason=exc.reason) from None
    if converted is None or converted.unit == spec.unit:
        return Answer(value)
    return Answer(value, ("unit_echo", {"given": str(converted).partition(" = ")[0],
                                        "value": shown_number(value), "unit": shown_unit(spec.unit)}))


def _list(spec: FactSpec, question: Question, words: Vocabulary, said: str, text: str,
          today: dt.date) -> Answer:
    """One line: items split by `;`, fields `name=value` split by `,`; `none` is empty. A field
    may be named by its name or by the words the dialog file gives it (its label), and its
    value is read as an answer to that field alone (`是`, a synonym or label of an enum value,
    a written date, a quantity with its unit); a value that cannot be read is refused naming
    the item, the field by its label, and why. Full-width punctuation (`；`, `，`, `＝`) reads
    as its ASCII form."""
    if said in ("none", "[]") or said in words.no:
        return Answer(_coerce(spec, [], text))
    if said.startswith("["):
        return Answer(_coerce(spec, text.strip(), text))
    typed = unicodedata.normalize("NFKC", text).replace("、", ",")
    items = []
    for number, part in enumerate((p for p in typed.split(";") if p.strip()), 1):
        item: dict[str, Any] = {}
        for pair in part.split(","):
            name, equals, value = pair.partition("=")
            field_name = _field_name(spec, question, name)
            if not equals or not field_name:
                fields = ", ".join(f"{_field_word(question, f.name)}=..." for f in spec.item)
                raise InvalidAnswer("list_form", answer=text.strip(), fields=fields)
            if field_name in item:
                raise InvalidAnswer("list_twice", answer=text.strip(), field=_field_word(question, field_name))
            try:
                item[field_name] = _field_value(spec, question, words, field_name, value.strip(), today)
            except InvalidAnswer as refused:
                quoted = refused.key not in _UNQUOTED
                raise InvalidAnswer("list_item" if quoted else "list_item_value", item=number,
                                    field=_field_label(spec, question, field_name), reason=refused,
                                    **({} if quoted else {"answer": shortened(value.strip())})) from None
        items.append(item)
    return Answer(_coerce(spec, items, text))


def _field_name(spec: FactSpec, question: Question, typed: str) -> str | None:
    """The field a typed name means: its own name, or a word the dialog file gives it."""
    said = normalize(typed)
    names = {item.name for item in spec.item}
    if said.replace(" ", "_") in names:
        return said.replace(" ", "_")
    bare = said.replace(" ", "")
    return next((f.name for f in question.fields.values() if bare in f.names), None)


def _field_word(question: Question, name: str) -> str:
    """A field as the person types it: its label in the dialog's language, else its name."""
    entry = question.fields.get(name)
    return entry.label if entry is not None and entry.label else name


def _field_label(spec: FactSpec, question: Question, name: str) -> str:
    """A field as a refusal names it: its label in the dialog's language, else one made from
    its description (`label_from`), never the bare name."""
    entry = question.fields.get(name)
    if entry is not None and entry.label:
        return entry.label
    item = next((item for item in spec.item if item.name == name), None)
    return label_from(name, item.description if item is not None else "")


def _field_value(spec: FactSpec, question: Question, words: Vocabulary, name: str, value: str,
                 today: dt.date) -> Any:
    """A typed field value read by the one answer reader (`parse_answer`) as an answer to
    that field, in the dialog's words: its synonyms and value labels, yes/no, dates as the
    dialog reads dates (`2025年2月15日`, `15 Feb 2025`), a quantity with its unit. Raises
    InvalidAnswer when it cannot be read; None for an empty or unknown value (the item then has
    a field to complete)."""
    said = normalize(value)
    item = next((item for item in spec.item if item.name == name), None)
    if not said or said in words.unknown:
        return None  # not known: the item has a field to complete
    if item is None or item.type in ("text", "list"):
        return value
    entry = question.fields.get(name)
    synonyms = dict(entry.synonyms) if entry is not None else {}
    if item.type == "boolean":
        synonyms = {word: canonical in (True, "yes", "true") for word, canonical in synonyms.items()}
    reading = Question(fact=name, order=0, text="", help="", hint="", synonyms=synonyms, units=(),
                       roman=False, default=None, span=question.span, label=_field_label(spec, question, name),
                       values=dict(entry.values) if entry is not None else {})
    answer = parse_answer(item, reading, words, value, today).value
    if isinstance(answer, dt.date):
        return answer.isoformat()
    return answer


def _check_range(spec: FactSpec, number: float, text: str) -> None:
    unit = f" {shown_unit(spec.unit)}" if spec.unit else ""
    if spec.minimum is not None and number < spec.minimum:
        raise InvalidAnswer("below_minimum", answer=text.strip(), limit=f"{_plain_number(spec.minimum)}{unit}")
    if spec.maximum is not None and number > spec.maximum:
        raise InvalidAnswer("above_maximum", answer=text.strip(), limit=f"{_plain_number(spec.maximum)}{unit}")


def _integer(question: Question, said: str, text: str) -> int:
    for modifier in question.modifiers:  # "ii e", "iie", "2-e": the class without its modifier
        match = re.fullmatch(rf"(.*?[0-9ivx])[\s\-]*{re.escape(modifier)}", said)
        if match:
            said = match.group(1).strip()
            break
    if re.fullmatch(r"[-+]?\d+", said):
        return int(said)
    if re.fullmatch(r"[-+]?\d+[.,]0*", said):  # `57.0`, as batch reads it
        return int(said.replace(",", ".").partition(".")[0])
    if question.roman:
        match = _ROMAN_TAIL.match(said)
        if match and match.group(1) in _ROMAN:
            return _ROMAN[match.group(1)]
    raise InvalidAnswer("bad_integer", answer=text)


def _decimal(spec: FactSpec, question: Question, said: str, text: str) -> Answer:
    match = _NUMBER.match(said)
    if not match:
        raise InvalidAnswer("bad_number", answer=text)
    try:  # a decimal comma as batch reads it: `1,5` is 1.5, `99,999` reads two ways
        number_text = decimal_point(spec, match.group(1))
    except InvalidValue as exc:
        raise InvalidAnswer("out_of_range", answer=text.strip(), reason=exc.reason) from None
    unit_text = match.group(2).replace(" ", "")
    if not unit_text:
        return Answer(_coerce(spec, number_text, text))
    known = [unit.label for unit in question.units] or [spec.unit]
    for unit in question.units:
        if unit_text in unit.names:
            break
    else:
        raise InvalidAnswer("bad_unit", answer=text, units=" / ".join(u for u in known if u))
    if unit.factor == 1:
        return Answer(_coerce(spec, number_text, text))
    exact = _plain(without_trailing_zeros(Decimal(number_text) * Decimal(repr(unit.factor))))
    own = question.units[0].label
    typed = _coerce(spec, exact, text)
    echo = ("unit_echo", {"given": text.strip(), "value": _plain_number(typed), "unit": own})
    return Answer(typed, echo)


def _plain_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_date(said: str, words: Vocabulary, today: dt.date) -> dt.date:
    """Read a normalized date: ISO, `1961/03/03`, `1961年3月3日`, `3 March 1961`, `March 3, 1961`.

    Day and month written all in digits are taken when only one reading is a date
    (`13/03/1970`); raises InvalidAnswer when both are (`03/04/1961` reads two ways) and for
    anything else it cannot read.
    """
    if said in words.today:
        return today
    day = month = year = None
    if match := _YMD.match(said):
        year, month, day = (int(g) for g in match.groups())
    elif _DMY_OR_MDY.match(said):
        return _day_month_or_month_day(said)
    elif (match := _DAY_MONTH_YEAR.match(said)) and match.group(2) in words.months:
        day, month, year = int(match.group(1)), words.months[match.group(2)], int(match.group(3))
    elif (match := _MONTH_DAY_YEAR.match(said)) and match.group(1) in words.months:
        month, day, year = words.months[match.group(1)], int(match.group(2)), int(match.group(3))
    if year is None or month is None or day is None:
        raise InvalidAnswer("bad_date", answer=said)
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise InvalidAnswer("bad_date", answer=said) from None


def _day_month_or_month_day(said: str) -> dt.date:
    """`13/03/1970` reads one way only (there is no month 13); `03/04/1961` reads two."""
    first, second, year = (int(part) for part in re.split(r"[-/.]", said))
    readings = set()
    for day, month in ((first, second), (second, first)):
        try:
            readings.add(dt.date(year, month, day))
        except ValueError:
            continue
    if not readings:
        raise InvalidAnswer("bad_date", answer=said)
    if len(readings) > 1:
        raise InvalidAnswer("ambiguous_date", answer=said)
    return readings.pop()


def command_of(text: str, words: Vocabulary) -> tuple[str, str] | None:
    """The command a line asks for, with the rest of the line; None when it is an answer."""
    said = normalize(text)
    head = said.partition(" ")[0]
    if said in words.commands:
        return words.commands[said], ""
    if words.commands.get(head) == "change":
        return "change", text.strip().partition(" ")[2].strip()
    return None
