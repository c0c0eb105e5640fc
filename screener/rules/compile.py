"""Compile a Trial into a durable-rules ruleset definition (plain JSON data).

Each criterion becomes three rules, one per Kleene outcome, whose conditions partition every
possible snapshot: exactly one of `met`, `not_met`, `unknown` fires. For an unknown criterion,
one `missing` rule per absent fact fires when answering that fact could move the criterion.
Each derivation becomes one rule that fires when its inputs are present.

Conditions read one fact only (the candidate's snapshot) and always test its kind field:
cross-fact comparisons and kind-less conditions are durable-rules traps (see engine.py).
Values are encoded so the engine compares like with like: decimals as scaled integers,
dates as day numbers, never floats or mixed types.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

from decimal import Decimal

from screener.model import (
    And, Compare, Const, Criterion, Expr, FactSpec, In, IsSpecial, Not, Or, Ref, Special, Trial,
)
from screener.rules.terms import NEVER_PREFIX, ONGOING_DAY, Term, lower, needs

KIND = "t"  # the kind field every fact carries
SNAPSHOT = "facts"
OPEN = "open"
FIELD_PREFIX = "f_"
DONE_PREFIX = "d_"
PART_PREFIX = "p_"

PRI_OPEN = 0
PRI_DERIVE = 1
PRI_SEAL = 2
PRI_PART = 3
PRI_SEAL_PARTS = 4
PRI_CRITERION = 5
PRI_MISSING = 6

# A condition is a durable-rules JSON expression, or one of two constants.
Cond = Union[dict[str, Any], bool, tuple[str, list[Any]]]

_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_OPS = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def field(fact: str) -> str:
    return FIELD_PREFIX + fact


def encode(spec: FactSpec, value: Any) -> Any:
    """The engine's form of a typed value (scaled integer, day number, bool or text).

    Quantities are integers scaled by their places; `ongoing` is a day after every date;
    a list is its number of items (its items are read by term actions, not by conditions);
    `never` is written as a marker field by the engine, not as a value."""
    if spec.type == "decimal":
        return int(round(float(value) * 10**spec.places))
    if spec.type == "date":
        if value is Special.ONGOING:
            return ONGOING_DAY
        if value is Special.NEVER:
            return None
        assert isinstance(value, dt.date)
        return value.toordinal()
    if spec.type == "integer":
        return int(value)
    if spec.type == "quantity":
        return int(Decimal(value).scaleb(spec.places).to_integral_value())
    if spec.type == "list":
        return len(value)
    return value


def decode(spec: FactSpec, value: Any) -> Any:
    """Inverse of `encode`."""
    if spec.type == "decimal":
        return value / 10**spec.places
    if spec.type == "date":
        return dt.date.fromordinal(value)
    return value


def _all(parts: Sequence[Cond]) -> Cond:
    kept: list[Any] = []
    for part in parts:
        if part is False:
            return False
        if part is not True:
            kept.extend(part[1] if isinstance(part, tuple) and part[0] == "and" else [part])
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else ("and", kept)


def _any(parts: Sequence[Cond]) -> Cond:
    kept: list[Any] = []
    for part in parts:
        if part is True:
            return True
        if part is not False:
            kept.extend(part[1] if isinstance(part, tuple) and part[0] == "or" else [part])
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else ("or", kept)


MAX_CLAUSES = 512


class TooComplex(Exception):
    """A condition's normal form is too large for the engine."""


def _key(leaf: dict[str, Any]) -> str:
    return json.dumps(leaf, sort_keys=True)


