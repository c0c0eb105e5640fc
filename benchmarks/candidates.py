"""Random candidates for any rules file, for the stress and throughput benchmarks and the
property tests.

    gen = Generator("rules/NCT06898385.yaml")
    for cand in gen.candidates(seed=1, count=1000, profile=ADVERSARIAL): ...

The generator reads the rules file's conditions, formulas and derivations (with the parser
of tests/reference_lang.py) and crowds every edge they draw:
- each bound of a comparison with a literal, on both sides and on the edge itself, in the
  fact's unit (a literal in another unit is converted);
- each edge that depends on other facts (`alt <= 3 * alt_uln`, `stop - start <= 14 days`,
  windows, `years_between`), computed from the values already drawn: the day inside and the
  day outside each window end, calendar months clamped to month end;
- the inputs of derived facts at the derived fact's edges: dates giving an age of exactly 18,
  a progression six months after the start, parts giving a score on a band edge, and for
  formulas (BMI, creatinine clearance) the last input found by bisection;
- quantities in their declared unit and in every other unit they convert from, written as
  `"1.5 mg/dL"`, `{value, unit}` or a plain number; `never` and `ongoing` where allowed;
  lists of 0-4 items with fields left unknown; facts left out; and invalid values.
Invalid values are out of range, of the wrong type, in a unit that does not convert,
impossible dates, malformed lists, or a context fact given per candidate; the generator says
which facts it made invalid so a test can demand an error naming each, without asking the
code under test what is valid.

With the chance `passing`, a value is drawn among those that make the criteria reading it
go the eligible way (judged leaf by leaf), so complete candidates are often eligible and
undetermined ones name missing facts.

Draws go through a `Chooser`, so the same generator runs on `random.Random` (benchmarks) and
on Hypothesis' `draw` (property tests, which then shrink failures). Same seed, same
candidates.
"""
from __future__ import annotations

import calendar
import datetime as dt
import json
import random
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from reference import Reference, _derive, conv_of, runtime, typed_of  # noqa: E402
from reference_lang import (  # noqa: E402
    INF, NEVER, Cal, Day, Env, Q, Unk, _conversion, _pint_unit, evaluate, names_read, to_unit,
)
from screener.errors import InvalidValue  # noqa: E402
from screener.model import FactSpec, Special  # noqa: E402
from screener.values import quantity  # noqa: E402
from screener.rules.read import load_yaml  # noqa: E402

DEFAULT_RULES = ROOT / "rules" / "NCT03862768.yaml"

BAD_DATES = ("2021-02-29", "2020-02-30", "2020-13-01", "2020-00-10", "2020/01/01", "20200101",
             "2020-1-5", "01-02-2020", "yesterday", "2020-01-01T10:00")
AWKWARD_DAYS = ((2, 28), (2, 29), (3, 1), (8, 31), (1, 31), (12, 31), (6, 15))
# other units a lab may report in; only those of the fact's dimension are used
UNIT_POOL = ("g/L", "g/dL", "mg/dL", "mg/L", "umol/L", "mmol/L", "mol/L", "10*9/L", "10*3/uL",
             "/mm3", "/uL", "10*12/L", "kg", "g", "[lb_av]", "cm", "m", "[in_i]", "mm", "ms", "s",
             "min", "h", "d", "wk", "mL/min", "L/min", "mL/s", "mm[Hg]", "kPa", "%", "mmol/mol",
             "U/L", "[IU]/L", "ng/mL", "ug/L", "pg/mL", "mL/min/{1.73_m2}", "kg/m2", "[degF]",
             "Cel")
MANY = 64  # edges of one fact beyond which a candidate draws near a sample of them
NOT_UNITS = ("furlongs", "mg/dL/", "10^9/L", "kg/", "bananas")


class Chooser:
    """Where random choices come from."""

    def choice(self, items: Sequence[Any]) -> Any:
        raise NotImplementedError

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def chance(self, p: float) -> bool:
        raise NotImplementedError


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, items: Sequence[Any]) -> Any:
        return self.rng.choice(items)

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class DrawChooser(Chooser):
    """Hypothesis: `draw` from `st.data()`; chances become booleans it can shrink."""

    def __init__(self, draw: Callable[[Any], Any]):
        from hypothesis import strategies as st

        self.draw = draw
        self.st = st

    def choice(self, items: Sequence[Any]) -> Any:
        return self.draw(self.st.sampled_from(list(items)))

    def integer(self, low: int, high: int) -> int:
        return self.draw(self.st.integers(low, high))

    def chance(self, p: float) -> bool:
        # shrinks towards True: towards absent (simpler) candidates
        return self.draw(self.st.integers(0, 99)) < round(p * 100)


@dataclass(frozen=True)
class Profile:
    """How candidates are drawn; each candidate picks its own rates from these."""

    absent: tuple[float, ...]  # chance a fact is left out (or empty)
    passing: tuple[float, ...]  # chance a value is drawn to pass the criteria reading it
    invalid: float  # chance a candidate has invalid values at all (then ~5% of its facts)
    native: bool  # may use JSON/YAML-typed values (bool, int, float, date, list); else text
    consistent: bool  # give derived facts only when their inputs are not all given
    ranged: float = 0.0  # chance a quantity or date is given as a range (`<20`, `2021-03`)


