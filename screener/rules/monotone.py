"""The range of an expression over facts known as a range, exactly where it can be had.

Range arithmetic (screener.rules.bounds) is exact when each ranged fact is read once; a
formula reading one twice (CKD-EPI reads the creatinine in a `min` and a `max`, a BMI the
height squared) would get a range wider than its values. But such formulas only grow, or
only fall, with each of their inputs: where the expression is shown to be monotone in every
ranged fact (by the direction of each operation, below), its least and greatest values are
at the ends of the ranges, and evaluating it there gives the exact range. Elsewhere None,
and the caller keeps the wider range (whose comparisons may stay unknown, never wrong).

A direction is +1 (grows), -1 (falls) or 0 (does not read the fact), with whether it is
strict: a strictly monotone expression reaches an end of its range only at the matching
end of the fact's, so an open end stays open; min, max and calendar steps are monotone but
not strictly, and their ends are taken as reached.
"""
from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, Callable, Mapping

from screener.model import Arith, Call, Duration, Literal, Neg, Number, Ref, Scale, expr_facts
from screener.rules.bounds import Bounds, settle

Direction = tuple[int, bool] | None  # (sign, strict); None: not shown monotone
_FLAT: Direction = (0, True)
MAX_RANGED = 4  # ranged facts in one expression tried at their ends (16 combinations)


def _flip(d: Direction) -> Direction:
    return None if d is None else (-d[0], d[1])


def _join(a: Direction, b: Direction) -> Direction:
    """The direction of a sum of parts going `a` and `b`."""
    if a is None or b is None:
        return None
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    if a[0] != b[0]:
        return None
    return a[0], a[1] or b[1]


def _times(d: Direction, sign: int | None, strict: bool = True) -> Direction:
    if d is None or sign is None:
        return None
    if d[0] == 0:
        return _FLAT
    if sign == 0:
        return _FLAT
    return d[0] * sign, d[1] and strict


def _sign(value: Any) -> int | None:
    """The sign every value of `value` has (0 only for exactly zero); None when it varies."""
    if isinstance(value, Bounds):
        if value.low > 0 or (value.low == 0 and value.low_open):
            return 1
        if value.high < 0 or (value.high == 0 and value.high_open):
            return -1
        return None
    if isinstance(value, Decimal) and value.is_finite():
        return (value > 0) - (value < 0)
    return None


def direction(e: Any, fact: str, value: Callable[[Any], Any]) -> Direction:
    """How `e` moves as the ranged `fact` grows; `value(sub)` evaluates a sub-expression over
    the candidate's values (a Decimal, a Bounds, or anything else when not a number)."""
    if fact not in expr_facts(e):
        return _FLAT
    if isinstance(e, Ref):
        return (1, True)
    if isinstance(e, Neg):
        return _flip(direction(e.operand, fact, value))
    if isinstance(e, Scale):
        return _times(direction(e.operand, fact, value), (e.factor > 0) - (e.factor < 0))
    if isinstance(e, Arith):
        left, right = direction(e.left, fact, value), direction(e.right, fact, value)
        if e.calendar:
            return None if right != _FLAT or left is None else (left[0], False)
        if e.op == "+":
            return _join(left, right)
        if e.op == "-":
            return _join(left, _flip(right))
        a, b = value(e.left), value(e.right)
        if e.op == "*":
            if right == _FLAT:
                return _times(left, _sign(b))
            if left == _FLAT:
                return _times(right, _sign(a))
            if _sign(a) == 1 and _sign(b) == 1:  # two positive factors
                return _join(left, right)
            return None
        if e.op == "/":
            if _sign(b) in (None, 0):
                return None
            if right == _FLAT:
                return _times(left, _sign(b))
            if left == _FLAT:
                return _times(right, None if _sign(a) is None else -_sign(a))  # type: ignore[operator]
            if _sign(a) == 1 and _sign(b) == 1:
                return _join(left, _flip(right))
            return None
        if e.op == "^":
            if left == _FLAT and isinstance(a, Decimal) and a > 0:  # a fixed base to a ranged power: 0.993 ^ years
                return _times(right, (a > 1) - (a < 1))
            if right != _FLAT or _sign(a) != 1 or not isinstance(b, Decimal):
                return None
            return _times(left, (b > 0) - (b < 0))
        return None
    if isinstance(e, Call):
        if e.name in ("min", "max"):
            found: Direction = _FLAT
            for arg in e.args:
                found = _join(found, direction(arg, fact, value))
            return None if found is None else (found[0], False)
        if e.name == "abs":
            return _times(direction(e.args[0], fact, value), _sign(value(e.args[0])))
        if e.name in ("days_between", "years_between", "months_between"):
            found = _join(_flip(direction(e.args[0], fact, value)), direction(e.args[1], fact, value))
            return found if e.name == "days_between" or found is None else (found[0], False)
        return None
    if isinstance(e, (Number, Literal, Duration)):
        return _FLAT
    return None


def at_ends(e: Any, values: Mapping[str, Any], ranged: Mapping[str, Bounds],
            point_value: Callable[[Any, Mapping[str, Any]], Any],
            range_value: Callable[[Any], Any]) -> Bounds | Decimal | None:
    """The exact range of `e` when it is monotone in every ranged fact it reads: its values at
    the ends of their ranges (`point_value(e, values)` evaluates with points in place); None
    when it is not shown monotone, reads too many ranged facts, or is not a number there."""
    read = [name for name in expr_facts(e) if name in ranged]
    if not read or len(read) > MAX_RANGED:
        return None
    directions = {}
    for name in read:
        found = direction(e, name, range_value)
        if found is None:
            return None
        directions[name] = found
    moving = [name for name in read if directions[name][0] != 0]
    if not moving:
        return None
    strict = all(directions[name][1] for name in moving)
    lowest = highest = None
    for choice in itertools.product((0, 1), repeat=len(moving)):
        points = {}
        for name, end in zip(moving, choice):
            span = ranged[name]
            number = span.low if end == 0 else span.high
            if not number.is_finite():
                return None
            points[name] = number
        got = point_value(e, {**values, **points})
        if not isinstance(got, Decimal) or not got.is_finite():
            return None
        # the least value comes from each fact at the end its direction points down from
        least = all((end == 0) == (directions[name][0] > 0) for name, end in zip(moving, choice))
        most = all((end == 1) == (directions[name][0] > 0) for name, end in zip(moving, choice))
        opened = any((ranged[name].low_open if end == 0 else ranged[name].high_open)
                     for name, end in zip(moving, choice))
        if least:
            lowest = (got, strict and opened)
        if most:
            highest = (got, strict and opened)
    assert lowest is not None and highest is not None
    if lowest[0] == highest[0]:
        return lowest[0]  # the same value throughout the range
    return settle(Bounds(lowest[0], highest[0], lowest[1], highest[1]))