def to_cnf(cond: Cond) -> list[list[dict[str, Any]]] | bool:
    """Conjunctive normal form: a list of clauses, each a list of leaves (OR), all ANDed.

    durable-rules refuses conditions that nest and/or deeply (error 113), but takes an AND
    of flat ORs; so every rule is emitted in this shape. Duplicate leaves, duplicate clauses
    and clauses subsumed by smaller ones are dropped. Returns True/False for constants.
    """
    def walk(c: Cond) -> list[frozenset[str]]:
        if c is True:
            return []
        if c is False:
            return [frozenset()]
        if isinstance(c, dict):
            leaves[_key(c)] = c
            return [frozenset([_key(c)])]
        op, parts = c
        if op == "and":
            return [clause for part in parts for clause in walk(part)]
        clauses: list[frozenset[str]] = [frozenset()]
        for part in parts:
            clauses = [a | b for a in clauses for b in walk(part)]
            if len(clauses) > MAX_CLAUSES:
                raise TooComplex(f"more than {MAX_CLAUSES} clauses")
        return clauses

    leaves: dict[str, dict[str, Any]] = {}
    unique = sorted(set(walk(cond)), key=lambda c: (len(c), sorted(c)))
    kept: list[frozenset[str]] = []
    for clause in unique:
        if not clause:
            return False
        if not any(smaller <= clause for smaller in kept):
            kept.append(clause)
    if not kept:
        return True
    order = list(leaves)
    return [[leaves[k] for k in sorted(clause, key=order.index)] for clause in kept]


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


def _walk(e: Any, parts: list[Part], facts: list[str]) -> None:
    """Collect the Parts inside `e` (innermost first) and the facts it reads."""
    if isinstance(e, Part):
        _walk(e.expr, parts, facts)
        parts.append(e)
    elif isinstance(e, (Compare, In)):
        if e.fact not in facts:
            facts.append(e.fact)
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


def _scaled(name: str, op: str, scaled: Decimal) -> Cond:
    """`field op scaled` for an integer field, when `scaled` may have a fraction."""
    whole = scaled.to_integral_value()
    if scaled == whole:
        value = int(whole)
        return {name: value} if op == "==" else {_OPS[op]: {name: value}}
    import math

    if op == "==":
        return False
    if op == "!=":
        return {"$ex": {name: 1}}
    floor, ceil = math.floor(scaled), math.ceil(scaled)
    # between two integers: > x is >= ceil, < x is <= floor
    return {">": {"$gte": {name: ceil}}, ">=": {"$gte": {name: ceil}},
            "<": {"$lte": {name: floor}}, "<=": {"$lte": {name: floor}}}[op]


