"""The exact value of an expression over one candidate's facts, with Kleene logic.

Used by the engine inside the actions of the rules that fire for hidden terms and formula
derivations (never to decide a criterion outside the engine). Numbers, quantities and day
durations are Decimal (28+ significant digits); calendar durations are Decimal months; dates
are Decimal day numbers with `ongoing` as +Infinity; `never` is `Special.NEVER`.

Results: a value; None for unknown; a `Failure` (unknown, with the reason kept) when the
inputs are known but the value cannot be computed (division by zero, overflow); for
conditions True / False / None / Failure.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import functools
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

from screener.model import (
    Aggregate, And, Arith, Call, Cmp, Compare, Const, Duration, FactSpec, In, Interval, IsSpecial,
    ItemField, Literal, Member, Neg, Not, Number, Or, Pending, Ref, Scale, Special, Truth, Within,
    children, expr_facts,
)
from screener.rules import bounds, monotone
from screener.rules.bounds import Bounds
from screener.rules.functions import add_months

NEVER = Special.NEVER
ONGOING = Decimal("Infinity")
_ONGOING_WORD = Special.ONGOING  # (as a fact's value; read off the enum once)
_CONTEXT = decimal.Context(prec=34, Emax=9999, Emin=-9999,
                           traps=[decimal.DivisionByZero, decimal.Overflow, decimal.InvalidOperation])


@dataclass(frozen=True, slots=True)
class Failure:
    """A value that cannot be computed although its inputs are known."""

    reason: str


@dataclass(frozen=True, slots=True)
class Range:
    """`count(L, c)` with unknown items: between `low` and `high`."""

    low: int
    high: int


_NUMBERS = frozenset({"integer", "decimal", "quantity"})


def load(spec: FactSpec, value: Any) -> Any:
    """A typed fact value (as `screener.values.coerce` gives it) in the evaluator's form."""
    if value is None:
        return None
    # the usual values first: a quantity, a day, a yes/no or a choice
    kind = type(value)
    if kind is Decimal:
        if spec.type in _NUMBERS:
            return value
    elif kind is dt.date:
        if spec.type == "date":
            return Decimal(value.toordinal())
    elif kind is bool or kind is str:
        if spec.type not in _NUMBERS and spec.type != "date":
            return value
    if value is NEVER:
        return NEVER
    if value is _ONGOING_WORD:
        return ONGOING
    if isinstance(value, Interval):
        return bounds.settle(bounds.from_interval(value))
    if spec.type in ("integer", "decimal", "quantity"):
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if spec.type == "date":
        return Decimal(value.toordinal())
    return value


def _literal(value: Any) -> Any:
    if isinstance(value, dt.date):
        return Decimal(value.toordinal())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def latest_item(items: Any, when_of: Callable[[Any], Any]) -> tuple[bool, Any]:
    """(True, the item of `items` whose date `when_of(item)` is the latest, the last of equal
    ones, dated items only); else (False, the aggregate's value instead): None when no item is
    dated or which one is latest is not known (an unknown date, a range), the Failure of a
    date that cannot be computed."""
    best: Any = None
    best_when: Any = None
    for one in items:
        when = when_of(one)
        if when is None or isinstance(when, Failure):
            return False, when
        if isinstance(when, Bounds):
            return False, None  # which item is the latest is not known
        if when is NEVER:
            continue
        if best is None or when >= best_when:
            best, best_when = one, when
    return (True, best) if best is not None else (False, None)


