"""Step four: three-valued (Kleene) truth conditions of expressions over a trial's encoded facts."""
from __future__ import annotations

from typing import Any

from screener.model import (
    Aggregate, And, Call, Cmp, Compare, Const, Expr, In, IsSpecial, Not, Or, Pending, Special, Trial, children,
    expr_facts,
)
from screener.rules.compile.encode import Cond, _NEGATE, _OPS, _exact, encode, engine_places, field
from screener.rules.compile.normal import MAX_OR_WIDTH, _all, _any, to_cnf
from screener.rules.compile.parts import Part, _native, _scaled
from screener.rules.ranged import high_field, low_field, ranged_facts
from screener.rules.terms import NEVER_PREFIX, ONGOING_DAY, Term


class _Kleene:
    """Three-valued truth conditions of expressions over one trial's encoded facts.

    In durable-rules every comparison with an absent field is false (`$neq` included), so a
    comparison needs no separate presence test.
    """

    def __init__(self, trial: Trial):
        self.facts = trial.facts
        self.places = engine_places(trial)
        self.never = frozenset(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)
        self.ranged = ranged_facts(trial)
        self._sticky_seen: dict[int, tuple[Any, bool]] = {}

    def _cmp(self, fact: str, op: str, value: Any, name: str | None = None) -> Cond:
        name = name or field(fact)
        spec = self.facts[fact]
        if spec.type in ("decimal", "quantity"):
            return _scaled(name, op, _exact(value).scaleb(self.places[fact]))
        encoded = encode(spec, value)
        if op == "==":
            return {name: encoded}
        return {_OPS[op]: {name: encoded}}

    def present(self, fact: str) -> Cond:
        """The fact is given: one value, a range, or `never`."""
        if fact in self.ranged:
            known: Cond = {"$ex": {low_field(fact): 1}}
            return _any([known, {"$ex": {NEVER_PREFIX + fact: 1}}]) if fact in self.never else known
        if fact in self.never:
            return _any([{"$ex": {field(fact): 1}}, {"$ex": {NEVER_PREFIX + fact: 1}}])
        return {"$ex": {field(fact): 1}}

    def unread(self, fact: str) -> Cond:
        """The fact is not given at all (neither one value, a range nor `never`)."""
        if fact in self.ranged:
            none: Cond = {"$nex": {low_field(fact): 1}}
            return _all([none, {"$nex": {NEVER_PREFIX + fact: 1}}]) if fact in self.never else none
        return self.absent(fact)

    def _ranged(self, fact: str, op: str, value: Any) -> tuple[Cond, Cond, Cond]:
        """`fact op value` for a fact that may be a range, read at the range's ends (see
        screener.rules.ranged): (met, not met, neither) for a fact that is given and not
        `never`. For one value both ends are that value, so `neither` cannot hold."""
        low, high = low_field(fact), high_field(fact)

        def at(name: str, test: str) -> Cond:
            return self._cmp(fact, test, value, name)
        if op in (">=", ">"):
            return at(low, op), at(high, _NEGATE[op]), _all([at(low, _NEGATE[op]), at(high, op)])
        if op in ("<=", "<"):
            return at(high, op), at(low, _NEGATE[op]), _all([at(high, _NEGATE[op]), at(low, op)])
        equal = _all([at(low, "=="), at(high, "==")])
        apart = _any([at(high, "<"), at(low, ">")])
        around = _all([at(low, "<="), at(high, ">="), _any([at(low, "<"), at(high, ">")])])
        return (equal, apart, around) if op == "==" else (apart, equal, around)

    def absent(self, fact: str) -> Cond:
        """The fact's one value is not known: not given, or given only as a range."""
        if fact in self.ranged:
            # a range has its least end below its greatest (two fields of one fact compared:
            # safe in durable-rules, unlike a comparison across facts)
            low = low_field(fact)
            open_: Cond = _any([{"$nex": {low: 1}}, {"$lt": {low: {"$m": high_field(fact)}}}])
            return _all([open_, {"$nex": {NEVER_PREFIX + fact: 1}}]) if fact in self.never else open_
        if fact in self.never:
            return _all([{"$nex": {field(fact): 1}}, {"$nex": {NEVER_PREFIX + fact: 1}}])
        return {"$nex": {field(fact): 1}}

    def _is_never(self, fact: str) -> Cond:
        return {NEVER_PREFIX + fact: 1} if fact in self.never else False

    def _special(self, e: IsSpecial, want: bool) -> Cond:
        fact = e.operand.fact
        # a range of days is a date: neither word
        value = low_field(fact) if fact in self.ranged else field(fact)
        if e.word is Special.NEVER:
            hit: Cond = self._is_never(fact)
            miss: Cond = {"$ex": {value: 1}}
        else:
            hit = {value: ONGOING_DAY}
            miss = _any([{"$lt": {value: ONGOING_DAY}}, self._is_never(fact)])
        return hit if want else miss

    def _matters(self, e: Any, fact: str) -> Cond:
        """When `fact` can change the value of `e`: always, except in a branch of an `if`
        whose test (decided by the engine) already chose the other branch."""
        if isinstance(e, Call) and e.name == "if":
            test, then, other = e.args
            decided = _native(test)
            parts: list[Cond] = []
            if fact in expr_facts(test):
                parts.append(True)
            if fact in expr_facts(then):
                parts.append(_all([_any([self.true(test), self.unknown(test)]) if decided else True,
                                   self._matters(then, fact)]))
            if fact in expr_facts(other):
                parts.append(_all([_any([self.false(test), self.unknown(test)]) if decided else True,
                                   self._matters(other, fact)]))
            return _any(parts)
        if isinstance(e, Aggregate) and e.fact == fact:
            return True
        inside = [c for c in children(e) if fact in expr_facts(c)]
        return _any([self._matters(c, fact) for c in inside]) if inside else True

    def _term(self, t: Term, outcome: str) -> Cond:
        """The conditions on a term's fields (see screener.rules.terms)."""
        if not t.ranged:
            if outcome == "met":
                return {t.field: 0} if t.op == "==" else {_OPS[t.op]: {t.field: 0}}
            if outcome == "not_met":
                negated = _NEGATE[t.op]
                test = {t.field: 0} if negated == "==" else {_OPS[negated]: {t.field: 0}}
                return _any([test, {t.never_field: 1}]) if t.can_be_never else test
            if not t.can_be_never:
                return {"$nex": {t.field: 1}}
            return _all([{"$nex": {t.field: 1}}, {"$nex": {t.never_field: 1}}])
        lo, hi = t.low, t.high

        def c(name: str, op: str) -> dict[str, Any]:
            return {name: 0} if op == "==" else {_OPS[op]: {name: 0}}

        both_zero = _all([c(lo, "=="), c(hi, "==")])
        off_zero = _any([c(lo, ">"), c(hi, "<")])
        straddle = _all([c(lo, "<="), c(hi, ">="), _any([c(lo, "<"), c(hi, ">")])])
        table: dict[str, tuple[Cond, Cond, Cond]] = {
            ">=": (c(lo, ">="), c(hi, "<"), _all([c(lo, "<"), c(hi, ">=")])),
            ">": (c(lo, ">"), c(hi, "<="), _all([c(lo, "<="), c(hi, ">")])),
            "<=": (c(hi, "<="), c(lo, ">"), _all([c(hi, ">"), c(lo, "<=")])),
            "<": (c(hi, "<"), c(lo, ">="), _all([c(hi, ">="), c(lo, "<")])),
            "==": (both_zero, off_zero, straddle),
            "!=": (off_zero, both_zero, straddle),
        }
        met, not_met, unsure = table[t.op]
        if outcome == "met":
            return met
        if outcome == "not_met":
            return not_met
        return _any([{"$nex": {lo: 1}}, unsure])

    def absent_field(self, name: str) -> dict[str, Any]:
        return {"$nex": {name: 1}}

    def _holds(self, fact: str, op: str, value: Any) -> Cond:
        """`fact op value` for a present fact, as equalities where the domain is finite; for
        a fact that may be a range, met by every value of it.

        Enum and yes/no facts turn `!=` into "equals one of the others", so the negation of
        any test is a single leaf or a single flat OR: durable-rules caps condition size.
        """
        if fact in self.ranged:
            return self._ranged(fact, op, value)[0]
        spec = self.facts[fact]
        domain: tuple[Any, ...] | None = None
        if spec.type == "enum":
            domain = spec.values
        elif spec.type == "boolean":
            domain = (True, False)
        if domain is not None and op == "!=" and len(domain) <= MAX_OR_WIDTH + 1:
            return _any([self._cmp(fact, "==", other) for other in domain if other != value])
        return self._cmp(fact, op, value)

    def _fails(self, fact: str, op: str, value: Any) -> Cond:
        """`fact op value` not met: the negated comparison (by every value of a range), or
        the fact is `never`."""
        negated = self._ranged(fact, op, value)[1] if fact in self.ranged \
            else self._holds(fact, _NEGATE[op], value)
        return _any([negated, self._is_never(fact)]) if fact in self.never else negated

    def _in(self, fact: str, values: tuple[Any, ...], inside: bool) -> Cond:
        spec = self.facts[fact]
        if not inside and fact in self.never:
            return _any([self._in_plain(fact, values, False), self._is_never(fact)])
        return self._in_plain(fact, values, inside)

    def _in_plain(self, fact: str, values: tuple[Any, ...], inside: bool) -> Cond:
        spec = self.facts[fact]
        if spec.type in ("enum", "boolean"):
            domain = spec.values if spec.type == "enum" else (True, False)
            chosen = [v for v in domain if (v in values) == inside]
            if inside or len(chosen) <= MAX_OR_WIDTH:
                return _any([self._cmp(fact, "==", v) for v in chosen])
            return _all([self._cmp(fact, "!=", v) for v in values])  # narrower than the rest
        if inside:
            return _any([self._cmp(fact, "==", v) for v in values])
        return _all([self._cmp(fact, "!=", v) for v in values])

    def true(self, e: "Expr | Part") -> Cond:
        if isinstance(e, Pending):
            return False  # unknown until what it names is done
        if isinstance(e, Term):
            return self._term(e, "met")
        if isinstance(e, IsSpecial):
            return self._special(e, True)
        if isinstance(e, Part):
            return {e.field: "met"}
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Compare):
            return self._holds(e.fact, e.op, e.value)
        if isinstance(e, In):
            return self._in(e.fact, e.values, True)
        if isinstance(e, Not):
            return self.false(e.operand)
        if isinstance(e, And):
            return _all([self.true(o) for o in e.operands])
        assert isinstance(e, Or)
        return _any([self.true(o) for o in e.operands])

    def false(self, e: "Expr | Part") -> Cond:
        if isinstance(e, Pending):
            return False  # unknown until what it names is done
        if isinstance(e, Term):
            return self._term(e, "not_met")
        if isinstance(e, IsSpecial):
            return self._special(e, False)
        if isinstance(e, Part):
            return {e.field: "not_met"}
        if isinstance(e, Const):
            return not e.value
        if isinstance(e, Compare):
            return self._fails(e.fact, e.op, e.value)
        if isinstance(e, In):
            return self._in(e.fact, e.values, False)
        if isinstance(e, Not):
            return self.true(e.operand)
        if isinstance(e, And):
            return _any([self.false(o) for o in e.operands])
        assert isinstance(e, Or)
        return _all([self.false(o) for o in e.operands])

    def unknown(self, e: "Expr | Part") -> Cond:
        if isinstance(e, Pending):
            return True  # unknown until what it names is done
        if isinstance(e, Term):
            return self._term(e, "unknown")
        if isinstance(e, IsSpecial):
            return self.unread(e.operand.fact)
        if isinstance(e, Part):
            return {e.field: "unknown"}
        if isinstance(e, Const):
            return False
        if isinstance(e, Compare) and e.fact in self.ranged:
            # not given, or a range with values on both sides of the literal
            neither = self._ranged(e.fact, e.op, e.value)[2]
            inside = _any([{"$nex": {low_field(e.fact): 1}}, neither])
            return _all([inside, {"$nex": {NEVER_PREFIX + e.fact: 1}}]) if e.fact in self.never else inside
        if isinstance(e, (Compare, In)):
            return self.absent(e.fact)
        if isinstance(e, Not):
            return self.unknown(e.operand)
        # with every operand not false (true), an operand not true (false) is unknown: for a
        # comparison of a range that is one test, where its `unknown` takes two
        if isinstance(e, And):
            not_false = [self._short(o, False) or _any([self.true(o), self.unknown(o)]) for o in e.operands]
            return _all(not_false + [_any([self._short(o, True) or self.unknown(o) for o in e.operands])])
        assert isinstance(e, Or)
        not_true = [self._short(o, True) or _any([self.false(o), self.unknown(o)]) for o in e.operands]
        return _all(not_true + [_any([self._short(o, False) or self.unknown(o) for o in e.operands])])

    def _short(self, e: Any, met: bool) -> Cond | None:
        """For a comparison of a fact that may be a range: the condition that it is not met
        (`met`) or not not-met, as one alternative of tests; None for anything else."""
        if not isinstance(e, Compare) or e.fact not in self.ranged:
            return None
        fact, op = e.fact, e.op
        low, high = low_field(fact), high_field(fact)
        none: Cond = {"$nex": {low: 1}}

        def at(name: str, test: str) -> Cond:
            return self._cmp(fact, test, e.value, name)
        if op in ("==", "!="):
            equal = op == "=="
            if met == equal:  # not (both ends equal)
                return _any([none, at(low, "!="), at(high, "!=")])
            # not (apart): the range reaches the literal
            reach = _all([_any([none, at(high, ">=")]), _any([none, at(low, "<=")])])
        else:
            upward = op in (">=", ">")
            if met:  # the end that must meet it does not
                return _any([none, at(low if upward else high, _NEGATE[op])])
            reach = _any([none, at(high if upward else low, op)])
        return _all([reach, {"$nex": {NEVER_PREFIX + fact: 1}}]) if fact in self.never else reach

    def outcomes(self, e: "Expr | Part") -> list[tuple[str, Cond]]:
        """(outcome, condition) for met, not_met and unknown, leaving out the impossible."""
        candidates = (("met", self.true(e)), ("not_met", self.false(e)), ("unknown", self.unknown(e)))
        return [(outcome, cond) for outcome, cond in candidates if to_cnf(cond) is not False]

    def relevant(self, e: "Expr | Part", fact: str) -> Cond:
        """True when `fact` is absent and answering it could move `e` out of unknown.

        Each other unknown part of `e` is taken to be able to go either way, which is exact
        when every fact is read once, except for a part that no answer can move: a
        comparison of the latest (least, greatest) value of a list given empty. Where `e`
        holds such a comparison, the way `fact` moves each part is followed (`_towards`)."""
        if self._sticky(e) and not isinstance(e, Term):
            return _any([self._towards(e, fact, True), self._towards(e, fact, False)])
        if isinstance(e, Term):
            if fact not in e.inputs:
                return False
            return _all([self.unknown(e), self.absent(fact), self._matters(e.expr, fact)])
        if isinstance(e, IsSpecial):
            return self.unread(fact) if e.operand.fact == fact else False
        if isinstance(e, Pending):
            return fact in e.facts  # to collect again, given or not
        if isinstance(e, Part):
            return _all([self.unknown(e), self.relevant(e.expr, fact)])
        if isinstance(e, Const):
            return False
        if isinstance(e, Compare) and e.fact == fact and fact in self.ranged:
            return _all([self.unknown(e), self.absent(fact)])  # the exact value would settle it
        if isinstance(e, (Compare, In)):
            return self.absent(fact) if e.fact == fact else False
        if isinstance(e, Not):
            return self.relevant(e.operand, fact)
        assert isinstance(e, (And, Or))
        return _all([self.unknown(e), _any([self.relevant(o, fact) for o in e.operands])])


    # --- parts no answer can move -----------------------------------------------------------

    def _sticky(self, e: Any) -> bool:
        """Whether `e` holds a term that may be stuck (`_stuck`); Parts are not looked into."""
        seen = self._sticky_seen.get(id(e))
        if seen is not None and seen[0] is e:
            return seen[1]
        if isinstance(e, Term):
            found = _stuck_list(e) is not None and not e.can_be_never
        elif isinstance(e, (Not, And, Or)):
            found = any(self._sticky(o) for o in ((e.operand,) if isinstance(e, Not) else e.operands))
        else:
            found = False
        self._sticky_seen[id(e)] = (e, found)
        return found

    def _movable(self, t: Term, want: bool) -> Cond:
        """The sticky term `t` is not stuck, its list not given empty, and completing the
        list's items can still make it `want`: it was not found to go only the other way
        (the latest of readings all above the limit, their dates unknown)."""
        name = field(_stuck_list(t) or "")
        return _all([_any([{"$nex": {name: 1}}, {"$gt": {name: 0}}]),
                     _any([{"$nex": {t.one_way: 1}}, {t.one_way: 1 if want else -1}])])

    def _can(self, e: Any, want: bool) -> Cond:
        """`e` is unknown and some answers to the absent facts make it `want`."""
        if not self._sticky(e):
            return self.unknown(e)
        if isinstance(e, Term):
            return _all([self.unknown(e), self._movable(e, want)])
        if isinstance(e, Not):
            return self._can(e.operand, not want)
        assert isinstance(e, (And, Or))
        if isinstance(e, Or) == want:  # one operand reaching `want` is enough
            return _all([self.unknown(e), _any([self._can(o, want) for o in e.operands])])
        reach = self.true if want else self.false
        return _all([self.unknown(e)] + [_any([reach(o), self._can(o, want)]) for o in e.operands])

    def _towards(self, e: Any, fact: str, want: bool) -> Cond:
        """`fact` is absent and answering it (and the other absent facts) can make `e` `want`."""
        if not self._sticky(e):
            return self.relevant(e, fact)
        if isinstance(e, Term):
            return _all([self.relevant(e, fact), self._movable(e, want)])
        if isinstance(e, Not):
            return self._towards(e.operand, fact, not want)
        assert isinstance(e, (And, Or))
        if isinstance(e, Or) == want:
            return _all([self.unknown(e), _any([self._towards(o, fact, want) for o in e.operands])])
        reach = self.true if want else self.false
        ways = []
        for i, o in enumerate(e.operands):
            others = [_any([reach(p), self._can(p, want)]) for j, p in enumerate(e.operands) if j != i]
            ways.append(_all([self._towards(o, fact, want)] + others))
        return _all([self.unknown(e), _any(ways)])


_STICKY = ("latest", "min_of", "max_of")


def _stuck_list(t: Term) -> str | None:
    """The list of a term that compares its latest (least, greatest) value with something: a
    list given empty leaves that value unknown whatever else is answered, so the term is
    stuck. None for any other term."""
    if isinstance(t.expr, Cmp) and not t.ranged:
        for side in (t.expr.left, t.expr.right):
            if isinstance(side, Aggregate) and side.name in _STICKY:
                return side.fact
    return None
