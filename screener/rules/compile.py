"""Compile a Trial into a durable-rules ruleset definition (plain JSON data).

Each criterion becomes three rules, one per Kleene outcome, whose conditions partition every
possible snapshot: exactly one of `met`, `not_met`, `unknown` fires. For an unknown criterion,
one `missing` rule per absent fact fires when answering that fact could move the criterion.
Each derivation becomes one rule that fires when its inputs are present.

Conditions read one fact only (the candidate's snapshot) and always test its kind field:
cross-fact comparisons and kind-less conditions are durable-rules traps (see engine.py).
Values are encoded so the engine compares like with like: decimals and quantities as exact
half-step integers (see `encode`), dates as day numbers, never floats or mixed types.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

from decimal import Decimal

from screener.errors import RuleProblem, RulesError
from screener.model import (
    Aggregate, And, Call, Cmp, Compare, Const, Criterion, Expr, FactSpec, In, IsSpecial, Not, Or, Pending, Ref,
    Special, Trial, children, expr_facts,
)
from screener.rules.terms import NEVER_PREFIX, ONGOING_DAY, Term, lower, needs, settling_alone

KIND = "t"  # the kind field every fact carries
SNAPSHOT = "facts"
OPEN = "open"
FIELD_PREFIX = "f_"
DONE_PREFIX = "d_"
PART_PREFIX = "p_"
SEALED = "s_"  # marks a snapshot that has been through the seal (see compile_rulesets)

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


def _exact(value: Any) -> Decimal:
    """A decimal fact's value as the Decimal it was read from (floats hold at most 15
    significant digits of a decimal fact, so their shortest text is that decimal)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float)
                                                            else str(value))


def _half_steps(value: Decimal, places: int) -> int:
    scaled = value.scaleb(places)
    whole = int(scaled.to_integral_value(rounding="ROUND_FLOOR"))
    return 2 * whole + (0 if scaled == whole else 1)


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


# What durable-rules 2.0.28 takes, from its C core (src/rules/rete.c, rules.h, events.c).
# Every rule and every ruleset the compiler emits stays inside these bounds, so the engine
# neither refuses a rule nor hangs building or running it.
MAX_OR_CLAUSES = 14   # MAX_SEQUENCE_EXPRESSIONS 32: the $and takes 2 entries, each $or 2 (113)
MAX_OR_WIDTH = 24     # leaves of one $or; each is a child of the same network node
MAX_CLAUSES = 512     # clauses of a normal form before the condition is split instead
MAX_CHILDREN = 384    # NEXT_BUCKET_LENGTH 512: findAlpha loops forever on a full table
MAX_NEX = 100         # NEXT_LIST_LENGTH 128: absence tests and $or exits of one node (107)
MAX_BETAS = 200       # BETA_LIST_LENGTH 256: rules ending on one node (108)
MAX_STACK = 62        # MAX_STACK_SIZE 64: nodes pending while one fact is matched (303)
MAX_RULES = 500       # per ruleset (MAX_ACTIONS is 4096, error 106); more go to another
MAX_FIELDS = 250      # of the snapshot fact: the engine refuses a fact of 254+ properties
GROUPS = (8, 4, 2)    # rules (or groups) under one grouping node, tried in turn


class TooComplex(Exception):
    """A condition's normal form is too large for the engine."""


def _key(leaf: dict[str, Any]) -> str:
    """A text naming the test exactly (1 and True differ), cheap to build: compiling a large
    trial makes hundreds of thousands of these."""
    return repr(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                       for k, v in leaf.items()))


