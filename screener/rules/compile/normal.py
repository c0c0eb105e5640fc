"""Step two: conditions in normal form within what durable-rules takes - conjunction and
disjunction of conditions, the engine's limits, and the conjunctive normal form rules are built from.
"""
from __future__ import annotations

from typing import Any, Sequence

from screener.rules.compile.encode import Cond


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
GROUPS = (32, 16, 8, 4, 2)  # rules (or groups) under one grouping node, tried in turn: the
# largest that fits first, as every grouping node a snapshot passes costs rete.c a pass over
# all of its fields


class TooComplex(Exception):
    """A condition's normal form is too large for the engine."""


def _key(leaf: dict[str, Any]) -> str:
    """A text naming the test exactly (1 and True differ), cheap to build: compiling a large
    trial makes hundreds of thousands of these."""
    if len(leaf) == 1:  # nearly every leaf: one test, of one field; the same text, unsorted
        (k, v), = leaf.items()
        if not isinstance(v, dict):
            return repr([(k, v)])
        if len(v) == 1:
            return repr([(k, tuple(v.items()))])
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
            key = _key(c)
            leaves[key] = c
            return [frozenset([key])]
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