class Evaluator:
    """Evaluates expressions of one trial over a candidate's typed facts."""

    def __init__(self, facts: Mapping[str, FactSpec], prepared: bool = True):
        self.specs = facts
        self._fields: dict[str, dict[str, FactSpec]] = {}  # list fact -> its items' fields by name
        # `prepared`: expressions are turned once into functions (screener.rules.prepared)
        # that give what `value` and `truth` give; False walks the tree every time.
        self._prepared = prepared
        # by the expression's id, with the expression (a freed one's id is never mistaken)
        self._values: dict[int, tuple[Any, Any]] = {}
        self._truths: dict[int, tuple[Any, Any]] = {}
        # what callers prepare once from this trial's expressions (`terms.compute`), by id
        self.plans: dict[int, Any] = {}

    def value_of(self, e: Any) -> Any:
        """A function `(values, item, fields) -> value` giving `self.value(e, ...)`."""
        known = self._values.get(id(e))
        if known is not None and known[0] is e:
            return known[1]
        return self._function(e, False)

    def truth_of(self, e: Any) -> Any:
        """A function `(values, item, fields) -> truth` giving `self.truth(e, ...)`."""
        known = self._truths.get(id(e))
        if known is not None and known[0] is e:
            return known[1]
        return self._function(e, True)

    def _function(self, e: Any, condition: bool) -> Any:
        function: Any
        if self._prepared:
            from screener.rules.prepared import prepare

            function = prepare(self, e, condition)
        elif condition:
            def function(values: Any, item: Any, fields: Any) -> Any:
                return self.truth(e, values, item, fields)
        else:
            def function(values: Any, item: Any, fields: Any) -> Any:
                return self.value(e, values, item, fields)
        (self._truths if condition else self._values)[id(e)] = (e, function)
        return function

    def item_specs(self, fact: str) -> dict[str, FactSpec]:
        """The fields of an item of list `fact`, by name (one dict per list)."""
        specs = self._fields.get(fact)
        if specs is None:
            specs = self._fields[fact] = {spec.name: spec for spec in self.specs[fact].item}
        return specs

    def run(self, expr: Any, values: Mapping[str, Any]) -> Any:
        """The value of `expr`; never raises for candidate data."""
        try:
            with decimal.localcontext(_CONTEXT):
                got = self.value_of(expr)(values, None, None)
                if isinstance(got, Bounds):
                    exact = self.exact_range(expr, values)
                    return got if exact is None else exact
                return got
        except (ArithmeticError, ValueError, OverflowError) as exc:
            return Failure(_reason(exc))

    def exact_range(self, e: Any, values: Mapping[str, Any]) -> Any:
        """The exact range of `e` over the ranged facts it reads, where it is monotone in
        each (screener.rules.monotone); None otherwise."""
        ranged = {}
        for name in expr_facts(e):
            value = values.get(name)
            if isinstance(value, Interval) and name in self.specs:
                loaded = load(self.specs[name], value)
                if isinstance(loaded, Bounds):
                    ranged[name] = loaded
        if not ranged:
            return None

        def at(expr: Any, points: Mapping[str, Any]) -> Any:
            typed = {name: (_typed_point(self.specs[name], points[name]) if name in ranged else value)
                     for name, value in points.items()}
            try:
                return self.value(expr, typed, None, None)
            except (ArithmeticError, ValueError, OverflowError):
                return None
        return monotone.at_ends(e, values, ranged, at, lambda sub: self.value(sub, values, None, None))

    def run_truth(self, expr: Any, values: Mapping[str, Any]) -> Any:
        """Like `run`, for a condition: True, False, None or a Failure."""
        try:
            with decimal.localcontext(_CONTEXT):
                return self.truth_of(expr)(values, None, None)
        except (ArithmeticError, ValueError, OverflowError) as exc:
            return Failure(_reason(exc))

    # --- values ------------------------------------------------------------------------

    # Expression nodes are told apart by their exact class (no node class has subclasses):
    # terms are computed many times per candidate, and a chain of isinstance tests was a
    # fair share of that.

    def value(self, e: Any, values: Mapping[str, Any], item: Mapping[str, Any] | None,
              fields: Mapping[str, FactSpec] | None) -> Any:
        kind = type(e)
        if kind is Ref:
            return load(self.specs[e.fact], values.get(e.fact))
        if kind is Number:
            return e.value
        if kind is Arith:
            return self.arith(e, values, item, fields)
        if kind is ItemField:
            assert item is not None and fields is not None
            return load(fields[e.name], item.get(e.name))
        if kind is Duration:
            return e.amount
        if kind is Literal:
            return _literal(e.value)
        if kind is Call:
            return self.call(e, values, item, fields)
        if kind is Aggregate:
            return self.aggregate(e, values, item, fields)
        if isinstance(e, Scale):
            return scaled(e, self.value(e.operand, values, item, fields))
        if isinstance(e, Neg):
            return negated(self.value(e.operand, values, item, fields))
        return self.truth(e, values, item, fields)

    def arith(self, e: Arith, values: Any, item: Any, fields: Any) -> Any:
        return arith_of(e, self.value(e.left, values, item, fields), self.value(e.right, values, item, fields))

    def call(self, e: Call, values: Any, item: Any, fields: Any) -> Any:
        if e.name == "if":
            test = self.truth(e.args[0], values, item, fields)
            if test is True:
                return self.value(e.args[1], values, item, fields)
            if test is False:
                return self.value(e.args[2], values, item, fields)
            return test
        return call_of(e, [self.value(a, values, item, fields) for a in e.args])

    def aggregate(self, e: Aggregate, values: Any, item: Any, fields: Any) -> Any:
        items = values.get(e.fact)
        if items is None:
            return None
        specs = self.item_specs(e.fact)
        if e.name == "count" and not e.args:
            return Decimal(len(items))
        if e.name in ("any", "all", "count"):
            return counted(e.name, [self.item_truth(e.args[0], values, one, specs) for one in items])
        if e.name == "latest":
            date_field, chosen = e.args
            found, best = latest_item(items, lambda one: self.value(date_field, values, one, specs))
            return self.value(chosen, values, best, specs) if found else best
        return folded(e.name, [self.value(e.args[0], values, one, specs) for one in items])

    # --- conditions --------------------------------------------------------------------

    def truth(self, e: Any, values: Mapping[str, Any], item: Mapping[str, Any] | None,
              fields: Mapping[str, FactSpec] | None) -> Any:
        kind = type(e)
        if kind is Cmp:
            return self._cmp_truth(e, values, item, fields)
        if kind is And or kind is Or:
            decisive = kind is Or
            pending: Any = not decisive
            for operand in e.operands:
                got = self.truth(operand, values, item, fields)
                if got is decisive:
                    return decisive
                if isinstance(got, Failure) or (got is None and not isinstance(pending, Failure)):
                    pending = got
            return pending
        if kind is Not:
            inner = self.truth(e.operand, values, item, fields)
            return (not inner) if isinstance(inner, bool) else inner
        if kind is Within:
            return self.within(e, values, item, fields)
        if kind is Const:
            return e.value
        if kind is Pending:
            return None
        if kind is Compare:
            value = load(self.specs[e.fact], values.get(e.fact))
            return compare(e.op, value, _literal(e.value))
        if kind is In:
            value = load(self.specs[e.fact], values.get(e.fact))
            if value is None or value is NEVER:
                return None if value is None else False
            if isinstance(value, Bounds):
                return _ranged_member(value, _members(e.values))
            return value in _members(e.values)
        if kind is Member:
            value = self.value(e.operand, values, item, fields)
            if value is None or isinstance(value, Failure):
                return value
            if isinstance(value, Bounds):
                return _ranged_member(value, frozenset(_literal(v) for v in e.values))
            return value is not NEVER and value in {_literal(v) for v in e.values}
        if kind is IsSpecial:
            value = self.value(e.operand, values, item, fields)
            if value is None or isinstance(value, Failure):
                return value
            if isinstance(value, Bounds):
                return False  # a range of days is a date: neither word
            return value is NEVER if e.word is Special.NEVER else value == ONGOING
        if kind is Truth:
            return self.value(e.operand, values, item, fields)
        if kind is Aggregate:
            return self.aggregate(e, values, item, fields)
        if kind is Ref or kind is ItemField or kind is Call:
            return self.value(e, values, item, fields)
        raise TypeError(f"not a condition: {type(e).__name__}")

    def _cmp_truth(self, e: Cmp, values: Mapping[str, Any], item: Mapping[str, Any] | None,
                   fields: Mapping[str, FactSpec] | None) -> Any:
        return self.compared(e, self.value(e.left, values, item, fields),
                             self.value(e.right, values, item, fields), values, item, fields)

    def compared(self, e: Cmp, left: Any, right: Any, values: Mapping[str, Any],
                 item: Mapping[str, Any] | None, fields: Mapping[str, FactSpec] | None) -> Any:
        """Comparison `e` given the values of its sides."""
        if isinstance(left, Range):
            return _range_truth(e.op, left, right)
        if item is None and (isinstance(left, Bounds) or isinstance(right, Bounds)):
            exact = self.exact_range(Arith("-", e.left, e.right), values)
            if exact is not None:
                return compare(e.op, exact, Decimal(0))
        got = compare(e.op, left, right)
        if got is None:
            got = self.settled_by_ongoing(e, left, right, fields)
        if got is None:
            got = self.settled_by_bound(e, left, right, item, fields)
        return self.settled_by_branches(e, values, item, fields) if got is None else got

    def within(self, e: Within, values: Any, item: Any, fields: Any) -> Any:
        return self.windowed(e, self.value(e.subject, values, item, fields),
                             self.value(e.duration, values, item, fields),
                             self.value(e.anchor, values, item, fields), fields)

    def windowed(self, e: Within, x: Any, d: Any, y: Any, fields: Any) -> Any:
        """Window `e` given the values of its subject, duration and anchor."""
        got = _window(e, x, d, y)
        if got is None and ONGOING in (x, y):
            return self._settled(lambda a, b, c: _window(e, a, b, c), (x, d, y),
                                 (e.subject, e.duration, e.anchor), (_ANY_DAY, _ONE, _ANY_DAY), fields)
        return got

    def settled_by_ongoing(self, e: Cmp, left: Any, right: Any, fields: Any) -> Any:
        """`ongoing op X` (or `X op ongoing`) with X unknown: decided when every value X may
        take gives the same answer (docs/rules-language.md, "Dates that may be never or
        ongoing"); None otherwise."""
        if not ((left == ONGOING and right is None) or (right == ONGOING and left is None)):
            return None
        return self._settled(lambda a, b: compare(e.op, a, b), (left, right), (e.left, e.right),
                             (_ANY_DAY, _ANY_DAY), fields)

    def item_truth(self, e: Any, values: Mapping[str, Any], item: Mapping[str, Any],
                   fields: Mapping[str, FactSpec]) -> Any:
        """Condition `e` on one item of a list; when unknown, decided if every value its
        unknown yes/no and choice fields may take gives the same answer (a lesion of 25 x 18
        mm is measurable whether or not it is a lymph node)."""
        got = self.truth(e, values, item, fields)
        if got is not None:
            return got
        open_fields = [name for name in _item_fields(e)
                       if item.get(name) is None and name in fields
                       and fields[name].type in ("boolean", "enum")]
        choices = [(True, False) if fields[name].type == "boolean" else fields[name].values
                   for name in open_fields]
        if not open_fields or _combinations(choices) > _MAX_CHOICES:
            return None
        answers = set()
        for combination in itertools.product(*choices):
            answers.add(self.truth(e, values, {**item, **dict(zip(open_fields, combination))}, fields))
            if len(answers) > 1:
                return None
        (answer,) = answers
        return answer if isinstance(answer, bool) else None

    def settled_by_bound(self, e: Cmp, left: Any, right: Any, item: Any, fields: Any) -> Any:
        """`field op X` with the item field unknown and X known, where the field is declared
        never earlier than a sibling date field that is known (`not_before`): decided when
        the earliest value it may take and every later one give the same answer (metformin
        started 30 days before screening cannot have had a stable dose for 90 days)."""
        if item is None or fields is None or e.op in ("==", "!="):
            return None
        for side, value, other in ((e.left, left, right), (e.right, right, left)):
            if value is not None or not isinstance(side, ItemField) or not isinstance(other, Decimal):
                continue
            spec = fields.get(side.name)
            if spec is None or not spec.not_before:
                continue
            bound = load(fields[spec.not_before], item.get(spec.not_before))
            if not isinstance(bound, Decimal) or not bound.is_finite():
                continue
            ends = {compare(e.op, x, other) if side is e.left else compare(e.op, other, x)
                    for x in (bound, ONGOING)}
            if len(ends) == 1:
                (answer,) = ends
                return answer if isinstance(answer, bool) else None
        return None

    def one_way(self, e: Cmp, values: Mapping[str, Any]) -> Any:
        """The one answer an unknown comparison of the latest (least, greatest) value of a
        given list with a known value may still come to once the list's items are
        completed, or None when both remain possible. `latest(L, d, v) op X` with dates
        left unknown: the latest is one of the undated items or the latest dated one, so
        when all of their values give one answer, no date changes it; `max_of(L, v) op X`
        with values left unknown: the greatest is the greatest known value or more
        (`min_of`: or less). The comparison itself stays unknown (its dates or values are
        still to complete); this only tells which way completing it can still take it."""
        for side, other in ((e.left, e.right), (e.right, e.left)):
            if not (isinstance(side, Aggregate) and side.name in ("latest", "min_of", "max_of")):
                continue
            x = self.value(other, values, None, None)
            items = values.get(side.fact)
            if x is None or x is NEVER or isinstance(x, Failure) or not items:
                return None
            specs = {spec.name: spec for spec in self.specs[side.fact].item}
            reached = self._reached(side, items, values, specs, x)
            if reached is None:
                return None
            answers = {compare(e.op, v, x) if side is e.left else compare(e.op, x, v) for v in reached}
            if len(answers) != 1:
                return None
            (answer,) = answers
            return answer if isinstance(answer, bool) else None
        return None

    def _reached(self, e: Aggregate, items: Any, values: Mapping[str, Any],
                 specs: Mapping[str, FactSpec], x: Any) -> list[Any] | None:
        """Values standing for every value aggregate `e` may take once its list's unknown
        item fields are answered; None when they are not bounded that way."""
        if e.name == "latest":
            date_field, chosen = e.args
            undated, best = [], None
            for one in items:
                when = self.value(date_field, values, one, specs)
                if isinstance(when, Failure):
                    return None
                if when is None:
                    undated.append(one)
                elif when is not NEVER and (best is None or when >= best[0]):
                    best = (when, one)
            candidates = undated + ([best[1]] if best is not None else [])
            got = [self.value(chosen, values, one, specs) for one in candidates]
            if any(v is None or v is NEVER or isinstance(v, Failure) for v in got):
                return None
            return got
        got = [self.value(e.args[0], values, one, specs) for one in items]
        if any(isinstance(v, Failure) or v is NEVER for v in got):
            return None
        known = [v for v in got if v is not None]
        if not known or not all(isinstance(v, Decimal) for v in known) or not isinstance(x, Decimal):
            return None
        bound = max(known) if e.name == "max_of" else min(known)
        beyond = Decimal("Infinity") if e.name == "max_of" else Decimal("-Infinity")
        inside = bound <= x if e.name == "max_of" else x <= bound
        return [bound, beyond] + ([x] if inside else [])

    def settled_by_branches(self, e: Cmp, values: Mapping[str, Any], item: Any, fields: Any) -> Any:
        """A comparison left unknown by an `if` whose test is unknown: decided when every
        branch such `if`s may take gives the same answer (docs/rules-language.md, "Settled
        when settled"), e.g. `alt <= if(liver_metastases, 5, 3) * alt_uln` for an ALT at
        1.5 x ULN; None otherwise."""
        ifs, variants = _branching(e)
        open_at = [i for i, node in enumerate(ifs) if self.truth(node.args[0], values, item, fields) is None]
        if not open_at or len(open_at) > _MAX_OPEN_IFS:
            return None
        answers = set()
        for chosen in itertools.product((1, 2), repeat=len(open_at)):
            key = tuple(zip(open_at, chosen))
            settled = variants.get(key)
            if settled is None:
                settled = e
                for at, branch in key:
                    settled = _substitute(settled, ifs[at], ifs[at].args[branch])
                variants[key] = settled
            answers.add(compare(settled.op, self.value(settled.left, values, item, fields),
                                self.value(settled.right, values, item, fields)))
            if len(answers) > 1:
                return None
        (answer,) = answers
        return answer if isinstance(answer, bool) else None

    def _settled(self, decide: Any, known: tuple[Any, ...], exprs: tuple[Any, ...],
                 typical: tuple[Decimal, ...], fields: Any) -> Any:
        """`decide(*known)` where some of `known` are unknown (None): the one answer it gives
        for every value those may take (a plain date or duration, and `ongoing` / `never` when
        the expression reads a fact that allows them), or None when the answers differ. With
        `ongoing` among the known operands every plain value gives the same answer, so the
        `typical` one stands for all."""
        choices: list[tuple[Any, ...]] = []
        for value, expr, plain in zip(known, exprs, typical):
            if value is not None:
                choices.append((value,))
                continue
            words = self.may_be(expr, fields)
            choices.append((plain,) + ((ONGOING,) if Special.ONGOING in words else ())
                           + ((NEVER,) if Special.NEVER in words else ()))
        answers = {decide(*combination) for combination in itertools.product(*choices)}
        if len(answers) == 1:
            (answer,) = answers
            return answer if isinstance(answer, bool) else None
        return None

    def may_be(self, e: Any, fields: Mapping[str, FactSpec] | None) -> frozenset[Special]:
        """The special words (`never`, `ongoing`) an expression may turn out to be: those
        the facts and item fields it reads allow."""
        found: set[Special] = set()
        pending: list[tuple[Any, Mapping[str, FactSpec] | None]] = [(e, fields)]
        while pending:
            node, scope = pending.pop()
            if isinstance(node, Ref):
                found.update(self.specs[node.fact].special)
            elif isinstance(node, ItemField) and scope is not None and node.name in scope:
                found.update(scope[node.name].special)
            inner = scope
            if isinstance(node, Aggregate):
                inner = {spec.name: spec for spec in self.specs[node.fact].item}
            pending.extend((child, inner) for child in children(node))
        return frozenset(found)


