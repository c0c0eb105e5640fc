"""Hidden terms: the parts of conditions that the engine cannot compare directly.

A comparison with arithmetic, a window, a function or an aggregate is decided in two steps,
both rules of the ruleset. A term rule fires when the term's inputs are present in the
snapshot; its action computes the term exactly (`screener.rules.evaluate`) and writes it
into the next snapshot as integer fields; the criterion's outcome rules then compare those
fields with 0 in the engine:

- a comparison `a op b` becomes the sign-preserving difference `a - b` (field `x_<n>`,
  compared `op 0`); `never` on either side writes the marker `x_<n>_n` instead, with which
  the comparison is not met (its negation met);
- `count(L, c) op b` becomes the range `[certain - b, possible - b]` (fields `x_<n>_lo`,
  `x_<n>_hi`): met when the whole range meets `op 0`, not met when none of it does; `any`
  and `all` are counts too;
- the latest (least, greatest) value of a given list compared with a known value, unknown
  because items are incomplete but able to become only met or only not met, writes `1` or
  `-1` in `x_<n>_w` (its value field stays absent: the term is unknown);
- any other yes/no expression (a window, `is never` of a computed date, `if`) becomes `1`
  when met and `-1` when not met, compared `> 0`.

A term that cannot be computed although its inputs are known (division by zero) is written
as nothing (unknown) and remembered as a failure: the candidate is an error only if a
criterion reading the term stays unknown.
"""
from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from screener.model import (
    Aggregate, And, Cmp, Compare, Const, In, IsSpecial, ItemField, Not, Number, Or, Pending, Ref, children,
)
from screener.rules.bounds import Bounds
from screener.rules.evaluate import _CONTEXT, NEVER, Evaluator, Failure, Range, _range_truth, compare, _reason

TERM_PREFIX = "x_"
TERM_DONE_PREFIX = "e_"
NEVER_PREFIX = "n_"
ONGOING_DAY = 100_000_000  # `ongoing` in the engine: a day number after every date
_BIG = 10**15  # differences are capped here; only their sign and order matter
_MAX_NEEDS = 8


@dataclass(frozen=True)
class Term:
    """One hidden term: how it is computed, where it is written, how it is compared."""

    name: str  # t1, t2, ...
    expr: Any  # a Cmp (`ranged`: its left side is a count) or a yes/no expression
    op: str  # the comparison of the written difference with 0
    ranged: bool
    inputs: tuple[str, ...]  # facts (and lists) it reads
    needs: tuple[tuple[str, ...], ...]  # sets of inputs, any of which may be enough to compute it
    can_be_never: bool = False  # an input may be `never`, so the never marker may be written

    @property
    def field(self) -> str:
        return TERM_PREFIX + self.name

    @property
    def never_field(self) -> str:
        return self.field + "_n"

    @property
    def one_way(self) -> str:
        """Written instead of the value when the comparison is unknown but can only become
        met (1) or only not met (-1) once its list is completed (`Evaluator.one_way`)."""
        return self.field + "_w"

    @property
    def low(self) -> str:
        return self.field + "_lo"

    @property
    def high(self) -> str:
        return self.field + "_hi"

    @functools.cached_property
    def done(self) -> str:
        """The field that marks the term computed: written once (the engine looks for it each
        time one of the term's rules fires); not a field of the dataclass."""
        return TERM_DONE_PREFIX + self.name


MAX_NATIVE_IN = 64  # longer `in` lists are a term: as alternatives they would crowd the network


def is_native(e: Any) -> bool:
    """Whether the engine decides `e` by its own comparisons (no term needed)."""
    if isinstance(e, In):
        return len(e.values) <= MAX_NATIVE_IN
    if isinstance(e, (Compare, Const, Pending)):
        return True
    return isinstance(e, IsSpecial) and isinstance(e.operand, Ref)


def lower(e: Any, terms: dict[Any, Term], never: frozenset[str] = frozenset(),
          alone: frozenset[str] = frozenset(), ranged: frozenset[str] = frozenset()) -> Any:
    """`e` with every leaf the engine cannot compare replaced by a Term (shared by equal
    expressions, so a definition used by two criteria is computed once). `never`: facts that
    may be `never`; `alone`: facts that may settle a term alone (see `settling_alone`);
    `ranged`: facts that may be a range, whose `in` lists are terms."""
    if isinstance(e, Not):
        return Not(lower(e.operand, terms, never, alone, ranged))
    if isinstance(e, (And, Or)):
        return type(e)(tuple(lower(o, terms, never, alone, ranged) for o in e.operands))
    if is_native(e) and not (isinstance(e, In) and e.fact in ranged):
        return e
    if e in terms:
        return terms[e]
    if isinstance(e, Aggregate) and e.name == "any":
        expr, op, ranged = Cmp(">=", Aggregate("count", e.fact, e.args), Number(Decimal(1))), ">=", True
    elif isinstance(e, Aggregate) and e.name == "all":
        expr, op, ranged = Cmp(">=", Aggregate("count", e.fact, e.args), Aggregate("count", e.fact, ())), ">=", True
    elif isinstance(e, Cmp):
        ranged = isinstance(e.left, Aggregate) and e.left.name == "count" and bool(e.left.args)
        expr, op = e, e.op
    else:
        expr, op, ranged = e, ">", False
    inputs = _inputs(expr)
    term = Term(f"t{len(terms) + 1}", expr, op, ranged, inputs, needs(expr, never | alone),
                can_be_never=any(name in never for name in inputs))
    terms[e] = term
    return term