ADVERSARIAL = Profile(absent=(0.0, 0.03, 0.1, 0.3, 0.7), passing=(0.5, 0.9, 0.97, 1.0),
                      invalid=0.15, native=True, consistent=False)
REALISTIC = Profile(absent=(0.0, 0.01, 0.05), passing=(0.9, 0.97, 0.99), invalid=0.003,
                    native=False, consistent=True)


@dataclass
class Candidate:
    fields: dict[str, Any]
    invalid: set[str] = field(default_factory=set)  # facts given an invalid value
    context: dict[str, Any] = field(default_factory=dict)  # the run's context facts (raw)


# --- what the rules file says about each fact ------------------------------------------------


@dataclass
class Target:
    """An edge of one fact (or list item field): `expr` evaluated on the values drawn so far
    gives the value at the edge (None: `value` is a literal edge)."""

    expr: tuple | None
    value: Any = None


@dataclass
class Leaf:
    """A comparison reading the fact, and the truth the eligible way wants of it."""

    expr: tuple
    want: bool


def _inverse(side: tuple, other: tuple) -> list[tuple[tuple, tuple]]:
    """(target, expression for it) when `side` == `other`: solve for the facts of `side`."""
    tag = side[0]
    if tag in ("fact", "field"):
        return [(side, other)]
    if tag == "bin":
        op, a, b = side[1], side[2], side[3]
        out: list[tuple[tuple, tuple]] = []
        if op == "+":
            out += _inverse(a, ("bin", "-", other, b)) + _inverse(b, ("bin", "-", other, a))
        elif op == "-":
            out += _inverse(a, ("bin", "+", other, b)) + _inverse(b, ("bin", "-", a, other))
        elif op == "*":
            out += _inverse(a, ("bin", "/", other, b)) + _inverse(b, ("bin", "/", other, a))
        elif op == "/":
            out += _inverse(a, ("bin", "*", other, b))
        return out
    if tag == "call" and side[1] in ("years_between", "months_between", "days_between") \
            and other[0] == "lit" and isinstance(other[1], Decimal):
        n = other[1]
        if side[1] == "days_between":
            span: Any = Q(n, "d")
        else:
            if n != n.to_integral_value():
                return []
            span = Cal(int(n) * (12 if side[1] == "years_between" else 1))
        a, b = side[2]
        return _inverse(b, ("bin", "+", a, ("lit", span))) + _inverse(a, ("bin", "-", b, ("lit", span)))
    if tag == "neg":
        return _inverse(side[1], ("neg", other))
    return []


