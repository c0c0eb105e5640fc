"""The trial as plain, frozen data: facts, criteria, derivations and their source positions.

Everything downstream (compiler, engine, batch, dialog, trace, letter) reads these objects;
nothing here knows a particular trial.
"""
from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping, Union


class Special(str, enum.Enum):
    """The two values a date fact may take besides a date, when its spec allows them.

    `never`: the event did not happen; every comparison and window with it is not met.
    `ongoing`: still going at the screening (an end date not reached, a drug not stopped);
    it orders after every date.
    """

    NEVER = "never"
    ONGOING = "ongoing"


@dataclass(frozen=True, slots=True)
class Interval:
    """A value known only to lie between two ends, as the record gives it: a censored result
    (`<20` IU/mL: below 20, 20 excluded), a result below the detection limit, a month or a
    year for a date (`March 2021`: one of its days), or a fact computed from such values (17
    or 18 completed years). The ends are exact (Decimal for numbers and quantities, in the
    fact's declared unit; int for integers; date for dates, both days included); None is no
    end.

    `form` is how it was written: `<`, `<=`, `>`, `>=` (a censored number), `below` (below
    the detection limit), `month`, `year`, or "" for a computed one; `given` is the text that
    reads back to the same value (`<20`, `<0.5 mg/dL`, `2021-03`): what a trace records."""

    low: Any
    high: Any
    low_open: bool = False
    high_open: bool = False
    form: str = ""
    given: str = ""

    def contains(self, value: Any) -> bool:
        """Whether the point `value` (of the ends' kind) lies in the interval."""
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


# bool, int, float (decimal), Decimal (quantity, in the fact's declared unit), str (enum,
# text), date or Special (date), an Interval (a censored quantity, a month or year date, or
# a number computed from them), or a tuple of items (list: each item maps field -> value,
# None for unknown).
FactValue = Union[bool, int, float, Decimal, str, _dt.date, Special, Interval,
                  tuple[Mapping[str, Any], ...]]

FACT_TYPES = ("boolean", "integer", "decimal", "date", "enum", "text", "quantity", "list")
OUTCOMES = ("met", "not_met", "unknown")
DECISIONS = ("eligible", "ineligible", "undetermined")


@dataclass(frozen=True, slots=True)
class Span:
    """Where something was written: file and 1-based line and column."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class FactSpec:
    """One entry of the trial's data dictionary."""

    name: str
    type: str
    description: str
    span: Span
    values: tuple[str, ...] = ()  # enum values
    minimum: float | None = None
    maximum: float | None = None
    places: int = 0  # decimal places kept for `decimal` facts
    unit: str = ""
    required: bool = False  # e.g. the candidate's id in batch input
    derived_by: str | None = None  # id of the derivation that can produce this fact
    context: bool = False  # given once per run (site, cohort), not per candidate
    special: tuple[Special, ...] = ()  # date facts: never and/or ongoing allowed
    # quantity facts: `unit` is a UCUM code; other units of the analyte with their factor to
    # `unit` (1 given unit = factor declared units), beyond what the unit system converts
    convert: tuple[tuple[str, Decimal], ...] = ()
    item: tuple["FactSpec", ...] = ()  # list facts: the fields of one item
    # quantity facts: conversions that are not a plain factor (HbA1c mmol/mol -> %), as
    # (unit, factor, offset): declared = given * factor + offset; not repeated in `convert`
    affine: tuple[tuple[str, Decimal, Decimal], ...] = ()
    # date item fields: the sibling date field this one is never earlier than (a dose stable
    # since a day no earlier than the drug's start), "" when none
    not_before: str = ""
    plausible: "Plausible | None" = None  # quantity facts: the usual range, see Plausible
    # quantity facts: a result "below the detection limit" given without its limit is below
    # this (the assay's limit, or a bound of the limits of every assay in use)
    detection_limit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Plausible:
    """The usual range of a quantity in its declared unit, and the other units a bare number
    outside it is often meant in (albumin 3.8 where g/L is declared is 3.8 g/dL)."""

    low: Decimal | None
    high: Decimal | None
    units: tuple[str, ...] = ()

    def holds(self, value: Decimal) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True, slots=True)
