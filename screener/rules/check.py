"""Read a rules file, check it against the schema, and build the frozen `Trial`.

Every problem is collected with its `file:line:col` and reported together, sorted.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from screener.checks import Checker
from screener.rules.parse import ConditionError, parse_condition, suggest
from screener.errors import RuleProblem, RulesError
from screener.rules.functions import FUNCTIONS
from screener.rules.read import PosDict, PosList, load_yaml_text
from screener.model import FACT_TYPES, Criterion, Derivation, FactSpec, Span, Trial, expr_facts

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
TOP_KEYS = {"trial": True, "facts": True, "derivations": False, "criteria": True}
TRIAL_KEYS = {"id": True, "title": True, "version": True, "id_fact": False, "source": False}
FACT_KEYS = {
    "type": True, "description": True, "values": False, "min": False, "max": False,
    "places": False, "unit": False, "required": False, "derived": False,
}
DERIVATION_KEYS = {
    "id": True, "fact": True, "function": True, "inputs": True, "params": False, "description": True,
}
CRITERION_KEYS = {
    "id": True, "kind": True, "title": True, "protocol": True, "note": False, "when": True,
    "ask": False,
}


def load_trial(path: str | os.PathLike[str], display: str | None = None) -> Trial:
    """Load and check a rules file. Returns the Trial; raises RulesError listing every problem."""
    shown = display or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "unreadable", str(exc))]) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "unreadable", f"not UTF-8: {exc}")]) from exc
    problems: list[RuleProblem] = []
    document = load_yaml_text(text, shown, problems)
    return build_trial(document, shown, hashlib.sha256(data).hexdigest(), problems)


def build_trial(document: Any, shown: str, content_hash: str,
                problems: list[RuleProblem] | None = None) -> Trial:
    """Check a loaded rules document and build the Trial; raises RulesError."""
    check = Checker(shown)
    check.problems.extend(problems or [])
    top = check.mapping(document, Span(shown, 1, 1), "the rules file", TOP_KEYS)
    if top is None:
        raise RulesError(check.problems)
    head = check.mapping(top.get("trial"), top.key_spans.get("trial", top.span), "trial", TRIAL_KEYS)
    facts = _facts(check, top)
    derivations = _derivations(check, top, facts)
    criteria = _criteria(check, top, facts)
    if head is not None:
        id_fact = check.text(head, "id_fact", "trial", "candidate_id")
        if id_fact not in facts and "facts" in top:
            check.add(head.span, "unknown-fact", f"the id fact {id_fact!r} is not in the data dictionary")
    if check.problems or head is None:
        raise RulesError(check.problems)
    return Trial(
        id=check.text(head, "id", "trial"),
        title=check.text(head, "title", "trial"),
        version=str(head.get("version")),
        path=shown,
        content_hash=content_hash,
        facts=facts,
        derivations=tuple(derivations),
        criteria=tuple(criteria),
        id_fact=id_fact,
    )


def _new_id(check: Checker, entry: PosDict, ids: dict[str, Span], what: str) -> str | None:
    """The entry's id if it is well formed and not used before (recorded in `ids`); else None."""
    value = str(entry["id"])
    where = entry.value_spans["id"]
    if not _ID.match(value):
        check.add(where, "bad-name", f"{what} id {value!r} must be letters, digits, '_' or '-'")
        return None
    if value in ids:
        check.add(where, "duplicate-id", f"{what} id {value!r} is already used at line {ids[value].line}")
        return None
    ids[value] = where
    return value