class Generator:
    """Random candidates for one rules file."""

    def __init__(self, rules: Any = DEFAULT_RULES):
        self.path = Path(rules)
        doc = load_yaml(self.path)
        self.ref = Reference(doc)
        self.facts = self.ref.facts
        self.id_fact = self.ref.id_fact
        self.columns = tuple(n for n, s in self.facts.items() if n != self.id_fact and not s.context)
        self.context_facts = tuple(n for n, s in self.facts.items() if s.context)
        self.targets: dict[str, list[Target]] = {}  # "fact" or "list.field"
        self.leaves: dict[str, list[Leaf]] = {}
        self.words: dict[str, set[str]] = {}
        for criterion in self.ref.criteria:
            self._walk(criterion.cond, criterion.kind == "inclusion", None)
        for expr in self.ref.definitions.values():
            self._walk(expr, None, None)
        self.derivations = self.ref.derivations
        for d in self.derivations:
            if d.formula is not None:
                self._walk(d.formula, None, None)
            self._derivation_targets(d)
        self.inputs_of = {d.fact: d for d in self.derivations}
        self.formula_inputs = {i for d in self.derivations if d.formula is not None for i in d.inputs}
        # an input of a derived fact that criteria read is judged by the derived value
        self.feeds: dict[str, list[str]] = {}
        for d in self.derivations:
            if d.fact in self.leaves:
                for i in d.inputs:
                    self.feeds.setdefault(i, []).append(d.fact)
                    self.leaves.setdefault(i, [])
        # keys whose edges and wanted leaves read nothing else: their good values are fixed
        self.static = {key for key in set(self.leaves) | set(self.targets)
                       if key not in self.feeds and all(t.expr is None for t in self.targets.get(key, []))
                       and all(set(self._leaf_keys(leaf.expr, key.split(".")[0] if "." in key else None))
                               <= {key} for leaf in self.leaves.get(key, []))}
        self.good_cache: dict[str, list[Any]] = {}
        self.derived_cache: dict[tuple, Any] = {}
        self.edge_cache: dict[str, list[Any]] = {}
        self.order = self._order()
        self.units = {n: self._units(s) for n, s in self.facts.items() if s.type == "quantity"}
        self.item_units = {f"{n}.{f.name}": self._units(f) for n, s in self.facts.items()
                           for f in s.item if f.type == "quantity"}

    # -- reading the rules ----------------------------------------------------------------

    def _key(self, node: tuple, scope: str | None) -> str | None:
        if node[0] == "fact":
            return node[1]
        if node[0] == "field" and scope is not None:
            return f"{scope}.{node[1]}"
        return None

    def _spec(self, key: str) -> FactSpec:
        if "." in key:
            name, item = key.split(".", 1)
            return next(f for f in self.facts[name].item if f.name == item)
        return self.facts[key]

    def _add_target(self, node: tuple, expr: tuple, scope: str | None) -> None:
        key = self._key(node, scope)
        if key is None:
            return
        if not names_read(expr, self.ref.definitions) and not _reads_fields(expr, self.ref.definitions):
            try:
                value = evaluate(expr, self.ref.env({}))
            except Exception:
                return
            if not isinstance(value, Unk):
                self.targets.setdefault(key, []).append(Target(None, value))
            return
        self.targets.setdefault(key, []).append(Target(expr))

    def _walk(self, e: Any, want: bool | None, scope: str | None) -> None:
        """Collect targets and wanted leaves; `want`: the truth the eligible way wants."""
        if not isinstance(e, tuple) or not e:
            return
        tag = e[0]
        if tag == "def":
            self._walk(self.ref.definitions[e[1]], want, scope)
            return
        if tag == "not":
            self._walk(e[1], None if want is None else not want, scope)
            return
        if tag in ("and", "or"):
            for part in e[1]:
                self._walk(part, want, scope)
            return
        if tag in ("fact", "field"):
            key = self._key(e, scope)
            if key is not None and want is not None and self._spec(key).type == "boolean":
                self.leaves.setdefault(key, []).append(Leaf(e, want))
            return
        if tag == "cmp":
            _, op, a, b = e
            for side, other in ((a, b), (b, a)):
                for node, expr in _inverse(side, other):
                    self._add_target(node, expr, scope)
                if side[0] == "word":
                    key = self._key(other, scope)
                    if key is not None:
                        self.words.setdefault(key, set()).add(side[1])
        elif tag == "in":
            for item in e[2]:
                for node, expr in _inverse(e[1], item):
                    self._add_target(node, expr, scope)
                if item[0] == "word":
                    key = self._key(e[1], scope)
                    if key is not None:
                        self.words.setdefault(key, set()).add(item[1])
        elif tag == "within":
            _, x, d, direction, y = e
            sign, back = ("-", "+") if direction == "before" else ("+", "-")
            for node, expr in _inverse(x, ("bin", sign, y, d)) + _inverse(x, y):
                self._add_target(node, expr, scope)
            for node, expr in _inverse(y, ("bin", back, x, d)) + _inverse(y, x):
                self._add_target(node, expr, scope)
        elif tag == "call" and e[1] in ("any", "all", "count", "sum", "min_of", "max_of", "latest"):
            inner = e[2][0][1]
            for arg in e[2][1:]:
                # inside an aggregate the eligible way is not known item by item
                self._walk(arg, want if e[1] in ("any", "all") else None, inner)
            return
        if want is not None:
            for key in self._leaf_keys(e, scope):
                self.leaves.setdefault(key, []).append(Leaf(e, want))
        for part in e[1:]:
            if isinstance(part, tuple) and part and isinstance(part[0], str):
                self._walk(part, None, scope)
            elif isinstance(part, tuple):
                for p in part:
                    self._walk(p, None, scope)

    def _leaf_keys(self, e: tuple, scope: str | None) -> list[str]:
        out: list[str] = []

        def walk(x: Any) -> None:
            if not isinstance(x, tuple) or not x:
                return
            key = self._key(x, scope) if x[0] in ("fact", "field") else None
            if key is not None:
                out.append(key)
            elif x[0] == "def":
                walk(self.ref.definitions[x[1]])
            else:
                for part in x[1:]:
                    if isinstance(part, tuple) and part and isinstance(part[0], str):
                        walk(part)
                    elif isinstance(part, tuple):
                        for p in part:
                            walk(p)

        walk(e)
        return out

    def _derivation_targets(self, d: Any) -> None:
        """Edges of a derived fact become edges of its inputs."""
        edges = [t.value for t in self.targets.get(d.fact, []) if t.expr is None]
        if d.function == "completed_years":
            birth, anchor = d.inputs
            for years in edges:
                span = ("lit", Cal(int(years) * 12))
                self.targets.setdefault(birth, []).append(Target(("bin", "-", ("fact", anchor), span)))
                self.targets.setdefault(anchor, []).append(Target(("bin", "+", ("fact", birth), span)))
        elif d.function == "before_months_after":
            start, event = d.inputs
            span = ("lit", Cal(int(d.params["months"])))
            self.targets.setdefault(event, []).append(Target(("bin", "+", ("fact", start), span)))
            self.targets.setdefault(start, []).append(Target(("bin", "-", ("fact", event), span)))
        elif d.function == "banded_score":
            for name, table in d.params.get("points", {}).items():
                if isinstance(table, list):
                    for _, band in table:
                        edge = Decimal(str(band).lstrip("<>=! "))
                        self.targets.setdefault(name, []).append(Target(None, edge))

    def _order(self) -> list[str]:
        """Facts in an order that draws anchors first: facts that others' edges are computed
        from come before the facts whose edges they are."""
        names = [n for n in self.facts if n != self.id_fact]
        needs: dict[str, set[str]] = {n: set() for n in names}
        for key, targets in self.targets.items():
            fact = key.split(".", 1)[0]
            for t in targets:
                if t.expr is not None and fact in needs:
                    needs[fact] |= {x for x in names_read(t.expr, self.ref.definitions) if x != fact}
        for d in self.derivations:
            if d.fact in needs:
                needs[d.fact] |= set(d.inputs)
        out: list[str] = []
        placed: set[str] = set()
        while len(out) < len(names):
            ready = [n for n in names if n not in placed and needs[n] <= placed]
            if not ready:  # a cycle of edges: take the one needing the fewest
                ready = [min((n for n in names if n not in placed), key=lambda n: len(needs[n] - placed))]
            for n in ready[:1]:
                out.append(n)
                placed.add(n)
        return out

    def _units(self, spec: FactSpec) -> list[tuple[str, Decimal, Decimal]]:
        """(unit, factor, offset) into the declared unit, for it and every convertible unit."""
        out = [(spec.unit, Decimal(1), Decimal(0))]
        conv = conv_of(spec)
        pool = list(UNIT_POOL) + list(conv[0])
        try:
            declared = _pint_unit(spec.unit).dimensionality
        except Exception:
            return out
        for code in dict.fromkeys(pool):
            if code == spec.unit:
                continue
            try:
                if _pint_unit(code).dimensionality == declared or code in conv[0]:
                    out.append((code, *_conversion(code, spec.unit, conv)))
            except Exception:
                continue
        return out

    def _bad_units(self, spec: FactSpec) -> list[str]:
        good = {code for code, _, _ in self._units(spec)}
        out = list(NOT_UNITS)
        try:
            declared = _pint_unit(spec.unit).dimensionality
            convertible = {_pint_unit(k).dimensionality for k in good}
        except Exception:
            return out
        for code in UNIT_POOL:
            try:
                if code not in good and _pint_unit(code).dimensionality not in convertible | {declared}:
                    out.append(code)
            except Exception:
                continue
        return out

    def _drop_derivable(self, fields: dict[str, Any], invalid: set[str]) -> None:
        """Leave out every derived fact that the row's other facts give, directly or through
        another derived fact (age from two dates, then eGFR from age): a realistic row does
        not repeat them. Facts drawn in a cycle of edges can come before their inputs, so
        this is checked once the row is complete. A value drawn invalid stays: it is what
        the row is about."""
        present = {name for name, raw in fields.items() if raw not in ("", "  ", None)}
        derivable: set[str] = set()
        grew = True
        while grew:
            grew = False
            for d in self.derivations:
                if d.fact not in derivable and all(i in present or i in derivable for i in d.inputs):
                    derivable.add(d.fact)
                    grew = True
        for name in derivable - invalid:
            fields.pop(name, None)

    def _derived(self, name: str, rt: dict[str, Any]) -> Any:
        """The value the derivation of `name` gives from the drawn values, or None."""
        d = self.inputs_of[name]
        if not all(i in rt and not isinstance(rt[i], Unk) for i in d.inputs):
            return None
        key = (name, *(rt[i] for i in d.inputs))
        try:
            return self.derived_cache[key]
        except KeyError:
            pass
        except TypeError:  # a list input: not kept
            return self._derive_now(name, d, rt)
        value = self.derived_cache[key] = self._derive_now(name, d, rt)
        return value

    def _derive_now(self, name: str, d: Any, rt: dict[str, Any]) -> Any:
        spec = self.facts[name]
        try:
            if d.formula is not None:
                value = evaluate(d.formula, self.ref.env(rt))
                return None if isinstance(value, Unk) else runtime(spec, typed_of(spec, value))
            typed = {i: typed_of(self.facts[i], rt[i]) for i in d.inputs}
            if d.function in ("completed_years", "before_months_after"):
                first, second = (typed[i] for i in d.inputs)
                if not isinstance(first, dt.date) or not isinstance(second, dt.date) or second < first:
                    return None
            return runtime(spec, _derive(d.function or "", d.inputs, d.params, typed))
        except Exception:
            return None

    # -- drawing ----------------------------------------------------------------------------

    def candidates(self, seed: int, count: int, profile: Profile) -> Iterator[Candidate]:
        """`count` candidates from `seed`, ids c1, c2, ..."""
        chooser = RandomChooser(random.Random(seed))
        for i in range(1, count + 1):
            yield self.candidate(chooser, profile, f"c{i}")

    def candidate(self, c: Chooser, profile: Profile, candidate_id: str = "c") -> Candidate:
        draw = _Draw(self, c, profile)
        fields: dict[str, Any] = {self.id_fact: candidate_id}
        for name in self.order:
            spec = self.facts[name]
            if spec.context:
                continue
            d = self.inputs_of.get(name)
            given_inputs = d is not None and all(i in draw.rt for i in d.inputs)
            if d is not None and profile.consistent and given_inputs:
                continue  # a realistic row does not repeat what its inputs give
            if d is not None and given_inputs and not c.chance(0.15):
                continue
            if d is not None and given_inputs and c.chance(0.7):
                value = self._derived(name, draw.rt)  # given, in agreement with its inputs
                if value is not None:
                    fields[name] = draw.raw_valid(name, spec, value)
                    continue
            raw = draw.fact(name, spec)
            if raw is not _ABSENT:
                fields[name] = raw
        if profile.consistent:
            self._drop_derivable(fields, draw.bad)
        context: dict[str, Any] = {}
        for name in self.context_facts:
            raw = draw.fact(name, self.facts[name], context=True)
            if raw is not _ABSENT:
                context[name] = raw
            if draw.invalid_rate and c.chance(draw.invalid_rate):  # given per candidate
                fields[name] = draw.raw_valid(name, self.facts[name], draw.pick_value(name, self.facts[name]))
                draw.bad.add(name)
        return Candidate(fields, draw.bad, context)


