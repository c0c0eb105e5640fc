"""How a fact value reads for a person, in plain words that need no language: below the
values and errors that both print values, so an error message never shows a Python repr."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Mapping

from screener.model import Interval, Special


def plain(number: Decimal) -> str:
    """A Decimal as it is written, without exponent (1E+1 reads 10)."""
    return f"{number:f}"


def show(value: Any) -> str:
    """How a value reads for a person: yes/no, ISO dates, numbers without trailing '.0',
    quantities as their decimals, a list as `field=value, ...` items joined by `; `."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Interval):
        from screener.intervals import show_interval

        return show_interval(value)
    if isinstance(value, Special):
        return value.value
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, (tuple, list)):
        if not value:
            return "none"
        return "; ".join(", ".join(f"{k}={show(v)}" for k, v in item.items() if v is not None)
                         if isinstance(item, Mapping) else show(item) for item in value)
    return str(value)


def computed(value: Any, decimals: int = 4) -> tuple[Any, str]:
    """A computed value cut for a person to read, and the mark to show after it: at most
    `decimals` decimals, marked `…` when cut (a clearance of 77.777… mL/min reads 77.7778…).
    The value itself is never rounded for a decision; this is for display only."""
    if isinstance(value, Decimal) and value.is_finite():
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -decimals:
            try:
                return value.quantize(Decimal(1).scaleb(-decimals)), "…"
            except ArithmeticError:
                pass
    return value, ""
