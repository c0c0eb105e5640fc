"""The condition and formula language of docs/rules-language.md, read a second time.

Written from the document alone, for tests/reference.py: its own tokenizer, parser and
exact three-valued evaluator. Nothing here comes from `screener.rules`; unit factors come
from the unit system (`screener.rules.units.factor` when present, else pint with ucumvert).

Values while evaluating:
  bool                 a condition's truth (met / not met)
  Decimal              a plain number (28 significant digits, Python `decimal`)
  Q(value, units)      a quantity; exact durations are quantities in `d`
  Cal(months)          a calendar duration (months, years)
  Day(ordinal)         a date; `ongoing` is Day(+Infinity)
  NEVER                a `never` date; every comparison and window with it is not met
  Range(lo, hi)        `count(L, c)` with unknown items: between lo and hi items
  str                  enum word or text
  Unk(reasons)         unknown; reasons name what could not be computed (empty when a fact
                       is simply absent)
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from functools import lru_cache
from typing import Any, Callable, Mapping

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))  # conditions nest 200 deep
INF = Decimal("Infinity")
CAL_WORDS = {"month": 1, "months": 1, "year": 12, "years": 12}
DAY_WORDS = {"day": 1, "days": 1, "week": 7, "weeks": 7}
AGGREGATES = ("any", "all", "count", "sum", "min_of", "max_of", "latest")
FUNCTIONS = ("min", "max", "abs", "if", "value", "years_between", "months_between",
             "days_between", *AGGREGATES)


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unk:
    reasons: frozenset = frozenset()


UNKNOWN = Unk()


class _Never:
    def __repr__(self) -> str:
        return "NEVER"


NEVER = _Never()


@dataclass(frozen=True)
class Q:
    value: Decimal
    unit: str  # a UCUM code ("" for a dimensionless product of units)
    fact: str | None = None  # the fact it is the value of, if any (its analyte factors)


@dataclass(frozen=True)
class Cal:
    months: int


@dataclass(frozen=True)
class Day:
    ordinal: Decimal  # day number (date.toordinal); +Infinity for `ongoing`

    @property
    def ongoing(self) -> bool:
        return self.ordinal == INF


@dataclass(frozen=True)
class Range:
    lo: Decimal
    hi: Decimal


def merge(*values: Any) -> Unk | None:
    """The combined unknown of `values`, or None when none is unknown."""
    unks = [v for v in values if isinstance(v, Unk)]
    if not unks:
        return None
    if len(unks) == 1 or not any(u.reasons for u in unks):
        return unks[0]
    return Unk(frozenset().union(*(u.reasons for u in unks)))


def day(d: dt.date) -> Day:
    return Day(Decimal(d.toordinal()))


def shift_months(d: Day, months: int) -> Day:
    """The same day `months` calendar months later; a day the month lacks becomes its last."""
    if d.ongoing or months == 0:
        return d
    whole = int(d.ordinal.to_integral_value(rounding="ROUND_FLOOR"))
    base = dt.date.fromordinal(whole)
    total = base.year * 12 + base.month - 1 + months
    year, month0 = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    shifted = dt.date(year, month0 + 1, min(base.day, calendar.monthrange(year, month0 + 1)[1]))
    return Day(Decimal(shifted.toordinal()) + (d.ordinal - whole))


# --- units ----------------------------------------------------------------------------------


class UnitProblem(ValueError):
    pass


@lru_cache(maxsize=None)
def _registry() -> Any:
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@lru_cache(maxsize=None)
def _pint_unit(code: str) -> Any:
    reg = _registry()
    return reg.from_ucum(code) if code else reg.Quantity(1)


def _decimal_of(x: float) -> Decimal:
    return Decimal(f"{x:.15g}")


Conv = tuple  # a fact's analyte conversions: ({unit: factor}, {unit: offset})
NO_CONV: Conv = ({}, {})


def unit_factor(from_code: str, to_code: str, convert: Mapping[str, Decimal] | None = None) -> Decimal:
    """How many `to_code` one `from_code` is (a plain factor)."""
    factor, offset = _conversion(from_code, to_code, (dict(convert or {}), {}))
    if offset:
        raise UnitProblem(f"{from_code} converts to {to_code} with an offset")
    return factor


def convert_value(value: Decimal, from_code: str, to_code: str, conv: Conv = NO_CONV) -> Decimal:
    """`value` in `from_code` as a number in `to_code`; the fact's analyte conversions `conv`
    go from their unit into the fact's declared unit, and are used backwards too."""
    if from_code == to_code:
        return value
    try:
        factor, offset = _conversion(from_code, to_code, conv)
        return value * factor + offset
    except UnitProblem:
        factor, offset = _conversion(to_code, from_code, conv)
        return (value - offset) / factor


