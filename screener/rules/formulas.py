"""What a `formula:` derivation gives, as a value of its derived fact.

A formula's exact result (`screener.rules.evaluate`, 34 significant digits) is kept as it is
in the fact's unit (an `integer` fact's is rounded half-even to a whole number; `places`
shapes display only), then checked against the fact's range like any given value: outside
it, the inputs are impossible (an error), as for function derivations.
"""
from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import Any, Mapping

from screener.errors import InvalidValue
from screener.model import Derivation, FactSpec, FactValue, Interval, Special
from screener.rules.bounds import Bounds, to_interval
from screener.rules.evaluate import NEVER, ONGOING, Evaluator, Failure
from screener.values import coerce


def derive(evaluator: Evaluator, derivation: Derivation, spec: FactSpec,
           values: Mapping[str, Any]) -> FactValue | Failure | None:
    """The derived fact's value; None when still unknown; a Failure when not computable."""
    if spec.type == "boolean":
        result = evaluator.run_truth(derivation.formula, values)
    else:
        result = evaluator.run(derivation.formula, values)
    if result is None or isinstance(result, Failure):
        return result
    return as_fact_value(spec, result)


def as_fact_value(spec: FactSpec, result: Any) -> FactValue | Failure:
    if isinstance(result, Bounds):
        return _ranged(spec, result)
    if result is NEVER:
        return Special.NEVER if Special.NEVER in spec.special else Failure("the formula gives never")
    try:
        if spec.type == "date":
            if result == ONGOING:
                return Special.ONGOING if Special.ONGOING in spec.special else Failure("the formula gives ongoing")
            return dt.date.fromordinal(int(result.to_integral_value(rounding=decimal.ROUND_FLOOR)))
        if spec.type in ("integer", "decimal", "quantity"):
            if not isinstance(result, Decimal) or not result.is_finite():
                return Failure("the formula gives no finite number")
            if spec.type == "integer":
                return int(result.quantize(Decimal(1), rounding=decimal.ROUND_HALF_EVEN))
            # kept as computed: rounding to `places` could move it across a limit
            return float(result) if spec.type == "decimal" else result
    except (ArithmeticError, ValueError, OverflowError) as exc:
        return Failure(f"the value does not fit {spec.name}: {exc}")
    return result  # type: ignore[no-any-return]


def _ranged(spec: FactSpec, result: Bounds) -> FactValue | Failure:
    """A formula's range of results (from inputs known as a range) as the fact's Interval:
    an integer fact's ends rounded as its values are (half-even), a date's to whole days."""
    if spec.type not in ("integer", "decimal", "quantity", "date"):
        return Failure("the formula gives a range of values")
    if spec.type == "integer":
        ends = [end if end.is_infinite() else end.quantize(Decimal(1), rounding=decimal.ROUND_HALF_EVEN)
                for end in (result.low, result.high)]
        result = Bounds(ends[0], ends[1], result.low_open and ends[0] == result.low,
                        result.high_open and ends[1] == result.high)
    elif spec.type == "date":
        result = Bounds(result.low.to_integral_value(rounding=decimal.ROUND_FLOOR),
                        result.high.to_integral_value(rounding=decimal.ROUND_FLOOR))
    return to_interval(result, spec.type)


def check_range(spec: FactSpec, value: Any) -> None:
    """Raise InvalidValue when a derived value does not fit its fact (type or range)."""
    if isinstance(value, Interval):
        return  # a range of values: each end is a value its inputs allow
    if spec.type == "quantity":
        if spec.minimum is not None and value < Decimal(str(spec.minimum)):
            raise InvalidValue(spec.name, value, f"below the minimum {spec.minimum} {spec.unit}")
        if spec.maximum is not None and value > Decimal(str(spec.maximum)):
            raise InvalidValue(spec.name, value, f"above the maximum {spec.maximum} {spec.unit}")
        return
    if isinstance(value, Special):
        return
    coerce(spec, value)


def agrees(given: Any, derived: Any) -> bool:
    """Whether a given value of a derived fact is the derived value to the given one's own
    precision: 33.3 given is a computed 33.306...; 33.31 given is not. Other values agree
    only when equal; a value given beside a range agrees when it lies in the range."""
    if isinstance(derived, Interval):
        if isinstance(given, Interval):
            return given == derived
        try:
            return derived.contains(Decimal(repr(given)) if isinstance(given, float) else given)
        except TypeError:
            return False
    if isinstance(derived, (Decimal, float)) and not isinstance(derived, bool) \
            and isinstance(given, (Decimal, float, int)) and not isinstance(given, bool):
        exact = Decimal(repr(given)) if isinstance(given, float) else Decimal(given)
        computed = Decimal(repr(derived)) if isinstance(derived, float) else derived
        exponent = exact.as_tuple().exponent
        if not isinstance(exponent, int) or not computed.is_finite():
            return False
        with decimal.localcontext() as context:
            context.prec = 80
            return computed.quantize(Decimal(1).scaleb(exponent),
                                     rounding=decimal.ROUND_HALF_EVEN) == exact
    return bool(given == derived)
