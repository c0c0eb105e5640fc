"""One family of errors. Each keeps its inputs as attributes and has a stable code."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from screener.present import computed, show


class ScreenerError(Exception):
    """Base of every error screener raises on purpose."""

    code = "error"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One problem found in a rules or dialog file, with its position."""

    path: str
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.code}: {self.message}"


class RulesError(ScreenerError):
    """A rules (or dialog) file is invalid; `problems` lists every problem, sorted."""

    code = "rules-invalid"

    def __init__(self, problems: list[RuleProblem]):
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class InvalidValue(ScreenerError):
    """A candidate's value does not fit the fact's type; names the fact and the value."""

    code = "invalid-value"

    def __init__(self, fact: str, value: object, reason: str):
        self.fact = fact
        self.value = value
        self.reason = reason
        super().__init__(f"{fact}: {value!r}: {reason}")


class ConflictError(ScreenerError):
    """A given fact disagrees with the value a derivation computes from other facts.

    One candidate can hold several contradictions; the engine raises the first (in the
    trial's fact order) carrying the rest in `others`, so `each` names every one of them
    while `str()`, `fact`, `given`, `derived` and `inputs` stay those of the first.
    Values are shown as a person reads them (`show`): plain decimals, ISO dates, yes/no.
    """

    code = "conflict"
    others: tuple[ConflictError, ...] = ()

    def __init__(self, fact: str, given: object, derived: object, inputs: Mapping[str, object]):
        self.fact = fact
        self.given = given
        self.derived = derived
        self.inputs = inputs
        super().__init__(f"{fact}: {show(given)}: disagrees with {_cut(derived)} derived from "
                         f"{_shown(inputs)}")

    @property
    def each(self) -> tuple[ConflictError, ...]:
        """Every contradiction of the candidate, this one first."""
        return (self, *self.others)

    def with_others(self, others: Sequence[ConflictError]) -> ConflictError:
        """This error, carrying `others` as the candidate's further contradictions."""
        self.others = tuple(others)
        return self


class ImpossibleFacts(ConflictError):
    """Facts that cannot all be true: a derivation's inputs contradict each other, or what
    they give falls outside the derived fact's range (a birth date after the screening date)."""

    code = "impossible"

    def __init__(self, fact: str, derived: object, inputs: Mapping[str, object], reason: str):
        self.reason = reason
        ScreenerError.__init__(self)
        self.fact, self.given, self.derived, self.inputs = fact, None, derived, inputs
        self.args = (f"{fact}: cannot be derived from {_shown(inputs)}: {reason}",)


def _cut(value: object) -> str:
    shown, mark = computed(value)
    return show(shown) + mark


def reported_warning(fact: str, given: object, computed: object, inputs: Mapping[str, object],
                     tolerance: object) -> str:
    """The warning for a reported value further than its tolerance from the computed one
    (docs/rules-language.md, "Reported measurements"): fact, both values and the inputs."""
    return (f"{fact}: {show(given)}: reported value used; {_cut(computed)} computed from "
            f"{_shown(inputs)} differs by more than {show(tolerance)}")


def _shown(inputs: Mapping[str, object]) -> str:
    return ", ".join(f"{name}={show(value)}" for name, value in inputs.items())


class EngineError(ScreenerError):
    """The rules engine reported a failure; never silently ignored."""

    code = "engine"
