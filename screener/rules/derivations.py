"""Checks across derivations: formula types against the derived fact, cycles, band tables.

Everything here runs when the rules load (`screener check`), so a derived value that could
never fit its fact, a score whose bands leave a value uncovered, or facts that derive each
other in a circle are reported with their position, not met mid-batch.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterator, Mapping

from screener.model import Derivation, Expr, FactSpec, Span
from screener.rules.parse import ConditionError
from screener.rules.typecheck import Ty, as_condition, scale, unit_code, units_factor

_BAND = re.compile(r"\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?)\s*\Z")
_MAX_SCAN = 100_000


def fit_formula(expr: Expr, ty: Ty, spec: FactSpec) -> Expr:
    """The formula's expression, converted to the derived fact's unit; raises ConditionError
    (at offset 0) when its type cannot be the fact's."""
    want = spec.type
    if ty.ranged:
        raise ConditionError(0, "wrong-type", "a count with a condition can only be compared")
    if want == "quantity":
        if ty.kind == "number":
            return expr  # a plain number is taken in the fact's unit
        if ty.kind == "quantity":
            from screener.rules import units

            try:
                return scale(expr, units_factor(ty.unit, ((spec.unit, 1),), dict(spec.convert)))
            except (units.UnitError, ArithmeticError) as exc:
                raise ConditionError(0, "unit", f"the formula gives {unit_code(ty.unit)}, not a unit of "
                                                f"{spec.name} ({spec.unit}): {exc}") from None
    elif want in ("integer", "decimal"):
        if ty.kind == "number":
            return expr
    elif want == "date":
        if ty.kind == "date":
            return expr
    elif want == "boolean":
        if ty.kind == "boolean":
            return expr
    elif want == "enum":
        if ty.kind == "enum":
            outside = [v for v in ty.values if v not in spec.values]
            if outside:
                raise ConditionError(0, "unknown-value", f"the formula can give {outside}, "
                                                         f"not values of {spec.name} {list(spec.values)}")
            return expr
    elif want == "text" and ty.kind in ("text", "enum"):
        return expr
    raise ConditionError(0, "wrong-type", f"the formula gives {ty.show()}, but {spec.name} is {spec.type}")


def check_derivations(facts: Mapping[str, FactSpec], derivations: tuple[Derivation, ...] | list[Derivation]
                      ) -> list[tuple[Span, str, str]]:
    """Problems (span, code, message): derivation cycles, band tables that leave values
    uncovered, labels outside the derived enum's values."""
    problems = list(_cycles(facts, derivations))
    for derivation in derivations:
        if derivation.function == "banded_score":
            try:
                found = list(_bands(facts, derivation))
            except (TypeError, ValueError, KeyError, IndexError, ArithmeticError):
                continue  # a malformed table, already reported by the function's own check
            problems.extend((derivation.span, code, f"derivation {derivation.id}: {message}")
                            for code, message in found)
    return problems


def _cycles(facts: Mapping[str, FactSpec], derivations: Any) -> Iterator[tuple[Span, str, str]]:
    by_fact = {d.fact: d for d in derivations}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    reported: set[str] = set()

    def visit(fact: str, path: list[str]) -> Iterator[tuple[Span, str, str]]:
        if state.get(fact) == 2 or fact not in by_fact:
            return
        if state.get(fact) == 1:
            loop = path[path.index(fact):] + [fact]
            derivation = by_fact[fact]
            if derivation.id not in reported and len(loop) > 2:  # a self-loop is reported by check
                reported.add(derivation.id)
                yield (derivation.span, "cycle",
                       f"derivation {derivation.id}: facts derive each other in a circle: {' <- '.join(loop)}")
            return
        state[fact] = 1
        for name in by_fact[fact].inputs:
            yield from visit(name, path + [fact])
        state[fact] = 2

    for derivation in derivations:
        yield from visit(derivation.fact, [])


def _matches(band: str, value: Decimal) -> bool:
    match = _BAND.match(band)
    if match is None:
        return False
    op, limit = match.group(1), Decimal(match.group(2))
    return {"<": value < limit, "<=": value <= limit, ">": value > limit,
            ">=": value >= limit, "==": value == limit}[op]


def _points(values: list[Decimal], table: list[Any]) -> list[int] | None:
    """The points each value gets (first matching band); None when some value has no band."""
    out = []
    for value in values:
        hit = next((int(p) for p, band in table if _matches(str(band), value)), None)
        if hit is None:
            return None
        out.append(hit)
    return out


def _probes(spec: FactSpec, bands: list[str]) -> list[Decimal] | None:
    """The values of an input worth testing: every value of an integer range, else the range's
    ends and each band limit with its neighbours one step (10^-places) away."""
    if spec.minimum is None or spec.maximum is None:
        return None
    low, high = Decimal(str(spec.minimum)), Decimal(str(spec.maximum))
    if spec.type == "integer" and high - low <= _MAX_SCAN:
        return [Decimal(v) for v in range(int(low), int(high) + 1)]
    step = Decimal(1).scaleb(-spec.places)
    probes = {low, high}
    for band in bands:
        match = _BAND.match(str(band))
        if match:
            limit = Decimal(match.group(2))
            probes.update({limit - step, limit, limit + step})
    return sorted(p for p in probes if low <= p <= high)


def _bands(facts: Mapping[str, FactSpec], derivation: Derivation) -> Iterator[tuple[str, str]]:
    points = derivation.params.get("points") or {}
    classes = derivation.params.get("classes") or []
    target = facts[derivation.fact]
    for label, _ in classes:
        if target.type == "enum" and str(label) not in target.values:
            yield "unknown-value", f"class {label!r} is not one of {target.name}'s values {list(target.values)}"
    low = high = 0
    bounded = True
    for name, table in points.items():
        spec = facts[name]
        if isinstance(table, dict):
            scores = [int(v) for v in table.values()]
        else:
            probes = _probes(spec, [band for _, band in table])
            if probes is None:
                bounded = False
                continue
            got = _points(probes, table)
            if got is None:
                uncovered = next(p for p in probes if _points([p], table) is None)
                yield "uncovered", f"points for {name}: no band covers {name} = {uncovered}"
                bounded = False
                continue
            scores = got
        low += min(scores)
        high += max(scores)
    if bounded and high - low <= _MAX_SCAN:
        for total in range(low, high + 1):
            if not any(_matches(str(band), Decimal(total)) for _, band in classes):
                yield "uncovered", f"no class covers the total {total} (totals run from {low} to {high})"
                break
