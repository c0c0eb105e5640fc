"""How a fact that may be known only as a range reaches the engine.

A quantity or date fact, and a derived number or date (computed from such facts), may hold
an `Interval` (screener.model): `<20` IU/mL, March 2021, 17 or 18 completed years. Such a
fact is held in two fields instead of one value field: the least and the greatest of the engine's
encoded values the fact may take (both the value itself when it is one, so "the exact value
is not known" is: no fields, or the least below the greatest). The
engine's encoding keeps the order of values and maps the values of a range onto a run of
whole numbers with no gap, so a comparison with a literal (which only grows, or only falls,
with the value) holds for every value of the range exactly when it holds at both ends:
`x >= L` is met when the least end meets it, not met when the greatest end fails it.
"""
from __future__ import annotations

from typing import Any

from screener.model import FactSpec, FactValue, Interval, Special, Trial

LOW_PREFIX = "l_"
HIGH_PREFIX = "h_"
UNBOUNDED = 10**17  # an end a range does not have: beyond every encoded value
RANGED_TYPES = ("quantity", "date")
DERIVED_RANGED_TYPES = ("integer", "decimal", "quantity", "date")


def is_ranged(spec: FactSpec) -> bool:
    """Whether the fact may hold a range: a quantity or a date, or a derived number or date."""
    return spec.type in RANGED_TYPES or (spec.derived_by is not None and spec.type in DERIVED_RANGED_TYPES)


def ranged_facts(trial: Trial) -> frozenset[str]:
    return frozenset(name for name, spec in trial.facts.items() if is_ranged(spec))


def low_field(fact: str) -> str:
    return LOW_PREFIX + fact


def high_field(fact: str) -> str:
    return HIGH_PREFIX + fact


def ends(spec: FactSpec, value: FactValue, places: int | None) -> tuple[int, int]:
    """The least and greatest encoded values `value` may take (see the module's docstring)."""
    from screener.rules.compile.encode import encode

    if not isinstance(value, Interval):
        one = encode(spec, value, places)
        return one, one
    low = -UNBOUNDED if value.low is None else _end(spec, value.low, places, value.low_open, 1)
    high = UNBOUNDED if value.high is None else _end(spec, value.high, places, value.high_open, -1)
    return low, high


def _end(spec: FactSpec, end: Any, places: int | None, open_end: bool, inward: int) -> int:
    from screener.rules.compile.encode import encode

    encoded = encode(spec, end, places)
    if not open_end:
        return int(encoded)
    if spec.type in ("decimal", "quantity"):
        # an end on a step (even) is left out: the values just inside it are the odd number
        # between it and the next step; an end between steps shares its odd number with them
        return int(encoded) + inward if encoded % 2 == 0 else int(encoded)
    return int(encoded) + inward  # whole numbers and days: the next one inside


def write(spec: FactSpec, name: str, value: FactValue, places: int | None,
          fields: dict[str, Any]) -> None:
    """Add the fields of a ranged fact's value (not `never`) to `fields`."""
    if value is Special.NEVER:
        return
    low, high = ends(spec, value, places)
    fields[LOW_PREFIX + name] = low
    fields[HIGH_PREFIX + name] = high
