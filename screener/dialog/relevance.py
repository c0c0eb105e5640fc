"""Which answers still matter: a correction can make earlier answers irrelevant.

An answer matters when leaving it out would change a criterion's outcome, or when the engine
would still ask for it. After a correction, the answers that mattered before and no longer do
are superseded: they leave the decision, the evidence and the letter (the trace keeps them,
with the reason), so a corrected record never holds contradictory facts, e.g. a man's
pregnancy answer once the record says the patient is a man.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from screener.model import FactValue, Result

Evaluate = Callable[[dict[str, Any]], Result]
Answers = dict[str, FactValue | None]


def matters(evaluate: Evaluate, answers: Answers, result: Result, fact: str) -> bool:
    """True when the answer for `fact` can move an outcome or is still asked for.

    `result` is the evaluation of `answers`. An unknown answer (None) matters while the engine
    still lists the fact as missing.
    """
    if answers.get(fact) is None:
        return fact in result.missing
    without = {k: v for k, v in answers.items() if k != fact}
    other = evaluate(without)
    return other.outcomes != result.outcomes or fact in other.missing


def superseded(evaluate: Evaluate, before: Answers, after: Answers, changed: str,
               order: Iterable[str]) -> list[str]:
    """The answers a correction of `changed` made irrelevant, latest question first.

    `before` and `after` are the answers without and with the correction; `order` lists the
    answered facts in question order. Facts are dropped one at a time and the rest re-checked,
    so when two answers each settle the same criterion one of them stays.
    """
    before_result = evaluate(before)
    current = dict(after)
    result = evaluate(current)
    dropped: list[str] = []
    for fact in reversed([f for f in order if f in after and f != changed]):
        if matters(evaluate, current, result, fact) or not matters(evaluate, before, before_result, fact):
            continue
        del current[fact]
        result = evaluate(current)
        dropped.append(fact)
    return dropped
