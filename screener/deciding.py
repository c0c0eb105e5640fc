"""Which facts decided a criterion: the values a coordinator needs to see beside a failure.

A criterion's condition is re-read (never evaluated as code) over the facts the engine used,
in the same three-valued logic: an `and` that fails is decided by its failing parts, an `or`
that holds by its holding parts. The engine's outcome stays the authority; this only names
the facts behind it, e.g. `NYHA class = 2` for a failed comorbidity criterion.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from screener.model import And, Compare, Const, Expr, In, Not, Or, expr_facts

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


def truth(expr: Expr, facts: Mapping[str, Any]) -> bool | None:
    """The condition's value over `facts`: True, False, or None when unknown."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Compare):
        if facts.get(expr.fact) is None:
            return None
        try:
            return bool(_OPS[expr.op](facts[expr.fact], expr.value))
        except (TypeError, KeyError):
            return None
    if isinstance(expr, In):
        if facts.get(expr.fact) is None:
            return None
        return facts[expr.fact] in expr.values
    if isinstance(expr, Not):
        inner = truth(expr.operand, facts)
        return None if inner is None else not inner
    if isinstance(expr, (And, Or)):
        values = [truth(operand, facts) for operand in expr.operands]
        decisive = isinstance(expr, Or)  # True decides an `or`, False an `and`
        if decisive in values:
            return decisive
        return None if None in values else not decisive
    return None


def deciding_facts(expr: Expr, facts: Mapping[str, Any]) -> tuple[str, ...]:
    """The facts that give the condition its value, in order of appearance; () when unknown."""
    value = truth(expr, facts)
    if value is None:
        return ()
    out: list[str] = []
    _collect(expr, facts, value, out)
    return tuple(out)


def _collect(expr: Expr, facts: Mapping[str, Any], value: bool, out: list[str]) -> None:
    if isinstance(expr, Not):
        _collect(expr.operand, facts, not value, out)
    elif isinstance(expr, (And, Or)):
        decisive = isinstance(expr, Or)
        for operand in expr.operands:
            if value != decisive or truth(operand, facts) == decisive:
                _collect(operand, facts, value, out)
    elif not isinstance(expr, Const):
        out.extend(f for f in expr_facts(expr) if f not in out)
