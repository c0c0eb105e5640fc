"""Step one: the engine's form of facts and values - the kind field, snapshot and field
names, rule priorities, and values encoded exactly (scaled half-step integers, day numbers).
"""
from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Any, Callable, Union

from screener.model import Compare, FactSpec, In, Special, Trial, children
from screener.rules.terms import ONGOING_DAY


KIND = "t"  # the kind field every fact carries
SNAPSHOT = "facts"
OPEN = "open"
FIELD_PREFIX = "f_"
DONE_PREFIX = "d_"
PART_PREFIX = "p_"
SEALED = "s_"  # marks a snapshot that has been through the seal (see compile_rulesets)
FINAL = "s_final"  # marks a sealed snapshot on which the criteria are decided (see compile_rulesets)

PRI_OPEN = 0
PRI_DERIVE = 1
PRI_SEAL = 2
PRI_PART = 3
PRI_SEAL_PARTS = 4
PRI_CRITERION = 5
PRI_MISSING = 6
PRI_SEEN = 7

# A condition is a durable-rules JSON expression, or one of two constants.
Cond = Union[dict[str, Any], bool, tuple[str, list[Any]]]

_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_OPS = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def field(fact: str) -> str:
    return FIELD_PREFIX + fact


def encode(spec: FactSpec, value: Any, places: int | None = None) -> Any:
    """The engine's form of a typed value (scaled integer, day number, bool or text).

    A decimal or quantity is held exactly for every comparison the rules make with it: with
    `places` (the fact's engine places, see `engine_places`) it becomes twice its value scaled
    to that many decimals, plus one when it lies strictly between two such steps. A literal of
    at most `places` decimals is twice its scaled value, so `74.95 < 75` stays true at one
    place (1499 < 1500) and nothing is ever rounded into a decision.
    `ongoing` is a day after every date; a list is its number of items (its items are read by
    term actions, not by conditions); `never` is written as a marker field by the engine, not
    as a value."""
    if spec.type in ("decimal", "quantity"):
        return _half_steps(_exact(value), spec.places if places is None else places)
    if spec.type == "date":
        if value is Special.ONGOING:
            return ONGOING_DAY
        if value is Special.NEVER:
            return None
        assert isinstance(value, dt.date)
        return value.toordinal()
    if spec.type == "integer":
        return int(value)
    if spec.type == "list":
        return len(value)
    return value


def encoder(spec: FactSpec, places: int | None = None) -> Callable[[Any], Any] | None:
    """`encode` for one fact, made once per trial: None when values reach the engine as they
    are (yes/no, choices, text, whole numbers), else a function of the value alone. Run for
    every value of every candidate, so the common case of each kind is its first test."""
    kind = spec.type
    if kind in ("boolean", "enum", "text", "integer"):
        return None
    if kind in ("decimal", "quantity"):
        scale = spec.places if places is None else places

        def number(value: Any) -> int:
            return _half_steps(value if value.__class__ is Decimal else _exact(value), scale)

        return number
    if kind == "date":
        def day(value: Any) -> Any:
            return value.toordinal() if value.__class__ is dt.date else encode(spec, value)

        return day
    if kind == "list":
        return len
    return functools.partial(encode, spec, places=places)


def _exact(value: Any) -> Decimal:
    """A decimal fact's value as the Decimal it was read from (floats hold at most 15
    significant digits of a decimal fact, so their shortest text is that decimal)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float)
                                                            else str(value))


def _half_steps(value: Decimal, places: int) -> int:
    """Twice `value` scaled by `places` decimals, plus one when it lies strictly between two
    steps: 2 x floor(scaled), + 1 unless scaled is whole. `int` truncates toward zero, which
    is the floor for a whole or positive scaled value and one above it for a negative one."""
    scaled = value.scaleb(places)
    whole = int(scaled)
    if scaled == whole:
        return 2 * whole
    return 2 * whole + 1 if scaled > 0 else 2 * whole - 1


def engine_places(trial: Trial) -> dict[str, int]:
    """For each decimal or quantity fact, the decimals at which the engine scales it: its
    `places`, or more when a literal it is compared with in a condition has more."""
    out = {name: spec.places for name, spec in trial.facts.items()
           if spec.type in ("decimal", "quantity")}
    stack: list[Any] = [c.condition for c in trial.criteria]
    stack.extend(d.formula for d in trial.derivations if d.formula is not None)
    while stack:
        e = stack.pop()
        literals: tuple[Any, ...] = ()
        if isinstance(e, Compare) and e.fact in out:
            literals = (e.value,)
        elif isinstance(e, In) and e.fact in out:
            literals = e.values
        for literal in literals:
            exponent = _exact(literal).normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > out[e.fact]:
                out[e.fact] = -exponent
        stack.extend(children(e))
    return out
