"""The trial as plain, frozen data: facts, criteria, derivations and their source positions.

Everything downstream (compiler, engine, batch, dialog, trace, letter) reads these objects;
nothing here knows a particular trial.
"""
from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Union


class Special(str, enum.Enum):
    """The two values a date fact may take besides a date, when its spec allows them.

    `never`: the event did not happen; every comparison and window with it is not met.
    `ongoing`: still going at the screening (an end date not reached, a drug not stopped);
    it orders after every date.
    """

    NEVER = "never"
    ONGOING = "ongoing"


# bool, int, float (decimal), Decimal (quantity, in the fact's declared unit), str (enum,
# text), date or Special (date), or a tuple of items (list: each item maps field -> value,
# None for unknown).
FactValue = Union[bool, int, float, Decimal, str, _dt.date, Special,
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


Expr = Union[Compare, In, Not, And, Or, Const]


def expr_facts(expr: Expr) -> tuple[str, ...]:
    """Facts an expression reads, in order of first appearance."""
    out: list[str] = []

    def walk(e: Expr) -> None:
        if isinstance(e, (Compare, In)):
            if e.fact not in out:
                out.append(e.fact)
        elif isinstance(e, Not):
            walk(e.operand)
        elif isinstance(e, (And, Or)):
            for operand in e.operands:
                walk(operand)

    walk(expr)
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