@lru_cache(maxsize=4096)
def _cached(from_code: str, to_code: str, factors: tuple, offsets: tuple) -> tuple[Decimal, Decimal]:
    try:
        from screener.rules.units import conversion  # the product's unit system, when it exists
    except ImportError:
        conversion = None
    if conversion is not None:
        try:
            found = conversion(from_code, to_code, dict(factors), dict(offsets))
        except ValueError as exc:
            raise UnitProblem(str(exc)) from None
        return Decimal(found.factor), Decimal(found.offset)
    if from_code in dict(factors):
        return Decimal(dict(factors)[from_code]), Decimal(dict(offsets).get(from_code, 0))
    return _pint_factor(from_code, to_code, dict(factors)), Decimal(0)


def _conversion(from_code: str, to_code: str, conv: Conv) -> tuple[Decimal, Decimal]:
    factors, offsets = conv
    return _cached(from_code, to_code, tuple(sorted(factors.items())), tuple(sorted(offsets.items())))


def _pint_factor(from_code: str, to_code: str, convert: Mapping[str, Decimal]) -> Decimal:
    a, b = _pint_unit(from_code), _pint_unit(to_code)
    if a.dimensionality == b.dimensionality:
        return _decimal_of((1 * a).to(b).magnitude)
    for key, f in convert.items():
        k = _pint_unit(key)
        if k.dimensionality == a.dimensionality:  # into the declared unit `to_code`
            return _pint_factor(from_code, key, {}) * Decimal(f)
    raise UnitProblem(f"cannot convert {from_code} to {to_code}")


def _same_dimension(a: str, b: str) -> bool:
    return _pint_unit(a).dimensionality == _pint_unit(b).dimensionality


def product_unit(a: str, b: str, op: str) -> str:
    """The UCUM code of a product or quotient of two units (parenthesised terms)."""
    if not a:
        return b if op == "*" else (f"/({b})" if b else "")
    if not b:
        return a
    return f"({a}).({b})" if op == "*" else f"({a})/({b})"


# --- tokens ---------------------------------------------------------------------------------