class Derivation:
    """A forward-chaining rule that computes one fact from others with a generic function."""

    id: str
    fact: str
    function: str
    inputs: tuple[str, ...]
    params: dict  # type: ignore[type-arg]
    description: str
    span: Span
    formula: "Expr | None" = None  # `formula:` derivations: the checked expression (function "formula")
    # `given: reported`: a given value is the source's own measurement and decides; the
    # computed one is kept beside it, and a difference over `tolerance` is a warning
    reported: bool = False
    tolerance: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Criterion:
    """An inclusion or exclusion criterion with its protocol text and parsed condition."""

    id: str
    kind: str  # "inclusion" | "exclusion"
    title: str
    protocol: str  # verbatim protocol sentence
    note: str  # interpretation note shown to auditors ("" when none)
    condition_text: str
    condition: "Expr"
    facts: tuple[str, ...]  # facts the condition reads, in order of first use
    span: Span
    ask: bool = True  # False for criteria that are always met and never asked
    # the patient's informed consent: not met means the patient declined (screening log)
    consent: bool = False


@dataclass(frozen=True, slots=True)
class Trial:
    """A compiled-ready trial: identity, data dictionary, derivations and criteria."""

    id: str
    title: str
    version: str
    path: str
    content_hash: str  # sha256 of the rules file bytes
    facts: dict[str, FactSpec]
    derivations: tuple[Derivation, ...]
    criteria: tuple[Criterion, ...]
    id_fact: str = "candidate_id"

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(criterion_id)

    def criteria_using(self, fact: str) -> tuple[Criterion, ...]:
        """Criteria whose condition reads `fact`, directly or through a derivation."""
        return tuple(c for c in self.criteria if fact in self.expanded_facts(c))

    def expanded_facts(self, criterion: Criterion) -> tuple[str, ...]:
        """The criterion's facts followed by the inputs of any derivation that feeds them."""
        seen: list[str] = []
        pending = list(criterion.facts)
        while pending:
            name = pending.pop(0)
            if name in seen:
                continue
            seen.append(name)
            spec = self.facts.get(name)
            if spec is not None and spec.derived_by is not None:
                derivation = next(d for d in self.derivations if d.id == spec.derived_by)
                pending.extend(derivation.inputs)
        return tuple(seen)


# --- condition expressions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    """`fact OP literal`; a bare boolean fact is `fact == true`."""

    fact: str
    op: str  # one of == != < <= > >=
    value: FactValue