_ABSENT = object()


def _reads_fields(e: Any, definitions: dict[str, tuple]) -> bool:
    if not isinstance(e, tuple) or not e:
        return False
    if e[0] == "field":
        return True
    if e[0] == "def":
        return _reads_fields(definitions[e[1]], definitions)
    return any(_reads_fields(p, definitions) if isinstance(p, tuple) and p and isinstance(p[0], str)
               else isinstance(p, tuple) and any(_reads_fields(x, definitions) for x in p)
               for p in e[1:])


class _Draw:
    """The drawing of one candidate: its rates, the values so far, the invalid facts."""

    def __init__(self, gen: Generator, c: Chooser, profile: Profile):
        self.gen = gen
        self.c = c
        self.profile = profile
        self.native = profile.native
        self.absent = c.choice(profile.absent)
        self.passing = c.choice(profile.passing)
        self.invalid_rate = 0.05 if c.chance(profile.invalid) else 0.0
        self.rt: dict[str, Any] = {}  # runtime values drawn so far (valid, given or derived)
        self.bad: set[str] = set()
        self.base = _a_date(c, 2015, 2026)
        # ranges per candidate: two at most, and a year only alone (the reference tries
        # every day of a date range)
        self.ranges_left = 2 if profile.ranged else 0

    def env(self, item: dict[str, Any] | None = None) -> Env:
        env = self.gen.ref.env(self.rt)
        env.item = item
        return env

    # -- one fact ---------------------------------------------------------------------------

    def fact(self, name: str, spec: FactSpec, context: bool = False) -> Any:
        c = self.c
        if c.chance(self.absent):
            if c.chance(0.3) and not context:
                return c.choice(("", "  ")) if not self.native or c.chance(0.5) else None
            return _ABSENT
        if self.invalid_rate and not context and c.chance(self.invalid_rate):
            self.bad.add(name)
            return self.raw_invalid(name, spec)
        value = self.pick_value(name, spec)
        if self.profile.consistent:
            value = self._in_order(name, value)
        self.rt[name] = value
        if name in self.gen.formula_inputs:
            self._derive()
        if self.ranges_left and spec.type in ("quantity", "date") and spec.derived_by is None \
                and c.chance(self.profile.ranged):
            ranged = self.raw_ranged(spec, value)
            if ranged is not None:
                return ranged
        return self.raw_valid(name, spec, value)

    def raw_ranged(self, spec: FactSpec, value: Any) -> Any:
        """The value drawn (at an edge) written as a range around it, as records give them:
        a censored result whose bound is the value, or the month (rarely the year) of a day."""
        c = self.c
        if spec.type == "date":
            if not isinstance(value, Day) or value.ongoing:
                return None
            d = dt.date.fromordinal(int(value.ordinal))
            if self.ranges_left == 2 and c.chance(0.1):
                self.ranges_left = 0
                return c.choice((str(d.year), f"{d.year}年"))
            self.ranges_left = min(self.ranges_left - 1, 1 if c.chance(0.5) else 0)
            return c.choice((f"{d.year:04d}-{d.month:02d}", f"{d.month:02d}/{d.year}",
                             f"{calendar.month_name[d.month]} {d.year}", f"{d.year}年{d.month}月"))
        number = value.value
        low = None if spec.minimum is None else Decimal(str(spec.minimum))
        high = None if spec.maximum is None else Decimal(str(spec.maximum))
        ops = [op for op in ("<", "<=", ">", ">=")
               if (low is None or number > low or (op == "<=" and number == low))
               and (high is None or number < high or (op == ">=" and number == high))
               and (op in ("<", "<=") or high is None or number < high)]
        if not ops:
            return None
        self.ranges_left -= 1
        op = c.choice(ops)
        text = _plain(number)
        if op == "<" and c.chance(0.2) and number > max(low or Decimal(0), Decimal(0)):
            return c.choice((f"below detection limit ({text})", f"低于检测下限({text})"))
        return c.choice((f"{op}{text}", f"{op} {text}", f"{op}{text} {spec.unit}"))

    def _in_order(self, name: str, value: Any) -> Any:
        """A realistic date is not before the date a derivation function counts from."""
        if not isinstance(value, Day) or value.ongoing:
            return value
        for d in self.gen.derivations:
            if d.function in ("completed_years", "before_months_after") and name in d.inputs:
                first, second = d.inputs
                other = self.rt.get(second if name == first else first)
                if not isinstance(other, Day) or other.ongoing:
                    continue
                early, late = (value, other) if name == first else (other, value)
                if early.ordinal > late.ordinal:  # mirror it around the other date
                    value = Day(2 * other.ordinal - value.ordinal)
        return value

    def _derive(self) -> None:
        """Derived facts whose inputs are all drawn, so later edges can read them."""
        for d in self.gen.derivations:
            if d.fact in self.rt or not all(i in self.rt for i in d.inputs):
                continue
            if d.formula is not None:
                value = evaluate(d.formula, self.env())
                if not isinstance(value, Unk):
                    try:
                        self.rt[d.fact] = runtime(self.gen.facts[d.fact],
                                                  typed_of(self.gen.facts[d.fact], value))
                    except Exception:
                        pass

    def pick_value(self, key: str, spec: FactSpec, item: dict[str, Any] | None = None) -> Any:
        """A runtime value of the fact (or item field) `key`."""
        c = self.c
        if spec.type == "list":
            return self.pick_list(key, spec)
        if spec.type == "date" and spec.special and c.chance(0.2):
            return NEVER if c.choice(spec.special) is Special.NEVER else Day(INF)
        static = key in self.gen.static and len(self.gen.targets.get(key, ())) <= MANY
        if static and key in self.gen.edge_cache:
            options = self.gen.edge_cache[key]
        else:
            options = self.edge_values(key, spec, item)
            if static:
                self.gen.edge_cache[key] = options
        leaves = self.gen.leaves.get(key, [])
        if options and (leaves or key in self.gen.feeds) and c.chance(self.passing):
            if static and key in self.gen.good_cache:
                good = self.gen.good_cache[key]
            else:
                good = [v for v in options if self._wanted(key, v, leaves, item)]
                if static:
                    self.gen.good_cache[key] = good
            if good:
                return c.choice(good)
        if spec.type == "boolean":
            return c.chance(0.5)
        if spec.type == "enum":
            return c.choice(spec.values)
        if spec.type == "text":
            return c.choice(sorted(self.gen.words.get(key, set())) + ["A", "other"])
        if options and c.chance(0.85):
            return c.choice(options)
        if options and spec.type == "date" and c.chance(0.7):  # near the edges, mostly in order
            edge = c.choice(options)
            return Day(max(Decimal(1), edge.ordinal + c.integer(-400, 400)))
        return self.random_value(spec)

    def _wanted(self, key: str, value: Any, leaves: list[Leaf], item: dict[str, Any] | None) -> bool:
        if "." in key:
            trial_item = dict(item or {})
            trial_item[key.split(".", 1)[1]] = value
            env = self.env(trial_item)
        else:
            saved = self.rt.get(key, _ABSENT)
            self.rt[key] = value
            env = self.env(item)
        try:
            for leaf in leaves:
                try:
                    got = evaluate(leaf.expr, env)
                except Exception:
                    continue
                if isinstance(got, bool) and got != leaf.want:
                    return False
            for fact in self.gen.feeds.get(key, []):
                if fact in self.rt or "." in key:
                    continue
                value = self.gen._derived(fact, self.rt)
                if value is None:
                    continue
                self.rt[fact] = value
                try:
                    for leaf in self.gen.leaves[fact]:
                        got = evaluate(leaf.expr, self.env(item))
                        if isinstance(got, bool) and got != leaf.want:
                            return False
                finally:
                    del self.rt[fact]
            return True
        finally:
            if "." not in key:
                if saved is _ABSENT:
                    del self.rt[key]
                else:
                    self.rt[key] = saved

    def edge_values(self, key: str, spec: FactSpec, item: dict[str, Any] | None) -> list[Any]:
        """Values on and either side of every edge of `key` computable now."""
        if spec.type == "boolean":
            return [True, False]
        if spec.type == "enum":
            return list(spec.values)
        if spec.type == "text":
            return sorted(self.gen.words.get(key, set()))
        out: list[Any] = []
        targets = self.gen.targets.get(key, [])
        if len(targets) > MANY:  # a long `in` list: a few of its values each time
            targets = [self.c.choice(targets) for _ in range(8)]
        for target in targets:
            if target.expr is None:
                edge = target.value
            else:
                try:
                    edge = evaluate(target.expr, self.env(item))
                except Exception:
                    continue
            out.extend(self._around(spec, edge))
        if spec.type in ("integer", "decimal", "quantity"):
            out = [v for v in out if _in_range(spec, v)]
        return list(dict.fromkeys(out))

    def _around(self, spec: FactSpec, edge: Any) -> list[Any]:
        """The edge and one step either side, as runtime values of `spec`."""
        if isinstance(edge, Unk) or edge is NEVER:
            return []
        if spec.type == "date":
            if not isinstance(edge, Day) or edge.ongoing:
                return []
            whole = edge.ordinal.to_integral_value(rounding="ROUND_FLOOR")
            days = [whole + d for d in (-1, 0, 1)] + ([whole + 1] if whole != edge.ordinal else [])
            return [Day(d) for d in days if 1 <= d <= dt.date(9999, 12, 30).toordinal()]
        if spec.type not in ("integer", "decimal", "quantity"):
            return []
        try:
            if isinstance(edge, Q):
                value = edge.value if edge.unit == spec.unit or spec.type != "quantity" \
                    else to_unit(edge, spec.unit, conv_of(spec))
            elif isinstance(edge, Decimal):
                value = edge
            else:
                return []
            if not value.is_finite():
                return []
            places = 0 if spec.type == "integer" else spec.places
            step = Decimal(1).scaleb(-places)
            base = value.quantize(step, rounding=ROUND_HALF_EVEN)
        except Exception:
            return []
        values = {base - step, base, base + step}
        if base != value:  # an edge between two steps: the steps either side
            values |= {value.quantize(step, rounding="ROUND_FLOOR"),
                       value.quantize(step, rounding="ROUND_CEILING")}
        if spec.type != "integer":
            # values are kept as given, finer than `places`: the edge itself and the
            # smallest step a site records either side of it (three decimals finer)
            fine = step.scaleb(-3)
            low, high = value.quantize(fine, rounding="ROUND_FLOOR"), value.quantize(fine, rounding="ROUND_CEILING")
            if low == high:  # the edge is on the fine grid: a fine step either side
                low, high = low - fine, high + fine
            values |= {low, high, base - step / 2, base + step / 2}
        return [self._as(spec, v) for v in sorted(values)]

    def _as(self, spec: FactSpec, value: Decimal) -> Any:
        if spec.type == "quantity":
            return Q(value, spec.unit, spec.name)
        return value

    def random_value(self, spec: FactSpec) -> Any:
        c = self.c
        if spec.type == "date":
            if c.chance(0.5):
                return Day(self.base.ordinal + c.integer(-4000, 400))
            return _a_date(c, 1930, 2026)
        low = Decimal(str(spec.minimum)) if spec.minimum is not None else Decimal(0)
        high = Decimal(str(spec.maximum)) if spec.maximum is not None else low + 1000
        places = 0 if spec.type == "integer" else spec.places
        scale = 10 ** places
        lo, hi = int(low * scale), int(high * scale)
        if lo > hi:
            lo, hi = hi, lo
        value = Decimal(c.integer(lo, hi)).scaleb(-places)
        if spec.type != "integer" and c.chance(0.2):  # recorded finer than `places`
            value = min(value + Decimal(c.integer(1, 999)).scaleb(-places - 3), high)
        return self._as(spec, value)

    def pick_list(self, key: str, spec: FactSpec) -> tuple[dict[str, Any], ...]:
        c = self.c
        items: list[dict[str, Any]] = []
        for _ in range(c.choice((0, 1, 1, 2, 2, 3, 4))):
            item: dict[str, Any] = {}
            for f in spec.item:
                if c.chance(max(self.absent, 0.05)):
                    continue  # an unknown field
                item[f.name] = self.pick_value(f"{key}.{f.name}", f, item)
            items.append(item)
        return tuple(items)

    # -- how a value is written -------------------------------------------------------------

    def raw_valid(self, name: str, spec: FactSpec, value: Any, units_key: str | None = None) -> Any:
        c = self.c
        native = self.native
        if spec.type == "boolean":
            if native and c.chance(0.3):
                return c.choice((value, int(value)))
            return c.choice(("yes", "Yes", "y", "true", "1") if value else ("no", "NO", "n", "false", "0"))
        if spec.type == "integer":
            v = int(value)
            if native and c.chance(0.3):
                return c.choice((v, float(v)))
            return c.choice((str(v), str(v), f" {v} ", f"+{v}", f"{v}.0"))  # exports write 57.0
        if spec.type == "decimal":
            text = _plain(value)
            if native and c.chance(0.3):
                return float(text)
            if c.chance(0.05) and "." not in text and text not in ("0", "-0"):
                return f"{text}e0"
            return _comma(c, text)
        if spec.type == "quantity":
            return self._raw_quantity(spec, value.value, units_key or name)
        if spec.type == "date":
            if value is NEVER:
                return c.choice(("never", "Never")) if c.chance(0.2) else "never"
            if value.ongoing:
                return "ongoing"
            d = dt.date.fromordinal(int(value.ordinal))
            if native and c.chance(0.3):
                return d
            return d.isoformat()
        if spec.type == "list":
            items = [{f.name: self._json_item(f, item[f.name], f"{name}.{f.name}")
                      for f in spec.item if f.name in item} for item in value]
            if native and c.chance(0.7):
                return items
            return json.dumps(items)
        return value

    def _json_item(self, spec: FactSpec, value: Any, key: str) -> Any:
        raw = self.raw_valid(key, spec, value, key)
        if isinstance(raw, dt.date):
            return raw.isoformat()
        return raw

    def _raw_quantity(self, spec: FactSpec, value: Decimal, key: str) -> Any:
        c = self.c
        units = self.gen.item_units.get(key) if "." in key else self.gen.units.get(key)
        code, factor, offset = c.choice(units) if units and c.chance(0.4) else (spec.unit, Decimal(1), Decimal(0))
        amount = (value - offset) / factor
        text = _plain(amount.normalize() if amount == amount.to_integral_value() else
                      Decimal(f"{amount:.12g}"))
        if code != spec.unit:
            try:  # a number that has no ending decimal form in the declared unit is refused
                quantity(spec, f"{text} {code}")
            except InvalidValue:
                code = spec.unit
                text = _plain(value.normalize() if value == value.to_integral_value() else
                              Decimal(f"{value:.12g}"))
        if code == spec.unit and c.chance(0.4):
            return float(text) if self.native and c.chance(0.3) else _comma(c, text)
        if self.native and c.chance(0.3):
            return {"value": float(text) if c.chance(0.5) else text, "unit": code}
        return f"{text} {code}"

    def raw_invalid(self, name: str, spec: FactSpec) -> Any:
        """A value that no reading of `spec` accepts."""
        c = self.c
        natives: list[Any] = [[1], {"a": 1}]
        texts: list[Any]
        kind = spec.type
        if kind == "boolean":
            texts = ["maybe", "2", "-1", "si", "yes please", "1.0"]
            natives += [2, -1, 1.0, 0.5]
        elif kind == "enum":
            texts = ["unknown", spec.values[0].upper() + "x", "n/a", "0"]
            natives += [1, True, 0.0]
        elif kind in ("integer", "decimal"):
            texts = ["abc", "one", "0x1", "nan", "inf", "1,500", "1,5,5"]
            if spec.minimum is not None:
                texts.append(_plain(Decimal(str(spec.minimum)) - 1))
            if spec.maximum is not None:
                texts.append(_plain(Decimal(str(spec.maximum)) + 1))
            if kind == "integer":
                texts += ["1.5", "2.5"]
                natives += [True, 1.5, float("nan")]
            else:
                texts.append("1." + "1" * 16)  # more digits than a decimal fact holds exactly
                natives += [True, float("nan"), float("inf")]
        elif kind == "quantity":
            texts = ["abc", "nan", "1,500", f"1 {c.choice(self.gen._bad_units(spec))}"]
            if spec.minimum is not None:
                texts.append(f"{_plain(Decimal(str(spec.minimum)) - 1)} {spec.unit}")
            if spec.maximum is not None:
                texts.append(f"{_plain(Decimal(str(spec.maximum)) + 1)} {spec.unit}")
            natives += [True, {"value": "x", "unit": spec.unit}, {"unit": spec.unit}]
        elif kind == "date":
            texts = list(BAD_DATES)
            for word in ("never", "ongoing"):
                if Special(word) not in spec.special:
                    texts.append(word)
            natives += [20200101, dt.datetime(2020, 1, 1, 10, 0), 1.5, True]
        elif kind == "list":
            texts = ["[{", "{}", "3", "[1, 2]", '["a"]']
            natives += [3, "x"]
            if spec.item:
                f = spec.item[0]
                bad = {"boolean": "maybe", "integer": "x", "decimal": "x", "quantity": "x",
                       "date": "2020-13-01", "enum": "not-a-value", "text": None}[f.type]
                if bad is not None:
                    texts.append(json.dumps([{f.name: bad}]))
                    natives.append([{f.name: bad}])
        else:  # text accepts any text; only a structure is wrong
            texts = []
            natives = [[1], {"a": 1}]
            return c.choice(natives)
        if self.native and c.chance(0.4):
            return c.choice(natives)
        return c.choice(texts)