_MAX_OPEN_IFS = 4  # at most 16 combinations of branches are tried
_MAX_CHOICES = 64  # combinations of an item's unknown yes/no and choice fields tried


def _combinations(choices: list[Any]) -> int:
    total = 1
    for options in choices:
        total *= len(options)
    return total


def _item_fields(e: Any) -> list[str]:
    """The item fields condition `e` reads, in order of first use."""
    found: list[str] = []
    pending = [e]
    while pending:
        node = pending.pop(0)
        if isinstance(node, ItemField):
            if node.name not in found:
                found.append(node.name)
        elif not isinstance(node, Aggregate):
            pending.extend(children(node))
    return found


# The `if`s of a comparison and the comparisons with chosen branches in their place, by the
# comparison's id (with it, so that a freed one's id is never mistaken): the same conditions
# are tried for every candidate whose tests are unknown.
_BRANCHES: dict[int, tuple[Any, list[Call], dict[tuple[tuple[int, int], ...], Any]]] = {}
_BRANCHES_KEPT = 4096


def _branching(e: Any) -> tuple[list[Call], dict[tuple[tuple[int, int], ...], Any]]:
    known = _BRANCHES.get(id(e))
    if known is None or known[0] is not e:
        if len(_BRANCHES) >= _BRANCHES_KEPT:
            _BRANCHES.clear()
        known = _BRANCHES[id(e)] = (e, _ifs(e), {})
    return known[1], known[2]


