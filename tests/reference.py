"""A second, deliberately plain evaluator of a rules file, to check the durable-rules engine.

It reads the same YAML, but shares none of the engine's parsing, type checking, compilation,
evaluation or derivation code: the language of docs/rules-language.md is tokenized, parsed
and evaluated exactly (decimal and calendar arithmetic, Kleene logic) in
tests/reference_lang.py, and the derivation functions are written here from the spec. Only
the YAML loader, value coercion (the batch contract for turning raw input into typed
values), the unit system's conversion factors and the model types come from `screener`.

    reference_decide(rules, fields, context=None)
        -> {"decision", "failed_criteria", "missing", "errors", "warnings"}

`rules` is a Trial, a rules-file path, or the document `load_yaml` returns; `fields` are the
raw input fields of one candidate (as a CSV/JSON row gives them); `context` the raw values
of context facts for the run. `missing` is None unless the decision is `undetermined`.

Errors: a value coercion refuses (named by its fact); a context fact given per candidate; a
derivation whose inputs are contradictory (dates out of order for a function, a derived value
out of its fact's range, a given value differing from the derived one), named by the derived
fact; a criterion that stays unknown because a value it reads could not be computed
although its inputs are known (a division by zero, an overflow), named by the facts that
criterion reads and that are known.

`warnings` names the reported facts (`given: reported`) whose given value is further than the
derivation's `tolerance` from the computed one; the given value decides.

`missing` follows the definition rather than any particular construction: an absent fact is
missing when answering it could move an unknown criterion out of unknown, i.e. there is some
way of answering or leaving unanswered the criterion's other absent facts under which the
criterion is still unknown, and some answer to this fact that then settles it. A derived
fact counts as an answerable fact; when it is missing, its absent inputs are missing too.
A given list is answered, even with unknown item fields, so it is never missing itself; its
unknown item fields are answered or left unanswered like the other absent facts while
another fact is tried (docs/rules-language.md, "How conditions reach durable-rules").
The answers tried are one value in each region the criterion's literals tell apart, plus
values beyond every edge (and `never`, `ongoing`, an empty list and a list of one unknown
item where the fact allows them).
"""
from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import Any, Callable

from screener.errors import InvalidValue
from screener.model import FactSpec, Interval, Plausible, Span, Special, Trial
from screener.rules.read import load_yaml
from screener.values import coerce

from reference_lang import (
    INF, NEVER, UNKNOWN, Cal, Day, Env, Q, Range, Unk, day, evaluate, item_truth, names_read, number,
    parse as parse_expr, to_unit,
)

MET, NOT_MET = True, False

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _num(value: Any) -> Any:
    """Decimals compare exactly: floats from input go through their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


# --- derivation functions, from the spec ----------------------------------------------------


def _shift_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` calendar months later; a day the month lacks becomes its last."""
    total = day.month - 1 + months
    year = day.year + total // 12
    month = total % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def completed_years(start: dt.date, end: dt.date) -> int:
    """Whole years lived from `start` to `end`; the birthday itself counts (29 Feb -> 28 Feb)."""
    years = end.year - start.year
    birthday = _shift_months(start, 12 * years)
    return years - 1 if end < birthday else years


def before_months_after(start: dt.date, event: dt.date, months: int) -> bool:
    """`event` strictly earlier than `start` plus `months` calendar months."""
    return event < _shift_months(start, months)


_BAND = re.compile(r"\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d+)?)\s*\Z")


@lru_cache(maxsize=None)
def _band(band: str) -> tuple[Callable[[Any, Any], bool], Decimal]:
    m = _BAND.match(band)
    if m is None:
        raise ValueError(f"band {band!r}")
    return _COMPARE[m.group(1)], Decimal(m.group(2))


def _in_band(band: str, number: Any) -> bool:
    compare, edge = _band(band)
    return compare(_num(number), edge)


def banded_score(values: dict[str, Any], points: dict[str, Any], classes: list[Any]) -> str:
    total = 0
    for name, table in points.items():
        value = values[name]
        if isinstance(table, dict):
            total += int(table[value])
        else:
            total += next(int(p) for p, band in table if _in_band(band, value))
    for label, band in classes:
        if _in_band(band, total):
            return str(label)
    raise ValueError(f"Child-Pugh-like total {total} is in no class")


def banded_whatever(known: dict[str, Any], points: dict[str, Any], classes: list[Any],
                    normal: bool = False) -> str | None:
    """The class of a banded score whatever its unknown parts are: every row of points each
    unknown part may score is tried in turn (with the known parts' points); the one class all
    totals fall in, or None. `normal`: an unknown part is normal, so it scores only the
    fewest points its table gives."""
    fixed = 0
    rows: list[list[int]] = []
    for name, table in points.items():
        if name in known:
            value = known[name]
            fixed += int(table[value]) if isinstance(table, dict) else \
                next(int(p) for p, band in table if _in_band(band, value))
        else:
            row = [int(p) for p in (table.values() if isinstance(table, dict) else (p for p, _ in table))]
            rows.append([min(row)] if normal else row)
    labels = set()
    for combination in _all_rows(rows):
        total = fixed + sum(combination)
        labels.add(next((str(label) for label, band in classes if _in_band(band, total)), None))
    return labels.pop() if len(labels) == 1 and None not in labels else None


