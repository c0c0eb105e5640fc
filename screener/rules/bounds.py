"""Exact arithmetic and comparison on values known only as a range (screener.model.Interval
in the evaluator's form): a censored result `<20`, the days of a month, 17 or 18 completed
years.

A comparison is decided when every pair of values of its sides gives the same answer, and
is unknown (None) otherwise. Arithmetic gives the range of every value the result may take
(the least and greatest, each reached or only approached), which is exact for the
expressions of a comparison that read each ranged fact once; where a fact is read twice
the range may be wider than the values it can take, and a comparison that the wider range
leaves open stays unknown — never decided wrongly.
"""
from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from screener.model import Interval
from screener.rules.functions import add_months

INF = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class Bounds:
    """Every value between `low` and `high`; an end marked open is approached, not reached.
    Dates are day numbers; an unbounded end is -/+Infinity (open)."""

    low: Decimal
    high: Decimal
    low_open: bool = False
    high_open: bool = False

    @property
    def point(self) -> Decimal | None:
        """The one value of a closed interval of one point, else None."""
        if self.low == self.high and not (self.low_open or self.high_open):
            return self.low
        return None


def from_interval(value: Interval) -> Bounds:
    """An Interval fact value in the evaluator's form."""
    def number(end: Any, sign: int) -> Decimal:
        if end is None:
            return INF if sign > 0 else -INF
        if isinstance(end, dt.date):
            return Decimal(end.toordinal())
        return end if isinstance(end, Decimal) else Decimal(str(end))
    return Bounds(number(value.low, -1), number(value.high, 1),
                  value.low_open or value.low is None, value.high_open or value.high is None)


def settle(value: Any) -> Any:
    """A Bounds of one point as that point; anything else as it is."""
    if isinstance(value, Bounds) and value.point is not None:
        return value.point
    return value


def as_bounds(value: Decimal | Bounds) -> Bounds:
    return value if isinstance(value, Bounds) else Bounds(value, value)


# --- comparisons ------------------------------------------------------------------------------


def compare(op: str, left: Decimal | Bounds, right: Decimal | Bounds) -> bool | None:
    """`left op right` for every pair of values: True or False when all agree, else None."""
    a, b = as_bounds(left), as_bounds(right)
    # the differences a - b: from `least` to `greatest`, each reached unless marked open
    least = a.low - b.high if not (a.low.is_infinite() and b.high.is_infinite()
                                   and a.low == b.high) else -INF
    greatest = a.high - b.low if not (a.high.is_infinite() and b.low.is_infinite()
                                      and a.high == b.low) else INF
    least_open = a.low_open or b.high_open
    greatest_open = a.high_open or b.low_open

    def all_above(strict: bool) -> bool:  # every difference > 0 (>= 0 when not strict)
        return least > 0 or (least == 0 and (not strict or least_open))

    def all_below(strict: bool) -> bool:
        return greatest < 0 or (greatest == 0 and (not strict or greatest_open))

    if op == ">=":
        return True if all_above(False) else False if all_below(True) else None
    if op == ">":
        return True if all_above(True) else False if all_below(False) else None
    if op == "<=":
        return True if all_below(False) else False if all_above(True) else None
    if op == "<":
        return True if all_below(True) else False if all_above(False) else None
    equal = least == 0 == greatest and not (least_open or greatest_open)
    apart = all_above(True) or all_below(True)
    if op == "==":
        return True if equal else False if apart else None
    return False if equal else True if apart else None


def may_equal(value: Bounds, member: Decimal) -> bool:
    """Whether `member` is one of the values of `value`."""
    above = value.low < member or (value.low == member and not value.low_open)
    below = member < value.high or (member == value.high and not value.high_open)
    return above and below


# --- arithmetic -------------------------------------------------------------------------------


def negate(value: Bounds) -> Bounds:
    return Bounds(-value.high, -value.low, value.high_open, value.low_open)


def add(a: Decimal | Bounds, b: Decimal | Bounds) -> Bounds:
    x, y = as_bounds(a), as_bounds(b)
    return Bounds(x.low + y.low, x.high + y.high, x.low_open or y.low_open, x.high_open or y.high_open)


def subtract(a: Decimal | Bounds, b: Decimal | Bounds) -> Bounds:
    return add(a, negate(as_bounds(b)))