_LEX = re.compile(
    r"""\s*(?:
        (?P<date>\d{4}-\d{2}-\d{2})(?![\w-])
      | (?P<num>\d+(?:\.\d+)?)(?![\w.])
      | (?P<sym>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\+|-|\*|/|\^)
      | '(?P<sq>[^']*)'
      | "(?P<dq>[^"]*)"
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _LEX.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {text[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append(("str" if kind in ("sq", "dq") else kind, m.group(kind)))
        pos = m.end()
    out.append(("eof", ""))
    return out


# --- parsing --------------------------------------------------------------------------------
# A parsed expression is a nested tuple:
#   ("lit", value) ("fact", name) ("def", name) ("field", name) ("word", text)
#   ("neg", e) ("bin", op, a, b) ("cmp", op, a, b) ("in", e, (items...), negated)
#   ("within", x, duration, "before"|"after", y) ("is", x, "never"|"ongoing", negated)
#   ("not", c) ("and", (c...)) ("or", (c...)) ("call", function, (args...))
#   ("pending", (("fact", name)...))  always unknown: the facts are still to collect

_CMP = ("==", "!=", "<", "<=", ">", ">=")


class Parser:
    """Names resolve to item fields (inside an aggregate), facts, definitions, else words."""

    def __init__(self, text: str, facts: Mapping[str, Any], definitions: Mapping[str, Any],
                 items: Mapping[str, Mapping[str, Any]]):
        self.toks = lex(text)
        self.i = 0
        self.facts = facts
        self.definitions = definitions
        self.items = items  # list fact -> its item field specs
        self.scope: list[Mapping[str, Any]] = []

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, *words: str) -> bool:
        kind, text = self.peek()
        return kind in ("sym", "name") and text in words

    def want(self, text: str) -> None:
        tok = self.next()
        if tok[1] != text or tok[0] not in ("sym", "name"):
            raise ValueError(f"expected {text!r}, got {tok[1]!r}")

    def whole(self) -> tuple:
        e = self.disj()
        if self.peek()[0] != "eof":
            raise ValueError(f"trailing {self.peek()[1]!r}")
        return e

    def disj(self) -> tuple:
        parts = [self.conj()]
        while self.at("or"):
            self.next()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else ("or", tuple(parts))

    def conj(self) -> tuple:
        parts = [self.negation()]
        while self.at("and"):
            self.next()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def negation(self) -> tuple:
        if self.at("not"):
            self.next()
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> tuple:
        left = self.additive()
        if self.at(*_CMP):
            links = []
            while self.at(*_CMP):
                op = self.next()[1]
                right = self.additive()
                links.append(("cmp", op, left, right))
                left = right
            return links[0] if len(links) == 1 else ("and", tuple(links))
        if self.at("in") or (self.at("not") and self.peek(1) == ("name", "in")):
            negated = self.at("not")
            if negated:
                self.next()
            self.next()
            self.want("[")
            items = [self.additive()]
            while self.at(","):
                self.next()
                items.append(self.additive())
            self.want("]")
            return ("in", left, tuple(items), negated)
        if self.at("within"):
            self.next()
            duration = self.additive()
            kind, word = self.next()
            if word not in ("before", "after"):
                raise ValueError(f"expected before or after, got {word!r}")
            return ("within", left, duration, word, self.additive())
        if self.at("is"):
            self.next()
            negated = self.at("not")
            if negated:
                self.next()
            word = self.next()[1]
            if word not in ("never", "ongoing"):
                raise ValueError(f"expected never or ongoing, got {word!r}")
            return ("is", left, word, negated)
        return left

    def additive(self) -> tuple:
        e = self.multiplicative()
        while self.at("+", "-"):
            op = self.next()[1]
            e = ("bin", op, e, self.multiplicative())
        return e

    def multiplicative(self) -> tuple:
        e = self.unary()
        while self.at("*", "/"):
            op = self.next()[1]
            e = ("bin", op, e, self.unary())
        return e

    def unary(self) -> tuple:
        if self.at("-"):
            self.next()
            return ("neg", self.unary())
        if self.at("+"):
            self.next()
            return self.unary()
        return self.power()

    def power(self) -> tuple:
        base = self.primary()
        if self.at("^"):
            self.next()
            return ("bin", "^", base, self.unary())  # right-associative, binds tighter than -
        return base

    def primary(self) -> tuple:
        kind, text = self.next()
        if kind == "num":
            number = Decimal(text)
            nxt_kind, nxt = self.peek()
            if nxt_kind == "name" and nxt in DAY_WORDS:
                self.next()
                return ("lit", Q(number * DAY_WORDS[nxt], "d"))
            if nxt_kind == "name" and nxt in CAL_WORDS:
                self.next()
                if number != number.to_integral_value():
                    raise ValueError("calendar durations are whole months or years")
                return ("lit", Cal(int(number) * CAL_WORDS[nxt]))
            if nxt_kind == "str":
                self.next()
                return ("lit", Q(number, nxt))
            return ("lit", number)
        if kind == "date":
            return ("lit", day(dt.date.fromisoformat(text)))
        if kind == "str":
            return ("word", text)
        if (kind, text) == ("sym", "("):
            inner = self.disj()
            self.want(")")
            return inner
        if kind == "sym" and text == "[":
            raise ValueError("a list is only allowed after `in`")
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if text in ("true", "false"):
            return ("lit", text == "true")
        if text == "pending" and self.at("(") and not self.scope:
            # unknown until what the facts describe is done (docs/rules-language.md)
            _, _, args = self.call(text)
            if not args or any(a[0] != "fact" for a in args):
                raise ValueError("pending takes the names of facts")
            return ("pending", args)
        if text in FUNCTIONS and self.at("("):
            return self.call(text)
        for fields in reversed(self.scope):
            if text in fields:
                return ("field", text)
        if text in self.facts:
            return ("fact", text)
        if text in self.definitions:
            return ("def", text)
        return ("word", text)

    def call(self, name: str) -> tuple:
        self.want("(")
        args: list[tuple] = []
        if name in AGGREGATES:
            first = self.disj()
            if first[0] != "fact" or first[1] not in self.items:
                raise ValueError(f"{name}: the first argument must be a list fact")
            args.append(first)
            self.scope.append(self.items[first[1]])
            try:
                while self.at(","):
                    self.next()
                    args.append(self.disj())
            finally:
                self.scope.pop()
        elif not self.at(")"):
            args.append(self.disj())
            while self.at(","):
                self.next()
                args.append(self.disj())
        self.want(")")
        return ("call", name, tuple(args))


def parse(text: str, facts: Mapping[str, Any], definitions: Mapping[str, Any] = {},
          items: Mapping[str, Mapping[str, Any]] = {}) -> tuple:
    return Parser(text, facts, definitions, items).whole()


def names_read(e: tuple, definitions: Mapping[str, tuple] = {}, fields: bool = False) -> list[str]:
    """Facts an expression reads (through definitions), in order of first use; with `fields`,
    the item fields it reads too."""
    out: list[str] = []
    named = ("fact", "field") if fields else ("fact",)

    def walk(e: Any) -> None:
        if not isinstance(e, tuple) or not e:
            return
        if e[0] in named:
            if e[1] not in out:
                out.append(e[1])
            return
        if e[0] == "def":
            walk(definitions[e[1]])
            return
        if e[0] in ("lit", "word", "field"):
            return
        for part in e[1:]:
            if isinstance(part, tuple):
                if part and isinstance(part[0], str):
                    walk(part)
                else:
                    for p in part:
                        walk(p)

    walk(e)
    return out


# --- evaluation -----------------------------------------------------------------------------


class Uncomputable(Exception):
    """Inputs known, value not: division by zero, overflow, a date out of range."""


class Env:
    """What an expression reads: typed fact values, definitions, and the current item."""

    def __init__(self, values: Mapping[str, Any], definitions: Mapping[str, tuple],
                 units: Mapping[str, str], converts: Mapping[str, Conv],
                 specials: Mapping[str, frozenset] = {}):
        self.values = values  # fact -> runtime value (absent facts are not in it)
        self.definitions = definitions
        self.units = units  # quantity fact -> its UCUM unit
        self.converts = converts  # quantity fact -> its analyte conversions (factors, offsets)
        self.specials = specials  # fact or item field -> the words it allows ("never", "ongoing")
        self.item: Mapping[str, Any] | None = None
        self.memo: dict[str, Any] = {}
        self.choices: Mapping[str, tuple] = {}  # yes/no and choice item fields -> their values
        self.bounds: Mapping[str, str] = {}  # date item field -> the sibling it is never before


def evaluate(e: tuple, env: Env) -> Any:
    with localcontext() as ctx:
        ctx.prec = 28
        ctx.traps[DivisionByZero] = True
        ctx.traps[InvalidOperation] = True
        ctx.traps[Overflow] = True
        return _eval(e, env)


def _eval(e: tuple, env: Env) -> Any:
    tag = e[0]
    if tag == "lit":
        return e[1]
    if tag == "word":
        return e[1]
    if tag == "fact":
        return env.values.get(e[1], UNKNOWN)
    if tag == "field":
        assert env.item is not None
        value = env.item.get(e[1])
        return UNKNOWN if value is None else value
    if tag == "def":
        if e[1] not in env.memo:
            env.memo[e[1]] = _eval(env.definitions[e[1]], env)
        return env.memo[e[1]]
    if tag == "not":
        inner = truth(_eval(e[1], env))
        return inner if isinstance(inner, Unk) else not inner
    if tag == "and" or tag == "or":
        settles = tag == "or"  # the value of one part that settles the whole
        unknowns = []
        for part in e[1]:
            result = truth(_eval(part, env))
            if result is settles:
                return settles
            if result is not (not settles):
                unknowns.append(result)
        return merge(*unknowns) if unknowns else (not settles)
    if tag == "neg":
        return _guard(lambda: negate(_eval(e[1], env)), e)
    if tag == "bin":
        a, b = _eval(e[2], env), _eval(e[3], env)
        return _guard(lambda: arith(e[1], a, b, env), e)
    if tag == "cmp":
        a, b = _eval(e[2], env), _eval(e[3], env)
        got = compare(e[1], a, b, env)
        if isinstance(got, Unk) and not got.reasons and _is_ongoing(a, b):
            got = _whatever(lambda x, y: compare(e[1], x, y, env), (a, b), (e[2], e[3]),
                            (_A_DAY, _A_DAY), env, got)
        if isinstance(got, Unk) and not got.reasons:
            got = _from_bound(e, a, b, env, got)
        if isinstance(got, Unk) and not got.reasons:
            return _either_branch(e, env, got)
        return got
    if tag == "in":
        x = _eval(e[1], env)
        words = _literal_set(e[2])
        if words is not None and isinstance(x, (Decimal, str, int)) and not isinstance(x, bool):
            return (number(x) in words) != e[3]  # a list of plain literals: one lookup
        results = [compare("==", x, _eval(item, env), env) for item in e[2]]
        found: Any = True if True in results else (merge(*results) or False)
        if x is NEVER:
            return False
        return found if e[3] is False or isinstance(found, Unk) else not found
    if tag == "is":
        x = _eval(e[1], env)
        if isinstance(x, Unk):
            return x
        hit = (x is NEVER) if e[2] == "never" else (isinstance(x, Day) and x.ongoing)
        return hit != e[3]
    if tag == "within":
        x, dur, y = _eval(e[1], env), _eval(e[2], env), _eval(e[4], env)
        got = within(x, dur, e[3], y, env, e)
        if isinstance(got, Unk) and not got.reasons and _is_ongoing(x, y):
            return _whatever(lambda a, d, b: within(a, d, e[3], b, env, e), (x, dur, y),
                             (e[1], e[2], e[4]), (_A_DAY, _A_DURATION, _A_DAY), env, got)
        return got
    if tag == "call":
        return call(e[1], e[2], env, e)
    if tag == "pending":
        return UNKNOWN
    raise AssertionError(tag)


def _from_bound(e: tuple, a: Any, b: Any, env: Env, unknown: Unk) -> Any:
    """An unknown item field that is never earlier than a known sibling date (`not_before`)
    compared with a known date: it can be that date or any later one; the comparison is
    decided when the earliest and a day far later (standing for all later ones, ordered
    comparisons being monotone) agree."""
    if e[1] in ("==", "!=") or env.item is None:
        return unknown
    for side, value, other in ((e[2], a, b), (e[3], b, a)):
        if side[0] != "field" or not isinstance(value, Unk) or not isinstance(other, Day):
            continue
        sibling = env.bounds.get(side[1])
        earliest = env.item.get(sibling) if sibling else None
        if not isinstance(earliest, Day) or earliest.ongoing:
            continue
        far = Day(Decimal(3652059))  # 9999-12-31
        answers = {compare(e[1], x, other, env) if side is e[2] else compare(e[1], other, x, env)
                   for x in (earliest, far)}
        if len(answers) == 1 and isinstance(next(iter(answers)), bool):
            return answers.pop()
    return unknown


def _either_branch(e: tuple, env: Env, unknown: Unk) -> Any:
    """A comparison left unknown by `if(test, a, b)`s whose tests are unknown: the answer when
    the comparison written with every choice of their branches gives the same one (tried one
    by one, the `if`s written out in full); `unknown` otherwise."""
    found: list[tuple] = []

    def walk(node: Any) -> None:
        if not isinstance(node, tuple) or not node:
            return
        if not isinstance(node[0], str):
            for part in node:
                walk(part)
            return
        if node[0] == "def":
            walk(env.definitions[node[1]])
        elif node[0] == "call" and node[1] == "if":
            test = _eval(node[2][0], env)
            if isinstance(test, Unk) and not test.reasons and node not in found:
                found.append(node)
        elif node[0] == "call" and node[1] in AGGREGATES:
            return
        elif node[0] not in ("lit", "word", "fact", "field"):
            for part in node[1:]:
                walk(part)

    walk(e[2])
    walk(e[3])
    if not found or len(found) > 4:
        return unknown
    answers = set()
    for choice in _product([[1, 2]] * len(found)):
        written = e
        for node, branch in zip(found, choice):
            written = _write_out(written, node, node[2][branch], env)
        got = compare(written[1], _eval(written[2], env), _eval(written[3], env), env)
        if not isinstance(got, bool):
            return unknown
        answers.add(got)
    return answers.pop() if len(answers) == 1 else unknown


def _write_out(e: Any, target: tuple, branch: tuple, env: Env) -> Any:
    """`e` with `target` replaced by `branch`, definitions that hold it written out."""
    if e == target:
        return branch
    if not isinstance(e, tuple) or not e:
        return e
    if e[0] == "def":
        body = env.definitions[e[1]]
        written = _write_out(body, target, branch, env)
        return e if written == body else written
    if isinstance(e[0], str) and e[0] in ("lit", "word", "fact", "field"):
        return e
    return tuple(_write_out(part, target, branch, env) for part in e)


def _is_ongoing(*values: Any) -> bool:
    return any(isinstance(v, Day) and v.ongoing for v in values)


_A_DAY = Day(Decimal(730120))  # 2000-01-01, standing for any plain date
_A_DURATION = Q(Decimal(3), "d")


def _whatever(decide: Callable[..., Any], values: tuple, exprs: tuple, plains: tuple, env: Env,
              unknown: Unk) -> Any:
    """The answer `decide` gives for every value the unknown ones among `values` may take:
    any plain date or duration (beside `ongoing` each gives the same answer, so one stands
    for all), and `ongoing` / `never` where the expression reads a fact or item field that
    allows the word; `unknown` when the answers differ."""
    choices = []
    for value, expr, plain in zip(values, exprs, plains):
        if not isinstance(value, Unk):
            choices.append([value])
            continue
        words = _words_read(expr, env)
        choices.append([plain] + ([Day(INF)] if "ongoing" in words else [])
                       + ([NEVER] if "never" in words else []))
    answers: list[Any] = []
    for combination in _product(choices):
        answers.append(decide(*combination))
    first = answers[0]
    if isinstance(first, bool) and all(a is first for a in answers):
        return first
    return unknown


def _product(choices: list[list[Any]]) -> list[tuple]:
    out: list[tuple] = [()]
    for options in choices:
        out = [done + (o,) for done in out for o in options]
    return out


def _words_read(e: Any, env: Env) -> set[str]:
    """The special words the facts and item fields read by `e` allow."""
    return {word for name in names_read(e, env.definitions, fields=True)
            for word in env.specials.get(name, ())}


_SETS: dict[int, tuple[tuple, frozenset | None]] = {}


def _literal_set(items: tuple) -> frozenset | None:
    """The values of an `in` list made only of plain numbers or only of words, else None."""
    kept = _SETS.get(id(items))
    if kept is None or kept[0] is not items:
        values = [item[1] for item in items if item[0] in ("lit", "word")]
        kinds = {type(v) for v in values}
        plain = len(values) == len(items) and (kinds <= {Decimal} or kinds <= {str})
        kept = _SETS[id(items)] = (items, frozenset(values) if plain else None)
    return kept[1]


def truth(value: Any) -> Any:
    if isinstance(value, (bool, Unk)):
        return value
    raise TypeError(f"not a condition: {value!r}")


def _guard(compute: Callable[[], Any], e: tuple) -> Any:
    try:
        return compute()
    except (ArithmeticError, OverflowError, Uncomputable) as exc:
        return Unk(frozenset({f"cannot compute: {type(exc).__name__}"}))


def number(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError("a yes/no value is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def negate(x: Any) -> Any:
    if isinstance(x, Unk) or x is NEVER:
        return x
    if isinstance(x, Decimal):
        return -x
    if isinstance(x, Q):
        return Q(-x.value, x.unit)
    if isinstance(x, Cal):
        return Cal(-x.months)
    if isinstance(x, Range):
        return Range(-x.hi, -x.lo)
    raise TypeError(f"cannot negate {x!r}")


def to_unit(q: Q, unit: str, conv: Conv | None = None) -> Decimal:
    return q.value if q.unit == unit else convert_value(q.value, q.unit, unit, conv or NO_CONV)


def _exact(x: Any) -> Any:
    """A range that is one number is that number; a wider one is unknown in arithmetic."""
    if isinstance(x, Range):
        return x.lo if x.lo == x.hi else UNKNOWN
    return x


def arith(op: str, a: Any, b: Any, env: Env) -> Any:
    a, b = _exact(a), _exact(b)
    unknown = merge(a, b)
    if unknown is not None:
        return unknown
    if a is NEVER or b is NEVER:
        return NEVER
    if op in "+-":
        return _add(op, a, b)
    if op == "*":
        if isinstance(a, Decimal) and isinstance(b, Decimal):
            return a * b
        if isinstance(a, Q) and isinstance(b, Decimal):
            return Q(a.value * b, a.unit)
        if isinstance(a, Decimal) and isinstance(b, Q):
            return Q(a * b.value, b.unit)
        if isinstance(a, Q) and isinstance(b, Q):
            return Q(a.value * b.value, product_unit(a.unit, b.unit, "*"))
        if isinstance(a, Cal) and isinstance(b, Decimal) and b == b.to_integral_value():
            return Cal(a.months * int(b))
        if isinstance(a, Decimal) and isinstance(b, Cal) and a == a.to_integral_value():
            return Cal(int(a) * b.months)
        raise TypeError(f"cannot multiply {a!r} by {b!r}")
    if op == "/":
        if isinstance(b, Decimal) and b == 0 or isinstance(b, Q) and b.value == 0:
            raise Uncomputable("division by zero")
        if isinstance(a, Decimal) and isinstance(b, Decimal):
            return a / b
        if isinstance(a, Q) and isinstance(b, Decimal):
            return Q(a.value / b, a.unit)
        if isinstance(a, Q) and isinstance(b, Q):
            if a.unit == b.unit:
                return a.value / b.value
            if _same_dimension(a.unit, b.unit):
                return a.value / to_unit(b, a.unit)
            return Q(a.value / b.value, product_unit(a.unit, b.unit, "/"))
        if isinstance(a, Decimal) and isinstance(b, Q):
            return Q(a / b.value, product_unit("", b.unit, "/"))
        raise TypeError(f"cannot divide {a!r} by {b!r}")
    if op == "^":
        if isinstance(b, Q):
            raise TypeError("an exponent is a plain number")
        if isinstance(a, Q):
            if b != b.to_integral_value():
                raise TypeError("a quantity's exponent is whole")
            n = int(b)
            unit = a.unit
            if n == 0:
                return Decimal(1)
            code = unit
            for _ in range(abs(n) - 1):
                code = product_unit(code, unit, "*")
            if n < 0:
                if a.value == 0:
                    raise Uncomputable("division by zero")
                return Q(a.value ** n, product_unit("", code, "/"))
            return Q(a.value ** n, code)
        if isinstance(a, Decimal):
            if a == 0 and b < 0:
                raise Uncomputable("division by zero")
            if a < 0 and b != b.to_integral_value():
                raise Uncomputable("a negative number to a fractional power")
            return a ** b
        raise TypeError(f"cannot raise {a!r}")
    raise AssertionError(op)


def _add(op: str, a: Any, b: Any) -> Any:
    sign = 1 if op == "+" else -1
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a + sign * b
    if isinstance(a, Q) and isinstance(b, Q):
        return Q(a.value + sign * to_unit(b, a.unit), a.unit)
    if isinstance(a, Q) and isinstance(b, Decimal):
        return Q(a.value + sign * b, a.unit)
    if isinstance(a, Decimal) and isinstance(b, Q):
        return Q(a + sign * b.value, b.unit)
    if isinstance(a, Cal) and isinstance(b, Cal):
        return Cal(a.months + sign * b.months)
    if isinstance(a, Day) and isinstance(b, Q):
        if a.ongoing:
            return a
        return _checked(Day(a.ordinal + sign * to_unit(b, "d")))
    if isinstance(a, Q) and isinstance(b, Day) and sign == 1:
        return _add("+", b, a)
    if isinstance(a, Day) and isinstance(b, Cal):
        return shift_months(a, sign * b.months)
    if isinstance(a, Cal) and isinstance(b, Day) and sign == 1:
        return shift_months(b, a.months)
    if isinstance(a, Day) and isinstance(b, Day) and sign == -1:
        if a.ongoing and b.ongoing:
            raise Uncomputable("ongoing - ongoing")
        return Q(a.ordinal - b.ordinal, "d")  # ongoing - a date: longer than any duration
    raise TypeError(f"cannot {op} {a!r} and {b!r}")


def _checked(d: Day) -> Day:
    if not 1 <= d.ordinal <= dt.date.max.toordinal():
        raise Uncomputable("date out of range")
    return d


def _comparable(a: Any, b: Any, env: Env) -> tuple[Any, Any]:
    """Both sides in one scale: quantities in the first quantity's unit, a plain number taken
    in the other side's unit, durations in days."""
    a, b = number(a), number(b)
    if isinstance(a, Q) and isinstance(b, Q):
        if a.unit == b.unit:
            return a.value, b.value
        # a fact's unit wins; the other side (a literal, usually) is converted into it
        if b.fact is not None and a.fact is None:
            return to_unit(a, b.unit, env.converts.get(b.fact)), b.value
        return a.value, to_unit(b, a.unit, env.converts.get(a.fact or ""))
    if isinstance(a, Q) and isinstance(b, Decimal):
        return a.value, b
    if isinstance(a, Decimal) and isinstance(b, Q):
        return a, b.value
    if isinstance(a, Day) and isinstance(b, Day):
        return a.ordinal, b.ordinal
    if isinstance(a, Cal) and isinstance(b, Cal):
        return Decimal(a.months), Decimal(b.months)
    if isinstance(a, bool) and isinstance(b, bool):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a, b
    raise TypeError(f"cannot compare {a!r} with {b!r}")


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def compare(op: str, a: Any, b: Any, env: Env) -> Any:
    if a is NEVER or b is NEVER:
        return False
    unknown = merge(a, b)
    if unknown is not None:
        return unknown
    if isinstance(a, Range) or isinstance(b, Range):
        lo_a, hi_a = (a.lo, a.hi) if isinstance(a, Range) else (number(a), number(a))
        lo_b, hi_b = (b.lo, b.hi) if isinstance(b, Range) else (number(b), number(b))
        outcomes = {_OPS[op](x, y) for x in (lo_a, hi_a) for y in (lo_b, hi_b)}
        if op in ("==", "!="):  # equality over a range: met only when both are one number
            if lo_a == hi_a and lo_b == hi_b:
                return _OPS[op](lo_a, lo_b)
            if hi_a < lo_b or hi_b < lo_a:
                return op == "!="
            return UNKNOWN
        return outcomes.pop() if len(outcomes) == 1 else UNKNOWN
    try:
        x, y = _comparable(a, b, env)
    except UnitProblem as exc:
        return Unk(frozenset({f"cannot compute: {exc}"}))
    return _OPS[op](x, y)


def within(x: Any, dur: Any, direction: str, y: Any, env: Env, e: tuple) -> Any:
    """`x within D before y`: y - D <= x <= y; after: y <= x <= y + D."""
    if x is NEVER or y is NEVER:
        return False
    if isinstance(x, Day) and x.ongoing and direction == "before" and isinstance(y, Day):
        return True  # still going at the anchor: inside the window before it, whatever D
    unknown = merge(x, dur, y)
    if unknown is not None:
        return unknown
    if isinstance(y, Day) and y.ongoing:
        return False  # an anchor still going has no end to count a window from
    try:
        sign = "-" if direction == "before" else "+"
        edge = arith(sign, y, dur, env)
    except (ArithmeticError, OverflowError, Uncomputable) as exc:
        return Unk(frozenset({f"cannot compute: {type(exc).__name__}"}))
    low, high = (edge, y) if direction == "before" else (y, edge)
    return compare("<=", low, x, env) is True and compare("<=", x, high, env) is True


# --- functions ------------------------------------------------------------------------------


def call(name: str, args: tuple, env: Env, e: tuple) -> Any:
    if name in AGGREGATES:
        return aggregate(name, args, env, e)
    if name == "if":
        c = truth(_eval(args[0], env))
        if isinstance(c, Unk):
            return c
        return _eval(args[1] if c else args[2], env)
    values = [_exact(_eval(a, env)) for a in args]
    return _guard(lambda: _function(name, values, args, env), e)


def _function(name: str, values: list[Any], args: tuple, env: Env) -> Any:
    if name in ("min", "max"):
        if any(v is NEVER for v in values):
            return NEVER
        unknown = merge(*values)
        if unknown is not None:
            return unknown
        values = [number(v) for v in values]
        best = values[0]
        for v in values[1:]:
            x, y = _comparable(v, best, env)
            if (x < y) if name == "min" else (x > y):
                best = v
        return best
    unknown = merge(*values)
    if unknown is not None:
        return unknown
    if any(v is NEVER for v in values):
        return NEVER
    if name == "abs":
        v = number(values[0])
        if isinstance(v, Q):
            return Q(abs(v.value), v.unit)
        if isinstance(v, Cal):
            return Cal(abs(v.months))
        return abs(v)
    if name == "value":
        q, unit = values
        if not isinstance(q, Q):
            raise TypeError("value() of a quantity")
        return to_unit(q, unit, env.converts.get(q.fact or ""))
    a, b = values
    if not (isinstance(a, Day) and isinstance(b, Day)):
        raise TypeError(f"{name} of dates")
    if a.ongoing or b.ongoing:
        if b.ongoing and not a.ongoing:
            return INF
        raise Uncomputable(f"{name} from ongoing")
    if name == "days_between":
        return b.ordinal - a.ordinal
    months = 12 if name == "years_between" else 1
    return Decimal(_whole_months(a, b) // months) if b.ordinal >= a.ordinal \
        else -Decimal(_whole_months(b, a) // months)


def _whole_months(a: Day, b: Day) -> int:
    """Whole calendar months from a to b (b >= a); the monthly anniversary counts."""
    start, end = dt.date.fromordinal(int(a.ordinal)), dt.date.fromordinal(int(b.ordinal))
    n = (end.year - start.year) * 12 + end.month - start.month
    while n > 0 and shift_months(a, n).ordinal > b.ordinal:
        n -= 1
    return n


def aggregate(name: str, args: tuple, env: Env, e: tuple) -> Any:
    items = _eval(args[0], env)
    if isinstance(items, Unk):
        return items
    outer = env.item
    results: list[Any] = []
    try:
        if name == "latest":
            return _latest(items, args, env)
        for item in items:
            env.item = item
            if len(args) > 1:
                results.append(item_truth(args[1], env, item) if name in ("any", "all", "count")
                               else _eval(args[1], env))
    finally:
        env.item = outer
    if name == "count":
        if len(args) == 1:
            return Decimal(len(items))
        truths = [truth(r) for r in results]
        lo = sum(1 for t in truths if t is True)
        hi = sum(1 for t in truths if t is not False)
        return Range(Decimal(lo), Decimal(hi)) if lo != hi else Decimal(lo)
    if name == "any":
        truths = [truth(r) for r in results]
        return True if True in truths else (merge(*truths) or False)
    if name == "all":
        truths = [truth(r) for r in results]
        return False if False in truths else (merge(*truths) or True)
    unknown = merge(*results)
    if unknown is not None:
        return unknown
    if any(r is NEVER for r in results):
        return NEVER
    if name == "sum":
        total: Any = Decimal(0)
        for r in results:
            total = _guard(lambda total=total, r=r: arith("+", total, number(r), env), e)
        return total
    if not results:
        return UNKNOWN
    return _function("min" if name == "min_of" else "max", [number(r) for r in results], (), env)


def item_truth(c: tuple, env: Env, item: Mapping[str, Any]) -> Any:
    """Condition `c` on one item; when unknown, every combination of the yes/no and choice
    fields it reads that the item leaves unknown is tried (at most 64), each written into a
    copy of the item: the one answer they all give, or unknown."""
    outer = env.item
    try:
        env.item = item
        got = truth(_eval(c, env))
        if not isinstance(got, Unk) or got.reasons:
            return got
        names = [n for n in names_read(c, env.definitions, fields=True)
                 if n in env.choices and isinstance(item.get(n, UNKNOWN), Unk)]
        combos = _product([list(env.choices[n]) for n in names])
        if not names or len(combos) > 64:
            return got
        answers = []
        for combo in combos:
            env.item = {**item, **dict(zip(names, combo))}
            answers.append(truth(_eval(c, env)))
        first = answers[0]
        return first if isinstance(first, bool) and all(a is first for a in answers) else got
    finally:
        env.item = outer


def _latest(items: tuple, args: tuple, env: Env) -> Any:
    if not items:
        return UNKNOWN
    keys: list[Any] = []
    for item in items:
        env.item = item
        keys.append(_eval(args[1], env))
    if merge(*keys) is not None or any(k is NEVER for k in keys):
        return merge(*keys) or UNKNOWN
    best = 0
    for i, key in enumerate(keys):
        if key.ordinal >= keys[best].ordinal:  # the last listed wins a tie
            best = i
    env.item = items[best]
    return _eval(args[2], env)