def _all_rows(rows: list[list[int]]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for row in rows:
        out = [done + (p,) for done in out for p in row]
    return out


def _derive(function: str, inputs: list[str], params: dict[str, Any], values: dict[str, Any]) -> Any:
    args = [values[name] for name in inputs]
    if function == "completed_years":
        return completed_years(*args)
    if function == "before_months_after":
        return before_months_after(args[0], args[1], int(params["months"]))
    if function == "banded_score":
        return banded_score(values, params["points"], params["classes"])
    raise ValueError(f"unknown function {function!r}")


# --- the trial, read from the YAML document -------------------------------------------------

SEARCH_BUDGET = 4000  # condition evaluations tried per fact before the shortcut


class _OutOfBudget(Exception):
    pass


_NOWHERE = Span("<reference>", 0, 0)
_NONE = object()
_FUNCTION_DATES = ("completed_years", "before_months_after")


def conv_of(spec: FactSpec) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """A quantity fact's analyte conversions: ({unit: factor}, {unit: offset})."""
    factors = dict(spec.convert)
    offsets: dict[str, Decimal] = {}
    for unit, factor, offset in getattr(spec, "affine", ()):
        factors[unit] = factor
        offsets[unit] = offset
    return factors, offsets


def fact_spec(name: str, entry: dict[str, Any]) -> FactSpec:
    kind = entry["type"]
    unit = str(entry.get("unit", "") or "")
    plain, affine = [], []
    for code, how in (entry.get("convert") or {}).items():
        if isinstance(how, dict):
            affine.append((str(code), Decimal(str(how["factor"])), Decimal(str(how.get("offset", 0)))))
        else:
            plain.append((str(code), Decimal(str(how))))
    extra: dict[str, Any] = {"affine": tuple(affine)} if "affine" in FactSpec.__slots__ else {}  # type: ignore[attr-defined]
    if entry.get("detection_limit") is not None:
        extra["detection_limit"] = Decimal(str(entry["detection_limit"]))
    if isinstance(entry.get("plausible"), dict):
        usual = entry["plausible"]
        bound = lambda key: None if usual.get(key) is None else Decimal(str(usual[key]))  # noqa: E731
        extra["plausible"] = Plausible(bound("min"), bound("max"), tuple(usual.get("units", ())))
    return FactSpec(**extra, 
        name=name, type=kind, description="", span=_NOWHERE,
        values=tuple(entry.get("values", ())),
        minimum=entry.get("min"), maximum=entry.get("max"),
        places=entry.get("places", 2 if kind == "quantity" else 0),
        unit=unit, required=bool(entry.get("required", False)),
        context=bool(entry.get("context", False)),
        special=tuple(Special(s) for s in entry.get("special", ()) or ()),
        convert=tuple(plain),
        item=tuple(fact_spec(n, e) for n, e in (entry.get("item") or {}).items()),
        derived_by="derived" if entry.get("derived") else None,
    )


def runtime(spec: FactSpec, value: Any) -> Any:
    """The evaluator's form of a typed fact value."""
    if value is None:
        return UNKNOWN
    if value is Special.NEVER or value == "never" and spec.type == "date":
        return NEVER
    if value is Special.ONGOING or value == "ongoing" and spec.type == "date":
        return Day(INF)
    if spec.type == "date":
        return day(value)
    if spec.type in ("integer", "decimal"):
        return number(value)
    if spec.type == "quantity":
        return Q(number(value), spec.unit, spec.name)
    if spec.type == "list":
        fields = {f.name: f for f in spec.item}
        return tuple({n: runtime(fields[n], v) for n, v in dict(item).items() if n in fields}
                     for item in value)
    return value


_BARE = re.compile(r"\s*[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?\s*\Z")


def _likely_unit(spec: FactSpec, raw: Any, value: Any) -> str | None:
    """The unit a bare number outside the fact's usual range is usual in, if one of the rules'
    `plausible: units` is (read by this evaluator's own conversions); else None."""
    usual = getattr(spec, "plausible", None)
    if usual is None or not isinstance(value, Decimal):
        return None
    bare = isinstance(raw, (int, float, Decimal)) and not isinstance(raw, bool) \
        or isinstance(raw, str) and _BARE.match(raw)
    inside = lambda v: (usual.low is None or v >= usual.low) and (usual.high is None or v <= usual.high)  # noqa: E731
    if not bare or inside(value):
        return None
    for code in usual.units:
        try:
            meant = to_unit(Q(value, code, spec.name), spec.unit, conv_of(spec))
        except Exception:
            continue
        if inside(meant):
            return code
    return None


def _fits(spec: FactSpec, value: Any) -> bool:
    """A derived value inside its fact's type and range (a quantity by its bounds alone: a
    computed value may carry more digits than any given one)."""
    if spec.type == "quantity":
        return not ((spec.minimum is not None and value < Decimal(str(spec.minimum)))
                    or (spec.maximum is not None and value > Decimal(str(spec.maximum))))
    try:
        coerce(spec, value)
    except InvalidValue:
        return False
    return True


def _same_to_given_precision(given: Any, derived: Any) -> bool:
    """A given derived fact agrees with the computed value when the computed value lies within
    half a unit of the given value's last digit (a tie goes to the even last digit)."""
    if isinstance(given, bool) or not isinstance(given, (int, float, Decimal)) \
            or not isinstance(derived, (float, Decimal)):
        return _num(given) == _num(derived)
    g = Decimal(repr(given)) if isinstance(given, float) else Decimal(given)
    d = Decimal(repr(derived)) if isinstance(derived, float) else derived
    unit = Decimal(1).scaleb(g.as_tuple().exponent)
    with localcontext() as context:
        context.prec = 100
        distance = abs(d - g)
        half = unit / 2
    if distance != half:
        return distance < half
    return int(g.scaleb(-g.as_tuple().exponent)) % 2 == 0


def typed_of(spec: FactSpec, value: Any) -> Any:
    """A computed runtime value as the typed value of `spec` (for range checks), or raise."""
    if spec.type == "date":
        if value is NEVER:
            return Special.NEVER
        if isinstance(value, Day):
            if value.ongoing:
                return Special.ONGOING
            return dt.date.fromordinal(int(value.ordinal))
    if spec.type == "boolean" and isinstance(value, bool):
        return value
    if spec.type in ("enum", "text") and isinstance(value, str):
        return value
    if spec.type in ("integer", "decimal", "quantity"):
        if isinstance(value, Q):
            value = to_unit(value, spec.unit or value.unit, conv_of(spec))
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ArithmeticError("not a finite number")
            if spec.type == "integer":
                return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            # never rounded to places: places are for display only
            return float(value) if spec.type == "decimal" else value
    raise TypeError(f"{value!r} is not a {spec.type}")


@dataclass
class _Criterion:
    id: str
    kind: str
    cond: tuple
    facts: list[str]
    ask: bool
    read_once: bool | None = None


@dataclass
class _Derivation:
    fact: str
    function: str | None
    inputs: list[str]
    params: dict[str, Any]
    formula: tuple | None
    reported: bool = False  # `given: reported`: a given value decides; a far one warns
    tolerance: Decimal = Decimal(0)


class Reference:
    """The trial of one rules document, ready to decide candidates."""

    def __init__(self, doc: dict[str, Any]):
        self.id_fact = doc["trial"].get("id_fact", "candidate_id")
        self.facts: dict[str, FactSpec] = {n: fact_spec(n, e) for n, e in doc["facts"].items()}
        self.order = {name: i for i, name in enumerate(self.facts)}
        self.items = {n: {f.name: f for f in s.item} for n, s in self.facts.items() if s.type == "list"}
        self.units = {n: s.unit for n, s in self.facts.items() if s.type == "quantity"}
        self.converts = {n: conv_of(s) for n, s in self.facts.items() if s.type == "quantity"}
        for spec in self.facts.values():  # item fields: their names are their own
            self.converts.update({f.name: conv_of(f) for f in spec.item if f.type == "quantity"})
        self.specials = {n: frozenset(w.value for w in s.special) for n, s in self.facts.items()}
        for spec in self.facts.values():
            self.specials.update({f.name: frozenset(w.value for w in f.special) for f in spec.item})
        self.bounds = {name: str(e["not_before"]) for spec in doc["facts"].values()
                       for name, e in (spec.get("item") or {}).items() if "not_before" in e}
        self.choices = {f.name: (True, False) if f.type == "boolean" else tuple(f.values)
                        for spec in self.facts.values() for f in spec.item if f.type in ("boolean", "enum")}
        self.definitions: dict[str, tuple] = {}
        raw_defs = doc.get("definitions") or []
        names = {d["name"]: None for d in raw_defs}
        for d in raw_defs:
            self.definitions[d["name"]] = self.parse(str(d["expr"]), names)
        self.derivations = []
        for d in doc.get("derivations") or []:
            formula = self.parse(str(d["formula"])) if "formula" in d else None
            inputs = names_read(formula, self.definitions) if formula else list(d["inputs"])
            self.derivations.append(_Derivation(d["fact"], d.get("function"), inputs,
                                                dict(d.get("params") or {}), formula,
                                                d.get("given", "same") == "reported",
                                                Decimal(str(d.get("tolerance", 0)))))
        self.derived_by = {d.fact: d for d in self.derivations}
        self.criteria = []
        for c in doc["criteria"]:
            cond = self.parse(str(c["when"]))
            self.criteria.append(_Criterion(c["id"], c["kind"], cond,
                                            names_read(cond, self.definitions), c.get("ask", True)))
        self._options: dict[tuple[str, str], list[Any]] = {}

    def parse(self, text: str, definitions: dict[str, Any] | None = None) -> tuple:
        return parse_expr(text, self.facts, definitions if definitions is not None else self.definitions,
                          self.items)

    def env(self, values: dict[str, Any]) -> Env:
        env = Env(values, self.definitions, self.units, self.converts, self.specials)
        env.choices = self.choices
        env.bounds = self.bounds
        return env

    # -- values ---------------------------------------------------------------------------

    def typed(self, fields: dict[str, Any], context: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        errors: list[str] = []
        for source, given in ((fields, False), (context, True)):
            for name, raw in source.items():
                spec = self.facts.get(name)
                if spec is None or name == self.id_fact:
                    continue
                if spec.context != given:
                    if not given and raw is not None and str(raw).strip() != "":
                        errors.append(f"{name}: {raw!r}: a context fact is given once per run")
                    continue
                try:
                    value = coerce(spec, raw)
                except InvalidValue as exc:
                    errors.append(str(exc))
                    continue
                if (likely := _likely_unit(spec, raw, value)) is not None:
                    errors.append(f"{name}: {likely}")
                    continue
                if value is not None:
                    values[name] = value
        return values, errors

    def complete(self, typed: dict[str, Any], rt: dict[str, Any]) -> list[str]:
        """Add derived facts: a function's once its inputs are all known, a formula's as soon
        as the known facts give it a value (an `if` needs its test and the branch it takes);
        returns the contradictory facts, in the data dictionary's order (none: an empty
        list). A given value that contradicts its derivation stays, and later derivations
        read it."""
        changed = True
        done: set[str] = set()
        contradictory: list[str] = []
        while changed:
            changed = False
            for d in self.derivations:
                if d.fact in done:
                    continue
                if any(isinstance(rt[name], Unk) for name in d.inputs if name in rt):
                    continue  # an input that could not be computed is unknown here too
                settled = None
                if d.function == "banded_score" and not all(name in rt for name in d.inputs):
                    gate = d.params.get("normal_unless")
                    settled = banded_whatever({n: typed[n] for n in d.inputs if n in typed and n != gate},
                                              d.params["points"], d.params["classes"],
                                              normal=gate is not None and typed.get(gate) is False)
                    if settled is None:
                        continue  # the unknown parts could still change the class
                elif not all(name in rt for name in d.inputs) and (
                        d.formula is None or isinstance(evaluate(d.formula, self.env(rt)), Unk)):
                    continue  # not yet: more answers may give it
                done.add(d.fact)
                spec = self.facts[d.fact]
                if settled is not None:
                    value = settled
                elif d.formula is None:
                    args = [typed[name] for name in d.inputs]
                    if d.function in _FUNCTION_DATES and not all(isinstance(a, dt.date) for a in args):
                        continue  # never/ongoing: no completed years to count
                    if d.function in _FUNCTION_DATES and args[1] < args[0]:
                        contradictory.append(d.fact)
                        continue
                    value = _derive(d.function or "", d.inputs, d.params, typed)
                else:
                    result = evaluate(d.formula, self.env(rt))
                    if isinstance(result, Unk):
                        if d.fact not in rt:
                            rt[d.fact] = Unk(result.reasons | {f"{d.fact}: cannot be computed"})
                            changed = True
                        continue
                    try:
                        value = typed_of(spec, result)
                    except (ArithmeticError, TypeError):
                        if d.fact not in rt:
                            rt[d.fact] = Unk(frozenset({f"{d.fact}: cannot be computed"}))
                            changed = True
                        continue
                if not _fits(spec, value):
                    contradictory.append(d.fact)
                    continue
                if d.fact in typed and d.reported:
                    # a reported measurement stays and decides; far from the computation it warns
                    self.reported_pairs[d.fact] = (_num(typed[d.fact]), _num(value))
                    if abs(_num(typed[d.fact]) - _num(value)) > d.tolerance:
                        self.warned.append(d.fact)
                elif d.fact in typed:
                    if not _same_to_given_precision(typed[d.fact], value):
                        contradictory.append(d.fact)
                else:
                    typed[d.fact] = value
                    rt[d.fact] = runtime(spec, value)
                    changed = True
        return sorted(contradictory, key=self.order.__getitem__)

    # -- missing facts ----------------------------------------------------------------------

    def options(self, criterion: _Criterion, name: str) -> list[Any]:
        """Runtime answers to `name`: one in each region the criterion's literals tell apart,
        and beyond every edge."""
        key = (criterion.id, name)
        if key in self._options:
            return self._options[key]
        spec = self.facts[name]
        literals = _literals(criterion.cond, self.definitions)
        opts: list[Any]
        if spec.type == "boolean":
            opts = [True, False]
        elif spec.type == "enum":
            opts = list(spec.values)
        elif spec.type in ("integer", "decimal", "quantity"):
            step = Decimal(1) if spec.type == "integer" else Decimal("0.01")
            cuts = {v for v in literals if isinstance(v, Decimal)}
            cuts |= {v.value for v in literals if isinstance(v, Q)}
            nums = sorted({c + d for c in cuts for d in (-step, 0, step)} | {Decimal(-10**9), Decimal(10**9)})
            opts = [Q(n, spec.unit, name) if spec.type == "quantity" else n for n in nums]
        elif spec.type == "date":
            cuts = {v.ordinal for v in literals if isinstance(v, Day)}
            opts = [Day(o) for o in sorted({c + d for c in cuts for d in (-1, 0, 1)}
                                           | {Decimal(1), Decimal(dt.date(9000, 1, 1).toordinal())})]
            if Special.NEVER in spec.special:
                opts.append(NEVER)
            if Special.ONGOING in spec.special:
                opts.append(Day(INF))
        elif spec.type == "list":
            self._options[key] = [(), ({},)]  # while the items' own answers are found
            opts = [(), ({},)] + self.completions(criterion, name, ({},))
        else:
            opts = sorted({v for v in literals if isinstance(v, str)}) + ["\x00other"]
        self._options[key] = opts
        return opts

    def completions(self, criterion: _Criterion, name: str, items: tuple) -> list[tuple]:
        """Ways of filling the unknown fields of a given list's items: the k-th answer of
        every unknown field together, for each k."""
        fields = {f.name: f for f in self.facts[name].item}
        options = {f: self.field_options(criterion, name, spec) for f, spec in fields.items()}
        width = max((len(o) for o in options.values()), default=0)
        out = []
        for k in range(width):
            out.append(tuple({f: (item[f] if not isinstance(item.get(f, UNKNOWN), Unk)
                                  else options[f][k % len(options[f])]) for f in fields}
                             for item in items))
        return out

    def field_options(self, criterion: _Criterion, name: str, spec: FactSpec) -> list[Any]:
        key = (criterion.id, f"{name}.{spec.name}")
        if key not in self._options:
            saved = self.facts.get(spec.name)
            self.facts[spec.name] = spec
            try:
                self._options[key] = [v for v in self.options(criterion, spec.name) if v != ()]
            finally:
                del self._options[(criterion.id, spec.name)]
                if saved is None:
                    del self.facts[spec.name]
                else:
                    self.facts[spec.name] = saved
        return self._options[key]

    def partial(self, rt: dict[str, Any], name: str) -> bool:
        """A given list with an item field left unknown."""
        value = rt.get(name)
        return isinstance(value, tuple) and any(
            isinstance(item.get(f.name, UNKNOWN), Unk) for item in value for f in self.facts[name].item)

    def could_settle(self, criterion: _Criterion, values: dict[str, Any], fact: str) -> bool:
        """Is there a way of (not) answering the other absent facts that leaves the criterion
        unknown, and an answer to the absent `fact` that then settles it? A given list is an
        answer, unknown item fields and all: it is never the fact tried, but its unknown item
        fields are answered or left unanswered like the other absent facts."""
        others = [name for name in criterion.facts
                  if name != fact and (name not in values or self.partial(values, name))]
        trial_values = dict(values)
        fact_options = self.options(criterion, fact)

        budget = [SEARCH_BUDGET]

        def unknown() -> bool:
            budget[0] -= 1
            if budget[0] < 0:
                raise _OutOfBudget
            return isinstance(evaluate(criterion.cond, self.env(trial_values)), Unk)

        def search(i: int) -> bool:
            if not unknown():
                return False  # settled without `fact`; more answers keep it settled
            for option in fact_options:
                trial_values[fact] = option
                settled = not unknown()
                del trial_values[fact]
                if settled:
                    return True
            for j in range(i, len(others)):
                name = others[j]
                given = values.get(name, _NONE)
                answers = (self.options(criterion, name) if given is _NONE
                           else self.completions(criterion, name, given))
                for option in answers:
                    trial_values[name] = option
                    found = search(j + 1)
                    if given is _NONE:
                        del trial_values[name]
                    else:
                        trial_values[name] = given
                    if found:
                        return True
            return False

        try:
            return search(0)
        except _OutOfBudget:
            # too many answers to try: decide by the comparisons reached through unknown
            # and/or/not, which is the same for conditions whose comparisons are independent
            reached: set[str] = set()
            self.relevant(criterion.cond, self.env(values), reached)
            return fact in reached

    def read_once(self, criterion: _Criterion) -> bool:
        """Each comparison reads at most one fact, and no fact is read twice."""
        if criterion.read_once is None:
            seen: list[str] = []
            for leaf in _leaves(criterion.cond, self.definitions):
                names = names_read(leaf, self.definitions)
                seen.extend(names)
                if len(names) > 1:
                    criterion.read_once = False
                    return False
            criterion.read_once = len(seen) == len(set(seen))
        return criterion.read_once

    def stuck(self, criterion: _Criterion, rt: dict[str, Any]) -> bool:
        """Some comparison of the criterion reads only answered facts (no list with unknown
        item fields) and is still unknown: no answer can move it (the latest of an empty list
        of readings), so the others cannot each be answered either way."""
        env = self.env(rt)
        for leaf in _leaves(criterion.cond, self.definitions):
            names = names_read(leaf, self.definitions)
            if all(n in rt and not isinstance(rt[n], Unk) and not self.partial(rt, n) for n in names):
                got = evaluate(leaf, env)
                if isinstance(got, Unk) and not got.reasons:
                    return True
        return False

    def relevant(self, e: tuple, env: Env, out: set[str]) -> None:
        """For a read-once condition: the absent facts of the unknown comparisons reached
        through unknown `and`/`or`/`not` only. Each other comparison can be answered either
        way, so these are exactly the facts the definition calls missing."""
        if e[0] == "def":
            self.relevant(self.definitions[e[1]], env, out)
        elif e[0] == "not":
            self.relevant(e[1], env, out)
        elif e[0] in ("and", "or"):
            for part in e[1]:
                if isinstance(evaluate(part, env), Unk):
                    self.relevant(part, env, out)
        else:
            out.update(n for n in names_read(e, self.definitions) if n not in env.values)

    def awaited(self, e: tuple, env: Env) -> list[str]:
        """The facts of every `pending(...)` that an unknown condition reaches through its
        unknown `and`/`or`/`not` parts: what they describe is to be collected (again), so
        they are named whether given or not."""
        if e[0] == "def":
            return self.awaited(self.definitions[e[1]], env)
        if e[0] == "pending":
            return [arg[1] for arg in e[1]]
        if e[0] == "not":
            return self.awaited(e[1], env)
        if e[0] in ("and", "or"):
            return [name for part in e[1] if isinstance(evaluate(part, env), Unk)
                    for name in self.awaited(part, env)]
        return []

    def missing(self, outcomes: dict[str, Any], rt: dict[str, Any]) -> list[str]:
        found: set[str] = set()
        for criterion in self.criteria:
            if not isinstance(outcomes[criterion.id], Unk) or not criterion.ask:
                continue
            if (self.read_once(criterion) and not any(self.partial(rt, n) for n in criterion.facts)
                    and not self.stuck(criterion, rt)):
                reached: set[str] = set()
                self.relevant(criterion.cond, self.env(rt), reached)
                pending = [name for name in criterion.facts if name in reached]
            else:
                pending = [name for name in criterion.facts
                           if name not in rt and self.could_settle(criterion, rt, name)]
            pending.extend(self.awaited(criterion.cond, self.env(rt)))
            while pending:
                name = pending.pop()
                found.add(name)
                d = self.derived_by.get(name)
                if d is not None:
                    pending.extend(i for i in d.inputs if i not in rt and i not in found)
        return sorted(found, key=self.order.__getitem__)

    # -- lists to complete ---------------------------------------------------------------------

    def to_complete(self, outcomes: dict[str, Any], rt: dict[str, Any]) -> list[str]:
        """The entries of given lists to complete (docs/batch-io.md, "Lists to complete"):
        `L[n].f` for an unknown field of item n whose part of an aggregate keeping an unknown
        criterion unknown is unknown, `L[]` for an empty list whose latest (lowest, highest)
        value is wanted. Ordered by list (data dictionary), item, field (item order)."""
        found: dict[tuple[int, int, int], str] = {}
        for criterion in self.criteria:
            if not isinstance(outcomes[criterion.id], Unk) or not criterion.ask:
                continue
            for node in self._open(criterion.cond, rt):
                for key, name in self._incomplete(node, rt):
                    found.setdefault(key, name)
        return [found[key] for key in sorted(found)]

    def _open(self, e: tuple, rt: dict[str, Any]) -> list[tuple]:
        """The aggregates over given lists an unknown condition depends on: through `not` and
        the unknown parts of `and`/`or`, then every aggregate of a part whose value is open."""
        env = self.env(rt)
        if e[0] == "def":
            return self._open(self.definitions[e[1]], rt)
        if e[0] == "not":
            return self._open(e[1], rt)
        if e[0] in ("and", "or"):
            out: list[tuple] = []
            for part in e[1]:
                got = evaluate(part, env)
                if isinstance(got, Unk) and not got.reasons:
                    out.extend(self._open(part, rt))
            return out
        out = []
        stack: list[Any] = [e]
        while stack:
            node = stack.pop()
            if not isinstance(node, tuple) or not node:
                continue
            if not isinstance(node[0], str):
                stack.extend(reversed(node))
                continue
            if node[0] == "def":
                stack.append(self.definitions[node[1]])
                continue
            if node[0] == "call" and node[1] in _AGGREGATES:
                listed = node[2][0][1]
                value = rt.get(listed)
                if isinstance(value, tuple):
                    got = evaluate(node, env)
                    if isinstance(got, Range) or (isinstance(got, Unk) and not got.reasons):
                        out.append(node)
                continue
            if node[0] in ("lit", "word", "fact", "field"):
                continue
            stack.extend(reversed(node[1:]))
        return out

    def _incomplete(self, node: tuple, rt: dict[str, Any]) -> list[tuple[tuple[int, int, int], str]]:
        name, args = node[1], node[2]
        listed = args[0][1]
        items = rt[listed]
        fields = list(self.items[listed])
        rank = self.order[listed]
        env = self.env(rt)

        def unknown(expr: tuple, i: int) -> list[tuple[tuple[int, int, int], str]]:
            if expr[0] == "def":
                return unknown(self.definitions[expr[1]], i)
            if expr[0] == "not":
                return unknown(expr[1], i)
            if expr[0] in ("and", "or"):
                out: list[tuple[tuple[int, int, int], str]] = []
                for part in expr[1]:
                    got = at(part, items[i])
                    if isinstance(got, Unk) and not got.reasons:
                        out.extend(unknown(part, i))
                return out
            read = [n for n in names_read(expr, self.definitions, fields=True) if n in fields]
            return [((rank, i + 1, fields.index(n)), f"{listed}[{i + 1}].{n}")
                    for n in read if isinstance(items[i].get(n, UNKNOWN), Unk)]

        def at(expr: tuple, item: dict[str, Any]) -> Any:
            env.item = item
            try:
                return evaluate(expr, env)
            finally:
                env.item = None

        if name == "count" and len(args) == 1:
            return []
        if name == "latest":
            keys = [at(args[1], item) for item in items]
            if any(isinstance(k, Unk) and not k.reasons for k in keys):
                return [entry for i, k in enumerate(keys) if isinstance(k, Unk) and not k.reasons
                        for entry in unknown(args[1], i)]
            dated = [(k.ordinal, i) for i, k in enumerate(keys) if isinstance(k, Day)]
            if not dated:
                return [((rank, 0, 0), f"{listed}[]")]
            best = max(dated)[1]
            got = at(args[2], items[best])
            return unknown(args[2], best) if isinstance(got, Unk) and not got.reasons else []
        if not items:
            return [((rank, 0, 0), f"{listed}[]")] if name in ("min_of", "max_of") else []
        out = []
        for i, item in enumerate(items):
            got = item_truth(args[1], env, item) if name in ("any", "all", "count") else at(args[1], item)
            if isinstance(got, Unk) and not got.reasons:
                out.extend(unknown(args[1], i))
        return out

    # -- the decision ------------------------------------------------------------------------

    def decide(self, fields: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
        typed, errors = self.typed(fields, context or {})
        if errors:
            return _error(errors)
        if any(isinstance(v, Interval) for v in typed.values()):
            return self.decide_ranged(typed)
        rt = {name: runtime(self.facts[name], value) for name, value in typed.items()}
        self.warned: list[str] = []
        self.reported_pairs: dict[str, tuple[Any, Any]] = {}
        contradictory = self.complete(typed, rt)
        if contradictory:
            return _error([f"{name}: contradicts its inputs" for name in contradictory])
        env = self.env(rt)
        outcomes = {c.id: evaluate(c.cond, env) for c in self.criteria}
        broken = [c for c in self.criteria if isinstance(outcomes[c.id], Unk) and outcomes[c.id].reasons]
        if broken:
            return _error([f"{name}: {_show(rt[name])}: {c.id} cannot be decided"
                           for c in broken for name in c.facts
                           if name in rt and not isinstance(rt[name], Unk)])
        failed = [c.id for c in self.criteria
                  if outcomes[c.id] is (NOT_MET if c.kind == "inclusion" else MET)]
        if failed:
            decision = "ineligible"
        elif all(not isinstance(outcomes[c.id], Unk) for c in self.criteria):
            decision = "eligible"
        else:
            decision = "undetermined"
        missing = (self.missing(outcomes, rt) + self.to_complete(outcomes, rt)
                   if decision == "undetermined" else None)
        return {"decision": decision, "failed_criteria": failed, "missing": missing, "errors": [],
                "warnings": sorted(self.warned, key=self.order.__getitem__)}


    # -- values known as a range (docs/rules-language.md, "Values known as a range") ---------
    # Decided the plain way, by trying the values: each ranged fact takes every day of its
    # month or year, or the ends of its range (just inside an open end), every literal of the
    # trial inside it and the values just beside those; the candidate is decided once per
    # combination and a criterion is met (not met) when it is in every one, else unknown.

    def range_points(self, name: str, value: Interval) -> list[Any]:
        spec = self.facts[name]
        if spec.type == "date":
            first, last = value.low.toordinal(), value.high.toordinal()
            if last - first <= MAX_RANGE_DAYS:
                return [dt.date.fromordinal(o) for o in range(first, last + 1)]
            cuts = {v.ordinal for c in self.criteria for v in _literals(c.cond, self.definitions)
                    if isinstance(v, Day) and not v.ongoing}
            inside = {int(c) + d for c in cuts for d in (-1, 0, 1)} | {first, last}
            return [dt.date.fromordinal(o) for o in sorted(inside) if first <= o <= last]
        low = value.low if value.low is not None else (value.high - 10**9)
        high = value.high if value.high is not None else (value.low + 10**9)
        near = Decimal("1e-9")
        points = {low + near if value.low_open or value.low is None else low,
                  high - near if value.high_open or value.high is None else high, (low + high) / 2}
        cuts = set()
        for e in [c.cond for c in self.criteria] + [d.formula for d in self.derivations if d.formula]:
            for v in _literals(e, self.definitions):
                if isinstance(v, Decimal):
                    cuts.add(v)
                elif isinstance(v, Q):
                    try:
                        cuts.add(to_unit(v, spec.unit, conv_of(spec)) if spec.unit else v.value)
                    except Exception:
                        cuts.add(v.value)
        for d in self.derivations:  # the band limits of a score
            table = (d.params.get("points") or {}).get(name) if d.function == "banded_score" else None
            for row in table if isinstance(table, list) else ():
                cuts.add(_band(row[1])[1])
        points |= {c + d for c in cuts for d in (-near, 0, near)}
        kept = sorted(p for p in points if value.contains(p))
        return [int(p) if spec.type == "integer" else float(p) if spec.type == "decimal" else p
                for p in kept if spec.type != "integer" or p == p.to_integral_value()]

    def decide_ranged(self, typed: dict[str, Any]) -> dict[str, Any]:
        ranged = {n: v for n, v in typed.items() if isinstance(v, Interval)}
        choices = [self.range_points(n, v) for n, v in ranged.items()]
        if len(list(itertools.islice(itertools.product(*choices), MAX_RANGE_COMBINATIONS + 1))) \
                > MAX_RANGE_COMBINATIONS:
            raise ValueError("too many values to try: draw fewer or narrower ranges")
        # every combination's facts first: a fact contradicted by its inputs in every one is
        # an error; one contradicted in some only is unknown there (a given value stays)
        rts: list[dict[str, Any]] = []
        warned: set[str] = set()
        pairs: dict[str, list[tuple[Decimal, Decimal]]] = {}
        always_bad: set[str] | None = None
        for combination in itertools.product(*choices):
            one = {**typed, **dict(zip(ranged, combination))}
            rt = {name: runtime(self.facts[name], value) for name, value in one.items()}
            self.warned, self.reported_pairs = [], {}
            bad = set(self.complete(one, rt))
            for name, pair in self.reported_pairs.items():
                pairs.setdefault(name, []).append(pair)
            always_bad = bad if always_bad is None else always_bad & bad
            rts.append(rt)
        # a reported value is far from the computation when the values it and the computation
        # take (both vary smoothly with the ranges) are further apart than the tolerance
        for name, got in pairs.items():
            given, computed = [g for g, _ in got], [c for _, c in got]
            gap = max(Decimal(0), min(given) - max(computed), min(computed) - max(given))
            if gap > self.derived_by[name].tolerance:
                warned.add(name)
        if always_bad:
            return _error([f"{name}: contradicts its inputs" for name in sorted(always_bad, key=self.order.__getitem__)])
        # a derived yes/no, class or text that differs between the values is unknown, as the
        # engine keeps only numbers and dates as ranges
        for name, d in self.derived_by.items():
            if name in typed or self.facts[name].type not in ("boolean", "enum", "text"):
                continue
            if len({repr(rt.get(name)) for rt in rts}) > 1:
                for rt in rts:
                    rt[name] = UNKNOWN
        envs = [self.env(rt) for rt in rts]
        seen: dict[str, set[Any]] = {c.id: {evaluate(c.cond, env) for env in envs} for c in self.criteria}
        outcomes = {cid: next(iter(got)) if len(got) == 1 and isinstance(next(iter(got)), bool) else UNKNOWN
                    for cid, got in seen.items()}
        failed = [c.id for c in self.criteria if outcomes[c.id] is (NOT_MET if c.kind == "inclusion" else MET)]
        if failed:
            decision = "ineligible"
        elif all(not isinstance(outcomes[c.id], Unk) for c in self.criteria):
            decision = "eligible"
        else:
            decision = "undetermined"
        missing = None
        if decision == "undetermined":
            varying = {name for name in set().union(*(rt.keys() for rt in rts))
                       if len({repr(rt.get(name)) for rt in rts}) > 1}
            found: set[str] = set()
            for c in self.criteria:
                if not isinstance(outcomes[c.id], Unk) or not c.ask:
                    continue
                reached: set[str] = set()
                self.relevant_ranged(c.cond, envs, varying, reached)
                pending = [name for name in c.facts if name in reached]
                pending.extend(self.awaited_ranged(c.cond, envs))
                while pending:
                    name = pending.pop()
                    found.add(name)
                    d = self.derived_by.get(name)
                    if d is not None:
                        pending.extend(i for i in d.inputs
                                       if (i not in rts[0] or i in varying) and i not in found)
            missing = sorted(found, key=self.order.__getitem__) + self.to_complete(outcomes, rts[0])
        return {"decision": decision, "failed_criteria": failed, "missing": missing, "errors": [],
                "warnings": sorted(warned, key=self.order.__getitem__)}

    def awaited_ranged(self, e: tuple, envs: list[Env]) -> list[str]:
        """`awaited` over the values tried (a part is unknown when it is for some value or
        differs between them)."""
        if e[0] == "def":
            return self.awaited_ranged(self.definitions[e[1]], envs)
        if e[0] == "pending":
            return [arg[1] for arg in e[1]]
        if e[0] == "not":
            return self.awaited_ranged(e[1], envs)
        if e[0] in ("and", "or"):
            out = []
            for part in e[1]:
                got = {evaluate(part, env) for env in envs}
                if len(got) > 1 or isinstance(next(iter(got)), Unk):
                    out.extend(self.awaited_ranged(part, envs))
            return out
        return []

    def relevant_ranged(self, e: tuple, envs: list[Env], varying: set[str], out: set[str]) -> None:
        """`relevant` over the values tried: a part is unknown when it is unknown for some
        value or differs between them; the facts of an unknown comparison that are absent or
        ranged are named."""
        if e[0] == "def":
            self.relevant_ranged(self.definitions[e[1]], envs, varying, out)
        elif e[0] == "not":
            self.relevant_ranged(e[1], envs, varying, out)
        elif e[0] in ("and", "or"):
            for part in e[1]:
                got = {evaluate(part, env) for env in envs}
                if len(got) > 1 or isinstance(next(iter(got)), Unk):
                    self.relevant_ranged(part, envs, varying, out)
        else:
            out.update(n for n in names_read(e, self.definitions)
                       if n not in envs[0].values or n in varying or isinstance(envs[0].values[n], Unk))


MAX_RANGE_DAYS = 400
MAX_RANGE_COMBINATIONS = 20_000


_AGGREGATES = ("any", "all", "count", "sum", "min_of", "max_of", "latest")


def _error(errors: list[str]) -> dict[str, Any]:
    return {"decision": "error", "failed_criteria": [], "missing": None, "errors": errors, "warnings": []}


def _show(value: Any) -> str:
    if isinstance(value, Q):
        return f"{value.value} {value.unit}"
    if isinstance(value, Day):
        return "ongoing" if value.ongoing else dt.date.fromordinal(int(value.ordinal)).isoformat()
    return str(value)


def _leaves(e: tuple, definitions: dict[str, tuple]) -> list[tuple]:
    """The comparisons (everything but and/or/not and definitions) of a condition."""
    if e[0] == "def":
        return _leaves(definitions[e[1]], definitions)
    if e[0] == "not":
        return _leaves(e[1], definitions)
    if e[0] in ("and", "or"):
        return [leaf for part in e[1] for leaf in _leaves(part, definitions)]
    return [e]


def _literals(e: Any, definitions: dict[str, tuple]) -> list[Any]:
    out: list[Any] = []

    def walk(e: Any) -> None:
        if not isinstance(e, tuple) or not e:
            return
        if e[0] == "lit":
            out.append(e[1])
        elif e[0] == "word":
            out.append(e[1])
        elif e[0] == "def":
            walk(definitions[e[1]])
        elif e[0] not in ("fact", "field"):
            for part in e[1:]:
                if isinstance(part, tuple):
                    if part and isinstance(part[0], str):
                        walk(part)
                    else:
                        for p in part:
                            walk(p)

    walk(e)
    return out


_cache: dict[Any, Reference] = {}


def reference_for(rules: Any) -> Reference:
    """The Reference of a Trial, a rules path, or a loaded rules document (cached)."""
    if isinstance(rules, Reference):
        return rules
    if isinstance(rules, Trial):
        rules = rules.path
    if isinstance(rules, (str, Path)):
        key: Any = str(Path(rules).resolve())
        if key not in _cache:
            _cache[key] = Reference(load_yaml(rules))
        return _cache[key]
    key = id(rules)
    if key not in _cache:
        _cache[key] = Reference(rules)
    return _cache[key]


def reference_decide(rules: Any, facts: dict[str, Any], context: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Decide one candidate: decision, failed_criteria (trial order), missing (or None), errors."""
    return reference_for(rules).decide(facts, context)
