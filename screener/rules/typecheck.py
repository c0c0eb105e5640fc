"""Resolve names and check types of a parsed expression against the data dictionary.

The result is a `screener.model` expression tree in which every unit conversion is explicit
(`Scale`), every comparison of a plain fact with a literal is a `Compare`/`In` (decided by
the engine directly, as before) and everything else is a node the compiler turns into a
hidden term. Types: numbers, quantities (with their UCUM unit), durations (exact days or
calendar months), dates, yes/no, enum words, text and lists.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping

from screener.model import (
    Aggregate, And, Arith, Call, Cmp, Compare, Const, Duration, Expr, FactSpec, In, IsSpecial,
    ItemField, Literal, Member, Neg, Not, Number, Or, Pending, Ref, Scale, Special, Truth, Within,
)
from screener.rules.parse import ConditionError, Node, parse_syntax, suggest

Unit = tuple[tuple[str, int], ...]  # UCUM codes with their exponents, sorted
ORDERED = ("number", "quantity", "duration", "date")
FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
FUNCTIONS = ("min", "max", "abs", "if", "value", "years_between", "months_between", "days_between")
PENDING = "pending"  # a condition of its own (`Checker.pending`), not a function of values
AGGREGATES = ("any", "all", "count", "sum", "min_of", "max_of", "latest")


@dataclass(frozen=True, slots=True)
class Ty:
    """The type of an expression."""

    kind: str  # number quantity duration date boolean enum text list word
    unit: Unit = ()  # quantity
    calendar: bool = False  # duration: months (True) or days
    values: tuple[str, ...] = ()  # enum
    special: tuple[Special, ...] = ()  # date
    item: tuple[FactSpec, ...] = ()  # list
    convert: tuple[tuple[str, Decimal], ...] = ()  # quantity straight from a fact
    integer: bool = False  # number: whole by construction
    ranged: bool = False  # number: count(L, c), a range when items are unknown

    def show(self) -> str:
        if self.kind == "quantity":
            return f"a quantity in {unit_code(self.unit)}"
        if self.kind == "duration":
            return "a calendar duration (months)" if self.calendar else "a duration in days"
        return {"number": "a number", "date": "a date", "boolean": "yes/no", "enum": "an enum",
                "text": "text", "list": "a list"}.get(self.kind, self.kind)


BOOLEAN = Ty("boolean")
NUMBER = Ty("number")
INTEGER = Ty("number", integer=True)


@dataclass(frozen=True, slots=True)
class Definition:
    """A named expression of the `definitions:` section, checked."""

    name: str
    expr: Expr
    ty: Ty


def unit_code(unit: Unit) -> str:
    """A UCUM code for a product of codes: `(kg)/(cm)/(cm)`; `1` when dimensionless."""
    if len(unit) == 1 and unit[0][1] == 1:
        return unit[0][0]
    up = [f"({code})" for code, exp in unit for _ in range(exp) if exp > 0]
    down = [f"/({code})" for code, exp in unit for _ in range(-exp) if exp < 0]
    return (".".join(up) or "1") + "".join(down)


def _combine(a: Unit, b: Unit, sign: int) -> Unit:
    exps: dict[str, int] = dict(a)
    for code, exp in b:
        exps[code] = exps.get(code, 0) + sign * exp
    return tuple(sorted((c, e) for c, e in exps.items() if e != 0))


def units_factor(source: Unit, target: Unit, convert: Mapping[str, Decimal] = {}) -> Fraction:
    """How many `target` units one `source` unit is, exactly; raises units.UnitError.

    Of the factor and the inverse of the reverse factor, the shorter is taken: 1 h is 1/24 d
    exactly, not 0.041666666666667 d; 1 umol/L of creatinine is 1/88.4 mg/dL."""
    from screener.rules import units

    if source == target:
        return Fraction(1)
    a, b = unit_code(source), unit_code(target)
    forward: Fraction | None = None
    try:
        forward = Fraction(units.factor(a, b, convert))
    except units.UnitError:
        if not convert:
            raise
    try:
        backward = 1 / Fraction(units.factor(b, a, convert))
    except (units.UnitError, ArithmeticError, ZeroDivisionError):
        if forward is None:
            raise
        return forward
    if forward is None or backward.denominator < forward.denominator:
        return backward
    return forward


def is_time(unit: Unit) -> bool:
    from screener.rules import units

    try:
        units_factor(unit, (("d", 1),))
    except units.UnitError:
        return False
    return True


def fact_type(spec: FactSpec) -> Ty:
    if spec.type in ("integer", "decimal"):
        return Ty("number", integer=spec.type == "integer")
    if spec.type == "quantity":
        return Ty("quantity", unit=((spec.unit, 1),), convert=spec.convert)
    if spec.type == "date":
        return Ty("date", special=spec.special)
    if spec.type == "enum":
        return Ty("enum", values=spec.values)
    if spec.type == "list":
        return Ty("list", item=spec.item)
    return Ty(spec.type)


class _Word:
    """A bare word that is no fact, field or definition: an enum word, if the other side is an enum."""

    def __init__(self, node: Node):
        self.node = node


class Checker:
    """Checks expressions of one rules file; `facts` and `definitions` are what names mean."""

    def __init__(self, facts: Mapping[str, FactSpec], definitions: Mapping[str, Definition] | None = None):
        self.facts = facts
        self.definitions = definitions or {}
        self._in_value = 0  # inside a formula, a definition or an `if` (no `pending` there)

    # --- entry points ------------------------------------------------------------------

    def condition(self, text: str) -> Expr:
        """A `when:` condition: must be yes/no."""
        node = parse_syntax(text)
        return self._guard(lambda: self.cond(node, None))

    def value(self, text: str) -> tuple[Expr, Ty]:
        """A formula or definition: any type."""
        node = parse_syntax(text)
        self._in_value += 1
        try:
            return self._guard(lambda: self.typed(node, None))
        finally:
            self._in_value -= 1

    @staticmethod
    def _guard(run: Any) -> Any:
        try:
            return run()
        except RecursionError:
            raise ConditionError(0, "too-deep", "nested too deeply") from None

    # --- errors ------------------------------------------------------------------------

    def wrong(self, node: Node, message: str) -> ConditionError:
        return ConditionError(node.offset, "wrong-type", message)

    def known_names(self, scope: Mapping[str, FactSpec] | None) -> list[str]:
        return [*self.facts, *self.definitions, *(scope or {})]

    # --- conditions --------------------------------------------------------------------

    def cond(self, node: Node, scope: Mapping[str, FactSpec] | None) -> Expr:
        if node.kind == "and":
            return And(tuple(self.cond(a, scope) for a in node.args))
        if node.kind == "or":
            return Or(tuple(self.cond(a, scope) for a in node.args))
        if node.kind == "not":
            return Not(self.cond(node.args[0], scope))
        if node.kind == "bool":
            return Const(bool(node.value))
        if node.kind == "call" and node.text == PENDING:
            return self.pending(node, scope)
        expr, ty = self.typed(node, scope)
        if ty.kind != "boolean":
            if node.kind == "name":
                raise self.wrong(node, f"{node.text} is {_spec_kind(self.facts, scope, node.text, ty)}, "
                                       "not yes/no: compare it with a value")
            raise self.wrong(node, f"this is {ty.show()}, not a condition")
        return as_condition(expr, self.facts)

    # --- typed expressions -------------------------------------------------------------

    def typed(self, node: Node, scope: Mapping[str, FactSpec] | None) -> tuple[Expr, Ty]:
        got = self.operand(node, scope)
        if isinstance(got, _Word):
            known = self.known_names(scope)
            raise ConditionError(node.offset, "unknown-fact",
                                 f"{node.text!r} is not in the data dictionary{suggest(node.text, known)}")
        return got

    def operand(self, node: Node, scope: Mapping[str, FactSpec] | None) -> tuple[Expr, Ty] | _Word:
        kind = node.kind
        if kind in ("and", "or", "not"):
            return self.cond(node, scope), BOOLEAN
        if kind == "bool":
            return Literal(bool(node.value)), BOOLEAN
        if kind == "number":
            value = node.value
            return Number(value), Ty("number", integer=value == value.to_integral_value())
        if kind == "quantity":
            return Number(node.value), Ty("quantity", unit=self.unit(node, node.text))
        if kind == "duration":
            calendar = node.text == "months"
            if calendar and node.value != node.value.to_integral_value():
                raise self.wrong(node, "months and years must be whole numbers")
            return Duration(node.value, calendar), Ty("duration", calendar=calendar)
        if kind == "date":
            try:
                day = dt.date.fromisoformat(node.text)
            except ValueError:
                raise self.wrong(node, f"{node.text!r} is not a date") from None
            return Literal(day), Ty("date")
        if kind == "text":
            return Literal(node.text), Ty("text")
        if kind == "name":
            return self.name(node, scope)
        if kind == "neg":
            inner, ty = self.typed(node.args[0], scope)
            if ty.kind not in ("number", "quantity", "duration") or ty.ranged:
                raise self.wrong(node, f"cannot negate {ty.show()}")
            if isinstance(inner, Number):
                return Number(-inner.value), ty
            if isinstance(inner, Duration):
                return Duration(-inner.amount, inner.calendar), ty
            return Neg(inner), ty
        if kind == "arith":
            return self.arith(node, scope)
        if kind == "cmp":
            return self.compare(node, scope), BOOLEAN
        if kind == "in":
            return self.member(node, scope), BOOLEAN
        if kind == "is":
            return self.special(node, scope), BOOLEAN
        if kind == "within":
            return self.within(node, scope), BOOLEAN
        if kind == "call":
            if node.text in AGGREGATES:
                return self.aggregate(node, scope)
            return self.call(node, scope)
        raise self.wrong(node, f"unexpected {kind}")  # the parser makes no other kinds

    def unit(self, node: Node, code: str) -> Unit:
        from screener.rules import units

        try:
            units.check_unit(code)
        except units.UnitError as exc:
            raise ConditionError(node.offset, "unit", str(exc)) from None
        return ((code, 1),)

    def name(self, node: Node, scope: Mapping[str, FactSpec] | None) -> tuple[Expr, Ty] | _Word:
        word = node.text
        if scope is not None and word in scope:
            return ItemField(word), fact_type(scope[word])
        if word in self.facts:
            return Ref(word), fact_type(self.facts[word])
        if word in self.definitions:
            definition = self.definitions[word]
            return definition.expr, definition.ty
        return _Word(node)

    # --- comparisons -------------------------------------------------------------------

    def resolve_pair(self, left: Node, right: Node, scope: Mapping[str, FactSpec] | None
                     ) -> tuple[tuple[Expr, Ty], tuple[Expr, Ty]]:
        a = self.operand(left, scope)
        b = self.operand(right, scope)
        if isinstance(a, _Word) and isinstance(b, _Word):
            a = self.typed(left, scope)
        if isinstance(a, _Word):
            assert not isinstance(b, _Word)
            a = self.word_as(a.node, b[1], b[0])
        if isinstance(b, _Word):
            b = self.word_as(b.node, a[1], a[0])
        return self.quoted_as(left, b, a), self.quoted_as(right, a, b)

    def quoted_as(self, node: Node, other: tuple[Expr, Ty], this: tuple[Expr, Ty]) -> tuple[Expr, Ty]:
        """Quoted text compared with an enum or a date reads as the enum word or the date."""
        expr, ty = this
        if node.kind != "text" or not isinstance(expr, Literal) or not isinstance(expr.value, str):
            return this
        if other[1].kind == "enum":
            return self.enum_word(node, expr.value, other[1], other[0]), other[1]
        if other[1].kind == "date":
            try:
                return Literal(dt.date.fromisoformat(expr.value)), Ty("date")
            except ValueError:
                raise self.wrong(node, f"{expr.value!r} is not a date") from None
        return this

    def word_as(self, node: Node, ty: Ty, other: Expr) -> tuple[Expr, Ty]:
        if ty.kind != "enum":
            known = self.known_names(None)
            raise ConditionError(node.offset, "unknown-fact",
                                 f"{node.text!r} is not in the data dictionary{suggest(node.text, known)}")
        return self.enum_word(node, node.text, ty, other), ty

    def enum_word(self, node: Node, word: str, ty: Ty, other: Expr) -> Literal:
        if word not in ty.values:
            owner = _owner(other)
            raise ConditionError(node.offset, "unknown-value",
                                 f"{word!r} is not one of {owner}'s values {list(ty.values)}"
                                 f"{suggest(word, list(ty.values))}")
        return Literal(word)

    def compare(self, node: Node, scope: Mapping[str, FactSpec] | None) -> Expr:
        op = node.text
        (left, lt), (right, rt) = self.resolve_pair(node.args[0], node.args[1], scope)
        if op not in ("==", "!=") and (lt.kind not in ORDERED or rt.kind not in ORDERED):
            bad, bad_ty = (left, lt) if lt.kind not in ORDERED else (right, rt)
            raise self.wrong(node, f"{_owner(bad)} is {_kind_word(self.facts, bad, bad_ty)}: "
                                   f"it has no order for {op!r}")
        if rt.ranged:
            left, lt, right, rt, op = right, rt, left, lt, FLIP[op]
        if lt.ranged and rt.ranged:
            raise self.wrong(node, "two counts with conditions cannot be compared with each other")
        left, right, _ = self.unify(node, left, lt, right, rt, what="compare")
        native = self.native(op, left, right)
        if native is not None:
            return native
        for fact, literal, literal_node in ((left, right, node.args[1]), (right, left, node.args[0])):
            if isinstance(fact, Ref) and isinstance(literal, (Number, Literal)) \
                    and self.facts[fact.fact].type in ("integer", "boolean", "enum", "text", "date"):
                spec = self.facts[fact.fact]
                shown = literal_node.text or str(getattr(literal, "value", ""))
                raise self.wrong(literal_node, f"{shown!r} is not a value of {spec.name} ({spec.type})")
        return Cmp(op, left, right)

    def native(self, op: str, left: Expr, right: Expr) -> Expr | None:
        """`fact op literal` (either side) as the engine's own comparison, when it is one."""
        if isinstance(right, Ref) and not isinstance(left, Ref):
            left, right, op = right, left, FLIP[op]
        if not isinstance(left, Ref) or not isinstance(right, (Number, Literal)):
            return None
        spec = self.facts[left.fact]
        if spec.type == "list":
            return None
        value = plain_value(spec, right)
        return None if value is None else Compare(left.fact, op, value)

    def unify(self, node: Node, a: Expr, at: Ty, b: Expr, bt: Ty, what: str) -> tuple[Expr, Expr, Ty]:
        """Bring two operands to one type (converting units); returns them and the type."""
        if at.kind == "duration" and bt.kind == "quantity" and not at.calendar and is_time(bt.unit):
            return a, scale(b, units_factor(bt.unit, (("d", 1),))), at
        if bt.kind == "duration" and at.kind == "quantity" and not bt.calendar and is_time(at.unit):
            return scale(a, units_factor(at.unit, (("d", 1),))), b, bt
        if at.kind == "number" and bt.kind == "quantity" and what == "compare":
            return a, b, bt  # a plain number is in the quantity's unit
        if bt.kind == "number" and at.kind == "quantity" and what == "compare":
            return a, b, at
        if at.kind != bt.kind:
            raise self.wrong(node, f"cannot {what} {at.show()} with {bt.show()}")
        if at.kind == "quantity" and at.unit != bt.unit:
            return a, scale(b, self.factor(node, bt, at)), at
        if at.kind == "duration" and at.calendar != bt.calendar:
            raise self.wrong(node, f"cannot {what} {at.show()} with {bt.show()}: "
                                   "months and years do not convert to days")
        if at.kind == "enum":
            if set(at.values) != set(bt.values) and not (set(bt.values) <= set(at.values)
                                                          or set(at.values) <= set(bt.values)):
                raise self.wrong(node, f"cannot {what} enums with different values")
        if at.kind == "number":
            return a, b, Ty("number", integer=at.integer and bt.integer, ranged=at.ranged or bt.ranged)
        if at.kind == "date":
            return a, b, Ty("date", special=tuple(dict.fromkeys(at.special + bt.special)))
        return a, b, at

    def factor(self, node: Node, source: Ty, target: Ty) -> Fraction:
        from screener.rules import units

        convert = dict(source.convert or target.convert)  # the analyte factors of the fact compared
        try:
            return units_factor(source.unit, target.unit, convert)
        except (units.UnitError, ArithmeticError) as exc:
            raise ConditionError(node.offset, "unit", str(exc)) from None

    def member(self, node: Node, scope: Mapping[str, FactSpec] | None) -> Expr:
        operand_node, *item_nodes = node.args
        operand, ty = self.typed(operand_node, scope)
        if ty.kind in ("boolean", "list") or ty.ranged:
            raise self.wrong(node, f"'in' needs a value, not {ty.show()}")
        values: list[Any] = []
        for item in item_nodes:
            if item.kind in ("name", "text") and ty.kind == "enum":
                values.append(self.enum_word(item, item.text, ty, operand).value)
                continue
            if item.kind == "text" and ty.kind == "date":
                got_date, _ = self.quoted_as(item, (operand, ty), (Literal(item.text), Ty("text")))
                values.append(got_date.value)  # type: ignore[union-attr]
                continue
            got, item_ty = self.typed(item, None)
            if isinstance(operand, Ref) and ty.kind != "quantity":
                value = plain_value(self.facts[operand.fact], got)
                if value is None or item_ty.kind not in (ty.kind, "number"):
                    raise self.wrong(item, f"{item.text or item.kind!r} is not a value of {operand.fact} "
                                           f"({self.facts[operand.fact].type})")
                values.append(value)
                continue
            _, converted, _ = self.unify(item, operand, ty, got, item_ty, what="compare")
            values.append(_constant(converted))
        result: Expr
        if isinstance(operand, Ref) and self.facts[operand.fact].type != "quantity":
            result = In(operand.fact, tuple(values))
        else:
            result = Member(operand, tuple(values))
        return Not(result) if node.value else result

    def special(self, node: Node, scope: Mapping[str, FactSpec] | None) -> Expr:
        operand, ty = self.typed(node.args[0], scope)
        word = Special(node.text)
        if ty.kind != "date":
            raise self.wrong(node, f"only dates can be {word.value}, not {ty.show()}")
        if word not in ty.special:
            raise self.wrong(node, f"{_owner(operand)} cannot be {word.value} (its 'special' does not allow it)")
        test = IsSpecial(operand, word)
        return Not(test) if node.value else test

    def within(self, node: Node, scope: Mapping[str, FactSpec] | None) -> Expr:
        subject, st = self.typed(node.args[0], scope)
        duration, dt_ = self.typed(node.args[1], scope)
        anchor, at = self.typed(node.args[2], scope)
        if st.kind != "date":
            raise self.wrong(node.args[0], f"'within' needs a date before it, not {st.show()}")
        if at.kind != "date":
            raise self.wrong(node.args[2], f"'within' needs a date after {node.text!r}, not {at.show()}")
        if dt_.kind == "quantity" and is_time(dt_.unit):
            duration = scale(duration, units_factor(dt_.unit, (("d", 1),)))
        elif dt_.kind != "duration":
            raise self.wrong(node.args[1], f"'within' needs a duration, not {dt_.show()}")
        return Within(subject, duration, anchor, node.text == "after")

    # --- arithmetic --------------------------------------------------------------------

    def arith(self, node: Node, scope: Mapping[str, FactSpec] | None) -> tuple[Expr, Ty]:
        op = node.text
        a, at = self.typed(node.args[0], scope)
        b, bt = self.typed(node.args[1], scope)
        for ty in (at, bt):
            if ty.ranged:
                raise self.wrong(node, "a count with a condition can only be compared, not computed with")
            if ty.kind not in ORDERED:
                raise self.wrong(node, f"no arithmetic on {ty.show()}")
        kinds = (at.kind, bt.kind)
        if op in ("+", "-"):
            if kinds == ("date", "duration"):
                return Arith(op, a, b, calendar=bt.calendar), Ty("date", special=at.special)
            if kinds == ("date", "quantity") and is_time(bt.unit):
                return Arith(op, a, scale(b, units_factor(bt.unit, (("d", 1),)))), Ty("date", special=at.special)
            if kinds == ("duration", "date") and op == "+":
                return Arith(op, b, a, calendar=at.calendar), Ty("date", special=bt.special)
            if kinds == ("date", "date") and op == "-":
                return Arith(op, a, b), Ty("duration")
            if "date" in kinds:
                raise self.wrong(node, f"cannot {'add' if op == '+' else 'subtract'} {bt.show()} "
                                       f"{'to' if op == '+' else 'from'} {at.show()}")
            if "number" in kinds and kinds != ("number", "number"):
                raise self.wrong(node, f"cannot {'add' if op == '+' else 'subtract'} {at.show()} and {bt.show()}")
            a, b, ty = self.unify(node, a, at, b, bt, what="add" if op == "+" else "subtract")
            return Arith(op, a, b), replace(ty, convert=())
        if op == "*":
            if bt.kind == "number" and at.kind != "number":
                a, at, b, bt = b, bt, a, at
            if at.kind == "number":
                if bt.kind == "date":
                    raise self.wrong(node, "cannot multiply a date")
                return Arith(op, a, b), replace(bt, convert=(), integer=at.integer and bt.integer)
            if kinds == ("quantity", "quantity"):
                return Arith(op, a, b), self.quantity(_combine(at.unit, bt.unit, 1))
            raise self.wrong(node, f"cannot multiply {at.show()} by {bt.show()}")
        if op == "/":
            if bt.kind == "number":
                if at.kind == "date":
                    raise self.wrong(node, "cannot divide a date")
                return Arith(op, a, b), replace(at, convert=(), integer=False)
            if kinds == ("quantity", "quantity"):
                return Arith(op, a, b), self.quantity(_combine(at.unit, bt.unit, -1))
            if kinds == ("duration", "duration"):
                a, b, _ = self.unify(node, a, at, b, bt, what="divide")
                return Arith(op, a, b), NUMBER
            raise self.wrong(node, f"cannot divide {at.show()} by {bt.show()}")
        # ^
        if bt.kind != "number":
            raise self.wrong(node, f"the exponent must be a number, not {bt.show()}")
        if at.kind == "number":
            return Arith(op, a, b), NUMBER
        if at.kind == "quantity":
            exponent = b.value if isinstance(b, Number) else None
            if exponent is None or exponent != exponent.to_integral_value():
                raise self.wrong(node, "a quantity can only be raised to a whole-number literal")
            unit = tuple((code, exp * int(exponent)) for code, exp in at.unit)
            return Arith(op, a, b), self.quantity(unit)
        raise self.wrong(node, f"cannot raise {at.show()} to a power")

    @staticmethod
    def quantity(unit: Unit) -> Ty:
        return Ty("quantity", unit=unit) if unit else NUMBER

    # --- functions ---------------------------------------------------------------------

    def pending(self, node: Node, scope: Mapping[str, FactSpec] | None) -> Expr:
        """`pending(f, ...)`: unknown until what the facts describe is done (a condition of a
        criterion, never of a list item, an `if` or a formula)."""
        if scope is not None or self._in_value:
            raise self.wrong(node, "pending(...) is a condition of a criterion, not of a list item, an if, "
                                   "a definition or a formula")
        if not node.args:
            raise self.wrong(node, "pending needs the facts still to collect: pending(exam_date, exam_finding)")
        names: list[str] = []
        for arg in node.args:
            if arg.kind != "name" or arg.text not in self.facts:
                if arg.kind == "name" and arg.text not in self.definitions:
                    hint = suggest(arg.text, list(self.facts))
                    raise ConditionError(arg.offset, "unknown-fact", f"{arg.text!r} is not in the data dictionary{hint}")
                raise self.wrong(arg, "pending takes the names of facts")
            spec = self.facts[arg.text]
            if spec.type == "list" or spec.derived_by is not None or spec.context:
                raise self.wrong(arg, f"pending takes facts a person collects, not {arg.text!r}")
            if arg.text not in names:
                names.append(arg.text)
        return Pending(tuple(names))

    def call(self, node: Node, scope: Mapping[str, FactSpec] | None) -> tuple[Expr, Ty]:
        name = node.text
        if name == PENDING:
            raise self.wrong(node, "pending(...) is a condition of a criterion, not a value")
        if name not in FUNCTIONS:
            raise ConditionError(node.offset, "unknown-function",
                                 f"unknown function {name!r}{suggest(name, [*FUNCTIONS, *AGGREGATES])}")
        arity = {"abs": 1, "if": 3, "value": 2, "years_between": 2, "months_between": 2, "days_between": 2}
        if name in arity and len(node.args) != arity[name]:
            raise self.wrong(node, f"{name} takes {arity[name]} arguments, not {len(node.args)}")
        if name in ("min", "max") and not node.args:
            raise self.wrong(node, f"{name} needs at least one argument")
        if name == "if":
            self._in_value += 1
            try:
                test = self.cond(node.args[0], scope)
                (a, at), (b, bt) = self.resolve_pair(node.args[1], node.args[2], scope)
            finally:
                self._in_value -= 1
            a, b, ty = self.unify(node, a, at, b, bt, what="choose between")
            return Call("if", (test, a, b)), ty
        if name == "value":
            q, qt = self.typed(node.args[0], scope)
            unit_node = node.args[1]
            if qt.kind != "quantity" or unit_node.kind != "text":
                raise self.wrong(node, "value takes a quantity and a unit in quotes: value(q, 'mg/dL')")
            target = Ty("quantity", unit=self.unit(unit_node, unit_node.text))
            return scale(q, self.factor(unit_node, qt, target)), NUMBER
        if name in ("years_between", "months_between", "days_between"):
            a, at = self.typed(node.args[0], scope)
            b, bt = self.typed(node.args[1], scope)
            for arg, ty in ((node.args[0], at), (node.args[1], bt)):
                if ty.kind != "date":
                    raise self.wrong(arg, f"{name} takes two dates, not {ty.show()}")
            return Call(name, (a, b)), INTEGER
        args = [self.typed(arg, scope) for arg in node.args]
        if name == "abs":
            expr, ty = args[0]
            if ty.kind not in ("number", "quantity", "duration") or ty.ranged:
                raise self.wrong(node, f"abs takes a number, quantity or duration, not {ty.show()}")
            return Call("abs", (expr,)), replace(ty, convert=())
        first, ty = args[0]
        if ty.kind not in ORDERED or ty.ranged:
            raise self.wrong(node, f"{name} takes numbers, quantities, durations or dates, not {ty.show()}")
        out = [first]
        for (expr, other), arg in zip(args[1:], node.args[1:]):
            _, converted, ty = self.unify(arg, first, ty, expr, other, what=f"take the {name} of")
            out.append(converted)
        return Call(name, tuple(out)), replace(ty, convert=())

    def aggregate(self, node: Node, scope: Mapping[str, FactSpec] | None) -> tuple[Expr, Ty]:
        name = node.text
        if not node.args or node.args[0].kind != "name" or node.args[0].text not in self.facts \
                or self.facts[node.args[0].text].type != "list":
            raise self.wrong(node, f"{name} takes a list fact first")
        fact = node.args[0].text
        items = {spec.name: spec for spec in self.facts[fact].item}
        rest = node.args[1:]
        arity = {"any": (1,), "all": (1,), "count": (0, 1), "sum": (1,), "min_of": (1,), "max_of": (1,),
                 "latest": (2,)}[name]
        if len(rest) not in arity:
            raise self.wrong(node, f"{name} takes {' or '.join(str(n + 1) for n in arity)} arguments")
        if name in ("any", "all"):
            return Aggregate(name, fact, (self.cond(rest[0], items),)), BOOLEAN
        if name == "count":
            if not rest:
                return Aggregate(name, fact, ()), INTEGER
            return Aggregate(name, fact, (self.cond(rest[0], items),)), Ty("number", integer=True, ranged=True)
        if name == "latest":
            if rest[0].kind != "name" or rest[0].text not in items or items[rest[0].text].type != "date":
                raise self.wrong(rest[0], f"latest needs a date field of {fact}'s items second")
            expr, ty = self.typed(rest[1], items)
            return Aggregate(name, fact, (ItemField(rest[0].text), expr)), replace(ty, convert=())
        expr, ty = self.typed(rest[0], items)
        allowed = ORDERED if name != "sum" else ("number", "quantity", "duration")
        if ty.kind not in allowed or ty.ranged:
            raise self.wrong(rest[0], f"{name} takes {'numbers' if name == 'sum' else 'ordered values'}, "
                                      f"not {ty.show()}")
        return Aggregate(name, fact, (expr,)), replace(ty, convert=(), integer=ty.integer and name != "sum")