def _rank(clause: frozenset[str]) -> int:
    """Equality tests first, then other tests, absence tests last: rules sharing a prefix of
    equalities (a part being unknown, a fact being yes) share network nodes, and mutually
    exclusive equalities keep the engine's matching stack short."""
    if len(clause) != 1:
        return 3
    (key,) = clause
    if not key.startswith("[('$"):
        return 0
    return 2 if key.startswith("[('$nex'") else 1


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
            inner = walk(part)
            if len(clauses) * len(inner) > MAX_CLAUSES:
                raise TooComplex(f"more than {MAX_CLAUSES} clauses")
            clauses = [a | b for a in clauses for b in inner]
        if len(clauses) > MAX_CLAUSES:
            raise TooComplex(f"more than {MAX_CLAUSES} clauses")
        return clauses

    leaves: dict[str, dict[str, Any]] = {}
    unique = sorted(set(walk(cond)), key=lambda c: (len(c), _rank(c), sorted(c)))
    kept: list[frozenset[str]] = []
    singles: set[str] = set()  # leaves kept as clauses of their own
    wide: list[frozenset[str]] = []
    for clause in unique:
        if not clause:
            return False
        if len(clause) == 1:
            singles.update(clause)
            kept.append(clause)
        elif singles.isdisjoint(clause) and not any(smaller <= clause for smaller in wide):
            wide.append(clause)
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


class _Kleene:
    """Three-valued truth conditions of expressions over one trial's encoded facts.

    In durable-rules every comparison with an absent field is false (`$neq` included), so a
    comparison needs no separate presence test.
    """

    def __init__(self, trial: Trial):
        self.facts = trial.facts
        self.places = engine_places(trial)
        self.never = frozenset(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)
        self._sticky_seen: dict[int, tuple[Any, bool]] = {}

    def _cmp(self, fact: str, op: str, value: Any) -> Cond:
        name = field(fact)
        spec = self.facts[fact]
        if spec.type in ("decimal", "quantity"):
            return _scaled(name, op, _exact(value).scaleb(self.places[fact]))
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
        if domain is not None and op == "!=" and len(domain) <= MAX_OR_WIDTH + 1:
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
            return self.absent(fact) if e.operand.fact == fact else False
        if isinstance(e, Pending):
            return fact in e.facts  # to collect again, given or not
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


def _rule(kind_value: str, cond: Cond, pri: int) -> dict[str, Any]:
    """One durable-rules rule: the kind test, then the clauses of `cond` in normal form.

    Raises TooComplex when the normal form is past what the engine takes in one rule.
    """
    cnf = to_cnf(cond)
    assert cnf is not False
    clauses = [] if cnf is True else cnf
    wide = [len(c) for c in clauses if len(c) > 1]
    if len(wide) > MAX_OR_CLAUSES or max(wide, default=0) > MAX_OR_WIDTH:
        raise TooComplex("too many alternatives for one rule")
    parts: list[dict[str, Any]] = [{KIND: kind_value}]
    for clause in clauses:
        parts.append(clause[0] if len(clause) == 1 else {"$or": clause})
    return {"all": [{"m": parts[0] if len(parts) == 1 else {"$and": parts}}], "pri": pri}


def _paths(kleene: "_Kleene", e: Any, fact: str) -> list[Cond]:
    """`relevant(e, fact)` as a list of alternatives, one per place `fact` is read.

    Used for conditions cut into Parts: each alternative is a conjunction of the Parts on the
    way down being unknown, so it stays small however deep the condition is, where the
    single condition `relevant` builds would multiply out.
    """
    if isinstance(e, Part):
        inner = e.expr
        below = inner.operands if isinstance(inner, (And, Or)) else (inner,)
        return [_all([{e.field: "unknown"}, p]) for o in below for p in _paths(kleene, o, fact)]
    if isinstance(e, Not):
        return _paths(kleene, e.operand, fact)
    if isinstance(e, (And, Or)):
        unknown = kleene.unknown(e)
        return [_all([unknown, p]) for o in e.operands for p in _paths(kleene, o, fact)]
    cond = kleene.relevant(e, fact)
    return [] if cond is False else [cond]