def _ifs(e: Any) -> list[Call]:
    """The `if` calls of `e`, outermost first, not inside aggregates (those are read item by
    item) nor inside another `if` (its branches are tried whole)."""
    found: list[Call] = []
    pending = [e]
    while pending:
        node = pending.pop(0)
        if isinstance(node, Call) and node.name == "if":
            found.append(node)
        elif not isinstance(node, Aggregate):
            pending.extend(children(node))
    return found


def _substitute(e: Any, target: Any, replacement: Any) -> Any:
    """`e` with the node `target` (by identity) replaced by `replacement`."""
    if e is target:
        return replacement
    if not dataclasses.is_dataclass(e) or isinstance(e, Aggregate):
        return e
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(e):
        value = getattr(e, field.name)
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            new = tuple(_substitute(v, target, replacement) for v in value)
            if any(a is not b for a, b in zip(new, value)):
                changes[field.name] = new
        elif dataclasses.is_dataclass(value):
            new = _substitute(value, target, replacement)
            if new is not value:
                changes[field.name] = new
    return dataclasses.replace(e, **changes) if changes else e


def arith_of(e: Arith, a: Any, b: Any) -> Any:
    """`a op b` for the values of the two sides of `e`."""
    blocked = _blocked_pair(a, b)
    if blocked is not _CLEAR:
        return blocked
    if isinstance(a, Bounds) or isinstance(b, Bounds):
        return bounds.settle(_ranged_arith(e, a, b))
    if e.calendar:
        if a == ONGOING:
            return a
        months = int(b) if e.op == "+" else -int(b)
        whole = a.to_integral_value(rounding=decimal.ROUND_FLOOR)
        return Decimal(moved_ordinal(int(whole), months)) + (a - whole)
    if e.op == "+":
        return a + b
    if e.op == "-":
        if a == ONGOING and b == ONGOING:
            return Failure("ongoing - ongoing")
        return a - b
    if e.op == "*":
        return a * b
    if e.op == "/":
        if b == 0:
            return Failure("division by zero")
        return a / b
    if a == 0 and b < 0:
        return Failure("division by zero")
    return _power(a, b)