class _Kleene:
    """Three-valued truth conditions of expressions over one trial's encoded facts.

    In durable-rules every comparison with an absent field is false (`$neq` included), so a
    comparison needs no separate presence test.
    """

    def __init__(self, trial: Trial):
        self.facts = trial.facts
        self.never = frozenset(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)

    def _cmp(self, fact: str, op: str, value: Any) -> Cond:
        name = field(fact)
        spec = self.facts[fact]
        if spec.type == "quantity":
            return _scaled(name, op, Decimal(value).scaleb(spec.places))
        encoded = encode(spec, value)
        if op == "==":
            return {name: encoded}
        return {_OPS[op]: {name: encoded}}

    def present(self, fact: str) -> Cond:
        if fact in self.never:
            return _any([{"$ex": {field(fact): 1}}, {"$ex": {NEVER_PREFIX + fact: 1}}])
        return {"$ex": {field(fact): 1}}

    def absent(self, fact: str) -> Cond:
        if fact in self.never:
            return _all([{"$nex": {field(fact): 1}}, {"$nex": {NEVER_PREFIX + fact: 1}}])
        return {"$nex": {field(fact): 1}}

    def _is_never(self, fact: str) -> Cond:
        return {NEVER_PREFIX + fact: 1} if fact in self.never else False

    def _special(self, e: IsSpecial, want: bool) -> Cond:
        fact = e.operand.fact
        if e.word is Special.NEVER:
            hit: Cond = self._is_never(fact)
            miss: Cond = {"$ex": {field(fact): 1}}
        else:
            hit = {field(fact): ONGOING_DAY}
            miss = _any([{"$lt": {field(fact): ONGOING_DAY}}, self._is_never(fact)])
        return hit if want else miss

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
        """`fact op value` for a present fact, as equalities where the domain is finite.

        Enum and yes/no facts turn `!=` into "equals one of the others", so the negation of
        any test is a single leaf or a single flat OR: durable-rules caps condition size.
        """
        spec = self.facts[fact]
        domain: tuple[Any, ...] | None = None
        if spec.type == "enum":
            domain = spec.values
        elif spec.type == "boolean":
            domain = (True, False)
        if domain is not None and op == "!=":
            return _any([self._cmp(fact, "==", other) for other in domain if other != value])
        return self._cmp(fact, op, value)

    def _fails(self, fact: str, op: str, value: Any) -> Cond:
        """`fact op value` not met: the negated comparison, or the fact is `never`."""
        negated = self._holds(fact, _NEGATE[op], value)
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
            return _any([self._cmp(fact, "==", v) for v in chosen])
        if inside:
            return _any([self._cmp(fact, "==", v) for v in values])
        return _all([self._cmp(fact, "!=", v) for v in values])

    def true(self, e: "Expr | Part") -> Cond:
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
        if isinstance(e, Term):
            return self._term(e, "unknown")
        if isinstance(e, IsSpecial):
            return self.absent(e.operand.fact)
        if isinstance(e, Part):
            return {e.field: "unknown"}
        if isinstance(e, Const):
            return False
        if isinstance(e, (Compare, In)):
            return self.absent(e.fact)
        if isinstance(e, Not):
            return self.unknown(e.operand)
        if isinstance(e, And):
            not_false = [_any([self.true(o), self.unknown(o)]) for o in e.operands]
            return _all(not_false + [_any([self.unknown(o) for o in e.operands])])
        assert isinstance(e, Or)
        not_true = [_any([self.false(o), self.unknown(o)]) for o in e.operands]
        return _all(not_true + [_any([self.unknown(o) for o in e.operands])])

    def outcomes(self, e: "Expr | Part") -> list[tuple[str, Cond]]:
        """(outcome, condition) for met, not_met and unknown, leaving out the impossible."""
        candidates = (("met", self.true(e)), ("not_met", self.false(e)), ("unknown", self.unknown(e)))
        return [(outcome, cond) for outcome, cond in candidates if to_cnf(cond) is not False]

    def relevant(self, e: "Expr | Part", fact: str) -> Cond:
        """True when `fact` is absent and answering it could move `e` out of unknown."""
        if isinstance(e, Term):
            if fact not in e.inputs:
                return False
            if self.facts[fact].type != "list":
                return _all([self.unknown(e), self.absent(fact)])
            # a list is also missing when it is given but items it needs are unknown
            others = [self.present(name) for name in e.inputs if name != fact]
            return _all([self.unknown(e), _any([self.absent(fact), _all(others)])])
        if isinstance(e, IsSpecial):
            return self.absent(fact) if e.operand.fact == fact else False
        if isinstance(e, Part):
            return _all([self.unknown(e), self.relevant(e.expr, fact)])
        if isinstance(e, Const):
            return False
        if isinstance(e, (Compare, In)):
            return self.absent(fact) if e.fact == fact else False
        if isinstance(e, Not):
            return self.relevant(e.operand, fact)
        assert isinstance(e, (And, Or))
        return _all([self.unknown(e), _any([self.relevant(o, fact) for o in e.operands])])


def _rule(kind_value: str, cond: Cond, pri: int) -> dict[str, Any]:
    cnf = to_cnf(cond)
    assert cnf is not False
    parts: list[dict[str, Any]] = [{KIND: kind_value}]
    for clause in [] if cnf is True else cnf:
        parts.append(clause[0] if len(clause) == 1 else {"$or": clause})
    return {"all": [{"m": parts[0] if len(parts) == 1 else {"$and": parts}}], "pri": pri}


def missing_conditions(trial: Trial, criterion: Criterion, condition: Any,
                       kleene: _Kleene) -> list[tuple[str, Cond]]:
    """(fact, condition) pairs: when each absent input fact could move the criterion."""
    out: list[tuple[str, Cond]] = []
    by_fact: dict[str, Cond] = {f: kleene.relevant(condition, f) for f in criterion.facts}
    pending = list(criterion.facts)
    while pending:
        fact = pending.pop(0)
        cond = by_fact[fact]
        if to_cnf(cond) is False:
            continue
        out.append((fact, cond))
        spec = trial.facts[fact]
        if spec.derived_by is not None:
            derivation = next(d for d in trial.derivations if d.id == spec.derived_by)
            for name in derivation.inputs:
                if name not in by_fact:
                    by_fact[name] = _all([cond, kleene.absent(name)])
                    pending.append(name)
    return out