def _in_range(spec: FactSpec, value: Any) -> bool:
    v = value.value if isinstance(value, Q) else value
    if spec.minimum is not None and v < Decimal(str(spec.minimum)):
        return False
    if spec.maximum is not None and v > Decimal(str(spec.maximum)):
        return False
    return True


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _a_date(c: Chooser, low: int, high: int) -> Day:
    year = c.integer(low, high)
    if c.chance(0.5):
        month, d = c.choice(AWKWARD_DAYS)
        if (month, d) == (2, 29) and not calendar.isleap(year):
            year = next(y for y in range(year, year + 8) if calendar.isleap(y))
    else:
        month, d = c.integer(1, 12), c.integer(1, 28)
    return Day(Decimal(dt.date(year, month, d).toordinal()))


_generators: dict[str, Generator] = {}


def generator_for(rules: Any = DEFAULT_RULES) -> Generator:
    key = str(Path(rules).resolve())
    if key not in _generators:
        _generators[key] = Generator(rules)
    return _generators[key]


def candidates(seed: int, count: int, profile: Profile, rules: Any = DEFAULT_RULES) -> Iterator[Candidate]:
    """`count` candidates of the trial in `rules` from `seed`, ids c1, c2, ..."""
    return generator_for(rules).candidates(seed, count, profile)


def candidate(c: Chooser, profile: Profile, candidate_id: str = "c", rules: Any = DEFAULT_RULES) -> Candidate:
    return generator_for(rules).candidate(c, profile, candidate_id)


def as_csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


FACTS = generator_for().columns  # NCT03862768's columns, for the throughput benchmark


def _comma(c: Any, text: str) -> str:
    """Sometimes the same number with a decimal comma, as many labs write it (never before
    exactly three digits, which reads two ways and is refused)."""
    whole, point, fraction = text.partition(".")
    if point and fraction.isdigit() and len(fraction) != 3 and c.chance(0.15):
        return f"{whole},{fraction}"
    return text
