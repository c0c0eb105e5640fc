"""What to collect in the lists a candidate's record gives (docs/batch-io.md, "Lists to
complete").

A list that was given is answered, so it is never a missing fact; but an unknown field of
one of its items, or the list being empty, can still leave a criterion unknown. For an
undetermined candidate `missing` then names, after the facts:

- `LIST[N].FIELD`: field FIELD of item N (counted from 1, in the order given) is unknown, and
  that item's part of an aggregate a still unknown criterion depends on is unknown with it
  (read the same way: through `not` and the unknown parts of `and`/`or`);
- `LIST[]`: the list is empty and an aggregate that needs items (the latest reading, the
  lowest or highest value) leaves the criterion unknown: items are to be added.

Which aggregates a criterion depends on is read from the condition top down: through `not`,
through the unknown operands of an unknown `and`/`or` (a known operand cannot be what keeps
it unknown), and into every aggregate of an unknown comparison whose value is unknown.
"""
from __future__ import annotations

import decimal
import re
from typing import Any, Callable, Iterator, Mapping

from screener.model import Aggregate, And, FactSpec, ItemField, Not, Or, children
from screener.rules.evaluate import _CONTEXT, NEVER, Evaluator, Failure, Range


def item_ref(fact: str, index: int, field: str) -> str:
    """How `missing` names field `field` of item `index` (from 0) of list `fact`."""
    return f"{fact}[{index + 1}].{field}"


def empty_ref(fact: str) -> str:
    """How `missing` names a list given empty that needs items."""
    return f"{fact}[]"


_REF = re.compile(r"(?P<fact>[^\[\]]+)\[(?P<number>[0-9]*)\](?:\.(?P<field>.+))?\Z")


def parse_ref(name: str) -> tuple[str, int | None, str | None] | None:
    """(list fact, item number from 1 or None for `LIST[]`, field or None) of a list entry
    of `missing`; None for a plain fact name."""
    found = _REF.match(name)
    if found is None:
        return None
    number = found.group("number")
    return found.group("fact"), int(number) if number else None, found.group("field")


def describe_ref(name: str, label: Callable[[str], str], tr: Callable[..., str]) -> str:
    """A list entry of `missing` as a person reads it, with the list's clinical label:
    "Blood pressure readings: add the items", "Lesions, item 2: longest_diameter" (item
    fields are named as they are typed in a list answer); a plain fact's label otherwise."""
    parsed = parse_ref(name)
    if parsed is None:
        return label(name)
    fact, number, field = parsed
    if number is None:
        return tr("{list}: add the items", list=label(fact))
    return tr("{list}, item {number}: {field}", list=label(fact), number=number, field=field or "")


def to_collect(evaluator: Evaluator, conditions: Mapping[str, Any], outcomes: Mapping[str, str],
               values: Mapping[str, Any], order: Mapping[str, int]) -> tuple[str, ...]:
    """The list entries to complete for the criteria (id -> condition) whose outcome is
    unknown, each once, by the data dictionary's order of the list, then item, then the
    item's field order."""
    found: dict[tuple[int, int, int], str] = {}
    with decimal.localcontext(_CONTEXT):
        for criterion, condition in conditions.items():
            if outcomes.get(criterion) != "unknown":
                continue
            for aggregate in _open_aggregates(evaluator, condition, values):
                for key, name in _entries(evaluator, aggregate, values, order):
                    found.setdefault(key, name)
    return tuple(found[key] for key in sorted(found))


def _truth(evaluator: Evaluator, e: Any, values: Mapping[str, Any]) -> Any:
    try:
        return evaluator.truth(e, values, None, None)
    except (ArithmeticError, ValueError, OverflowError):
        return Failure("cannot be computed")


def _open_aggregates(evaluator: Evaluator, e: Any, values: Mapping[str, Any]) -> Iterator[Aggregate]:
    """The aggregates over given lists that keep the unknown condition `e` unknown."""
    if not any(values.get(fact) is not None for fact in _lists_read(e)):
        return  # it reads no list given: no truth of its parts is needed to know that
    if isinstance(e, Not):
        yield from _open_aggregates(evaluator, e.operand, values)
        return
    if isinstance(e, (And, Or)):
        for operand in e.operands:
            if _truth(evaluator, operand, values) is None:
                yield from _open_aggregates(evaluator, operand, values)
        return
    pending = [e]
    while pending:
        node = pending.pop()
        if isinstance(node, Aggregate):
            if values.get(node.fact) is not None and _unknown(evaluator, node, values):
                yield node
            continue  # its per-item parts are read item by item (`_entries`)
        pending.extend(reversed(children(node)))