def settling_alone(facts: Mapping[str, Any]) -> frozenset[str]:
    """Facts that may settle a comparison or a window on their own, whatever the other side:
    those that allow `never` or `ongoing`, and lists whose items have such a field."""
    return frozenset(name for name, spec in facts.items()
                     if spec.special or any(field.special for field in spec.item))


def _inputs(e: Any) -> tuple[str, ...]:
    from screener.model import expr_facts

    return expr_facts(e)


def needs(e: Any, alone: frozenset[str] = frozenset()) -> tuple[tuple[str, ...], ...]:
    """Sets of facts any one of which, present, may be enough to compute `e` (an `if` needs its
    test and one branch; an `or`/`and` may be settled by one side; a fact in `alone`, which
    may be `never` or `ongoing` or hold items that may be, can settle a comparison alone);
    capped at a few sets, past which all inputs are needed."""
    sets = _needs(e)
    if len(sets) > _MAX_NEEDS:
        sets = [frozenset(_inputs(e))]
    sets += [frozenset([name]) for name in _inputs(e) if name in alone]
    minimal = [s for s in sets if not any(other < s for other in sets)]
    ordered = sorted(set(minimal), key=lambda s: (len(s), sorted(s)))
    order = _inputs(e)
    return tuple(tuple(sorted(s, key=order.index)) for s in ordered)


def _needs(e: Any) -> list[frozenset[str]]:
    from screener.model import Call

    if isinstance(e, (Ref, Compare, In)):
        return [frozenset([e.fact])]
    if isinstance(e, ItemField):
        return [frozenset()]
    if isinstance(e, (And, Or)):
        out: list[frozenset[str]] = []
        for operand in e.operands:
            out.extend(_needs(operand))
        return out
    if isinstance(e, Call) and e.name == "if":
        test = _needs(e.args[0])
        branches = _needs(e.args[1]) + _needs(e.args[2])
        # both branches, without the test: they may agree (`settled_by_branches`)
        both = [a | b for a in _needs(e.args[1]) for b in _needs(e.args[2])]
        return [a | b for a in test for b in branches] + both
    combined = [frozenset([e.fact])] if isinstance(e, Aggregate) else [frozenset()]
    for child in children(e):
        combined = [a | b for a in combined for b in _needs(child)]
        if len(combined) > _MAX_NEEDS:
            return [frozenset(_inputs(e))]
    return combined


# --- computing a term in the engine's action ------------------------------------------------


# the terms' context (`compute`) with 40 digits: micro-units of a difference, exactly
_SCALING = _CONTEXT.copy()
_SCALING.prec = 40


# counts' differences with a number by (count, number): the same few recur from candidate to
# candidate (a count of 0, 1 or 2 items against `>= 1`)
_COUNTED: dict[tuple[int, Decimal], int] = {}
_COUNTED_KEPT = 4096


def encode_difference(d: Decimal) -> int:
    """An integer with the sign (and, up to a cap, the order) of `d`; never 0 unless d is 0.
    Called within `compute`, whose context `_SCALING` extends."""
    if d == 0:
        return 0
    if d.is_infinite() or d.adjusted() > 8:
        return _BIG if d > 0 else -_BIG
    whole = int(d)
    if whole == d:  # a whole difference (days between dates): its millionths, exactly
        return whole * 1_000_000  # (|d| < 10**9, so within _BIG)
    # |d| in millionths, rounded up: d to 40 digits (half-even: the same for d and -d), then
    # up for a positive d and down for a negative one
    scaled = _SCALING.scaleb(d, 6)
    if d.is_signed():
        value = -int(scaled.to_integral_value(rounding=decimal.ROUND_FLOOR, context=_SCALING))
    else:
        value = int(scaled.to_integral_value(rounding=decimal.ROUND_CEILING, context=_SCALING))
    if value < 1:
        value = 1
    elif value > _BIG:
        value = _BIG
    return -value if d.is_signed() else value


def _counted(count: int, number: Decimal) -> int:
    """`encode_difference(count - number)` for a finite number."""
    key = (count, number)
    got = _COUNTED.get(key)
    if got is None:
        got = encode_difference(Decimal(count) - number)
        if len(_COUNTED) >= _COUNTED_KEPT:
            _COUNTED.clear()
        _COUNTED[key] = got
    return got