# Powers computed, by the exact texts of base and exponent and the context's settings: a
# fractional power is correctly rounded to the last digit, which costs some 50 to 100 µs
# (QTcF's cube root, eGFR's creatinine ratio), and its bases recur from candidate to
# candidate (60 / a heart rate in beats per minute, a creatinine to two decimals).
_POWERS: dict[tuple[Any, ...], Decimal] = {}
_POWERS_KEPT = 4096
_SILENT = (decimal.Inexact, decimal.Rounded, decimal.Underflow, decimal.Subnormal, decimal.Clamped)


def _power(a: Decimal, b: Decimal) -> Decimal:
    """`a ** b`, from `_POWERS` when computed before with the same settings. A whole power
    (a height squared) is computed every time: it costs less than finding it. So is any power
    in a context that traps one of the conditions a power signals without an error."""
    if type(a) is not Decimal or type(b) is not Decimal or not b.is_finite() or b == b.to_integral_value():
        return a ** b
    context = decimal.getcontext()
    traps = context.traps
    if any(traps[condition] for condition in _SILENT):
        return a ** b
    key = (str(a), str(b), context.prec, context.rounding, context.Emax, context.Emin, context.clamp)
    got = _POWERS.get(key)
    if got is None:
        got = a ** b
        if len(_POWERS) >= _POWERS_KEPT:
            _POWERS.clear()
        _POWERS[key] = got
    return got


