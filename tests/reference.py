"""A second, deliberately plain evaluator of a rules file, to check the durable-rules engine.

It reads the same YAML, but shares none of the engine's parsing, compilation, evaluation
or derivation code: the `when:` language is tokenized and parsed here, conditions are
evaluated over Python values with Kleene logic, and the three derivation functions are
written from the spec. Only the YAML loader, value coercion (the batch contract for turning
raw input into typed values) and the model types come from `screener`.

    reference_decide(rules, fields) -> {"decision", "failed_criteria", "missing", "errors"}

`rules` is a Trial, a rules-file path, or the document `load_yaml` returns; `fields` are the
raw input fields of one candidate (as a CSV/JSON row gives them). `missing` is None unless
the decision is `undetermined`.

`missing` follows the definition rather than any particular construction: an absent fact is
missing when answering it could move an unknown criterion out of unknown, i.e. there is some
way of answering or leaving unanswered the criterion's other absent facts under which the
criterion is still unknown, and some answer to this fact that then settles it. A derived
fact counts as an answerable fact; when it is missing, its absent inputs are missing too.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from screener.errors import InvalidValue
from screener.rules.read import load_yaml
from screener.model import FactSpec, Span, Trial
from screener.values import coerce

MET, NOT_MET, UNKNOWN = True, False, None  # Kleene truth values as Python values

# --- the condition language ----------------------------------------------------------------

_LEX = re.compile(
    r"""\s*(?:
        (?P<date>\d{4}-\d{2}-\d{2})(?![\w-])
      | (?P<num>-?\d+(?:\.\d+)?)(?![\w.-])
      | (?P<sym>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
      | '(?P<sq>[^']*)'
      | "(?P<dq>[^"]*)"
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def lex(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; kinds: date num sym str name, then ("eof", "")."""
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _LEX.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read condition at {text[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append(("str" if kind in ("sq", "dq") else kind, m.group(kind)))
        pos = m.end()
    out.append(("eof", ""))
    return out


# A parsed condition is a nested tuple:
#   ("const", bool) | ("cmp", fact, op, literal) | ("in", fact, (literal, ...))
#   ("not", c) | ("and", (c, ...)) | ("or", (c, ...))


class _Parse:
    def __init__(self, text: str, facts: dict[str, FactSpec]):
        self.toks = lex(text)
        self.i = 0
        self.facts = facts

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def next(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def want(self, text: str) -> None:
        tok = self.next()
        if tok[1] != text or tok[0] not in ("sym", "name"):
            raise ValueError(f"expected {text!r}, got {tok[1]!r}")

    def whole(self) -> tuple:
        c = self.disj()
        if self.peek()[0] != "eof":
            raise ValueError(f"trailing {self.peek()[1]!r}")
        return c

    def disj(self) -> tuple:
        parts = [self.conj()]
        while self.peek() == ("name", "or"):
            self.next()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else ("or", tuple(parts))

    def conj(self) -> tuple:
        parts = [self.atom()]
        while self.peek() == ("name", "and"):
            self.next()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def atom(self) -> tuple:
        kind, text = self.peek()
        if (kind, text) == ("name", "not"):
            self.next()
            return ("not", self.atom())
        if (kind, text) == ("sym", "("):
            self.next()
            inner = self.disj()
            self.want(")")
            return inner
        if kind == "name" and text in ("true", "false"):
            self.next()
            return ("const", text == "true")
        kind, name = self.next()
        if kind != "name" or name not in self.facts:
            raise ValueError(f"not a fact: {name!r}")
        spec = self.facts[name]
        kind, text = self.peek()
        if kind == "sym" and text in ("==", "!=", "<", "<=", ">", ">="):
            self.next()
            return ("cmp", name, text, self.literal(spec))
        if (kind, text) == ("name", "in"):
            self.next()
            self.want("[")
            items = [self.literal(spec)]
            while self.peek() == ("sym", ","):
                self.next()
                items.append(self.literal(spec))
            self.want("]")
            return ("in", name, tuple(items))
        if spec.type != "boolean":
            raise ValueError(f"{name} is not yes/no")
        return ("cmp", name, "==", True)

    def literal(self, spec: FactSpec) -> Any:
        kind, text = self.next()
        if spec.type == "boolean" and kind == "name" and text in ("true", "false"):
            return text == "true"
        if spec.type == "integer" and kind == "num" and "." not in text:
            return int(text)
        if spec.type == "decimal" and kind == "num":
            return Decimal(text)
        if spec.type == "date" and kind in ("date", "str"):
            return dt.date.fromisoformat(text)
        if spec.type == "enum" and kind in ("name", "str") and text in spec.values:
            return text
        if spec.type == "text" and kind in ("name", "str"):
            return text
        raise ValueError(f"{text!r} is not a {spec.type} value of {spec.name}")


def parse(text: str, facts: dict[str, FactSpec]) -> tuple:
    return _Parse(text, facts).whole()


def condition_facts(c: tuple) -> list[str]:
    """Facts a condition reads, in order of first use."""
    out: list[str] = []

    def walk(c: tuple) -> None:
        if c[0] in ("cmp", "in"):
            if c[1] not in out:
                out.append(c[1])
        elif c[0] == "not":
            walk(c[1])
        elif c[0] in ("and", "or"):
            for part in c[1]:
                walk(part)

    walk(c)
    return out


def _num(value: Any) -> Any:
    """Decimals compare exactly: floats from input go through their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def kleene(c: tuple, values: dict[str, Any]) -> bool | None:
    """True (met), False (not met) or None (unknown) of condition `c` on `values`."""
    tag = c[0]
    if tag == "const":
        return c[1]
    if tag == "cmp":
        if c[1] not in values:
            return None
        return _COMPARE[c[2]](_num(values[c[1]]), c[3])
    if tag == "in":
        if c[1] not in values:
            return None
        return _num(values[c[1]]) in c[2]
    if tag == "not":
        inner = kleene(c[1], values)
        return None if inner is None else not inner
    results = [kleene(part, values) for part in c[1]]
    if tag == "and":
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


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


def _in_band(band: str, number: Any) -> bool:
    m = _BAND.match(band)
    if m is None:
        raise ValueError(f"band {band!r}")
    return _COMPARE[m.group(1)](_num(number), Decimal(m.group(2)))


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

_NOWHERE = Span("<reference>", 0, 0)


@dataclass
class _Criterion:
    id: str
    kind: str
    cond: tuple
    facts: list[str]


@dataclass
class _Derivation:
    fact: str
    function: str
    inputs: list[str]
    params: dict[str, Any]


class Reference:
    """The trial of one rules document, ready to decide candidates."""

    def __init__(self, doc: dict[str, Any]):
        self.id_fact = doc["trial"].get("id_fact", "candidate_id")
        self.facts: dict[str, FactSpec] = {}
        for name, entry in doc["facts"].items():
            self.facts[name] = FactSpec(
                name=name, type=entry["type"], description="", span=_NOWHERE,
                values=tuple(entry.get("values", ())),
                minimum=entry.get("min"), maximum=entry.get("max"),
                places=entry.get("places", 0), required=bool(entry.get("required", False)),
            )
        self.order = {name: i for i, name in enumerate(self.facts)}
        self.derivations = [
            _Derivation(d["fact"], d["function"], list(d["inputs"]), dict(d.get("params") or {}))
            for d in doc.get("derivations") or []
        ]
        self.derived_by = {d.fact: d for d in self.derivations}
        self.criteria = []
        for c in doc["criteria"]:
            cond = parse(str(c["when"]), self.facts)
            self.criteria.append(_Criterion(c["id"], c["kind"], cond, condition_facts(cond)))
        self._options: dict[tuple[str, str], list[Any]] = {}

    # -- values ---------------------------------------------------------------------------

    def typed(self, fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        errors: list[str] = []
        for name, raw in fields.items():
            spec = self.facts.get(name)
            if spec is None or name == self.id_fact:
                continue
            try:
                value = coerce(spec, raw)
            except InvalidValue as exc:
                errors.append(str(exc))
                continue
            if value is not None:
                values[name] = value
        return values, errors

    def complete(self, values: dict[str, Any]) -> str | None:
        """Add derived facts whose inputs are all known; the conflicting fact, or None."""
        changed = True
        done: set[str] = set()
        while changed:
            changed = False
            for d in self.derivations:
                if d.fact in done or not all(name in values for name in d.inputs):
                    continue
                done.add(d.fact)
                # The spec: impossible combinations are errors, never guesses. Dates in the
                # wrong order, or a derived value outside its fact's range.
                dates = [values[name] for name in d.inputs]
                if d.function in ("completed_years", "before_months_after") and dates[1] < dates[0]:
                    return d.fact
                value = _derive(d.function, d.inputs, d.params, values)
                try:
                    coerce(self.facts[d.fact], value)
                except InvalidValue:
                    return d.fact
                if d.fact in values:
                    if values[d.fact] != value:
                        return d.fact
                else:
                    values[d.fact] = value
                    changed = True
        return None

    # -- missing facts ----------------------------------------------------------------------

    def options(self, criterion: _Criterion, name: str) -> list[Any]:
        """One value from each region of `name` that the criterion's literals tell apart."""
        key = (criterion.id, name)
        if key in self._options:
            return self._options[key]
        spec = self.facts[name]
        literals: list[Any] = []

        def collect(c: tuple) -> None:
            if c[0] == "cmp" and c[1] == name:
                literals.append(c[3])
            elif c[0] == "in" and c[1] == name:
                literals.extend(c[2])
            elif c[0] == "not":
                collect(c[1])
            elif c[0] in ("and", "or"):
                for part in c[1]:
                    collect(part)

        collect(criterion.cond)
        if spec.type == "boolean":
            opts: list[Any] = [True, False]
        elif spec.type == "enum":
            opts = list(spec.values)
        elif spec.type in ("integer", "decimal", "date"):
            step: Any = {"integer": 1, "decimal": Decimal("0.01"), "date": dt.timedelta(days=1)}[spec.type]
            cuts = sorted(set(literals))
            opts = []
            for cut in cuts:
                opts.extend([cut - step, cut, cut + step])
            opts = sorted(set(opts)) or ([0] if spec.type != "date" else [dt.date(2000, 1, 1)])
        else:
            opts = sorted(set(literals)) + ["\x00other"]
        self._options[key] = opts
        return opts

    def could_settle(self, criterion: _Criterion, values: dict[str, Any], fact: str) -> bool:
        """Is there a way of (not) answering the other absent facts that leaves the criterion
        unknown, and an answer to `fact` that then settles it?"""
        others = [name for name in criterion.facts if name not in values and name != fact]
        trial_values = dict(values)
        fact_options = self.options(criterion, fact)

        def search(i: int) -> bool:
            if kleene(criterion.cond, trial_values) is not None:
                return False  # settled without `fact`; more answers keep it settled
            for option in fact_options:
                trial_values[fact] = option
                settled = kleene(criterion.cond, trial_values) is not None
                del trial_values[fact]
                if settled:
                    return True
            for j in range(i, len(others)):
                name = others[j]
                for option in self.options(criterion, name):
                    trial_values[name] = option
                    found = search(j + 1)
                    del trial_values[name]
                    if found:
                        return True
            return False

        return search(0)

    def missing(self, outcomes: dict[str, bool | None], values: dict[str, Any]) -> list[str]:
        found: set[str] = set()
        for criterion in self.criteria:
            if outcomes[criterion.id] is not None:
                continue
            pending = [name for name in criterion.facts if name not in values
                       and self.could_settle(criterion, values, name)]
            while pending:
                name = pending.pop()
                found.add(name)
                d = self.derived_by.get(name)
                if d is not None:
                    pending.extend(i for i in d.inputs if i not in values and i not in found)
        return sorted(found, key=self.order.__getitem__)

    # -- the decision ------------------------------------------------------------------------

    def decide(self, fields: dict[str, Any]) -> dict[str, Any]:
        values, errors = self.typed(fields)
        if errors:
            return {"decision": "error", "failed_criteria": [], "missing": None, "errors": errors}
        conflict = self.complete(values)
        if conflict is not None:
            return {"decision": "error", "failed_criteria": [], "missing": None, "errors": [conflict]}
        outcomes = {c.id: kleene(c.cond, values) for c in self.criteria}
        failed = [c.id for c in self.criteria
                  if outcomes[c.id] is (NOT_MET if c.kind == "inclusion" else MET)]
        if failed:
            decision = "ineligible"
        elif all(outcomes[c.id] is not None for c in self.criteria):
            decision = "eligible"
        else:
            decision = "undetermined"
        missing = self.missing(outcomes, values) if decision == "undetermined" else None
        return {"decision": decision, "failed_criteria": failed, "missing": missing, "errors": []}


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


def reference_decide(rules: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Decide one candidate: decision, failed_criteria (trial order), missing (or None), errors."""
    return reference_for(rules).decide(facts)