def missing_conditions(trial: Trial, criterion: Criterion, condition: Any,
                       kleene: _Kleene) -> list[tuple[str, Cond]]:
    """(fact, condition) pairs: when each absent input fact could move the criterion.

    A fact may come with several conditions (alternatives) when the condition is cut into
    Parts; any one of them firing names the fact.
    """
    out: list[tuple[str, Cond]] = []
    cut = bool(parts_of(condition))
    by_fact: dict[str, list[Cond]] = {
        f: _paths(kleene, condition, f) if cut else [kleene.relevant(condition, f)]
        for f in criterion.facts}
    pending = list(criterion.facts)
    while pending:
        fact = pending.pop(0)
        conds = [c for c in by_fact[fact] if to_cnf(c) is not False]
        if not conds:
            continue
        out.extend((fact, cond) for cond in conds)
        spec = trial.facts[fact]
        if spec.derived_by is not None:
            derivation = next(d for d in trial.derivations if d.id == spec.derived_by)
            for name in derivation.inputs:
                if name not in by_fact:
                    by_fact[name] = [_all([cond, kleene.absent(name)]) for cond in conds]
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
        seen: dict[str, int] = {}
        for fact, cond in missing_conditions(trial, criterion, condition, kleene):
            seen[fact] = seen.get(fact, 0) + 1
            suffix = "" if seen[fact] == 1 else f".{seen[fact]}"
            rules[f"{criterion.id}.missing.{fact}{suffix}"] = _rule(SNAPSHOT, cond, PRI_MISSING)
    return rules


def lower_criteria(trial: Trial) -> tuple[dict[str, Any], dict[str, Term]]:
    """Each criterion's condition with its hidden terms in place, and the terms by name
    (equal expressions share one term, e.g. a definition used by two criteria)."""
    by_expr: dict[Any, Term] = {}
    never = frozenset(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)
    alone = settling_alone(trial.facts)
    lowered = {c.id: lower(c.condition, by_expr, never, alone) for c in trial.criteria}
    return lowered, {term.name: term for term in by_expr.values()}


# A rule fires once for every way its $or clauses match: one alternative of each clause
# that holds. Where that can be more than this many times, a shape cut into Parts is taken
# (when one fits): every firing is an engine round trip, and the repeats tell nothing new.
MAX_FAN_OUT = 512


def fan_out(rule: dict[str, Any]) -> int:
    """How many times the rule can fire on one snapshot, at most: the product over its $or
    clauses of how many of their tests can hold together (equalities of one field exclude
    each other, and an absence test excludes every other test of its field)."""
    m = rule["all"][0]["m"]
    times = 1
    for element in m["$and"] if "$and" in m else [m]:
        if "$or" not in element:
            continue
        by_field: dict[str, list[int]] = {}  # field -> [equalities, absence tests, others]
        for leaf in element["$or"]:
            name, op = _test_of(leaf)
            by_field.setdefault(name, [0, 0, 0])[0 if op == "==" else 1 if op == "$nex" else 2] += 1
        times *= sum(max(min(equal, 1) + other, absent) for equal, absent, other in by_field.values())
    return times


MAX_PLAIN_DEPTH = 6   # deeper conditions are cut into Parts at once
MAX_PLAIN_SIZE = 96   # so are conditions with more operators and tests than this