def call_of(e: Call, args: list[Any]) -> Any:
    """Function `e` (other than `if`) of the values of its arguments."""
    blocked = _blocked(*args)
    if blocked is not _CLEAR:
        return blocked
    if any(isinstance(a, Bounds) for a in args):
        return bounds.settle(_ranged_call(e.name, args))
    if e.name == "min":
        return min(args)
    if e.name == "max":
        return max(args)
    if e.name == "abs":
        return abs(args[0])
    a, b = args
    if a == ONGOING:
        return Failure(f"{e.name} from ongoing")
    if b == ONGOING:
        return ONGOING  # to a date still going: longer than any number of days or years
    if e.name == "days_between":
        return b - a
    start, end = (dt.date.fromordinal(int(v)) for v in (a, b))
    months = e.name == "months_between"
    return Decimal(_whole(start, end, 1 if months else 12))


def counted(name: str, truths: list[Any]) -> Any:
    """`any`, `all` or `count` of a list whose items' conditions are `truths`."""
    certain = sum(1 for t in truths if t is True)
    possible = sum(1 for t in truths if t is not False)
    failure = next((t for t in truths if isinstance(t, Failure)), None)
    if name == "count":
        return Range(certain, possible) if certain != possible or failure is None else Decimal(certain)
    if name == "any":
        return True if certain else (False if possible == 0 else (failure or None))
    return False if possible < len(truths) else (True if certain == len(truths) else (failure or None))


def folded(name: str, got: list[Any]) -> Any:
    """`sum`, `min_of` or `max_of` of the items' values `got`."""
    blocked = _blocked(*got)
    if blocked is not _CLEAR:
        return blocked
    if any(isinstance(g, Bounds) for g in got):
        if name == "sum":
            total: Any = Decimal(0)
            for g in got:
                total = bounds.add(total, g)
            return bounds.settle(total)
        return bounds.settle(bounds.minimum(got) if name == "min_of" else bounds.maximum(got))
    if name == "sum":
        return sum(got, Decimal(0))
    if not got:
        return None
    return min(got) if name == "min_of" else max(got)


