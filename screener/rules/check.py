"""Read a rules file, check it against the schema, and build the frozen `Trial`.

Every problem is collected with its `file:line:col` and reported together, sorted.
"""
from __future__ import annotations

import hashlib
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from screener.checks import Checker
from screener.rules import cache, units
from screener.errors import RuleProblem, RulesError
from screener.paths import SAFE_NAME_RULE, is_safe_name, read_regular
from screener.model import (
    FACT_TYPES, Criterion, Derivation, FactSpec, Plausible, Span, Special, Trial, expr_facts,
)
from screener.rules.derivations import check_derivations, fit_formula
from screener.rules.functions import FUNCTIONS
from screener.rules.parse import ConditionError, suggest
from screener.rules.read import PosDict, PosList, load_yaml_text
from screener.rules.typecheck import Checker as Types
from screener.rules.typecheck import Definition

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
TOP_KEYS = {"trial": True, "facts": True, "definitions": False, "derivations": False, "criteria": True}
TRIAL_KEYS = {"id": True, "title": True, "version": True, "id_fact": False, "source": False}
FACT_KEYS = {
    "type": True, "description": True, "values": False, "min": False, "max": False,
    "places": False, "unit": False, "required": False, "derived": False,
    "special": False, "convert": False, "item": False, "context": False, "not_before": False,
    "plausible": False, "detection_limit": False,
}
DERIVATION_KEYS = {
    "id": True, "fact": True, "function": False, "formula": False, "inputs": False, "params": False,
    "description": True, "given": False, "tolerance": False,
}
DEFINITION_KEYS = {"name": True, "expr": True, "description": False}
MAX_CRITERIA = 2000
CRITERION_KEYS = {
    "id": True, "kind": True, "title": True, "protocol": True, "note": False, "when": True,
    "ask": False, "consent": False,
}


def load_trial(path: str | os.PathLike[str], display: str | None = None) -> Trial:
    """Load and check a rules file. Returns the Trial; raises RulesError listing every problem.

    With SCREENER_CACHE_DIR set, a file checked before (same bytes, same shown path, same
    screener) is not checked again: its Trial is read from the cache (`screener.rules.cache`)."""
    shown = display or str(path)
    try:
        data = read_regular(path)  # a FIFO in a rules folder must not hang the scan
    except OSError as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "unreadable", exc.strerror or str(exc))]) from exc
    content_hash = hashlib.sha256(data).hexdigest()
    return cache.remembered("trial", lambda: (content_hash, shown),
                            lambda: _checked_trial(data, shown, content_hash), Trial)


def _checked_trial(data: bytes, shown: str, content_hash: str) -> Trial:
    with units.naming_rules():  # the unit codes asked about are the rules' own
        return _checked(data, shown, content_hash)


def _checked(data: bytes, shown: str, content_hash: str) -> Trial:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "unreadable", f"not UTF-8: {exc}")]) from exc
    problems: list[RuleProblem] = []
    document = load_yaml_text(text, shown, problems)
    return build_trial(document, shown, content_hash, problems)


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
    _mark_derived(top, facts)
    definitions = _definitions(check, top, facts)
    derivations = _derivations(check, top, facts, definitions)
    criteria = _criteria(check, top, facts, definitions)
    for span, code, message in check_derivations(facts, derivations):
        check.add(span, code, message)
    if head is not None:
        trial_id = check.text(head, "id", "trial")
        if trial_id and not is_safe_name(trial_id):
            # the id names folders and files (DIR/<trial>/, p1.<trial>.trace.jsonl)
            check.add(head.value_spans["id"], "bad-name",
                      f"trial id {trial_id!r} must be {SAFE_NAME_RULE}")
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


