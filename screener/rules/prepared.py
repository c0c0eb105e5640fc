"""Expressions turned once into nested functions that give what the evaluator gives.

Hidden terms and formulas are computed for every candidate, some of them once per item of
a list. Walking the expression tree each time decides again, node by node, what kind of
node it is, which fact's spec applies and what its constants are. Here each node becomes,
once, a function `f(values, item, fields)` built from the parsed tree (no text is evaluated)
with those decisions taken: facts are read by their declared type, literals and item specs
are ready, comparisons know their operator. The plain case, known numbers, days and words,
is computed in place; anything else (unknown, `never`, `ongoing`, a range, a failure) goes
through the evaluator's own rules (`Evaluator.compared`, `windowed`, `arith_of`, ...), so
`Evaluator.value` and `Evaluator.truth` remain the definition and every answer is theirs.
An expression that cannot be prepared this way is evaluated by walking the tree.
"""
from __future__ import annotations

import datetime as dt
import decimal
import itertools
import operator
from decimal import Decimal
from typing import Any, Callable, Mapping

from screener.model import (
    Aggregate, And, Arith, Call, Cmp, Compare, Const, Duration, FactSpec, In, IsSpecial, ItemField,
    Literal, Member, Neg, Not, Number, Or, Pending, Ref, Scale, Special, Truth, Within,
)
from screener.rules.bounds import Bounds
from screener.rules.evaluate import (
    _MAX_CHOICES, NEVER, ONGOING, Evaluator, Failure, _combinations, _item_fields, _literal, _members,
    _ranged_member, arith_of, call_of, compare, counted, folded, latest_item, load, moved_ordinal, negated, scaled,
)

Function = Callable[[Mapping[str, Any], Any, Any], Any]

_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
              ">": operator.gt, ">=": operator.ge}
_NUMBERS = frozenset({"integer", "decimal", "quantity"})
_FLOOR = decimal.ROUND_FLOOR
# the operators that give two known numbers' result as Decimal's own (`arith_of` for the rest)
_PLAIN_ARITH = {"+": operator.add, "*": operator.mul}


def prepare(evaluator: Evaluator, e: Any, condition: bool) -> Function:
    """The function of `e` as a value (`condition` False) or as a condition."""
    try:
        builder = _Builder(evaluator)
        return builder.truth(e, None) if condition else builder.value(e, None)
    except Exception:  # an expression the evaluator would reject when it reads it
        return _walked(evaluator, e, condition)


def _walked(evaluator: Evaluator, e: Any, condition: bool) -> Function:
    """`e` evaluated by walking its tree (the evaluator's own code, errors and all)."""
    if condition:
        def truth(values: Any, item: Any, fields: Any) -> Any:
            return evaluator.truth(e, values, item, fields)
        return truth

    def value(values: Any, item: Any, fields: Any) -> Any:
        return evaluator.value(e, values, item, fields)
    return value


def _constant(value: Any) -> Function:
    def constant(values: Any, item: Any, fields: Any) -> Any:
        return value
    return constant


def _reader(name: str, spec: FactSpec, of_item: bool) -> Function:
    """A fact (or an item's field) in the evaluator's form (`load`): a value already of its
    declared type is taken as it is, any other through `load`."""
    kind = spec.type
    if kind in _NUMBERS:
        if of_item:
            def number_field(values: Any, item: Any, fields: Any) -> Any:
                v = item.get(name)
                return v if type(v) is Decimal else load(spec, v)
            return number_field

        def number(values: Any, item: Any, fields: Any) -> Any:
            v = values.get(name)
            return v if type(v) is Decimal else load(spec, v)
        return number
    if kind == "date":
        if of_item:
            def date_field(values: Any, item: Any, fields: Any) -> Any:
                v = item.get(name)
                return Decimal(v.toordinal()) if type(v) is dt.date else load(spec, v)
            return date_field

        def date(values: Any, item: Any, fields: Any) -> Any:
            v = values.get(name)
            return Decimal(v.toordinal()) if type(v) is dt.date else load(spec, v)
        return date
    if of_item:
        def word_field(values: Any, item: Any, fields: Any) -> Any:
            v = item.get(name)
            return v if type(v) is bool or type(v) is str else load(spec, v)
        return word_field

    def word(values: Any, item: Any, fields: Any) -> Any:
        v = values.get(name)
        return v if type(v) is bool or type(v) is str else load(spec, v)
    return word


