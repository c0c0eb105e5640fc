"""Step seven: the engine's own short names for the fields its conditions read.

The compiler names a snapshot's fields for people (`f_severe_cardiopulmonary_disease`,
`l_birth_date`, `p_E4_part3`); the engine parses the whole snapshot at every assert and
echoes it whole in the message of every rule fired on it, so those names were most of the
text it handled. Each field a condition reads gets a name of one or two letters instead, in
the order of first use; a field no condition reads is never sent, since it cannot change
what matches. The rules keep their names, so firings and traces read as before.
"""
from __future__ import annotations

import itertools
import string
from typing import Any, Iterable, Iterator

from screener.rules.compile.encode import KIND

# the fields the engine itself gives meaning to, besides the kind
_RESERVED = frozenset({"sid", "id", KIND})


def _letters() -> Iterator[str]:
    alphabet = string.ascii_letters
    for size in itertools.count(1):
        for letters in itertools.product(alphabet, repeat=size):
            name = "".join(letters)
            if name not in _RESERVED:
                yield name


def _fields_read(node: Any, found: dict[str, None]) -> None:
    """Add the fields `node` (a condition) reads to `found`, in order of first use."""
    pending = [node]
    while pending:
        node = pending.pop(0)
        if isinstance(node, list):
            pending[:0] = node
        elif isinstance(node, dict):
            inner = []
            for key, value in node.items():
                if key == "$m":
                    found.setdefault(value, None)
                elif not key.startswith("$") and key != KIND:
                    found.setdefault(key, None)
                if isinstance(value, (dict, list)):
                    inner.append(value)
            pending[:0] = inner


def short_names(definitions: Iterable[dict[str, dict[str, Any]]]) -> dict[str, str]:
    """Field name -> short name, for every field a rule of `definitions` reads (the same name
    in every ruleset of a trial, so one snapshot text serves them all)."""
    found: dict[str, None] = {}
    for definition in definitions:
        for rule in definition.values():
            for element in rule["all"]:
                _fields_read(element["m"], found)
    return dict(zip(found, _letters()))


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    if not isinstance(node, dict):
        return node  # a literal: never a name
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$m":
            out[key] = names[value]
        elif key.startswith("$"):
            out[key] = _renamed(value, names)
        else:
            out[names.get(key, key)] = _renamed(value, names)
    return out


def renamed(definition: dict[str, dict[str, Any]], names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The ruleset with its conditions reading the short names of `names` (`short_names`)."""
    return {rule_name: {**rule, "all": [{**element, "m": _renamed(element["m"], names)}
                                        for element in rule["all"]]}
            for rule_name, rule in definition.items()}