def _number(check: Checker, spec: PosDict, key: str, label: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        check.add(spec.value_spans[key], "wrong-type", f"{label}: {key} must be a number")
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
        built = _fact(check, name, spec, raw.key_spans[name], raw.value_spans[name], None)
        if built is not None:
            facts[name] = built
    for spec in facts.values():
        for field in spec.item:
            if field.name in facts:
                check.add(field.span, "bad-name", f"fact {spec.name}: item field {field.name!r} "
                          "has the name of a fact; aggregates read item fields by plain name")
    return facts


def _fact(check: Checker, name: str, spec: Any, where: Span, at: Span,
          owner: str | None) -> FactSpec | None:
    """One data-dictionary entry; `owner` is the list fact when this is a field of its items."""
    label = f"fact {name}" if owner is None else f"fact {owner}: item field {name}"
    if not isinstance(name, str) or not name.isidentifier():
        check.add(where, "bad-name", f"{label!r} must be a word (letters, digits, _)")
    entry = check.mapping(spec, at, label, FACT_KEYS)
    if entry is None:
        return None
    kind = entry.get("type")
    if kind not in FACT_TYPES or (owner is not None and kind == "list"):
        allowed = [t for t in FACT_TYPES if owner is None or t != "list"]
        nested = " (lists do not nest)" if kind == "list" else ""
        check.add(entry.value_spans.get("type", where), "wrong-type",
                  f"{label}: type {kind!r} is not one of {allowed}{nested}")
        return None
    for key in ("derived", "context", "required"):
        if owner is not None and key in entry:
            check.add(entry.key_spans[key], "unknown-key",
                      f"{label}: an item field cannot be {key!r}; it is given with its item")
    for key, kinds in _KIND_KEYS.items():
        if key in entry and kind not in kinds:
            check.add(entry.key_spans[key], "unknown-key",
                      f"{label}: only {' and '.join(kinds)} facts have {key!r}")
    values: tuple[str, ...] = ()
    if kind == "enum":
        listed = entry.get("values")
        if not isinstance(listed, PosList) or not listed or not all(isinstance(v, str) for v in listed):
            check.add(entry.value_spans.get("values", where), "wrong-type",
                      f"{label}: an enum needs 'values', a list of words")
        else:
            values = tuple(listed)
    places = entry.get("places", 2 if kind == "quantity" else 0)
    if not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= 6:
        check.add(entry.value_spans["places"], "wrong-type", f"{label}: places must be 0-6")
        places = 0
    for flag in ("required", "derived", "context"):
        if flag in entry and not isinstance(entry[flag], bool):
            check.add(entry.value_spans[flag], "wrong-type", f"{label}: {flag} must be true or false")
    if entry.get("context") is True and entry.get("derived") is True:
        check.add(entry.key_spans["context"], "unknown-key",
                  f"{label}: a context fact is given once per run, it cannot also be derived")
    unit = check.text(entry, "unit", label)
    convert: tuple[tuple[str, Decimal], ...] = ()
    affine: tuple[tuple[str, Decimal, Decimal], ...] = ()
    if kind == "quantity":
        if "unit" not in entry:
            check.add(entry.span, "unit", f"{label}: a quantity needs 'unit', a UCUM code")
        elif unit and _unit_problem(check, entry.value_spans["unit"], label, unit):
            unit = ""
        if "convert" in entry:
            convert, affine = _convert(check, entry, label, unit)
    plausible = _plausible(check, entry, label, unit, convert, affine) \
        if kind == "quantity" and "plausible" in entry else None
    item: tuple[FactSpec, ...] = ()
    if kind == "list":
        item = _item(check, entry, name, where)
    minimum, maximum = _number(check, entry, "min", label), _number(check, entry, "max", label)
    if minimum is not None and maximum is not None and minimum > maximum:
        check.add(entry.value_spans["min"], "wrong-type", f"{label}: min is above max")
    detection_limit = _detection_limit(check, entry, label, minimum, maximum) \
        if kind == "quantity" and "detection_limit" in entry else None
    return FactSpec(
        name=name, type=kind, description=check.text(entry, "description", label),
        span=where, values=values, minimum=minimum, maximum=maximum,
        places=places, unit=unit, required=entry.get("required") is True,
        derived_by="?" if entry.get("derived") is True and owner is None else None,
        context=entry.get("context") is True and owner is None, special=_special(check, entry, label),
        convert=convert, item=item, affine=affine, plausible=plausible,
        detection_limit=detection_limit, not_before=str(entry.get("not_before", "")) if owner is not None else "",
    )


_KIND_KEYS = {
    "values": ("enum",), "places": ("decimal", "quantity"), "convert": ("quantity",),
    "special": ("date",), "item": ("list",), "not_before": ("date",), "plausible": ("quantity",),
    "detection_limit": ("quantity",),
    "min": ("integer", "decimal", "quantity"), "max": ("integer", "decimal", "quantity"),
}


def _detection_limit(check: Checker, entry: Any, label: str, minimum: float | None,
                     maximum: float | None) -> Decimal | None:
    """`detection_limit: N`: a result "below the detection limit" given without its limit
    is below N, in the declared unit (the assay's limit, or a bound of the limits of every
    assay in use); it must leave room above the fact's minimum (or 0) and not pass its max."""
    number = _number(check, entry, "detection_limit", label)
    if number is None:
        return None
    limit = Decimal(str(number))
    floor = Decimal(0) if minimum is None or minimum < 0 else Decimal(str(minimum))
    if limit <= floor or (maximum is not None and limit > Decimal(str(maximum))):
        check.add(entry.value_spans["detection_limit"], "wrong-type",
                  f"{label}: detection_limit must be above {floor}"
                  + ("" if maximum is None else f" and at most the max {maximum}"))
        return None
    return limit


def _plausible(check: Checker, entry: Any, label: str, unit: str,
               convert: tuple[tuple[str, Decimal], ...],
               affine: tuple[tuple[str, Decimal, Decimal], ...]) -> Plausible | None:
    """`plausible: {min, max, units}`: the usual range in the declared unit, and the units a
    bare number outside it is often meant in (each must convert to the declared unit)."""
    at = entry.value_spans["plausible"]
    raw = check.mapping(entry["plausible"], at, f"{label}: plausible", {"min": False, "max": False,
                                                                         "units": False})
    if raw is None:
        return None
    bounds: list[Decimal | None] = []
    for key in ("min", "max"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            check.add(raw.value_spans[key], "wrong-type", f"{label}: plausible {key} must be a number")
            value = None
        bounds.append(None if value is None else Decimal(str(value)))
    listed = raw.get("units", [])
    codes: list[str] = []
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        check.add(raw.value_spans.get("units", at), "wrong-type",
                  f"{label}: plausible units must be a list of UCUM codes")
    else:
        factors = {**dict(convert), **{u: f for u, f, _ in affine}}
        offsets = {u: o for u, _, o in affine}
        for code in listed:
            try:
                units.exact_conversion(code, unit, factors, offsets)
            except units.UnitError:
                check.add(raw.value_spans["units"], "unit",
                          f"{label}: plausible unit {code} does not convert to {unit}")
                continue
            codes.append(code)
    return Plausible(bounds[0], bounds[1], tuple(codes))


def _unit_problem(check: Checker, at: Span, label: str, code: str) -> bool:
    """Record a `unit` problem when `code` is not a UCUM unit; True when there was one."""
    try:
        units.check_unit(code)
    except units.UnitError as exc:
        check.add(at, "unit", f"{label}: {exc}")
        return True
    return False


def _convert(check: Checker, entry: PosDict, label: str, unit: str) -> tuple[
        tuple[tuple[str, Decimal], ...], tuple[tuple[str, Decimal, Decimal], ...]]:
    """`convert: {unit: factor}` or `{unit: {factor: F, offset: O}}` (declared = given × F + O)."""
    raw = entry["convert"]
    plain: list[tuple[str, Decimal]] = []
    affine: list[tuple[str, Decimal, Decimal]] = []
    if not isinstance(raw, PosDict) or not raw:
        check.add(entry.value_spans["convert"], "wrong-type",
                  f"{label}: convert must map units to their factor into {unit or 'the unit'}")
        return (), ()
    for code, value in raw.items():
        at = raw.value_spans[code]
        if _unit_problem(check, raw.key_spans[code], label, str(code)):
            continue
        if code == unit:
            check.add(raw.key_spans[code], "unit", f"{label}: {code} is the declared unit itself")
            continue
        offset = None
        if isinstance(value, PosDict):
            shape = check.mapping(value, at, f"{label}: convert {code}", {"factor": True, "offset": False})
            offset = _decimal_number(value.get("offset", 0))
            if offset is None:
                check.add(value.value_spans.get("offset", at), "wrong-type",
                          f"{label}: convert {code}: offset must be a number")
                continue
            if shape is None or "factor" not in value:
                continue
            at, value = value.value_spans["factor"], value["factor"]
        scale = units.positive_factor(value) if isinstance(value, (int, float)) else None
        if scale is None:
            check.add(at, "wrong-type", f"{label}: convert {code}: the factor must be a positive number")
        elif offset:
            affine.append((str(code), scale, offset))
        else:
            plain.append((str(code), scale))
    return tuple(plain), tuple(affine)


def _decimal_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = Decimal(str(value))
    return number if number.is_finite() else None


def _special(check: Checker, entry: PosDict, label: str) -> tuple[Special, ...]:
    raw = entry.get("special")
    if raw is None or entry.get("type") != "date":
        return ()
    words = [s.value for s in Special]
    if not isinstance(raw, PosList) or not raw or any(w not in words for w in raw) or len(set(raw)) < len(raw):
        check.add(entry.value_spans["special"], "wrong-type",
                  f"{label}: special must be a list of {' and/or '.join(words)}")
        return ()
    return tuple(Special(w) for w in raw)


def _item(check: Checker, entry: PosDict, name: str, where: Span) -> tuple[FactSpec, ...]:
    raw = entry.get("item")
    if not isinstance(raw, PosDict) or not raw:
        check.add(entry.value_spans.get("item", entry.span), "wrong-type",
                  f"fact {name}: a list needs 'item', a mapping of field name to spec")
        return ()
    fields = []
    for field, spec in raw.items():
        built = _fact(check, str(field), spec, raw.key_spans[field], raw.value_spans[field], name)
        if built is not None:
            fields.append(built)
    dates = {f.name for f in fields if f.type == "date"}
    for field, spec in raw.items():
        if isinstance(spec, PosDict) and "not_before" in spec:
            other = spec["not_before"]
            if other not in dates or other == field:
                check.add(spec.value_spans["not_before"], "unknown-fact",
                          f"fact {name}: {field}: not_before must name another date field of the item, "
                          f"not {other!r}")
    return tuple(fields)


def _mark_derived(top: PosDict, facts: dict[str, FactSpec]) -> None:
    """Give every derived fact its derivation's id first, so formulas may read facts that a
    later derivation computes (the order of the file does not matter)."""
    raw = top.get("derivations")
    if not isinstance(raw, PosList):
        return
    for entry in raw:
        if isinstance(entry, PosDict) and isinstance(entry.get("fact"), str) and isinstance(entry.get("id"), str):
            spec = facts.get(entry["fact"])
            if spec is not None and spec.derived_by == "?":
                facts[spec.name] = _with_derivation(spec, entry["id"])


def _definitions(check: Checker, top: PosDict, facts: dict[str, FactSpec]) -> dict[str, Definition]:
    raw = top.get("definitions")
    out: dict[str, Definition] = {}
    if raw is None:
        return out
    if not isinstance(raw, PosList):
        check.add(top.value_spans["definitions"], "wrong-type", "definitions must be a list")
        return out
    declared = {item.get("name"): where for item, where in zip(raw, raw.item_spans) if isinstance(item, PosDict)}
    for item, where in zip(raw, raw.item_spans):
        entry = check.mapping(item, where, "a definition", DEFINITION_KEYS)
        if entry is None or "name" not in entry or "expr" not in entry:
            continue
        name = entry["name"]
        at = entry.value_spans["name"]
        if not isinstance(name, str) or not name.isidentifier():
            check.add(at, "bad-name", f"definition name {name!r} must be a word (letters, digits, _)")
            continue
        if name in facts:
            check.add(at, "duplicate-id", f"definition {name!r} has the name of a fact")
            continue
        if name in out:
            check.add(at, "duplicate-id", f"definition {name!r} is already given")
            continue
        expr_text = entry["expr"]
        expr_at = entry.value_spans["expr"]
        if isinstance(expr_text, bool) or isinstance(expr_text, (int, float)):
            expr_text = str(expr_text).lower()
        if not isinstance(expr_text, str):
            check.add(expr_at, "wrong-type", f"definition {name}: 'expr' must be an expression")
            continue
        try:
            expr, ty = Types(facts, out).value(expr_text)
        except ConditionError as exc:
            later = exc.code == "unknown-fact" and any(
                f"'{other}'" in exc.message.split(" is not")[0] for other in declared if other not in out)
            if later:
                check.add(_at(expr_at, expr_text, exc.offset), "cycle",
                          f"definition {name}: uses a definition that is not defined before it "
                          "(definitions may only use earlier ones, so they cannot form a cycle)")
            else:
                check.add(_at(expr_at, expr_text, exc.offset), exc.code, f"definition {name}: {exc.message}")
            continue
        out[name] = Definition(name, expr, ty)
    return out


def _at(at: Span, text: str, offset: int) -> Span:
    """The position of `offset` within text written at `at` (column moves on its first line)."""
    if "\n" in text[:offset]:
        return at
    return Span(at.path, at.line, at.column + offset)


def _derivations(check: Checker, top: PosDict, facts: dict[str, FactSpec],
                 definitions: dict[str, Definition]) -> list[Derivation]:
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
        if entry is None or not all(k in entry for k in ("id", "fact")):
            continue
        if "formula" in entry:
            for key in ("function", "inputs", "params"):
                if key in entry:
                    check.add(entry.key_spans[key], "unknown-key",
                              f"a derivation with a formula has no {key!r} (its inputs are the facts it reads)")
            rule_id = _new_id(check, entry, ids, "derivation")
            if rule_id is not None:
                derivation = _formula(check, entry, where, rule_id, facts, definitions)
                if derivation is not None:
                    out.append(derivation)
            continue
        if not all(k in entry for k in ("function", "inputs")):
            check.add(entry.span, "missing-key", "a derivation needs 'formula', or 'function' and 'inputs'")
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
        reported, tolerance = _given(check, entry, spec)
        out.append(Derivation(
            id=rule_id, fact=fact, function=str(entry["function"]), inputs=tuple(inputs),
            params=_plain(params), description=check.text(entry, "description", "derivation"), span=where,
            reported=reported, tolerance=tolerance,
        ))
    for name, spec in facts.items():
        if spec.derived_by == "?":
            check.add(spec.span, "no-derivation", f"fact {name!r} is marked derived but no derivation computes it")
    return out


def _formula(check: Checker, entry: PosDict, where: Span, rule_id: str, facts: dict[str, FactSpec],
             definitions: dict[str, Definition]) -> Derivation | None:
    fact = entry["fact"]
    spec = facts.get(fact)
    if spec is None:
        check.add(entry.value_spans["fact"], "unknown-fact",
                  f"derived fact {fact!r} is not in the data dictionary{suggest(str(fact), list(facts))}")
        return None
    if spec.derived_by is None:
        check.add(entry.value_spans["fact"], "not-derived",
                  f"fact {fact!r} is computed here but not marked 'derived: true'")
    text = entry["formula"]
    at = entry.value_spans["formula"]
    if isinstance(text, bool) or isinstance(text, (int, float)):
        text = str(text).lower()
    if not isinstance(text, str):
        check.add(at, "wrong-type", f"derivation {rule_id}: 'formula' must be an expression")
        return None
    try:
        expr, ty = Types(facts, definitions).value(text)
        expr = fit_formula(expr, ty, spec)
    except ConditionError as exc:
        check.add(_at(at, text, exc.offset), exc.code, f"derivation {rule_id}: {exc.message}")
        return None
    inputs = expr_facts(expr)
    if fact in inputs:
        check.add(at, "cycle", f"{fact!r} cannot be derived from itself")
        return None
    facts[fact] = _with_derivation(spec, rule_id)
    reported, tolerance = _given(check, entry, spec)
    return Derivation(
        id=rule_id, fact=fact, function="formula", inputs=inputs, params={},
        description=check.text(entry, "description", "derivation"), span=where, formula=expr,
        reported=reported, tolerance=tolerance,
    )


def _given(check: Checker, entry: PosDict, spec: FactSpec) -> tuple[bool, Decimal]:
    """`given:` and `tolerance:` of a derivation (docs/rules-language.md, "Reported
    measurements"): whether a given value is a reported measurement, and the difference from
    the computed value past which it is a warning."""
    given = entry.get("given", "same")
    if given not in ("same", "reported"):
        check.add(entry.value_spans["given"], "wrong-type",
                  f"given must be 'same' or 'reported', not {given!r}")
        return False, Decimal(0)
    reported = given == "reported"
    if reported and spec.type not in ("integer", "decimal", "quantity"):
        check.add(entry.value_spans["given"], "wrong-type",
                  f"only a number or quantity can be reported; {spec.name} is {spec.type}")
        return False, Decimal(0)
    if "tolerance" not in entry:
        return reported, Decimal(0)
    raw = entry["tolerance"]
    at = entry.value_spans["tolerance"]
    if not reported:
        check.add(at, "unknown-key", "a tolerance is for a reported value ('given: reported')")
        return reported, Decimal(0)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        check.add(at, "wrong-type", "tolerance must be a number in the fact's unit")
        return reported, Decimal(0)
    try:
        tolerance = Decimal(str(raw))
    except ArithmeticError:
        tolerance = Decimal(-1)
    if not tolerance.is_finite() or tolerance < 0:
        check.add(at, "wrong-type", f"tolerance must be a number of 0 or more, not {raw!r}")
        return reported, Decimal(0)
    return reported, tolerance


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


def _criteria(check: Checker, top: PosDict, facts: dict[str, FactSpec],
              definitions: dict[str, Definition]) -> list[Criterion]:
    raw = top.get("criteria")
    out: list[Criterion] = []
    if not isinstance(raw, PosList) or not raw:
        if "criteria" in top:
            check.add(top.value_spans["criteria"], "wrong-type", "criteria must be a non-empty list")
        return out
    if len(raw) > MAX_CRITERIA:
        check.add(top.value_spans["criteria"], "too-large", f"more than {MAX_CRITERIA:,} criteria")
        return out
    types = Types(facts, definitions)
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
            condition = types.condition(text)
        except ConditionError as exc:
            check.add(_at(at, text, exc.offset), exc.code, f"criterion {cid}: {exc.message}")
            continue
        ask = entry.get("ask", True)
        consent = entry.get("consent", False)
        if not isinstance(consent, bool) or (consent and kind != "inclusion"):
            check.add(entry.value_spans.get("consent", where), "wrong-type",
                      f"criterion {cid}: consent is true or false, and true only on an inclusion criterion")
            consent = False
        out.append(Criterion(
            id=cid, kind=str(kind), title=check.text(entry, "title", f"criterion {cid}"),
            protocol=check.text(entry, "protocol", f"criterion {cid}"),
            note=check.text(entry, "note", f"criterion {cid}"),
            condition_text=text, condition=condition, facts=expr_facts(condition),
            span=where, ask=ask is not False, consent=consent,
        ))
    return out
