"""What standard error says at the end of a batch or match run, beside the summary tables:
which rows are errors and on which facts (once per row, however many trials share the bad
value), and which ignored columns look like a typo of a fact.

Candidate data stays out: a row is named by its number and a bad value by its fact, never
by the value (the results hold that).
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Sequence


class ErrorDigest:
    """Error records grouped per input row: each bad fact once, with the trials it spoils."""

    def __init__(self, trial_ids: Sequence[str], facts: Iterable[str]):
        self.trial_ids = list(trial_ids)
        self.facts = set(facts)
        self.rows: dict[int, dict[str, list[str]]] = {}

    def add(self, row: int, record: dict[str, Any]) -> None:
        """One output record of input row `row` (counted from 1)."""
        if record["decision"] != "error":
            return
        trial_id = str(record.get("trial_id", ""))
        named = self.rows.setdefault(row, {})
        for message in record["errors"] or [""]:
            fact = message.split(":", 1)[0]
            what = fact if fact in self.facts else "the row itself"
            trials = named.setdefault(what, [])
            if trial_id not in trials:
                trials.append(trial_id)

    def lines(self, limit: int = 20) -> list[str]:
        """One line per row in error, at most `limit`, then how many more."""
        several = len(self.trial_ids) > 1
        out = []
        for row, named in list(self.rows.items())[:limit]:
            parts = []
            for what, trials in named.items():
                if not several:
                    parts.append(what)
                elif len(trials) == len(self.trial_ids):
                    parts.append(f"{what} (every trial)")
                else:
                    parts.append(f"{what} ({', '.join(trials)})")
            out.append(f"error: row {row}: bad value of {'; '.join(parts)}"
                       if any(w != "the row itself" for w in named) else
                       f"error: row {row}: {'; '.join(parts)} cannot be read")
        if len(self.rows) > limit:
            out.append(f"error: {len(self.rows) - limit} more rows are errors")
        if out:
            out.append("each error record of the results names the value and what is wrong with it")
        return out


def suggestion(name: str, facts: Iterable[str]) -> str | None:
    """The fact `name` was most likely meant to be, or None when none is close."""
    close = difflib.get_close_matches(name.strip().lower(), sorted(facts), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_fields_text(unknown: Iterable[str], facts: Iterable[str]) -> str:
    """The ignored field names, each with "did you mean" when a fact is close to it."""
    facts = list(facts)
    shown = []
    for name in sorted(unknown):
        meant = suggestion(name, facts)
        shown.append(f"{name} (did you mean {meant}?)" if meant else name)
    return ", ".join(shown)


def written_text(written: int, where: str, trial_ids: Sequence[str], several: bool) -> str:
    """The run's last line: how many records went where, per trial when there are several."""
    if not several:
        return f"{written} records written to {where}, one per candidate"
    per_trial = written // max(len(trial_ids), 1)
    return (f"{written} records written to {where}: {per_trial} for each of {len(trial_ids)} trials "
            f"({', '.join(trial_ids)}), one per candidate and trial")