def scale(expr: Expr, factor: Fraction) -> Expr:
    """`expr` converted by `factor`; a literal is converted at once."""
    if factor == 1:
        return expr
    if isinstance(expr, Number):
        return Number(expr.value * factor.numerator / factor.denominator)
    return Scale(expr, factor)


def as_condition(expr: Expr, facts: Mapping[str, FactSpec]) -> Expr:
    """A yes/no expression as a condition: a yes/no fact is `fact == true`, as always."""
    if isinstance(expr, Ref) and facts[expr.fact].type == "boolean":
        return Compare(expr.fact, "==", True)
    if isinstance(expr, Literal) and isinstance(expr.value, bool):
        return Const(expr.value)
    if isinstance(expr, (ItemField, Call, Aggregate)) and not (
            isinstance(expr, Aggregate) and expr.name in ("any", "all")):
        return Truth(expr)
    return expr


def plain_value(spec: FactSpec, literal: Expr) -> Any:
    """The fact-typed value of a literal compared with a plain fact, or None if it is no such value."""
    if isinstance(literal, Number):
        value = literal.value
        if spec.type == "integer":
            return int(value) if value == value.to_integral_value() else None
        if spec.type == "decimal":
            return float(value)
        if spec.type == "quantity":
            return value
        return None
    if isinstance(literal, Literal):
        value = literal.value
        if spec.type == "date" and isinstance(value, dt.date):
            return value
        if spec.type == "boolean" and isinstance(value, bool):
            return value
        if spec.type in ("enum", "text") and isinstance(value, str):
            return value
    return None


def _constant(expr: Expr) -> Any:
    """The value of a literal (possibly converted), for `in` lists."""
    if isinstance(expr, Scale):
        return _constant(expr.operand) * expr.factor.numerator / expr.factor.denominator
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Duration):
        return expr.amount
    if isinstance(expr, Literal):
        return expr.value
    raise ConditionError(0, "wrong-type", "'in' lists hold values only")


def _owner(expr: Expr) -> str:
    if isinstance(expr, Ref):
        return expr.fact
    if isinstance(expr, ItemField):
        return expr.name
    return "the value"


def _kind_word(facts: Mapping[str, FactSpec], expr: Expr, ty: Ty) -> str:
    if isinstance(expr, Ref):
        return facts[expr.fact].type
    return ty.show()


def _spec_kind(facts: Mapping[str, FactSpec], scope: Mapping[str, FactSpec] | None, name: str, ty: Ty) -> str:
    if scope and name in scope:
        return scope[name].type
    if name in facts:
        return facts[name].type
    return ty.show()
