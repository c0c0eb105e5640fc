"""Frozen data (a checked Trial, compiled rulesets) as JSON text and back, exactly.

The compile cache (`screener.rules.cache`) keeps what loading and compiling a trial produce
without pickle or marshal: a file in a cache folder is data, and reading it must never run
code it names. Every value becomes JSON with its exact type spelled out, so it comes back
equal and of the same type (a tuple stays a tuple, `Decimal("1.50")` keeps its digits, a
dict keeps its key order); a part that is plain JSON already (a durable-rules ruleset
definition) is kept as it is and read back without a walk.

Objects are rebuilt only as frozen dataclasses and enums of the screener's own modules: a
file naming any other class is refused (`NotEncoded`), as is a value of a type not listed
here, so what cannot come back faithfully is never kept.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any

_PLAIN = (str, int, bool, type(None))
_OWN = "screener"  # the package whose classes may be rebuilt


class NotEncoded(ValueError):
    """A value that cannot be written as this JSON, or text that is not a value written so."""


def _is_plain(value: Any) -> bool:
    """True when `value` is JSON as it is: dicts with text keys, lists, text, int, bool, None
    (not floats: their text is kept exactly by `encode` instead)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            if any(type(key) is not str for key in item):
                return False
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind not in _PLAIN:
            return False
    return True


def _name(kind: type) -> str:
    module = kind.__module__
    if module != _OWN and not module.startswith(_OWN + "."):
        raise NotEncoded(f"{module}.{kind.__qualname__} is not a screener class")
    return f"{module}:{kind.__qualname__}"


def encode(value: Any) -> Any:
    """`value` as JSON data: text, int, bool and None as they are; anything else a one-key
    object naming its type. Raises NotEncoded for a value of another type."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict or kind is list:
        if _is_plain(value):
            return {"json": value}
        if kind is list:
            return {"list": [encode(item) for item in value]}
        return {"dict": [[encode(key), encode(item)] for key, item in value.items()]}
    if kind is tuple:
        return {"tuple": [encode(item) for item in value]}
    if isinstance(value, enum.Enum):
        return {"enum": [_name(kind), encode(value.value)]}
    if dataclasses.is_dataclass(value):
        if not kind.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise NotEncoded(f"{kind.__qualname__} is not frozen")
        fields = dataclasses.fields(value)
        if any(not f.init for f in fields):
            raise NotEncoded(f"{kind.__qualname__} has a field its constructor does not take")
        return {"object": [_name(kind), [encode(getattr(value, f.name)) for f in fields]]}
    if kind is Decimal:
        return {"decimal": str(value)}
    if kind is Fraction:
        return {"fraction": [value.numerator, value.denominator]}
    if kind is float:
        return {"float": repr(value)}
    if kind is dt.date:
        return {"date": value.isoformat()}
    if kind is frozenset:
        return {"frozenset": [encode(item) for item in value]}
    raise NotEncoded(f"a {kind.__qualname__} is not kept")


def _own_class(name: Any) -> type:
    """The screener class `module:qualified.name`; NotEncoded for any other."""
    if type(name) is not str or ":" not in name:
        raise NotEncoded("not a class name")
    module, _, qualified = name.partition(":")
    if module != _OWN and not module.startswith(_OWN + "."):
        raise NotEncoded(f"{module} is not a screener module")
    found: Any = sys.modules.get(module)  # never imported here: importing runs a module
    for part in qualified.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise NotEncoded(f"{name} is not a class")
    return found


def decode(data: Any) -> Any:
    """The value `encode` wrote as `data`. Raises NotEncoded (or the constructor's own
    TypeError or ValueError) for data `encode` does not write."""
    kind = type(data)
    if kind in _PLAIN:
        return data
    if kind is not dict or len(data) != 1:
        raise NotEncoded("not an encoded value")
    (tag, body), = data.items()
    if tag == "json":
        return body
    if tag == "tuple":
        return tuple(decode(item) for item in _list(body))
    if tag == "list":
        return [decode(item) for item in _list(body)]
    if tag == "dict":
        out = {}
        for pair in _list(body):
            if type(pair) is not list or len(pair) != 2:
                raise NotEncoded("not a key and a value")
            out[decode(pair[0])] = decode(pair[1])
        return out
    if tag == "object":
        name, values = _list(body, 2)
        cls = _own_class(name)
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise NotEncoded(f"{name} is not a frozen dataclass")
        return cls(*(decode(item) for item in _list(values, len(dataclasses.fields(cls)))))
    if tag == "enum":
        name, value = _list(body, 2)
        cls = _own_class(name)
        if not issubclass(cls, enum.Enum):
            raise NotEncoded(f"{name} is not an enum")
        return cls(decode(value))
    if tag == "decimal" and type(body) is str:
        return Decimal(body)
    if tag == "fraction":
        numerator, denominator = _list(body, 2)
        if type(numerator) is not int or type(denominator) is not int:
            raise NotEncoded("not a fraction")
        return Fraction(numerator, denominator)
    if tag == "float" and type(body) is str:
        return float(body)
    if tag == "date" and type(body) is str:
        return dt.date.fromisoformat(body)
    if tag == "frozenset":
        return frozenset(decode(item) for item in _list(body))
    raise NotEncoded(f"unknown tag {tag!r}")


def _list(body: Any, length: int | None = None) -> list[Any]:
    if type(body) is not list or (length is not None and len(body) != length):
        raise NotEncoded("not a list of the expected length")
    return body
