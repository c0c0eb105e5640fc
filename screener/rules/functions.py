"""The generic arithmetic derivation rules may name. None of it knows a trial.

Each function is registered with a checker for its parameters, so a rules file naming an
unknown function or giving malformed parameters fails when it loads, not mid-batch.
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools
import operator
from decimal import Decimal
import re
from dataclasses import dataclass
from typing import Any, Callable

from screener.memo import PerObject
from screener.model import FactSpec, Interval

_BAND = re.compile(r"\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?)\s*\Z")


class DerivationError(ValueError):
    """The inputs of a derivation contradict each other; the message says how."""


def completed_years(start: dt.date, end: dt.date) -> int:
    """Whole years from `start` to `end`; the anniversary itself counts as completed.

    A 29 February start completes its year on 28 February in common years. Raises
    DerivationError when `end` is before `start`.
    """
    if end < start:
        raise DerivationError("the second date is before the first")
    years = end.year - start.year
    anniversary = add_months(start, 12 * years)
    if end < anniversary:
        years -= 1
    return years


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus calendar months, clamped to the month's last day (31 Aug + 6 = 28/29 Feb).

    Raises DerivationError when the day falls outside the calendar (past the year 9999).
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise DerivationError(f"{months} months after {day.isoformat()} is past the year {dt.MAXYEAR}")
    last = 29 if month == 1 and calendar.isleap(year) else _MONTH_DAYS[month]
    return dt.date(year, month + 1, min(day.day, last))


# the days of each month of a common year (`calendar.monthrange` finds them with the weekday
# of the month's first day too, which costs more than the rest of `add_months`)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def before_months_after(start: dt.date, event: dt.date, months: int) -> bool:
    """True when `event` falls earlier than `start` plus `months` calendar months.

    The event is one that follows the start (progression on a treatment); an event dated
    before the start raises DerivationError rather than counting as "within".
    """
    if event < start:
        raise DerivationError("the event is dated before the start")
    return event < add_months(start, months)


_COMPARE = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}


@functools.lru_cache(maxsize=1024)
def _band(band: str) -> tuple[Callable[[Any, Any], bool], Decimal]:
    """A band's comparison and exact limit, read once per band text (bands are the rules'
    own, so a few dozen per trial)."""
    match = _BAND.match(band)
    assert match is not None  # checked when the rules load
    return _COMPARE[match.group(1)], Decimal(match.group(2))


def _exactly(value: Any) -> Decimal | int:
    """A value as compared with a band's limit: a float by its shortest text (51.305 stays
    51.305), integers and Decimals as they are."""
    return Decimal(repr(value)) if isinstance(value, float) else value if isinstance(value, (int, Decimal)) \
        else Decimal(value)


def banded_score(values: dict[str, Any], points: dict[str, Any], classes: list[list[Any]]) -> str:
    """Sum each input's points (first matching band, or an enum table) and band the total."""
    total = 0
    for name, table in points.items():
        total += _points(table, values[name])
    label = _class_of(classes, total)
    if label is None:
        raise ValueError(f"total {total} falls in no class band")
    return label


def banded_score_settled(values: dict[str, Any], points: dict[str, Any],
                         classes: list[list[Any]], normal_unless: str | None = None) -> str | None:
    """The class of a banded score some of whose inputs are unknown (absent from `values`),
    when every total they may still give falls in the same class: Child-Pugh bilirubin 60
    umol/L, albumin 25 g/L and INR 2.5 already score 9, so 11 to 15 with the two others,
    class C whatever they are. None when the unknown inputs could change the class.

    `normal_unless` names a yes/no input (no known liver disease): when it is no, a part
    not given scores its fewest points, as normal, and a part given still scores its own."""
    low = high = 0
    normal = normal_unless is not None and values.get(normal_unless) is False
    for name, table in points.items():
        if isinstance(values.get(name), Interval):
            options = _range_points(table, values[name])
            low, high = low + min(options), high + max(options)
        elif name in values:
            got = _points(table, values[name])
            low, high = low + got, high + got
        else:
            options = [int(p) for p in table.values()] if isinstance(table, dict) else [int(p) for p, _ in table]
            low, high = low + min(options), high + (min(options) if normal else max(options))
    labels = {_class_of(classes, total) for total in range(low, high + 1)}
    return labels.pop() if len(labels) == 1 and None not in labels else None


def banded_score_classes(values: dict[str, Any], points: dict[str, Any],
                         classes: list[list[Any]], normal_unless: str | None = None) -> frozenset[str | None]:
    """Every class the totals of a banded score may fall in, its unknown inputs (absent from
    `values`) taking any points (their fewest where `normal_unless` is no, as in
    `banded_score_settled`) and its ranged ones the points of any band they reach."""
    normal = normal_unless is not None and values.get(normal_unless) is False
    low = high = 0
    for name, table in points.items():
        if isinstance(values.get(name), Interval):
            options = _range_points(table, values[name])
        elif name in values:
            options = [_points(table, values[name])]
        else:
            options = [int(p) for p in table.values()] if isinstance(table, dict) else [int(p) for p, _ in table]
            options = [min(options)] if normal else options
        low, high = low + min(options), high + max(options)
    return frozenset(_class_of(classes, total) for total in range(low, high + 1))


