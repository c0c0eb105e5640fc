"""The decision as a coordinator acts on it: what failed and on which values, what is missing
(in clinical words and question order), and the screening-log category.

Plain data built from the trial, the engine's Result and the dialog file; render.py shows it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from screener.deciding import deciding_facts
from screener.dialog.spec import DialogSpec
from screener.model import Result, Trial
from screener.rules.collect import parse_ref

# Screening-log categories: a refusal is counted apart from a screen failure.
CATEGORIES = ("eligible", "screen_failure", "declined", "pending")


@dataclass(frozen=True, slots=True)
class Failure:
    """Criteria that failed on the same facts (e.g. an inclusion and its mirror exclusion)."""

    criteria: tuple[str, ...]
    facts: tuple[str, ...]  # the facts that decided them, in order


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: str
    category: str  # one of CATEGORIES
    failures: tuple[Failure, ...]
    missing: tuple[str, ...]  # facts to find out, in question order


def outcome(trial: Trial, dialog: DialogSpec, result: Result, answers: dict[str, Any]) -> Outcome:
    """The Outcome of `result` reached on `answers` (unknown answers are None)."""
    facts = {k: v for k, v in answers.items() if v is not None} | dict(result.derived)
    failures: list[Failure] = []
    for criterion_id in result.failed:
        deciding = deciding_facts(trial.criterion(criterion_id).condition, facts)
        same = next((f for f in failures if f.facts == deciding and deciding), None)
        if same is not None:
            failures[failures.index(same)] = Failure(same.criteria + (criterion_id,), deciding)
        else:
            failures.append(Failure((criterion_id,), deciding))
    known = [f for f in result.missing if f in dialog.questions]
    # list entries to complete (`bp_readings[]`, `lesions[2].short_axis`) after the facts
    entries = [f for f in result.missing if (ref := parse_ref(f)) is not None and ref[0] in dialog.questions]
    missing = tuple(sorted(known, key=dialog.order)) + tuple(entries)
    if result.decision == "eligible":
        category = "eligible"
    elif result.decision == "undetermined":
        category = "pending"
    else:
        # declined: only consent failed, by the rules (`consent: true`) or by the dialog file
        # (a "no" to a `refusal: true` question)
        refusals = {f for f, q in dialog.questions.items() if q.refusal}
        consent = {c.id for c in trial.criteria if c.consent}
        declined = set(result.failed) <= consent or all(
            failure.facts and set(failure.facts) <= refusals for failure in failures)
        category = "declined" if declined else "screen_failure"
    return Outcome(result.decision, category, tuple(failures), missing)