def _number(check: Checker, spec: PosDict, key: str, name: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check.add(spec.value_spans[key], "wrong-type", f"fact {name}: {key} must be a number")
        return None
    return value


def _facts(check: Checker, top: PosDict) -> dict[str, FactSpec]:
    raw = top.get("facts")
    facts: dict[str, FactSpec] = {}
    if not isinstance(raw, PosDict):
        if "facts" in top:
            check.add(top.value_spans["facts"], "wrong-type", "facts must be a mapping of name to spec")
        return facts
    for name, spec in raw.items():
        where = raw.key_spans[name]
        if not name.isidentifier():
            check.add(where, "bad-name", f"fact name {name!r} must be a word (letters, digits, _)")
        entry = check.mapping(spec, raw.value_spans[name], f"fact {name}", FACT_KEYS)
        if entry is None:
            continue
        kind = entry.get("type")
        if kind not in FACT_TYPES:
            check.add(entry.value_spans.get("type", where), "wrong-type",
                      f"fact {name}: type {kind!r} is not one of {list(FACT_TYPES)}")
            continue
        values: tuple[str, ...] = ()
        if kind == "enum":
            listed = entry.get("values")
            if not isinstance(listed, PosList) or not listed or not all(isinstance(v, str) for v in listed):
                check.add(entry.value_spans.get("values", where), "wrong-type",
                          f"fact {name}: an enum needs 'values', a list of words")
            else:
                values = tuple(listed)
        elif "values" in entry:
            check.add(entry.key_spans["values"], "unknown-key", f"fact {name}: only enums have 'values'")
        places = entry.get("places", 0)
        if kind != "decimal" and "places" in entry:
            check.add(entry.key_spans["places"], "unknown-key", f"fact {name}: only decimals have 'places'")
        elif not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= 6:
            check.add(entry.value_spans["places"], "wrong-type", f"fact {name}: places must be 0-6")
            places = 0
        for flag in ("required", "derived"):
            if flag in entry and not isinstance(entry[flag], bool):
                check.add(entry.value_spans[flag], "wrong-type", f"fact {name}: {flag} must be true or false")
        facts[name] = FactSpec(
            name=name, type=kind, description=check.text(entry, "description", f"fact {name}"),
            span=where, values=values,
            minimum=_number(check, entry, "min", name), maximum=_number(check, entry, "max", name),
            places=places, unit=check.text(entry, "unit", f"fact {name}"),
            required=entry.get("required") is True,
            derived_by="?" if entry.get("derived") is True else None,
        )
    return facts


def _derivations(check: Checker, top: PosDict, facts: dict[str, FactSpec]) -> list[Derivation]:
    raw = top.get("derivations")
    out: list[Derivation] = []
    if raw is None:
        raw = PosList()
        raw.item_spans = []
    if not isinstance(raw, PosList):
        check.add(top.value_spans["derivations"], "wrong-type", "derivations must be a list")
        return out
    ids: dict[str, Span] = {}
    for item, where in zip(raw, raw.item_spans):
        entry = check.mapping(item, where, "a derivation", DERIVATION_KEYS)
        if entry is None or not all(k in entry for k in ("id", "fact", "function", "inputs")):
            continue
        rule_id = _new_id(check, entry, ids, "derivation")
        if rule_id is None:
            continue
        fact = entry["fact"]
        function = FUNCTIONS.get(entry["function"])
        if function is None:
            check.add(entry.value_spans["function"], "unknown-function",
                      f"unknown function {entry['function']!r}{suggest(str(entry['function']), list(FUNCTIONS))}")
        inputs = entry["inputs"]
        if not isinstance(inputs, PosList) or not inputs:
            check.add(entry.value_spans["inputs"], "wrong-type", "inputs must be a list of facts")
            continue
        bad = False
        for name, at in zip(inputs, inputs.item_spans):
            if name not in facts:
                check.add(at, "unknown-fact", f"input {name!r} is not in the data dictionary"
                          f"{suggest(str(name), list(facts))}")
                bad = True
        spec = facts.get(fact)
        if spec is None:
            check.add(entry.value_spans["fact"], "unknown-fact",
                      f"derived fact {fact!r} is not in the data dictionary{suggest(str(fact), list(facts))}")
            continue
        if spec.derived_by is None:
            check.add(entry.value_spans["fact"], "not-derived",
                      f"fact {fact!r} is computed here but not marked 'derived: true'")
        if fact in inputs:
            check.add(entry.value_spans["inputs"], "cycle", f"{fact!r} cannot be derived from itself")
        params = entry.get("params", PosDict())
        if not isinstance(params, dict):
            check.add(entry.value_spans["params"], "wrong-type", "params must be a mapping")
            continue
        if function is not None and not bad:
            kinds = tuple(facts[n].type for n in inputs)
            if function.input_types is not None and kinds != function.input_types:
                check.add(entry.value_spans["inputs"], "wrong-type",
                          f"{function.name} takes {list(function.input_types)}, got {list(kinds)}")
            if function.output_type != spec.type:
                check.add(entry.value_spans["fact"], "wrong-type",
                          f"{function.name} gives {function.output_type}, but {fact} is {spec.type}")
            for problem in function.check(params, facts, tuple(inputs)):
                check.add(entry.value_spans.get("params", where), "bad-params", problem)
        facts[fact] = _with_derivation(spec, rule_id)
        out.append(Derivation(
            id=rule_id, fact=fact, function=str(entry["function"]), inputs=tuple(inputs),
            params=_plain(params), description=check.text(entry, "description", "derivation"), span=where,
        ))
    for name, spec in facts.items():
        if spec.derived_by == "?":
            check.add(spec.span, "no-derivation", f"fact {name!r} is marked derived but no derivation computes it")
    return out


def _with_derivation(spec: FactSpec, rule_id: str) -> FactSpec:
    fields = {name: getattr(spec, name) for name in spec.__slots__}  # type: ignore[attr-defined]
    fields["derived_by"] = rule_id
    return FactSpec(**fields)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _criteria(check: Checker, top: PosDict, facts: dict[str, FactSpec]) -> list[Criterion]:
    raw = top.get("criteria")
    out: list[Criterion] = []
    if not isinstance(raw, PosList) or not raw:
        if "criteria" in top:
            check.add(top.value_spans["criteria"], "wrong-type", "criteria must be a non-empty list")
        return out
    ids: dict[str, Span] = {}
    for item, where in zip(raw, raw.item_spans):
        entry = check.mapping(item, where, "a criterion", CRITERION_KEYS)
        if entry is None or "id" not in entry or "when" not in entry:
            continue
        cid = _new_id(check, entry, ids, "criterion")
        if cid is None:
            continue
        kind = entry.get("kind")
        if kind not in ("inclusion", "exclusion"):
            check.add(entry.value_spans.get("kind", where), "wrong-type",
                      f"criterion {cid}: kind must be inclusion or exclusion, not {kind!r}")
        when = entry["when"]
        at = entry.value_spans["when"]
        if not isinstance(when, str) and not isinstance(when, bool):
            check.add(at, "wrong-type", f"criterion {cid}: 'when' must be a condition")
            continue
        text = when if isinstance(when, str) else ("true" if when else "false")
        try:
            condition = parse_condition(text, facts)
        except ConditionError as exc:
            line, column = at.line, at.column
            before = text[: exc.offset]
            if "\n" not in before:
                column += exc.offset
            check.add(Span(at.path, line, column), exc.code, f"criterion {cid}: {exc.message}")
            continue
        ask = entry.get("ask", True)
        out.append(Criterion(
            id=cid, kind=str(kind), title=check.text(entry, "title", f"criterion {cid}"),
            protocol=check.text(entry, "protocol", f"criterion {cid}"),
            note=check.text(entry, "note", f"criterion {cid}"),
            condition_text=text, condition=condition, facts=expr_facts(condition),
            span=where, ask=ask is not False,
        ))
    return out
