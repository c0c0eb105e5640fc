"""Step six: the engine's discrimination network as rete.c builds it, to check that a ruleset
fits its limits and to group rules so that it does.
"""
from __future__ import annotations

from typing import Any

from screener.rules.compile.encode import FINAL, KIND, SEALED, SNAPSHOT
from screener.rules.compile.normal import (
    GROUPS, MAX_BETAS, MAX_CHILDREN, MAX_NEX, MAX_STACK, TooComplex, _key,
)


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
        # iterative: chains can be long; a node's children are listed once, when first seen
        pending: list[tuple[_Node, list[_Node] | None]] = [(root, None)]
        while pending:
            node, below = pending.pop()
            if id(node) in peaks:
                continue
            if below is None:
                below = node.children()
                pending.append((node, below))
                pending.extend((c, None) for c in below if id(c) not in peaks)
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

    A grouping test (`t != "g<level>.<class>.<n>"`) holds for every snapshot; putting a few
    rules (or groups) under each one keeps every node's children, and so the matcher's
    stack, small. Rule order, and so firing order, is unchanged (rete.c hands out actions by
    priority, then by the rule's place in the ruleset, whatever the network's shape).
    Raises TooComplex when no grouping fits.
    """
    if _network_fits(rules):
        return rules
    for size in GROUPS:
        shaped = _grouped(rules, size)
        if _network_fits(shaped):
            return shaped
    raise TooComplex("the ruleset does not fit the engine even regrouped")


def _grouped(rules: dict[str, dict[str, Any]], size: int) -> dict[str, dict[str, Any]]:
    """The snapshot rules under grouping tests, `size` to a group, the rules that read only
    marked snapshots (sealed, final) grouped apart below their mark: a snapshot without the
    mark is done with all of them at that one test, where it would otherwise be matched
    against every group on the way to each mark (rete.c tries every property of the fact at
    every node it reaches)."""
    names = [name for name, rule in rules.items() if _kind_of(rule) == SNAPSHOT]
    classes: dict[Any, list[str]] = {}
    for name in names:
        classes.setdefault(_marks_of(rules[name]), []).append(name)
    prefixes: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for c, (_, members_of) in enumerate(classes.items()):
        level, members = 0, [[name] for name in members_of]
        while len(members) > size:
            level += 1
            grouped = [sum(members[i:i + size], []) for i in range(0, len(members), size)]
            for n, group in enumerate(grouped):
                for name in group:
                    prefixes[name].insert(0, {"$neq": {KIND: f"g{level}.{c}.{n}"}})
            members = grouped
    shaped = dict(rules)
    for name in names:
        m = rules[name]["all"][0]["m"]
        elements = m["$and"] if "$and" in m else [m]
        head = 1 + len(_marks_of(rules[name]))
        shaped[name] = {**rules[name], "all": [{"m": {"$and": [*elements[:head], *prefixes[name],
                                                               *elements[head:]]}}]}
    return shaped


def _marks_of(rule: dict[str, Any]) -> tuple[str, ...]:
    """The tests of marks (sealed, final: present or absent) a rule makes right after the
    kind (`screener.rules.compile.rules._marked`), as keys."""
    m = rule["all"][0]["m"]
    if "$and" not in m:
        return ()
    marks: list[str] = []
    for element in m["$and"][1:]:
        if not isinstance(element, dict) or len(element) != 1:
            break
        (key, value), = element.items()
        tested = value if key == "$nex" and isinstance(value, dict) else {key: value}
        if len(tested) != 1 or next(iter(tested)) not in (SEALED, FINAL):
            break
        marks.append(_key(element))
    return tuple(marks)


def _kind_of(rule: dict[str, Any]) -> Any:
    m = rule["all"][0]["m"]
    return (m["$and"][0] if "$and" in m else m).get(KIND)