def scaled(e: Scale, inner: Any) -> Any:
    """A value converted by unit factor `e.factor`."""
    if isinstance(inner, Bounds):
        return bounds.divide(bounds.multiply(inner, Decimal(e.factor.numerator)),
                             Decimal(e.factor.denominator))
    return _numeric(inner, lambda v: v * e.factor.numerator / e.factor.denominator)


def negated(inner: Any) -> Any:
    return _numeric(inner, lambda v: bounds.negate(v) if isinstance(v, Bounds) else -v)


# Calendar steps already taken, by (day number, months): the same dates and windows recur
# from candidate to candidate (screening dates, `6 months`), and a step is a pure function.
_MOVED: dict[tuple[int, int], int] = {}
_MOVED_KEPT = 8192


def moved_ordinal(day: int, months: int) -> int:
    """The day number `months` calendar months after day number `day` (`add_months`)."""
    key = (day, months)
    got = _MOVED.get(key)
    if got is None:
        got = add_months(dt.date.fromordinal(day), months).toordinal()
        if len(_MOVED) >= _MOVED_KEPT:
            _MOVED.clear()
        _MOVED[key] = got
    return got


def _window(e: Within, x: Any, d: Any, y: Any) -> Any:
    """`x within d before|after y` for these values (docs/rules-language.md)."""
    if x is NEVER or y is NEVER:
        return False
    if x == ONGOING and not e.after and isinstance(y, (Decimal, Bounds)):
        return True  # still going at the anchor: inside the window before it
    blocked = _blocked(x, d, y)
    if blocked is not _CLEAR:
        return False if blocked is NEVER else blocked
    if y == ONGOING:
        return False
    if any(isinstance(v, Bounds) for v in (x, d, y)):
        return _ranged_window(e, x, d, y)
    calendar = isinstance(e.duration, Duration) and e.duration.calendar
    if calendar:
        whole = y.to_integral_value(rounding=decimal.ROUND_FLOOR)
        other = Decimal(moved_ordinal(int(whole), int(d) if e.after else -int(d))) + (y - whole)
    else:
        other = y + d if e.after else y - d
    low, high = (y, other) if e.after else (other, y)
    return low <= x <= high


_ANY_DAY = Decimal(dt.date(2000, 1, 1).toordinal())  # stands for any date beside `ongoing`
_ONE = Decimal(1)  # stands for any duration (days or months) beside `ongoing`


_CLEAR = object()


def _blocked_pair(a: Any, b: Any) -> Any:
    """`_blocked(a, b)`, for the two operands of most operations."""
    if a is NEVER or b is NEVER:
        return NEVER
    if isinstance(a, Failure):
        return a
    if isinstance(b, Failure):
        return b
    if a is None or b is None:
        return None
    return _CLEAR


def _blocked(*args: Any) -> Any:
    """What an operation gives when an operand is not a plain value: `never` (with which no
    comparison is met, whatever the other side), else a Failure, else unknown."""
    if any(a is NEVER for a in args):
        return NEVER
    failure = next((a for a in args if isinstance(a, Failure)), None)
    if failure is not None:
        return failure
    if any(a is None for a in args):
        return None
    return _CLEAR


def _typed_point(spec: FactSpec, number: Decimal) -> Any:
    """One value of a ranged fact, as a typed fact value (a day for a date)."""
    if spec.type == "date":
        return dt.date.fromordinal(int(number))
    if spec.type == "integer":
        return int(number)
    return number


def _ranged_arith(e: Arith, a: Any, b: Any) -> Any:
    """`a op b` where a side is a range: the range of the results (None where it has no end)."""
    if e.calendar:
        if isinstance(b, Bounds):
            return None  # a ranged number of months: not a calendar duration
        if a == ONGOING:
            return a
        return bounds.shift_months(bounds.as_bounds(a), int(b) if e.op == "+" else -int(b))
    if e.op == "+":
        return bounds.add(a, b)
    if e.op == "-":
        return bounds.subtract(a, b)
    if e.op == "*":
        return bounds.multiply(a, b)
    if e.op == "/":
        return bounds.divide(a, b)
    if isinstance(b, Decimal) and isinstance(a, Bounds) and a.low > 0 and b.is_finite():
        # a positive range to a fixed power: the ends' powers, in order
        ends = sorted([(a.low ** b, a.low_open), (a.high ** b, a.high_open)], key=lambda x: x[0])
        return Bounds(ends[0][0], ends[1][0], ends[0][1], ends[1][1])
    if isinstance(a, Decimal) and isinstance(b, Bounds) and a > 0 and b.low.is_finite() and b.high.is_finite():
        # a fixed positive base to a ranged power: the powers at the ends, in order
        ends = sorted([(a ** b.low, b.low_open), (a ** b.high, b.high_open)], key=lambda x: x[0])
        return Bounds(ends[0][0], ends[1][0], ends[0][1], ends[1][1])
    return None  # a power of a range reaching 0, or of a range to a ranged power: not followed


