"""How good a prospect a trial is for a candidate, by what is known (`screener match`).

A trial about which nothing speaks for the candidate is no prospect, however few answers
are missing: an undetermined trial none of whose inclusion criteria is known to be met is
`not assessed`. The `prospect` of a match record is one of PROSPECTS, best first:

- `eligible`;
- `pending`: undetermined, with at least one inclusion criterion known to be met;
- `ineligible`;
- `not assessed`: undetermined, and no inclusion criterion known to be met;
- `error`.

Within `pending`, the trial with the larger share of its criteria settled in the candidate's
favour (inclusion met, exclusion not met) ranks first, then the one with fewer missing
answers (MatchMiner ranks by what is known). Criteria that are always met and never asked
(`ask: false`) count for nothing.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

from screener.model import Result, Trial

PROSPECTS = ("eligible", "pending", "ineligible", "not assessed", "error")
MATCH_FIELDS = ("prospect", "criteria_settled", "criteria_total")


def _in_favour(kind: str, outcome: str) -> bool:
    return outcome == ("met" if kind == "inclusion" else "not_met")


def prospect_fields(trial: Trial, decision: str, result: Result | None) -> dict[str, Any]:
    """The match record's `prospect`, `criteria_settled` (criteria known to be in the
    candidate's favour) and `criteria_total` (criteria that are asked)."""
    asked = [c for c in trial.criteria if c.ask]
    outcomes = result.outcomes if result is not None else {}
    settled = sum(1 for c in asked if _in_favour(c.kind, outcomes.get(c.id, "unknown")))
    if decision == "undetermined":
        known_met = any(c.kind == "inclusion" and outcomes.get(c.id) == "met" for c in asked)
        prospect = "pending" if known_met else "not assessed"
    else:
        prospect = decision if decision in PROSPECTS else "error"
    return {"prospect": prospect, "criteria_settled": settled, "criteria_total": len(asked)}


def rank_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key of one candidate's match record, best prospect first: the prospect; within
    pending the share of criteria settled (larger first), then fewest missing answers; within
    ineligible fewest failed criteria."""
    prospect = record["prospect"]
    share = Fraction(record["criteria_settled"], record["criteria_total"] or 1)
    return (PROSPECTS.index(prospect), -share if prospect == "pending" else 0,
            len(record["missing"]), len(record["failed_criteria"]))


class MatchSummary:
    """How many candidates have somewhere to go: at least one eligible trial, else at least
    one pending trial, else neither."""

    def __init__(self) -> None:
        self.candidates = 0
        self.eligible = 0
        self.pending = 0

    def add(self, group: Sequence[dict[str, Any]]) -> None:
        """One candidate's records."""
        self.candidates += 1
        prospects = {r["prospect"] for r in group}
        if "eligible" in prospects:
            self.eligible += 1
        elif "pending" in prospects:
            self.pending += 1

    def text(self) -> str:
        none = self.candidates - self.eligible - self.pending
        return (f"{self.candidates} candidates matched: {self.eligible} with an eligible trial, "
                f"{self.pending} more with a pending one (an inclusion criterion known to be met, "
                f"the rest still to find out), {none} with neither")