def _criterion_rules(trial: Trial, criterion: Criterion, condition: Any,
                     kleene: _Kleene) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for part in parts_of(condition):
        # a part is decided once per snapshot, after the parts inside it
        ready = [kleene.absent_field(part.field)] + [
            {"$ex": {inner.field: 1}} for inner in parts_of(part.expr)]
        for outcome, cond in kleene.outcomes(part.expr):
            rules[f"{part.name}.{outcome}"] = _rule(SNAPSHOT, _all(ready + [cond]), PRI_PART)
    for outcome, cond in kleene.outcomes(condition):
        rules[f"{criterion.id}.{outcome}"] = _rule(SNAPSHOT, cond, PRI_CRITERION)
    if criterion.ask:
        for fact, cond in missing_conditions(trial, criterion, condition, kleene):
            rules[f"{criterion.id}.missing.{fact}"] = _rule(SNAPSHOT, cond, PRI_MISSING)
    return rules


def lower_criteria(trial: Trial) -> tuple[dict[str, Any], dict[str, Term]]:
    """Each criterion's condition with its hidden terms in place, and the terms by name
    (equal expressions share one term, e.g. a definition used by two criteria)."""
    by_expr: dict[Any, Term] = {}
    never = frozenset(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)
    lowered = {c.id: lower(c.condition, by_expr, never) for c in trial.criteria}
    return lowered, {term.name: term for term in by_expr.values()}


def compile_trial(trial: Trial, accepts: Callable[[str, dict[str, Any]], bool] | None = None
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, Part]]:
    """Return the ruleset definition (rule name -> durable-rules rule) and the parts used.

    Rule names: `open`, `derive.<id>`, `seal`, `<criterion>.<outcome>`,
    `<criterion>.missing.<fact>`, and for conditions split into parts `<criterion>.partN.<outcome>`
    and `seal.parts`. `accepts(name, rule)` tells whether the engine takes a rule; a criterion
    with a refused rule is split into ever smaller parts until every rule is taken (the
    refused rules stay in, so the engine names them, when no split helps).
    The order is stable (trial order), so firing order is deterministic.
    """
    kleene = _Kleene(trial)
    rules: dict[str, dict[str, Any]] = {"open": _rule(OPEN, True, PRI_OPEN)}
    for derivation in trial.derivations:
        not_done = {"$nex": {DONE_PREFIX + derivation.id: 1}}
        alternatives = needs(derivation.formula, kleene.never) if derivation.formula is not None \
            else (derivation.inputs,)
        for index, need in enumerate(alternatives):
            inputs = [kleene.present(name) for name in need]
            suffix = f".{index}" if index else ""
            rules[f"derive.{derivation.id}{suffix}"] = _rule(SNAPSHOT, _all(inputs + [not_done]), PRI_DERIVE)
    lowered, terms = lower_criteria(trial)
    for term in terms.values():
        # a term is computed by the action of this rule, once its inputs are present
        for index, need in enumerate(term.needs):
            inputs = [kleene.present(name) for name in need]
            suffix = f".{index}" if index else ""
            rules[f"term.{term.name}{suffix}"] = _rule(
                SNAPSHOT, _all(inputs + [{"$nex": {term.done: 1}}]), PRI_DERIVE)
    if trial.derivations or terms:
        # After the derivations that a snapshot triggered, one action replaces the snapshot
        # with the derived values added; the criteria then fire on the new snapshot only.
        rules["seal"] = _rule(SNAPSHOT, True, PRI_SEAL)
    parts: dict[str, Part] = {}
    for criterion in trial.criteria:
        condition: Any = lowered[criterion.id]
        own = _criterion_rules(trial, criterion, condition, kleene)
        for width in (8, 6, 4, 3, 2):
            if accepts is None or all(accepts(name, rule) for name, rule in own.items()):
                break
            condition = split(lowered[criterion.id], criterion.id, width)
            own = _criterion_rules(trial, criterion, condition, kleene)
        parts.update({p.name: p for p in parts_of(condition)})
        rules.update(own)
    if parts:
        # After the parts, the snapshot is replaced once more with their outcomes added.
        rules["seal.parts"] = _rule(SNAPSHOT, True, PRI_SEAL_PARTS)
    return rules, parts