def _plain(v: Any) -> bool:
    """A known number, day or word (not unknown, `never`, a range, a count range, a failure):
    compared and computed by Python's own operators, as `compare` does for them."""
    kind = type(v)
    return kind is Decimal or kind is str or kind is bool


class _Builder:
    """Builds the functions of one expression; `scope` is the fields of the items of the
    innermost list an expression reads item by item (None outside any list)."""

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator

    # --- values ------------------------------------------------------------------------

    def value(self, e: Any, scope: dict[str, FactSpec] | None) -> Function:
        kind = type(e)
        if kind is Ref:
            return _reader(e.fact, self.evaluator.specs[e.fact], False)
        if kind is Number:
            return _constant(e.value)
        if kind is ItemField:
            if scope is None:
                return _walked(self.evaluator, e, False)
            return _reader(e.name, scope[e.name], True)
        if kind is Duration:
            return _constant(e.amount)
        if kind is Literal:
            return _constant(_literal(e.value))
        if kind is Arith:
            return self.arith(e, scope)
        if kind is Call:
            return self.call(e, scope)
        if kind is Aggregate:
            return self.aggregate(e)
        if kind is Scale:
            return self.scale(e, scope)
        if kind is Neg:
            inner = self.value(e.operand, scope)

            def negative(values: Any, item: Any, fields: Any) -> Any:
                return negated(inner(values, item, fields))
            return negative
        return self.truth(e, scope)

    def scale(self, e: Scale, scope: Any) -> Function:
        inner = self.value(e.operand, scope)
        numerator, denominator = e.factor.numerator, e.factor.denominator

        def converted(values: Any, item: Any, fields: Any) -> Any:
            v = inner(values, item, fields)
            if type(v) is Decimal:
                return v * numerator / denominator
            return scaled(e, v)
        return converted

    def arith(self, e: Arith, scope: Any) -> Function:
        left, right = self.value(e.left, scope), self.value(e.right, scope)
        op = e.op
        if e.calendar:
            months_sign = 1 if op == "+" else -1

            def calendar(values: Any, item: Any, fields: Any) -> Any:
                a, b = left(values, item, fields), right(values, item, fields)
                if type(a) is Decimal and type(b) is Decimal and a.is_finite():
                    whole = a.to_integral_value(rounding=_FLOOR)
                    return Decimal(moved_ordinal(int(whole), months_sign * int(b))) + (a - whole)
                return arith_of(e, a, b)
            return calendar
        if op == "-":
            def minus(values: Any, item: Any, fields: Any) -> Any:
                a, b = left(values, item, fields), right(values, item, fields)
                if type(a) is Decimal and type(b) is Decimal and a.is_finite():  # (ongoing - x: arith_of)
                    return a - b
                return arith_of(e, a, b)
            return minus
        if op in _PLAIN_ARITH:  # + and *: two known numbers by Decimal's own operator
            plain = _PLAIN_ARITH[op]

            def plain_arith(values: Any, item: Any, fields: Any) -> Any:
                a, b = left(values, item, fields), right(values, item, fields)
                if type(a) is Decimal and type(b) is Decimal:
                    return plain(a, b)
                return arith_of(e, a, b)
            return plain_arith

        def other(values: Any, item: Any, fields: Any) -> Any:
            return arith_of(e, left(values, item, fields), right(values, item, fields))
        return other

    def call(self, e: Call, scope: Any) -> Function:
        if e.name == "if":
            test = self.truth(e.args[0], scope)
            yes, no = self.value(e.args[1], scope), self.value(e.args[2], scope)

            def chosen(values: Any, item: Any, fields: Any) -> Any:
                t = test(values, item, fields)
                if t is True:
                    return yes(values, item, fields)
                if t is False:
                    return no(values, item, fields)
                return t
            return chosen
        args = tuple(self.value(a, scope) for a in e.args)

        def called(values: Any, item: Any, fields: Any) -> Any:
            return call_of(e, [a(values, item, fields) for a in args])
        return called

    def aggregate(self, e: Aggregate) -> Function:
        fact, name = e.fact, e.name
        specs = self.evaluator.item_specs(fact)
        if name == "count" and not e.args:
            def size(values: Any, item: Any, fields: Any) -> Any:
                items = values.get(fact)
                return None if items is None else Decimal(len(items))
            return size
        if name in ("any", "all", "count"):
            return self.counting(e, specs)
        if name == "latest":
            date_field, chosen = e.args
            when_of, chosen_of = self.value(date_field, specs), self.value(chosen, specs)

            def latest(values: Any, item: Any, fields: Any) -> Any:
                items = values.get(fact)
                if items is None:
                    return None
                found, best = latest_item(items, lambda one: when_of(values, one, specs))
                return chosen_of(values, best, specs) if found else best
            return latest
        each = self.value(e.args[0], specs)

        def fold(values: Any, item: Any, fields: Any) -> Any:
            items = values.get(fact)
            if items is None:
                return None
            return folded(name, [each(values, one, specs) for one in items])
        return fold

    def counting(self, e: Aggregate, specs: dict[str, FactSpec]) -> Function:
        """`any`, `all` or `count` of a condition on each item; an item's unknown condition
        tried over its unknown yes/no and choice fields (`Evaluator.item_truth`)."""
        fact, name = e.fact, e.name
        condition = self.truth(e.args[0], specs)
        open_fields = tuple((field, (True, False) if specs[field].type == "boolean" else specs[field].values)
                            for field in _item_fields(e.args[0])
                            if field in specs and specs[field].type in ("boolean", "enum"))

        def item_truth(values: Any, one: Any) -> Any:
            got = condition(values, one, specs)
            if got is not None or not open_fields:
                return got
            unknown = [(field, choices) for field, choices in open_fields if one.get(field) is None]
            choices = [c for _, c in unknown]
            if not unknown or _combinations(choices) > _MAX_CHOICES:
                return None
            names = [field for field, _ in unknown]
            answers = set()
            for combination in itertools.product(*choices):
                answers.add(condition(values, {**one, **dict(zip(names, combination))}, specs))
                if len(answers) > 1:
                    return None
            (answer,) = answers
            return answer if isinstance(answer, bool) else None

        def count(values: Any, item: Any, fields: Any) -> Any:
            items = values.get(fact)
            if items is None:
                return None
            return counted(name, [item_truth(values, one) for one in items])
        return count

    # --- conditions --------------------------------------------------------------------

    def truth(self, e: Any, scope: dict[str, FactSpec] | None) -> Function:
        kind = type(e)
        if kind is Cmp:
            return self.comparison(e, scope)
        if kind is And or kind is Or:
            return self.junction(e, scope)
        if kind is Not:
            inner = self.truth(e.operand, scope)

            def negation(values: Any, item: Any, fields: Any) -> Any:
                got = inner(values, item, fields)
                return (not got) if isinstance(got, bool) else got
            return negation
        if kind is Within:
            return self.window(e, scope)
        if kind is Const:
            return _constant(e.value)
        if kind is Pending:
            return _constant(None)
        if kind is Compare:
            return self.fact_comparison(e)
        if kind is In:
            return self.fact_member(e)
        if kind is Member:
            return self.member(e, scope)
        if kind is IsSpecial:
            return self.special(e, scope)
        if kind is Truth:
            return self.value(e.operand, scope)
        if kind is Aggregate:
            return self.aggregate(e)
        if kind is Ref or kind is ItemField or kind is Call:
            return self.value(e, scope)
        return _walked(self.evaluator, e, True)

    def comparison(self, e: Cmp, scope: Any) -> Function:
        left, right = self.value(e.left, scope), self.value(e.right, scope)
        op = _OPERATORS[e.op]
        compared = self.evaluator.compared

        def comparison(values: Any, item: Any, fields: Any) -> Any:
            a, b = left(values, item, fields), right(values, item, fields)
            ka, kb = type(a), type(b)
            if (ka is Decimal or ka is str or ka is bool) and (kb is Decimal or kb is str or kb is bool):
                return op(a, b)
            return compared(e, a, b, values, item, fields)
        return comparison

    def junction(self, e: And | Or, scope: Any) -> Function:
        operands = tuple(self.truth(o, scope) for o in e.operands)
        decisive = type(e) is Or
        start = not decisive

        if len(operands) == 2:
            first, second = operands

            def pair(values: Any, item: Any, fields: Any) -> Any:
                got = first(values, item, fields)
                if got is decisive:
                    return decisive
                pending = got if got is None or isinstance(got, Failure) else start
                got = second(values, item, fields)
                if got is decisive:
                    return decisive
                if got is start:
                    return pending
                if isinstance(got, Failure) or (got is None and not isinstance(pending, Failure)):
                    return got
                return pending
            return pair

        def junction(values: Any, item: Any, fields: Any) -> Any:
            pending: Any = start
            for operand in operands:
                got = operand(values, item, fields)
                if got is decisive:
                    return decisive
                if got is start:
                    continue
                if isinstance(got, Failure) or (got is None and not isinstance(pending, Failure)):
                    pending = got
            return pending
        return junction

    def window(self, e: Within, scope: Any) -> Function:
        subject, duration, anchor = (self.value(e.subject, scope), self.value(e.duration, scope),
                                     self.value(e.anchor, scope))
        windowed = self.evaluator.windowed
        after = e.after
        if isinstance(e.duration, Duration) and e.duration.calendar:
            sign = 1 if after else -1

            def calendar_window(values: Any, item: Any, fields: Any) -> Any:
                x, d, y = subject(values, item, fields), duration(values, item, fields), anchor(values, item, fields)
                if type(x) is Decimal and type(d) is Decimal and type(y) is Decimal \
                        and x.is_finite() and y.is_finite():
                    whole = y.to_integral_value(rounding=_FLOOR)
                    other = Decimal(moved_ordinal(int(whole), sign * int(d))) + (y - whole)
                    return (y <= x <= other) if after else (other <= x <= y)
                return windowed(e, x, d, y, fields)
            return calendar_window

        def day_window(values: Any, item: Any, fields: Any) -> Any:
            x, d, y = subject(values, item, fields), duration(values, item, fields), anchor(values, item, fields)
            if type(x) is Decimal and type(d) is Decimal and type(y) is Decimal \
                    and x.is_finite() and y.is_finite():
                if after:
                    other = y + d
                    return y <= x <= other
                other = y - d
                return other <= x <= y
            return windowed(e, x, d, y, fields)
        return day_window

    def fact_comparison(self, e: Compare) -> Function:
        read = _reader(e.fact, self.evaluator.specs[e.fact], False)
        literal = _literal(e.value)
        op_name, op = e.op, _OPERATORS[e.op]
        if not _plain(literal):
            def compared(values: Any, item: Any, fields: Any) -> Any:
                return compare(op_name, read(values, item, fields), literal)
            return compared

        def fact_comparison(values: Any, item: Any, fields: Any) -> Any:
            v = read(values, item, fields)
            return op(v, literal) if _plain(v) else compare(op_name, v, literal)
        return fact_comparison

    def fact_member(self, e: In) -> Function:
        read = _reader(e.fact, self.evaluator.specs[e.fact], False)
        members = _members(e.values)

        def fact_member(values: Any, item: Any, fields: Any) -> Any:
            v = read(values, item, fields)
            if v is None or v is NEVER:
                return None if v is None else False
            if isinstance(v, Bounds):
                return _ranged_member(v, members)
            return v in members
        return fact_member

    def member(self, e: Member, scope: Any) -> Function:
        inner = self.value(e.operand, scope)
        members = frozenset(_literal(v) for v in e.values)

        def member(values: Any, item: Any, fields: Any) -> Any:
            v = inner(values, item, fields)
            if v is None or isinstance(v, Failure):
                return v
            if isinstance(v, Bounds):
                return _ranged_member(v, members)
            return v is not NEVER and v in members
        return member

    def special(self, e: IsSpecial, scope: Any) -> Function:
        inner = self.value(e.operand, scope)
        is_never = e.word is Special.NEVER

        def special(values: Any, item: Any, fields: Any) -> Any:
            v = inner(values, item, fields)
            if v is None or isinstance(v, Failure):
                return v
            if isinstance(v, Bounds):
                return False  # a range of days is a date: neither word
            return v is NEVER if is_never else v == ONGOING
        return special
