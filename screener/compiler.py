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
from typing import Any, Sequence, Union

from screener.model import And, Compare, Const, Criterion, Expr, FactSpec, In, Not, Or, Trial

KIND = "t"  # the kind field every fact carries
SNAPSHOT = "facts"
OPEN = "open"
FIELD_PREFIX = "f_"
DONE_PREFIX = "d_"

PRI_OPEN = 0
PRI_DERIVE = 1
PRI_SEAL = 2
PRI_CRITERION = 5
PRI_MISSING = 6

# A condition is a durable-rules JSON expression, or one of two constants.
Cond = Union[dict[str, Any], bool, tuple[str, list[Any]]]

_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_OPS = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def field(fact: str) -> str:
    return FIELD_PREFIX + fact


def encode(spec: FactSpec, value: Any) -> Any:
    """The engine's form of a typed value (scaled integer, day number, bool or text)."""
    if spec.type == "decimal":
        return int(round(float(value) * 10**spec.places))
    if spec.type == "date":
        assert isinstance(value, dt.date)
        return value.toordinal()
    if spec.type == "integer":
        return int(value)
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


class _Kleene:
    """Three-valued truth conditions of expressions over one trial's encoded facts.

    In durable-rules every comparison with an absent field is false (`$neq` included), so a
    comparison needs no separate presence test.
    """

    def __init__(self, trial: Trial):
        self.facts = trial.facts

    def _cmp(self, fact: str, op: str, value: Any) -> dict[str, Any]:
        name = field(fact)
        encoded = encode(self.facts[fact], value)
        if op == "==":
            return {name: encoded}
        return {_OPS[op]: {name: encoded}}

    def present(self, fact: str) -> dict[str, Any]:
        return {"$ex": {field(fact): 1}}

    def absent(self, fact: str) -> dict[str, Any]:
        return {"$nex": {field(fact): 1}}

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

    def _in(self, fact: str, values: tuple[Any, ...], inside: bool) -> Cond:
        spec = self.facts[fact]
        if spec.type in ("enum", "boolean"):
            domain = spec.values if spec.type == "enum" else (True, False)
            chosen = [v for v in domain if (v in values) == inside]
            return _any([self._cmp(fact, "==", v) for v in chosen])
        if inside:
            return _any([self._cmp(fact, "==", v) for v in values])
        return _all([self._cmp(fact, "!=", v) for v in values])

    def true(self, e: Expr) -> Cond:
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

    def false(self, e: Expr) -> Cond:
        if isinstance(e, Const):
            return not e.value
        if isinstance(e, Compare):
            return self._holds(e.fact, _NEGATE[e.op], e.value)
        if isinstance(e, In):
            return self._in(e.fact, e.values, False)
        if isinstance(e, Not):
            return self.true(e.operand)
        if isinstance(e, And):
            return _any([self.false(o) for o in e.operands])
        assert isinstance(e, Or)
        return _all([self.false(o) for o in e.operands])

    def unknown(self, e: Expr) -> Cond:
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

    def relevant(self, e: Expr, fact: str) -> Cond:
        """True when `fact` is absent and answering it could move `e` out of unknown."""
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


def missing_conditions(trial: Trial, criterion: Criterion, kleene: _Kleene) -> list[tuple[str, Cond]]:
    """(fact, condition) pairs: when each absent input fact could move the criterion."""
    out: list[tuple[str, Cond]] = []
    by_fact: dict[str, Cond] = {f: kleene.relevant(criterion.condition, f) for f in criterion.facts}
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


def compile_trial(trial: Trial) -> dict[str, dict[str, Any]]:
    """Return the ruleset definition: rule name -> durable-rules rule (no actions attached).

    Rule names: `open`, `derive.<id>`, `seal`, `<criterion>.<outcome>`,
    `<criterion>.missing.<fact>`.
    The order is stable (trial order), so firing order is deterministic.
    """
    kleene = _Kleene(trial)
    rules: dict[str, dict[str, Any]] = {"open": _rule(OPEN, True, PRI_OPEN)}
    for derivation in trial.derivations:
        inputs = [kleene.present(name) for name in derivation.inputs]
        not_done = {"$nex": {DONE_PREFIX + derivation.id: 1}}
        rules[f"derive.{derivation.id}"] = _rule(SNAPSHOT, _all(inputs + [not_done]), PRI_DERIVE)
    if trial.derivations:
        # After the derivations that a snapshot triggered, one action replaces the snapshot
        # with the derived values added; the criteria then fire on the new snapshot only.
        rules["seal"] = _rule(SNAPSHOT, True, PRI_SEAL)
    for criterion in trial.criteria:
        e = criterion.condition
        for outcome, cond in (("met", kleene.true(e)), ("not_met", kleene.false(e)),
                              ("unknown", kleene.unknown(e))):
            if to_cnf(cond) is not False:
                rules[f"{criterion.id}.{outcome}"] = _rule(SNAPSHOT, cond, PRI_CRITERION)
        if criterion.ask:
            for fact, cond in missing_conditions(trial, criterion, kleene):
                rules[f"{criterion.id}.missing.{fact}"] = _rule(SNAPSHOT, cond, PRI_MISSING)
    return rules