@dataclass(frozen=True, slots=True)
class In:
    """`fact in [a, b, ...]`."""

    fact: str
    values: tuple[FactValue, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Expr"


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple["Expr", ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple["Expr", ...]


@dataclass(frozen=True, slots=True)
class Const:
    """`true` or `false` as a whole condition (e.g. a criterion that is always met)."""

    value: bool


# --- expressions of the full language (docs/rules-language.md) ------------------------------
# Values inside them: numbers, quantities (in the unit the type checker gave them) and day
# durations are Decimal; calendar durations are Decimal months; dates are Decimal day numbers
# (proleptic ordinals, `ongoing` is +Infinity); `never` is Special.NEVER.


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal, or a quantity literal already converted to the unit it is used in."""

    value: Decimal


@dataclass(frozen=True, slots=True)
class Duration:
    """`N days|weeks|months|years`: `amount` in days (exact) or in months (`calendar`)."""

    amount: Decimal
    calendar: bool


@dataclass(frozen=True, slots=True)
class Literal:
    """A date, enum word, text or yes/no literal used as a value."""

    value: FactValue


@dataclass(frozen=True, slots=True)
class Ref:
    """The value of a fact (for a list: the list)."""

    fact: str


@dataclass(frozen=True, slots=True)
class ItemField:
    """A field of the current item, inside an aggregate over a list."""

    name: str


@dataclass(frozen=True, slots=True)
class Scale:
    """`operand` times `factor`: a unit conversion the type checker inserted (an exact
    fraction, so converting back and forth loses nothing: 132.6 umol/L is 1.5 mg/dL)."""

    operand: "Expr"
    factor: Fraction


@dataclass(frozen=True, slots=True)
class Arith:
    """`left op right`, op one of + - * / ^; `calendar` for date +/- months."""

    op: str
    left: "Expr"
    right: "Expr"
    calendar: bool = False


@dataclass(frozen=True, slots=True)
class Neg:
    operand: "Expr"


@dataclass(frozen=True, slots=True)
class Call:
    """min, max, abs, if, years_between, months_between, days_between."""

    name: str
    args: tuple["Expr", ...]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """any, all, count, sum, min_of, max_of, latest over the items of list fact `fact`."""

    name: str
    fact: str
    args: tuple["Expr", ...]


@dataclass(frozen=True, slots=True)
class Cmp:
    """`left op right` between two expressions (not a plain fact with a literal)."""

    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True, slots=True)
class Member:
    """`operand in [values]` for an operand that is not a plain fact."""

    operand: "Expr"
    values: tuple[FactValue, ...]


@dataclass(frozen=True, slots=True)
class Within:
    """`subject within duration before|after anchor`, both ends included."""

    subject: "Expr"
    duration: "Expr"
    anchor: "Expr"
    after: bool


@dataclass(frozen=True, slots=True)
class IsSpecial:
    """`operand is never|ongoing`."""

    operand: "Expr"
    word: Special


@dataclass(frozen=True, slots=True)
class Truth:
    """A yes/no value (an item field, an `if`) used as a condition: met when it is yes."""

    operand: "Expr"


@dataclass(frozen=True, slots=True)
class Pending:
    """`pending(f, ...)`: a condition that is always unknown, because what the listed facts
    describe is still to be done or collected (again): an examination that does not yet
    qualify. `missing` names the facts whether or not they are given."""

    facts: tuple[str, ...]


Expr = Union[Compare, In, Not, And, Or, Const, Number, Duration, Literal, Ref, ItemField, Scale,
             Arith, Neg, Call, Aggregate, Cmp, Member, Within, IsSpecial, Truth, Pending]


def children(e: Any) -> tuple[Any, ...]:
    """The sub-expressions of an expression node."""
    kind = type(e)  # (no node class has subclasses: its class says what it holds)
    if kind is Arith or kind is Cmp:
        return (e.left, e.right)
    if kind is And or kind is Or:
        return e.operands
    if kind is Call or kind is Aggregate:
        return e.args
    if kind in _ONE_OPERAND:
        return (e.operand,)
    if kind is Within:
        return (e.subject, e.duration, e.anchor)
    return ()


_ONE_OPERAND = frozenset({Not, Scale, Neg, Member, IsSpecial, Truth})


def expr_facts(expr: Any) -> tuple[str, ...]:
    """Facts an expression reads (lists included), in order of first appearance."""
    out: list[str] = []
    stack = [expr]
    while stack:
        e = stack.pop()
        name = None
        if isinstance(e, (Compare, In)):
            name = e.fact
        elif isinstance(e, Ref):
            name = e.fact
        elif isinstance(e, Aggregate):
            name = e.fact
        if name is not None and name not in out:
            out.append(name)
        if isinstance(e, Pending):
            out.extend(f for f in e.facts if f not in out)
        stack.extend(reversed(children(e)))
    return tuple(out)


def pending_facts(expr: Any) -> tuple[str, ...]:
    """The facts the `pending(...)` conditions of an expression name, in order of first
    appearance: evidence still to be collected, given or not."""
    out: list[str] = []
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, Pending):
            out.extend(f for f in e.facts if f not in out)
        stack.extend(reversed(children(e)))
    return tuple(out)


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Firing:
    """One rule the engine fired: which, on what facts, with what result."""

    rule: str  # e.g. "<criterion>.met", "derive.<derivation>", "<criterion>.missing.<fact>"
    criterion: str | None
    outcome: str | None  # met / not_met / unknown for criterion rules
    facts: dict  # type: ignore[type-arg]  # the facts the rule read, with their values
    derived: dict = field(default_factory=dict)  # type: ignore[type-arg]


@dataclass(frozen=True, slots=True)
class Result:
    """What the engine concluded about one candidate."""

    decision: str  # eligible / ineligible / undetermined
    outcomes: dict[str, str]  # criterion id -> met / not_met / unknown, in trial order
    failed: tuple[str, ...]  # inclusion not met + exclusion met, in trial order
    missing: tuple[str, ...]  # input facts whose answers could move the decision
    derived: dict[str, FactValue]  # facts computed by derivation rules
    firings: tuple[Firing, ...]
    # reported facts (`given: reported`): the value computed beside the given one
    computed: dict[str, FactValue] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # reported values further than their tolerance from the computed