# The lists an expression aggregates (at any depth), by the node's id (with the node, so
# that a freed node's id is never mistaken): conditions are the trial's, read for every
# undetermined candidate, and most of their parts read no list, or none the candidate gave.
_LISTS: dict[int, tuple[Any, frozenset[str]]] = {}
_LISTS_KEPT = 1 << 16


def _lists_read(e: Any) -> frozenset[str]:
    known = _LISTS.get(id(e))
    if known is not None and known[0] is e:
        return known[1]
    found = frozenset([e.fact] if isinstance(e, Aggregate) else []).union(
        *(_lists_read(child) for child in children(e)))
    if len(_LISTS) >= _LISTS_KEPT:
        _LISTS.clear()
    _LISTS[id(e)] = (e, found)
    return found


def _unknown(evaluator: Evaluator, aggregate: Aggregate, values: Mapping[str, Any]) -> bool:
    try:
        got = evaluator.aggregate(aggregate, values, None, None)
    except (ArithmeticError, ValueError, OverflowError):
        return False
    return got is None or isinstance(got, Range)


def _entries(evaluator: Evaluator, aggregate: Aggregate, values: Mapping[str, Any],
             order: Mapping[str, int]) -> Iterator[tuple[tuple[int, int, int], str]]:
    fact = aggregate.fact
    items = values[fact]
    specs = {spec.name: spec for spec in evaluator.specs[fact].item}
    rank = order[fact]
    field_rank = {name: i for i, name in enumerate(specs)}

    def unknown_fields(e: Any, index: int) -> Iterator[tuple[tuple[int, int, int], str]]:
        # through `not` and the unknown parts of `and`/`or` of the item's part, as for criteria
        if isinstance(e, Not):
            yield from unknown_fields(e.operand, index)
            return
        if isinstance(e, (And, Or)):
            for operand in e.operands:
                if _guarded(evaluator.truth, operand, values, items[index], specs) is None:
                    yield from unknown_fields(operand, index)
            return
        for name in _fields_read(e):
            if items[index].get(name) is None and name in specs:
                yield (rank, index + 1, field_rank[name]), item_ref(fact, index, name)

    if aggregate.name == "count" and not aggregate.args:
        return
    if aggregate.name == "latest":
        date, chosen = aggregate.args
        dates = [_guarded(evaluator.value, date, values, one, specs) for one in items]
        if any(d is None for d in dates):
            for index, d in enumerate(dates):
                if d is None:
                    yield from unknown_fields(date, index)
            return
        known = [(d, index) for index, d in enumerate(dates) if d is not NEVER and not isinstance(d, Failure)]
        if not known:
            yield (rank, 0, 0), empty_ref(fact)
            return
        latest = max(known)[1]  # the last listed wins a tie, as `latest` reads it
        if _guarded(evaluator.value, chosen, values, items[latest], specs) is None:
            yield from unknown_fields(chosen, latest)
        return
    if not items:
        if aggregate.name in ("min_of", "max_of"):
            yield (rank, 0, 0), empty_ref(fact)
        return
    (part,) = aggregate.args
    conditional = aggregate.name in ("any", "all", "count")
    for index, one in enumerate(items):
        got = (_guarded(evaluator.item_truth, part, values, one, specs) if conditional
               else _guarded(evaluator.value, part, values, one, specs))
        if got is None:
            yield from unknown_fields(part, index)


def _guarded(compute: Callable[..., Any], e: Any, values: Mapping[str, Any], item: Mapping[str, Any],
             specs: Mapping[str, FactSpec]) -> Any:
    """`compute(e, values, item, specs)` (one of the evaluator's readings of an item), or a
    Failure where the item's values make it impossible to compute."""
    try:
        return compute(e, values, item, specs)
    except (ArithmeticError, ValueError, OverflowError):
        return Failure("cannot be computed")


def _fields_read(e: Any) -> list[str]:
    """The item fields `e` reads, in order of first use (not inside nested aggregates)."""
    out: list[str] = []
    pending = [e]
    while pending:
        node = pending.pop()
        if isinstance(node, ItemField):
            if node.name not in out:
                out.append(node.name)
        elif not isinstance(node, Aggregate):
            pending.extend(reversed(children(node)))
    return out

