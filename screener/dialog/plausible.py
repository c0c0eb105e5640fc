"""Answers that read well but are unlikely: outside the usual range, or in the wrong unit.

The usual ranges are data (`plausible:` in the dialog file). A bare number outside its range
that lands inside it in another unit the question accepts is most likely that unit (albumin
`3.8` is 3.8 g/dL = 38 g/L); any other unusual value, or a date far from today, is only
confirmed. Nothing here asks: it returns what to ask, and the flow asks.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from screener.dialog.spec import DialogSpec, Plausible, Question
from screener.model import FactSpec, FactValue
from screener.values import without_trailing_zeros

_BARE_NUMBER = re.compile(r"\s*[-+]?\d+(?:[.,]\d+)?\s*\Z")


@dataclass(frozen=True, slots=True)
class Doubt:
    """Why an answer needs a confirmation: the question to ask, and the value a "yes" takes
    (the answer as given, or its reading in a likely unit)."""

    message: str
    value: FactValue


def doubt(dialog: DialogSpec, spec: FactSpec, question: Question, text: str,
          value: FactValue | None, today: dt.date) -> list[Doubt]:
    """What to confirm about `value` read from `text`, most likely reading first; [] when the
    answer is within its usual range (or the file gives none)."""
    usual = question.plausible
    if usual is None or value is None or isinstance(value, bool):
        return []
    if isinstance(value, dt.date):
        return _date(dialog, usual, value, today)
    if isinstance(value, (int, float, Decimal)):
        return _number(dialog, spec, question, usual, text, value)
    return []


def _inside(usual: Plausible, number: float) -> bool:
    return (usual.low is None or number >= usual.low) and (usual.high is None or number <= usual.high)


def _number(dialog: DialogSpec, spec: FactSpec, question: Question, usual: Plausible, text: str,
            given: int | float | Decimal) -> list[Doubt]:
    number = float(given)
    if _inside(usual, number):
        return []
    own = question.units[0].label if question.units else spec.unit
    doubts = []
    if _BARE_NUMBER.match(text):
        for unit in question.units[1:]:
            converted = without_trailing_zeros(_exact(given) * Decimal(repr(unit.factor)))  # exact
            if _inside(usual, float(converted)):
                doubts.append(Doubt(dialog.tr(
                    "Did you mean {given} {unit} = {value} {own}?", given=show_number(number),
                    unit=unit.label, value=show_number(converted), own=own), _typed(spec, converted)))
    amount = f"{show_number(number)} {own}".strip()
    if usual.low is not None and number < usual.low:
        bound = f"{show_number(usual.low)} {own}".strip()
        message = dialog.tr("{value} is below the usual minimum, {bound}. Keep {value}?",
                            value=amount, bound=bound)
    else:
        bound = f"{show_number(usual.high)} {own}".strip()
        message = dialog.tr("{value} is above the usual maximum, {bound}. Keep {value}?",
                            value=amount, bound=bound)
    doubts.append(Doubt(message, given))
    return doubts


def _exact(number: int | float | Decimal) -> Decimal:
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def _typed(spec: FactSpec, number: Decimal) -> FactValue:
    if spec.type == "integer":
        return int(number)
    return number if spec.type == "quantity" else float(number)


def _date(dialog: DialogSpec, usual: Plausible, day: dt.date, today: dt.date) -> list[Doubt]:
    shown = dialog.local_date(day)
    if usual.days_after is not None and day > today + dt.timedelta(days=usual.days_after):
        if usual.days_after == 0:
            message = dialog.tr("{date} is in the future. Is that right?", date=shown)
        else:
            message = dialog.tr("{date} is more than {days} days after today. Is that right?",
                                date=shown, days=usual.days_after)
        return [Doubt(message, day)]
    if usual.years_before is not None and day < _years_before(today, usual.years_before):
        return [Doubt(dialog.tr("{date} is more than {years} years before today. Is that right?",
                                date=shown, years=usual.years_before), day)]
    return []


def _years_before(today: dt.date, years: int) -> dt.date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def show_number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"
