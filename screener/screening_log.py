"""The screening-log category of a decision: the words a coordinator files with the monitor.

Good Clinical Practice (ICH GCP) asks for a log of every patient screened and why each was not
enrolled. Each batch and match record carries one of these categories in its `screening_log`
field:

- `eligible`: every criterion settled in the candidate's favour;
- `screen failure`: a criterion excludes the candidate;
- `declined`: the only criteria that exclude the candidate are consent criteria (the rules
  file marks them `consent: true`): the patient would otherwise qualify but did not consent;
- `pending`: undetermined, something is still to be found out;
- `error`: the record could not be screened (its `errors` say why).

The same words the dialog shows on its decision screen.
"""
from __future__ import annotations

from typing import Any, Iterable

from screener.memo import PerObject
from screener.model import Trial

CATEGORIES = ("eligible", "screen failure", "declined", "pending", "error")


def category(trial: Trial, decision: str, failed: Iterable[str]) -> str:
    """The screening-log category of `decision` with the `failed` criterion ids of `trial`."""
    if decision == "eligible":
        return "eligible"
    if decision == "undetermined":
        return "pending"
    if decision == "ineligible":
        failed = list(failed)
        return "declined" if failed and set(failed) <= _consent(trial) else "screen failure"
    return "error"


# The consent criteria of each trial, found once per trial rather than once per record.
_consent: PerObject[Trial, frozenset[str]] = PerObject(
    lambda trial: frozenset(c.id for c in trial.criteria if c.consent))


def with_screening_log(trial: Trial, record: dict[str, Any]) -> dict[str, Any]:
    """`record` (a batch record) with its `screening_log` field set, after every other field."""
    record["screening_log"] = category(trial, record["decision"], record["failed_criteria"])
    return record