# the context terms are computed in, set for the time of `compute` (its flags are never read)
_COMPUTING = _CONTEXT.copy()


def compute(term: Term, evaluator: Evaluator, values: Mapping[str, Any]
            ) -> tuple[dict[str, int] | None, Failure | None]:
    """The snapshot fields of `term` for these facts: (fields, None) when known or `never`,
    (None, Failure) when it cannot be computed, (None, None) when unknown."""
    plan = evaluator.plans.get(id(term))
    if plan is None or plan[0] is not term:
        plan = _plan(term, evaluator)
    caller = decimal.getcontext()
    decimal.setcontext(_COMPUTING)
    try:
        return _computed(term, evaluator, values, plan)
    except (ArithmeticError, ValueError, OverflowError) as exc:
        return None, Failure(_reason(exc))
    finally:
        decimal.setcontext(caller)


def _plan(term: Term, evaluator: Evaluator) -> tuple[Any, ...]:
    """How `term` is computed: the functions of its two sides (screener.rules.prepared), or
    of its truth, and the names of the fields it writes."""
    if type(term.expr) is Cmp:
        sides = (evaluator.value_of(term.expr.left), evaluator.value_of(term.expr.right))
    else:
        sides = (evaluator.truth_of(term.expr), None)
    plan = (term, *sides, term.field, term.low, term.high)
    evaluator.plans[id(term)] = plan  # with the term: a freed one's id is never mistaken
    return plan


def _computed(term: Term, evaluator: Evaluator, values: Mapping[str, Any], plan: tuple[Any, ...]
              ) -> tuple[dict[str, int] | None, Failure | None]:
    _, first, second, field, low, high = plan
    if second is not None:
        left = first(values, None, None)
        right = second(values, None, None)
        if type(right) is Decimal:
            # the usual cases first, as `_difference` computes them
            if type(left) is Decimal and not term.ranged:
                return {field: 0 if left == right else encode_difference(left - right)}, None
            if type(left) is Range and term.ranged and right.is_finite():
                return {low: _counted(left.low, right), high: _counted(left.high, right)}, None
        if not term.ranged and (isinstance(left, Bounds) or isinstance(right, Bounds)):
            # a side known as a range: decided when every value gives one answer
            settled = evaluator.truth_of(term.expr)(values, None, None)
            if isinstance(settled, bool):
                return {term.field: _standing_for(term.op, settled)}, None
            return None, (settled if isinstance(settled, Failure) else None)
        fields, failure = _difference(term, left, right)
        if fields is None and failure is None and not term.ranged:
            settled = evaluator.settled_by_ongoing(term.expr, left, right, None)
            if settled is None:
                settled = evaluator.settled_by_branches(term.expr, values, None, None)
            if settled is not None:
                return {term.field: _standing_for(term.op, settled)}, None
            # (a term that may be `never` has its marker in that field's place)
            only = None if term.can_be_never else evaluator.one_way(term.expr, values)
            if only is not None:
                return {term.one_way: 1 if only else -1}, None
        return fields, failure
    truth = first(values, None, None)
    if truth is True or truth is False:
        return {field: 1 if truth else -1}, None
    if isinstance(truth, Failure):
        return None, truth
    if truth is None:
        return None, None
    return {field: 1 if truth else -1}, None


def _standing_for(op: str, truth: bool) -> int:
    """A difference whose comparison `op 0` gives `truth` (a comparison decided by `ongoing`
    alone, whose other side is unknown)."""
    return next(d for d in (1, 0, -1) if compare(op, Decimal(d), Decimal(0)) is truth)


def _difference(term: Term, left: Any, right: Any) -> tuple[dict[str, int] | None, Failure | None]:
    if left is NEVER or right is NEVER:
        return {term.never_field: 1}, None
    for side in (left, right):
        if isinstance(side, Failure):
            return None, side
    if left is None or right is None:
        return None, None
    if isinstance(left, Bounds) or isinstance(right, Bounds):
        # a side known as a range: decided when every value of it gives the same answer
        truth = _range_truth(term.op, left, right) if isinstance(left, Range) else compare(term.op, left, right)
        if truth is None:
            return None, None
        standing = _standing_for(term.op, truth)
        if term.ranged:
            return {term.low: standing, term.high: standing}, None
        return {term.field: standing}, None
    if term.ranged:
        low, high = (left.low, left.high) if isinstance(left, Range) else (left, left)
        return {term.low: encode_difference(Decimal(low) - right),
                term.high: encode_difference(Decimal(high) - right)}, None
    if isinstance(left, Decimal) and isinstance(right, Decimal):
        if left == right:
            return {term.field: 0}, None
        return {term.field: encode_difference(left - right)}, None
    return {term.field: 0 if left == right else 1}, None