def _shape_of(e: Any) -> tuple[int, int]:
    """(nesting depth, number of operators and tests) of an expression, without recursion."""
    depth = size = 0
    pending: list[tuple[Any, int]] = [(e, 1)]
    while pending:
        node, level = pending.pop()
        size += 1 + (len(node.values) // MAX_OR_WIDTH if isinstance(node, In) else 0)
        depth = max(depth, level)
        if isinstance(node, Not):
            pending.append((node.operand, level + 1))
        elif isinstance(node, (And, Or)):
            pending.extend((o, level + 1) for o in node.operands)
    return depth, size


def _fitted_rules(trial: Trial, criterion: Criterion, lowered: Any, kleene: _Kleene
                  ) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The criterion's (lowered) condition and rules, cut into Parts as far as the engine needs.

    First as written; then wide and/or split into Parts of 8, 4, 2 operands; last every
    and/or below the top a Part of its own, which fits any condition. Raises RulesError
    only if even that does not fit (a single test too large for the engine).
    """
    attempts: list[Callable[[], Any]] = []
    depth, size = _shape_of(lowered)
    if depth <= MAX_PLAIN_DEPTH and size <= MAX_PLAIN_SIZE:
        # the three-valued conditions of a whole expression grow quickly with its nesting
        attempts.append(lambda: lowered)
        attempts += [lambda w=w: split(lowered, criterion.id, w) for w in (8, 4, 2)]
    attempts += [lambda w=w, d=d: decompose(lowered, criterion.id, w, d)
                 for w, d in ((4, 3), (4, 2), (4, 1), (2, 1))]
    fitting: tuple[int, Any, dict[str, dict[str, Any]]] | None = None
    for attempt in attempts:
        condition = attempt()
        try:
            own = _criterion_rules(trial, criterion, condition, kleene)
        except TooComplex:
            continue
        try:
            _shape(own)
        except TooComplex:
            continue
        times = max(map(fan_out, own.values()))
        if times <= MAX_FAN_OUT:
            return condition, own
        if fitting is None or times < fitting[0]:
            fitting = (times, condition, own)
    if fitting is not None:
        return fitting[1], fitting[2]  # none fires few times: the one that fires fewest
    span = criterion.span
    raise RulesError([RuleProblem(span.path, span.line, span.column, "too-complex",
                                  f"criterion {criterion.id}: the condition is too large for "
                                  "the engine even cut into parts")])


def compile_trial(trial: Trial) -> tuple[dict[str, dict[str, Any]], dict[str, Part]]:
    """Return one ruleset definition (rule name -> durable-rules rule) and the parts used.

    For a trial too large for one ruleset use `compile_rulesets`; this is its only ruleset
    when there is one. Raises RulesError when a criterion cannot be made to fit.
    """
    rulesets = compile_rulesets(trial)
    if len(rulesets) != 1:
        raise TooComplex(f"{len(rulesets)} rulesets needed")
    return rulesets[0]


def compile_rulesets(trial: Trial) -> list[tuple[dict[str, dict[str, Any]], dict[str, Part]]]:
    """Compile the trial into durable-rules ruleset definitions and the parts each uses.

    Rule names: `open`, `derive.<id>`, `seal`, `<criterion>.<outcome>`,
    `<criterion>.missing.<fact>[.<n>]`, and for conditions cut into parts
    `<criterion>.partN.<outcome>` and `seal.parts`. Conditions too large for one rule are cut
    into parts (`_fitted_rules`); a ruleset whose network would overflow the engine's node
    tables or matching stack is regrouped (`_shape`); criteria past the engine's rule count
    go to further rulesets, each with the derivations. The order is stable (trial order), so
    firing order is deterministic. Raises RulesError when a criterion cannot be made to fit.
    """
    kleene = _Kleene(trial)
    base: dict[str, dict[str, Any]] = {"open": _rule(OPEN, True, PRI_OPEN)}
    alone = settling_alone(trial.facts)
    for derivation in trial.derivations:
        not_done = {"$nex": {DONE_PREFIX + derivation.id: 1}}
        absent: list[list[Cond]] = []
        if derivation.formula is not None:
            alternatives = needs(derivation.formula, alone)
        elif derivation.function == "banded_score" and len(derivation.inputs) > 1:
            # a score may be settled by some of its parts (`banded_score_settled`): besides
            # all parts present, a part present whose next one (cyclically) is absent -- some
            # such pair exists whenever some parts are known and some not, and a candidate
            # with every part fires the one rule only
            parts = derivation.inputs
            alternatives = (parts,) + tuple((name,) for name in parts)
            absent = [[]] + [[kleene.absent(parts[(i + 1) % len(parts)])] for i in range(len(parts))]
        else:
            alternatives = (derivation.inputs,)
        for index, need in enumerate(alternatives):
            inputs = [kleene.present(name) for name in need] + (absent[index] if absent else [])
            suffix = f".{index}" if index else ""
            base[f"derive.{derivation.id}{suffix}"] = _rule(SNAPSHOT, _all(inputs + [not_done]), PRI_DERIVE)
    lowered, terms = lower_criteria(trial)
    for term in terms.values():
        # a term is computed by the action of this rule, once its inputs are present
        for index, need in enumerate(term.needs):
            inputs = [kleene.present(name) for name in need]
            suffix = f".{index}" if index else ""
            base[f"term.{term.name}{suffix}"] = _rule(
                SNAPSHOT, _all(inputs + [{"$nex": {term.done: 1}}]), PRI_DERIVE)
    sealed = bool(trial.derivations or terms)
    if sealed:
        # After the derivations that a snapshot triggered, one action replaces the snapshot
        # with the derived values added; the criteria then fire on the new snapshot only.
        # The first snapshot is always replaced, marked as sealed, and every later rule
        # tests the mark first: the engine does not match the criteria against a snapshot
        # that is about to go (half of its matching work, before).
        base["seal"] = _rule(SNAPSHOT, True, PRI_SEAL)
    # sid, id and kind; the sealed mark; a fact's value or its `never` marker; a derivation's
    # done marker; a term's value or range, its `never` marker and its done marker; then a
    # field per Part
    fields = 3 + sealed + len(trial.facts) + len(trial.derivations) + 3 * len(terms)
    if fields > MAX_FIELDS:
        raise RulesError([RuleProblem(trial.path, 1, 1, "too-large",
                                      f"{len(trial.facts)} facts, {len(trial.derivations)} derivations "
                                      f"and {len(terms)} computed comparisons need {fields} fields in "
                                      f"one engine fact; durable-rules takes at most {MAX_FIELDS}")])
    shards: list[tuple[dict[str, dict[str, Any]], dict[str, Part]]] = []
    rules: dict[str, dict[str, Any]] = dict(base)
    parts: dict[str, Part] = {}

    def close() -> None:
        if parts:
            # After the parts, the snapshot is replaced once more with their outcomes added.
            rules["seal.parts"] = _after_seal(_rule(SNAPSHOT, True, PRI_SEAL_PARTS), sealed)
        try:
            shards.append((_shape(rules), dict(parts)))
        except TooComplex:
            raise RulesError([RuleProblem(trial.path, 1, 1, "too-complex",
                                          "the criteria do not fit the engine's network")]) from None

    for criterion in trial.criteria:
        condition, own = _fitted_rules(trial, criterion, lowered[criterion.id], kleene)
        more = len(parts_of(condition))
        if fields + more > MAX_FIELDS:
            span = criterion.span
            raise RulesError([RuleProblem(span.path, span.line, span.column, "too-large",
                                          f"criterion {criterion.id}: cut into {more} parts, more "
                                          "than the engine's fact can carry beside the facts")])
        if (len(rules) + len(own) > MAX_RULES or fields + len(parts) + more > MAX_FIELDS) \
                and len(rules) > len(base):
            close()
            rules, parts = dict(base), {}
        parts.update({p.name: p for p in parts_of(condition)})
        rules.update((name, _after_seal(rule, sealed)) for name, rule in own.items())
    close()
    return shards


def _after_seal(rule: dict[str, Any], sealed: bool) -> dict[str, Any]:
    """The rule, reading only sealed snapshots when the trial has a seal: the mark is
    tested right after the kind, so a first snapshot stops there for every such rule."""
    if not sealed:
        return rule
    m = rule["all"][0]["m"]
    elements = m["$and"] if "$and" in m else [m]
    return {**rule, "all": [{"m": {"$and": [elements[0], {SEALED: 1}, *elements[1:]]}}]}


class _Node:
    """A node of the engine's discrimination network, as rete.c builds it from the rules."""

    __slots__ = ("kids", "nex", "exits", "betas")

    def __init__(self) -> None:
        self.kids: dict[str, tuple[str, str, _Node]] = {}  # test -> (field, operator, node)
        self.nex: dict[str, tuple[str, _Node]] = {}  # absence test -> (field, node)
        self.exits: list[_Node] = []  # where the $or branches through this node continue
        self.betas = 0  # rules ending here

    def children(self) -> list["_Node"]:
        return [n for _, _, n in self.kids.values()] + [n for _, n in self.nex.values()] + self.exits

    def matching_at_once(self) -> int:
        """How many children can match one fact together (all pushed on the stack at once).

        Equality tests of one field exclude each other, an absence test excludes every test
        of its field, and an $or exit is always pushed.
        """
        by_field: dict[str, int] = {}
        equal: set[str] = set()
        for name, op, _ in self.kids.values():
            if op == "==":
                if name in equal:
                    continue
                equal.add(name)
            by_field[name] = by_field.get(name, 0) + 1
        absent: dict[str, int] = {}
        for name, _ in self.nex.values():
            absent[name] = absent.get(name, 0) + 1
        fields = set(by_field) | set(absent)
        return sum(max(by_field.get(f, 0), absent.get(f, 0)) for f in fields) + len(self.exits)


def _test_of(leaf: dict[str, Any]) -> tuple[str, str]:
    """(field, operator) of a leaf test: `{f: v}` is equality, `{"$lt": {f: v}}` an order."""
    (key, value), = leaf.items()
    if key.startswith("$") and isinstance(value, dict) and len(value) == 1:
        return next(iter(value)), key
    return key, "=="


def _network(rules: dict[str, dict[str, Any]]) -> list[_Node]:
    """Model the alpha network durable-rules builds: shared prefixes, fresh $or exits."""
    roots: dict[str, _Node] = {}

    def attach(node: _Node, leaf: dict[str, Any]) -> _Node:
        key = _key(leaf)
        name, op = _test_of(leaf)
        if op == "$nex":
            if key not in node.nex:
                node.nex[key] = (name, _Node())
            return node.nex[key][1]
        if key not in node.kids:
            node.kids[key] = (name, op, _Node())
        return node.kids[key][2]

    for rule in rules.values():
        m = rule["all"][0]["m"]
        elements = m["$and"] if "$and" in m else [m]
        node = roots.setdefault(_key(elements[0]), _Node())
        for element in elements[1:]:
            if "$or" in element:
                exit_node = _Node()
                for leaf in element["$or"]:
                    attach(node, leaf).exits.append(exit_node)
                node = exit_node
            else:
                node = attach(node, element)
        node.betas += 1
    return list(roots.values())


def _network_fits(rules: dict[str, dict[str, Any]], stack: int = MAX_STACK) -> bool:
    """Whether no node overflows its tables and matching one fact stays within the stack.

    The matcher (events.c handleAlpha) pushes every matching child of a node before it
    descends, so while a child is matched the stack holds its matching siblings, and so on
    down every path.
    """
    peaks: dict[int, int] = {}
    for root in _network(rules):
        pending: list[tuple[_Node, bool]] = [(root, False)]  # iterative: chains can be long
        while pending:
            node, expanded = pending.pop()
            if id(node) in peaks:
                continue
            below = node.children()
            if not expanded:
                pending.append((node, True))
                pending.extend((c, False) for c in below if id(c) not in peaks)
                continue
            if (len(node.kids) > MAX_CHILDREN or len(node.nex) + len(node.exits) > MAX_NEX
                    or node.betas > MAX_BETAS):
                return False
            # the child being matched was popped; its matching siblings wait
            at_once = node.matching_at_once()
            peaks[id(node)] = max([at_once] + [at_once - 1 + peaks[id(c)] for c in below])
        if peaks[id(root)] > stack:
            return False
    return True


def _shape(rules: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rules, regrouped under grouping tests when the network would not fit as it is.

    A grouping test (`t != "g<level>.<n>"`) holds for every snapshot; putting a few rules
    (or groups) under each one keeps every node's children, and so the matcher's stack,
    small. Rule order, and so firing order, is unchanged. Raises TooComplex when no grouping
    fits.
    """
    if _network_fits(rules):
        return rules
    for size in GROUPS:
        shaped = _grouped(rules, size)
        if _network_fits(shaped):
            return shaped
    raise TooComplex("the ruleset does not fit the engine even regrouped")


def _grouped(rules: dict[str, dict[str, Any]], size: int) -> dict[str, dict[str, Any]]:
    names = [name for name, rule in rules.items() if _kind_of(rule) == SNAPSHOT]
    prefixes: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    level, members = 0, [[name] for name in names]
    while len(members) > size:
        level += 1
        grouped = [sum(members[i:i + size], []) for i in range(0, len(members), size)]
        for n, group in enumerate(grouped):
            for name in group:
                prefixes[name].insert(0, {"$neq": {KIND: f"g{level}.{n}"}})
        members = grouped
    shaped = dict(rules)
    for name in names:
        m = rules[name]["all"][0]["m"]
        elements = m["$and"] if "$and" in m else [m]
        shaped[name] = {**rules[name], "all": [{"m": {"$and": [elements[0], *prefixes[name], *elements[1:]]}}]}
    return shaped


def _kind_of(rule: dict[str, Any]) -> Any:
    m = rule["all"][0]["m"]
    return (m["$and"][0] if "$and" in m else m).get(KIND)