def _ranged_call(name: str, args: list[Any]) -> Any:
    """min, max, abs and the calendar counts of ranged arguments."""
    if name == "min":
        return bounds.minimum(args)
    if name == "max":
        return bounds.maximum(args)
    if name == "abs":
        return bounds.absolute(bounds.as_bounds(args[0]))
    if ONGOING in [a for a in args if not isinstance(a, Bounds)]:
        return None
    if name == "days_between":
        return bounds.subtract(args[1], args[0])
    unit = 1 if name == "months_between" else 12

    def whole(a: Decimal, b: Decimal) -> Decimal:
        return Decimal(_whole(dt.date.fromordinal(int(a)), dt.date.fromordinal(int(b)), unit))
    # whole months (years) from a to b grow with b and shrink as a grows
    return bounds.monotone(whole, args, (-1, 1))


def _ranged_member(value: Bounds, members: frozenset[Any]) -> Any:
    """`x in [...]` for a range of more than one value: unknown (docs/rules-language.md,
    "Values known as a range")."""
    return None


def _ranged_window(e: Within, x: Any, d: Any, y: Any) -> Any:
    """`x within d before|after y` where some of them are ranges: met when every value is in
    the window, not met when none is. An anchor known to the day or to a few hundred days is
    tried day by day, so each end of the window moves with it."""
    if isinstance(d, Bounds):
        if not isinstance(y, Bounds):
            return _window_ends(e, x, d, y)
        return None
    if isinstance(y, Bounds):
        anchors = bounds.days(y)
        if anchors is None:
            return None
        answers = {_window_ends(e, x, d, one) for one in anchors}
        return answers.pop() if len(answers) == 1 else None
    return _window_ends(e, x, d, y)


def _window_ends(e: Within, x: Any, d: Any, y: Decimal) -> Any:
    calendar = isinstance(e.duration, Duration) and e.duration.calendar
    if calendar:
        if isinstance(d, Bounds):
            return None
        whole = y.to_integral_value(rounding=decimal.ROUND_FLOOR)
        moved = add_months(dt.date.fromordinal(int(whole)), int(d) if e.after else -int(d))
        other: Any = Decimal(moved.toordinal()) + (y - whole)
    else:
        other = bounds.add(y, d) if e.after else bounds.subtract(y, d)
        other = bounds.settle(other)
    low, high = (y, other) if e.after else (other, y)
    inside_low = compare("<=", low, x)
    inside_high = compare("<=", x, high)
    if inside_low is False or inside_high is False:
        return False
    if inside_low is True and inside_high is True:
        return True
    return None


def _numeric(value: Any, apply: Any) -> Any:
    if value is None or value is NEVER or isinstance(value, Failure):
        return value
    return apply(value)


def compare(op: str, left: Any, right: Any) -> Any:
    """Kleene comparison: unknown with an unknown side, not met with `never`."""
    blocked = _blocked_pair(left, right)
    if blocked is not _CLEAR:
        return False if blocked is NEVER else blocked
    if isinstance(left, Bounds) or isinstance(right, Bounds):
        return bounds.compare(op, left, right)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _range_truth(op: str, count: Range, right: Any) -> Any:
    blocked = _blocked(right)
    if blocked is not _CLEAR:
        return False if blocked is NEVER else blocked
    if isinstance(right, Bounds):
        return bounds.compare(op, Bounds(Decimal(count.low), Decimal(count.high)), right)
    low, high = compare(op, Decimal(count.low), right), compare(op, Decimal(count.high), right)
    if op in ("==", "!="):
        inside = count.low <= right <= count.high
        if not inside:
            return op == "!="
        return (op == "==") if count.low == count.high else None
    return low if low == high else None


def _whole(start: dt.date, end: dt.date, unit_months: int) -> int:
    """Whole calendar units (months, or years as 12 months) from start to end; the
    anniversary counts; negative when end is before start (CQL `years between`)."""
    if end < start:
        return -_whole(end, start, unit_months)
    months = (end.year - start.year) * 12 + end.month - start.month
    count = months // unit_months
    if add_months(start, count * unit_months) > end:
        count -= 1
    return count


def _reason(exc: Exception) -> str:
    if isinstance(exc, decimal.DivisionByZero) or isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, decimal.Overflow) or isinstance(exc, OverflowError):
        return "the value is too large (overflow)"
    if isinstance(exc, decimal.InvalidOperation):
        return "the value is not a number (e.g. a power of a negative number)"
    return str(exc) or type(exc).__name__


@functools.lru_cache(maxsize=256)
def _members(values: tuple[Any, ...]) -> frozenset[Any]:
    """The literals of an `in` list as a set, built once per list (lists can be long)."""
    return frozenset(_literal(v) for v in values)