def multiply(a: Decimal | Bounds, b: Decimal | Bounds) -> Bounds | None:
    """The product's range; None where an unbounded end meets zero (no finite answer)."""
    x, y = as_bounds(a), as_bounds(b)
    corners: list[tuple[Decimal, bool]] = []
    for p, p_open in ((x.low, x.low_open), (x.high, x.high_open)):
        for q, q_open in ((y.low, y.low_open), (y.high, y.high_open)):
            if (p == 0 and q.is_infinite()) or (q == 0 and p.is_infinite()):
                return None
            product = p * q
            closed_zero = (p == 0 and not p_open) or (q == 0 and not q_open)
            corners.append((product, (p_open or q_open) and not closed_zero))
    low = min(v for v, _ in corners)
    high = max(v for v, _ in corners)
    return Bounds(low, high, all(o for v, o in corners if v == low), all(o for v, o in corners if v == high))


def divide(a: Decimal | Bounds, b: Decimal | Bounds) -> Bounds | None:
    """The quotient's range; None when the divisor may be zero (or come near it unbounded)."""
    y = as_bounds(b)
    if may_equal(y, Decimal(0)) or (y.low < 0 < y.high):
        return None
    if y.low == 0 or y.high == 0:
        return None  # an open end at zero: the quotient has no end
    inverse = Bounds(1 / y.high if y.high.is_finite() else Decimal(0),
                     1 / y.low if y.low.is_finite() else Decimal(0),
                     y.high_open or y.high.is_infinite(), y.low_open or y.low.is_infinite())
    return multiply(a, inverse)


def monotone(function: Callable[..., Any], args: list[Any], direction: tuple[int, ...]) -> Any:
    """A function that does not decrease (+1) or increase (-1) in each argument, over ranged
    arguments of whole days: its values at the ends, as a Bounds (a point when they meet)."""
    low_args = [(a.low if d > 0 else a.high) if isinstance(a, Bounds) else a for a, d in zip(args, direction)]
    high_args = [(a.high if d > 0 else a.low) if isinstance(a, Bounds) else a for a, d in zip(args, direction)]
    low, high = function(*low_args), function(*high_args)
    if low > high:
        low, high = high, low
    return settle(Bounds(low, high))


def shift_months(value: Bounds, months: int) -> Bounds:
    """The days of `value` moved by calendar months (each end moved; days stay whole)."""
    def move(day: Decimal) -> Decimal:
        if day.is_infinite():
            return day
        whole = day.to_integral_value(rounding=decimal.ROUND_FLOOR)
        return Decimal(add_months(dt.date.fromordinal(int(whole)), months).toordinal()) + (day - whole)
    return Bounds(move(value.low), move(value.high), value.low_open, value.high_open)


def days(value: Bounds, limit: int = 400) -> list[Decimal] | None:
    """The whole days of a date range, or None past `limit` of them (or unbounded)."""
    if not (value.low.is_finite() and value.high.is_finite()) or value.high - value.low > limit:
        return None
    first = int(value.low.to_integral_value(rounding=decimal.ROUND_CEILING))
    last = int(value.high.to_integral_value(rounding=decimal.ROUND_FLOOR))
    return [Decimal(d) for d in range(first, last + 1) if may_equal(value, Decimal(d))]


def minimum(values: list[Any]) -> Bounds:
    ranged = [as_bounds(v) for v in values]
    low = min(b.low for b in ranged)
    high = min(b.high for b in ranged)
    return Bounds(low, high, all(b.low_open for b in ranged if b.low == low),
                  all(b.high_open for b in ranged if b.high == high))


def maximum(values: list[Any]) -> Bounds:
    return negate(minimum([negate(as_bounds(v)) for v in values]))


def absolute(value: Bounds) -> Bounds:
    if value.low >= 0:
        return value
    if value.high <= 0:
        return negate(value)
    high = max(-value.low, value.high)
    open_high = (value.low_open if -value.low == high else True) and (value.high_open if value.high == high else True)
    return Bounds(Decimal(0), high, False, open_high)


def to_interval(value: Bounds, kind: str) -> Interval:
    """A computed range as the fact value of a `kind` fact (a date, integer or number)."""
    def end(number: Decimal) -> Any:
        if number.is_infinite():
            return None
        if kind == "date":
            return dt.date.fromordinal(int(number))
        if kind == "integer":
            return int(number)
        return number
    return Interval(end(value.low), end(value.high), value.low_open and value.low.is_finite(),
                    value.high_open and value.high.is_finite())