def _range_points(table: Any, value: Interval) -> list[int]:
    """The points a value known as a range may score: those of the bands its values reach
    (its ends, and each band limit inside it with the values just beside it)."""
    near = Decimal("1e-12")
    low = value.low if value.low is not None else Decimal("-1e30")
    high = value.high if value.high is not None else Decimal("1e30")
    tried = {low + near if value.low_open else low, high - near if value.high_open else high}
    for _, band in table:
        limit = Decimal(_BAND.match(band).group(2))  # type: ignore[union-attr]
        tried |= {limit - near, limit, limit + near}
    return [_points(table, v) for v in tried if Decimal(low) <= v <= Decimal(high) and value.contains(v)]


def _read_bands(table: list[list[Any]]) -> tuple[tuple[Callable[[Any, Any], bool], Decimal, Any], ...]:
    """Each band of a table of [points, band] or [label, band], in order: its comparison,
    its exact limit and what it gives."""
    return tuple((*_band(band), given) for given, band in table)


# the bands of each table, read once per table (a derivation's parameters, which live as
# long as its trial): a score is computed for every candidate
_bands_of: PerObject[list[list[Any]], tuple[tuple[Callable[[Any, Any], bool], Decimal, Any], ...]] = \
    PerObject(_read_bands)


def _points(table: Any, value: Any) -> int:
    if isinstance(table, dict):
        return int(table[value])
    exact = _exactly(value)
    for compare, limit, points in _bands_of(table):
        if compare(exact, limit):
            return int(points)
    raise ValueError(f"{value} falls in no band")  # bands that leave values out are refused on load


def _class_of(classes: list[list[Any]], total: int) -> str | None:
    for compare, limit, label in _bands_of(classes):
        if compare(total, limit):
            return str(label)
    return None


@dataclass(frozen=True, slots=True)
class Function:
    """A derivation function: how to call it and how to check its declaration."""

    name: str
    input_types: tuple[str, ...] | None  # None: any number of inputs, checked by `check`
    output_type: str
    call: Callable[[dict[str, Any], dict[str, Any], tuple[str, ...]], Any]
    check: Callable[[dict[str, Any], dict[str, FactSpec], tuple[str, ...]], list[str]]


def _no_params(params: dict[str, Any], facts: dict[str, FactSpec], inputs: tuple[str, ...]) -> list[str]:
    return [f"unknown parameter {key!r}" for key in params]


def _months_params(params: dict[str, Any], facts: dict[str, FactSpec], inputs: tuple[str, ...]) -> list[str]:
    problems = [f"unknown parameter {key!r}" for key in params if key != "months"]
    months = params.get("months")
    if not isinstance(months, int) or isinstance(months, bool) or months < 0:
        problems.append(f"'months' must be a whole number of months, not {months!r}")
    return problems


def _band_problem(band: Any) -> str | None:
    if not isinstance(band, str) or not _BAND.match(band):
        return f"band {band!r} must look like '< 34.2' or '<= 6'"
    return None


def _score_params(params: dict[str, Any], facts: dict[str, FactSpec], inputs: tuple[str, ...]) -> list[str]:
    problems = [f"unknown parameter {key!r}" for key in params
                if key not in ("points", "classes", "normal_unless")]
    gate = params.get("normal_unless")
    if gate is not None and (gate not in inputs or facts[gate].type != "boolean"):
        problems.append(f"'normal_unless' must name a yes/no fact among the inputs, not {gate!r}")
    scored = tuple(name for name in inputs if name != gate)
    points = params.get("points")
    if not isinstance(points, dict) or set(points) != set(scored):
        return problems + ["'points' must give a table for each input (but 'normal_unless') and nothing else"]
    for name, table in points.items():
        spec = facts[name]
        if spec.type == "enum":
            if not isinstance(table, dict) or set(table) != set(spec.values):
                problems.append(f"points for {name} must map each of {list(spec.values)} to points")
        elif spec.type in ("integer", "decimal", "quantity"):  # a quantity's bands: its unit
            if not isinstance(table, list) or not table:
                problems.append(f"points for {name} must be a list of [points, band]")
                continue
            for row in table:
                if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], int)):
                    problems.append(f"points for {name}: {row!r} is not [points, band]")
                elif (problem := _band_problem(row[1])) is not None:
                    problems.append(f"points for {name}: {problem}")
        else:
            problems.append(f"{name} is {spec.type}: only numbers and enums can be scored")
    classes = params.get("classes")
    if not isinstance(classes, list) or not classes:
        problems.append("'classes' must be a list of [label, band]")
    else:
        for row in classes:
            if not (isinstance(row, list) and len(row) == 2):
                problems.append(f"class {row!r} is not [label, band]")
            elif (problem := _band_problem(row[1])) is not None:
                problems.append(f"classes: {problem}")
    return problems


FUNCTIONS: dict[str, Function] = {
    "completed_years": Function(
        "completed_years", ("date", "date"), "integer",
        lambda v, p, i: completed_years(v[i[0]], v[i[1]]), _no_params,
    ),
    "before_months_after": Function(
        "before_months_after", ("date", "date"), "boolean",
        lambda v, p, i: before_months_after(v[i[0]], v[i[1]], int(p["months"])), _months_params,
    ),
    "banded_score": Function(
        "banded_score", None, "enum",
        lambda v, p, i: banded_score(v, p["points"], p["classes"]), _score_params,
    ),
}
