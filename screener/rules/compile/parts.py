"""Step three: conditions too large for one rule, cut into Parts decided by rules of their own."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from screener.model import And, Compare, Const, Expr, In, IsSpecial, Not, Or, Pending, Ref
from screener.rules.compile.encode import Cond, PART_PREFIX, _OPS, field
from screener.rules.compile.normal import MAX_OR_WIDTH
from screener.rules.terms import Term


@dataclass(frozen=True)
class Part:
    """A sub-condition decided by rules of its own, because the whole is too large for the
    engine. Its outcome is written into the snapshot as field `field` (met/not_met/unknown)
    and the enclosing condition tests that field."""

    name: str  # "<criterion>.part<n>"
    field: str
    expr: "Expr | Part"
    facts: tuple[str, ...]


def split(e: Any, criterion: str, width: int, counter: list[int] | None = None) -> Any:
    """Replace each and/or with more than `width` operands by and/or of Parts of at most
    `width` operands each (innermost first). Kleene and/or are associative, so the meaning
    is unchanged."""
    counter = counter if counter is not None else [0]
    if isinstance(e, Not):
        return Not(split(e.operand, criterion, width, counter))
    if not isinstance(e, (And, Or)):
        return e
    operands = [split(o, criterion, width, counter) for o in e.operands]
    if len(operands) <= width:
        return type(e)(tuple(operands))
    grouped: list[Any] = []
    for start in range(0, len(operands), width):
        chunk = operands[start:start + width]
        if len(chunk) == 1:
            grouped.append(chunk[0])
            continue
        counter[0] += 1
        name = f"{criterion}.part{counter[0]}"
        inner = type(e)(tuple(chunk))
        grouped.append(Part(name, PART_PREFIX + name.replace(".", "_"), inner, _facts_of(inner)))
    return split(type(e)(tuple(grouped)), criterion, width, counter)


def decompose(e: Any, criterion: str, width: int, depth: int = 1) -> Any:
    """Cut the condition into Parts at most `depth` levels of and/or deep, with at most
    `width` operands to each and/or.

    With depth 1 this is the shape every condition fits, however deep or wide: each Part's
    rules read only its operands (leaves, or the outcome fields of the Parts inside it), so
    no rule grows with the condition; a larger depth needs fewer snapshot rounds. A long `in` list becomes an `or` of short ones first. Kleene
    and/or are associative and a Part carries its sub-condition's outcome, so the meaning is
    unchanged; the price is one more snapshot round per level of nesting.
    """
    counter = [0]

    def part(inner: Any) -> Part:
        counter[0] += 1
        name = f"{criterion}.part{counter[0]}"
        return Part(name, PART_PREFIX + name.replace(".", "_"), inner, _facts_of(inner))

    def bounded(kind: type, operands: list[Any]) -> list[Any]:
        while len(operands) > width:
            operands = [chunk[0] if len(chunk) == 1 else part(kind(tuple(chunk)))
                        for chunk in (operands[i:i + width] for i in range(0, len(operands), width))]
        return operands

    def walk(node: Any, top: bool) -> tuple[Any, int]:
        """The node rewritten, and how many levels of and/or it has outside Parts."""
        if isinstance(node, Not):
            inner, levels = walk(node.operand, top)
            return Not(inner), levels
        if isinstance(node, In) and len(node.values) > MAX_OR_WIDTH:
            chunks = [In(node.fact, node.values[i:i + MAX_OR_WIDTH])
                      for i in range(0, len(node.values), MAX_OR_WIDTH)]
            return walk(Or(tuple(chunks)), top)
        if not isinstance(node, (And, Or)):
            return node, 0
        kind = type(node)
        walked = [walk(o, False) for o in node.operands]
        operands = bounded(kind, [o for o, _ in walked])
        levels = 1 + max((n for _, n in walked), default=0)
        inner = operands[0] if len(operands) == 1 else kind(tuple(operands))
        if top or not isinstance(inner, (And, Or)) or levels < depth:
            return inner, levels
        return part(inner), 0

    return walk(e, True)[0]


def _walk(e: Any, parts: list[Part], facts: list[str]) -> None:
    """Collect the Parts inside `e` (innermost first) and the facts it reads."""
    if isinstance(e, Part):
        _walk(e.expr, parts, facts)
        parts.append(e)
    elif isinstance(e, (Compare, In)):
        if e.fact not in facts:
            facts.append(e.fact)
    elif isinstance(e, Pending):
        facts.extend(name for name in e.facts if name not in facts)
    elif isinstance(e, (Term, IsSpecial)):
        for name in e.inputs if isinstance(e, Term) else (e.operand.fact,):
            if name not in facts:
                facts.append(name)
    elif isinstance(e, Not):
        _walk(e.operand, parts, facts)
    elif isinstance(e, (And, Or)):
        for operand in e.operands:
            _walk(operand, parts, facts)


def parts_of(e: Any) -> list[Part]:
    """Every Part inside `e`, innermost first."""
    parts: list[Part] = []
    _walk(e, parts, [])
    return parts


def _facts_of(e: Any) -> tuple[str, ...]:
    facts: list[str] = []
    _walk(e, [], facts)
    return tuple(facts)


def _native(e: Any) -> bool:
    """Whether the engine's own rules decide `e` (so its Kleene conditions exist)."""
    if isinstance(e, (Not,)):
        return _native(e.operand)
    if isinstance(e, (And, Or)):
        return all(_native(o) for o in e.operands)
    return isinstance(e, (Compare, In, Const, Pending)) or (isinstance(e, IsSpecial) and isinstance(e.operand, Ref))


def _scaled(name: str, op: str, scaled: Decimal) -> Cond:
    """`field op scaled` for a field holding half-steps (see `encode`); `scaled` is the literal
    at the field's engine places, so it is whole (`engine_places` makes it so)."""
    whole = scaled.to_integral_value()
    if scaled == whole:
        value = 2 * int(whole)
        return {name: value} if op == "==" else {_OPS[op]: {name: value}}
    import math

    if op == "==":
        return False
    if op == "!=":
        return {"$ex": {name: 1}}
    # between two steps: a value there is held as the odd number between them, which is
    # above or below the literal only if the literal had been a step (never, by engine_places)
    floor, ceil = math.floor(scaled), math.ceil(scaled)
    return {">": {"$gte": {name: 2 * ceil}}, ">=": {"$gte": {name: 2 * ceil}},
            "<": {"$lte": {name: 2 * floor}}, "<=": {"$lte": {name: 2 * floor}}}[op]
