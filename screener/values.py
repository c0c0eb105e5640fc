"""Turn what a file or a person gave into a typed fact value, or say precisely why not.

A value outside its type is an error naming the fact and the value; it is never read as
unknown and never clipped into range. Empty text and null mean unknown (None).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from screener.errors import InvalidValue
from screener.model import FactSpec, FactValue

YES = frozenset({"yes", "y", "true", "1"})
NO = frozenset({"no", "n", "false", "0"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_INTEGER = re.compile(r"[-+]?\d+\Z")

# Longer numbers are refused before conversion: Python will not turn an integer of more than
# 4,300 digits into text (so not into an error message either), and none is a clinical value.
MAX_NUMBER_CHARS = 100
_SHOWN_CHARS = 24
_SHORT_KINDS = frozenset({"boolean", "integer", "decimal", "date", "enum"})


def coerce(spec: FactSpec, raw: Any) -> FactValue | None:
    """Return the typed value of `raw` for `spec`, None when unknown; raises InvalidValue."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            return None
    kind = spec.type
    if kind in _SHORT_KINDS:
        _refuse_oversized(spec, raw)
    if kind == "boolean":
        return _boolean(spec, raw)
    if kind == "integer":
        return _ranged(spec, raw, _integer(spec, raw))
    if kind == "decimal":
        return _ranged(spec, raw, _decimal(spec, raw))
    if kind == "date":
        return _date(spec, raw)
    if kind == "enum":
        if isinstance(raw, str) and raw in spec.values:
            return raw
        raise InvalidValue(spec.name, raw, f"expected one of {', '.join(spec.values)}")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    raise InvalidValue(spec.name, raw, "expected text")


def _refuse_oversized(spec: FactSpec, raw: Any) -> None:
    """Raise InvalidValue, showing the value shortened, when it is too long for any number."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 3 * MAX_NUMBER_CHARS:
        raise InvalidValue(spec.name, shortened(f"{raw:x}"), f"a number far too large (at most "
                                                              f"{MAX_NUMBER_CHARS} characters); shown in hex")
    if isinstance(raw, str) and len(raw) > MAX_NUMBER_CHARS:
        raise InvalidValue(spec.name, shortened(raw), f"{len(raw)} characters is too long for a "
                                                      f"{spec.type} (at most {MAX_NUMBER_CHARS})")


def shortened(text: str) -> str:
    """The start of a long value, enough to find it, marked as cut."""
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _boolean(spec: FactSpec, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.lower()
        if word in YES:
            return True
        if word in NO:
            return False
    raise InvalidValue(spec.name, raw, "expected yes or no")


def _integer(spec: FactSpec, raw: Any) -> int:
    if isinstance(raw, bool):
        raise InvalidValue(spec.name, raw, "expected a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw == int(raw):
        return int(raw)
    if isinstance(raw, str) and _INTEGER.match(raw):
        return int(raw)
    raise InvalidValue(spec.name, raw, "expected a whole number")


def _decimal(spec: FactSpec, raw: Any) -> float:
    if isinstance(raw, bool):
        raise InvalidValue(spec.name, raw, "expected a number")
    try:
        number = Decimal(str(raw).strip()) if isinstance(raw, (str, int, float)) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise InvalidValue(spec.name, raw, "expected a number")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > spec.places:
        raise InvalidValue(spec.name, raw, f"at most {spec.places} decimal places")
    return float(number)


def _ranged(spec: FactSpec, raw: Any, value: float) -> Any:
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidValue(spec.name, raw, f"below the minimum {_fmt(spec.minimum)}{_unit(spec)}")
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidValue(spec.name, raw, f"above the maximum {_fmt(spec.maximum)}{_unit(spec)}")
    return value


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _unit(spec: FactSpec) -> str:
    return f" {spec.unit}" if spec.unit else ""


def _date(spec: FactSpec, raw: Any) -> dt.date:
    if isinstance(raw, dt.datetime):
        raise InvalidValue(spec.name, raw, "expected a date (YYYY-MM-DD), not a time")
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str) and _ISO_DATE.match(raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidValue(spec.name, raw, "no such date") from None
    raise InvalidValue(spec.name, raw, "expected a date as YYYY-MM-DD")


def to_json(value: Any) -> Any:
    """A JSON-safe form of a fact value: dates as ISO text, everything else unchanged."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def show(value: Any) -> str:
    """How a value reads for a person: yes/no, ISO dates, numbers without trailing '.0'."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
